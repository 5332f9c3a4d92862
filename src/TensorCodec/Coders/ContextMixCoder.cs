using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;

namespace TensorCodec.Coders;

/// <summary>
/// Split transforms 12 (BF16) and 13 (F32), FORMAT.md §2b: the top 12 bits of every value — exponent, sign and the top
/// three mantissa bits — range coded (<see cref="BinaryRangeCoder"/>) with context models, the rest of the value stored.
/// The exponent goes through a bit tree whose every node mixes five adaptive models (logistic mixing, PAQ-style): no
/// context, the same column's exponent in the previous row, the column's running magnitude, that with the previous
/// exponent in the row, and with the row's running magnitude. The sign is modelled given the previous and the upper
/// neighbour's sign, the top mantissa bits given the exponent. These are the models that paid in
/// <c>e2e ctxmodel</c> (BENCHMARKS.md §1 "Context-model level"). Models start fresh in every chunk. One instance serves
/// one thread; it owns its state, so coding allocates nothing once the row buffers have grown.
/// </summary>
internal sealed class ContextMixCoder
{
    /// <summary>Adaptive counters stop slowing down after this many updates (rate 1/(n + 1.5), then fixed).</summary>
    public const int CountLimit = 1023;
    /// <summary>Mixer learning-rate shift: the error (16-bit probability scale) is divided by 2^this.</summary>
    public const int MixShift = 3;
    /// <summary>Mixer weights are clamped to ±this (16.16 fixed point), so that no input can overflow the dot product.</summary>
    public const int WeightLimit = 1 << 24;

    const int Inputs = 5;
    // Exponent model regions, in contexts of 256 tree nodes each (node 0 unused).
    const int CtxOrder0 = 0, CtxUp = CtxOrder0 + 1, CtxCol = CtxUp + 16, CtxPrevCol = CtxCol + 32, CtxColRow = CtxPrevCol + 512;
    const int ExpContexts = CtxColRow + 1024;
    const int OffSign = ExpContexts * 256;          // 4 counters: previous sign · 2 + upper sign
    const int OffTop = OffSign + 4;                 // 256 exponents × 8 nodes of the 3-bit mantissa tree
    const int Counters = OffTop + 256 * 8;

    /// <summary>Squash at d = −2048 + 128·j, j = 0..32: round(65536 / (1 + e^(−(j − 16)/2))); interpolated between.</summary>
    static readonly int[] SquashPoints =
    [
        22, 36, 60, 98, 162, 267, 439, 720, 1179, 1921, 3108, 4971, 7812, 11955, 17625, 24743, 32768,
        40793, 47911, 53581, 57724, 60565, 62428, 63615, 64357, 64816, 65097, 65269, 65374, 65438, 65476, 65500, 65514,
    ];
    static readonly short[] StretchTable = BuildStretch();
    static readonly int[] Rates = BuildRates();

    readonly uint[] _p = new uint[Counters];
    readonly ushort[] _n = new ushort[Counters];
    readonly int[] _w = new int[8 * Inputs];
    int[] _colEma = [];
    ushort[] _up = [];

    /// <summary>Probability (16 bits, of a zero) for a stretched value d, clamped to ±2047.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static int Squash(int d)
    {
        d = Math.Clamp(d, -2047, 2047) + 2048;
        int j = d >> 7, f = d & 127;
        ref int t = ref MemoryMarshal.GetArrayDataReference(SquashPoints);
        return (Unsafe.Add(ref t, j) * (128 - f) + Unsafe.Add(ref t, j + 1) * f) >> 7;
    }

    /// <summary>The inverse of <see cref="Squash"/> on a 12-bit probability index: the smallest d whose squash reaches it.</summary>
    static short[] BuildStretch()
    {
        var t = new short[4096];
        int pi = 0;
        for (int d = -2047; d <= 2047; d++)
        {
            int v = Squash(d) >> 4;
            for (int j = pi; j <= v; j++) t[j] = (short)d;
            pi = Math.Max(pi, v + 1);
        }
        for (int j = pi; j < 4096; j++) t[j] = 2047;
        return t;
    }

    static int[] BuildRates()
    {
        var r = new int[CountLimit + 1];
        for (int n = 0; n <= CountLimit; n++) r[n] = 131072 / (2 * n + 3);
        return r;
    }

    internal static int Stretch(int p16) => StretchTable[p16 >> 4];

    void Reset(int width, int mode)
    {
        Array.Fill(_p, 1u << 31);
        Array.Clear(_n);
        Array.Fill(_w, 65536 / Inputs);
        if (_colEma.Length < width) { _colEma = new int[width]; _up = new ushort[width]; }
        _colEma.AsSpan(0, width).Fill(mode << 4);
        _up.AsSpan(0, width).Fill((ushort)(mode << 7));
        _prevWord = mode << 7;
    }

    /// <summary>Codes the top words <paramref name="top"/> (one 16-bit word per element; its low 4 bits are not coded)
    /// into <paramref name="dst"/>; returns the bytes written, or −1 if they do not fit.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public int Encode(ReadOnlySpan<ushort> top, int width, int mode, Span<byte> dst)
    {
        Reset(width, mode);
        var io = new EncIO(dst);
        int col = 0, rowEma = mode << 4;
        for (int i = 0; i < top.Length; i++)
        {
            CodeElement(ref io, top[i], width, mode, ref col, ref rowEma);
            if (io.Rc.Overflow) return -1;
        }
        int len = io.Rc.Finish();
        return io.Rc.Overflow ? -1 : len;
    }

    /// <summary>Decodes <paramref name="src"/> into <paramref name="top"/> (low 4 bits zero); false unless the coded bytes
    /// are exactly what the elements consume.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public bool Decode(ReadOnlySpan<byte> src, int width, int mode, Span<ushort> top)
    {
        Reset(width, mode);
        var io = new DecIO(src);
        int col = 0, rowEma = mode << 4;
        for (int i = 0; i < top.Length; i++)
        {
            top[i] = CodeElement(ref io, 0, width, mode, ref col, ref rowEma);
            // A corrupt stream reads zeros past its end; stop at once rather than decode the rest of garbage.
            if (io.Rc.Overread > 0) return false;
        }
        return io.Rc.Overread == 0 && io.Rc.Position == src.Length;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static int Q(int e, int mode) => Math.Clamp(e - mode + 11, 0, 15);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static int Bucket(int ema, int mode) => Math.Clamp((ema >> 3) - 2 * mode + 24, 0, 31);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    ushort CodeElement<T>(ref T io, int word, int width, int mode, ref int col, ref int rowEma) where T : IMixIO, allows ref struct
    {
        ref uint p = ref MemoryMarshal.GetArrayDataReference(_p);
        ref ushort n = ref MemoryMarshal.GetArrayDataReference(_n);
        ref int w = ref MemoryMarshal.GetArrayDataReference(_w);
        int c = col;
        int upWord = _up[c];
        int prevWord = c > 0 ? _prevWord : mode << 7;
        if (c == 0) rowEma = mode << 4;
        int colB = Bucket(_colEma[c], mode), rowB = Bucket(rowEma, mode);
        int prevQ = Q((prevWord >> 7) & 255, mode);
        int a0 = CtxOrder0 * 256;
        int a1 = (CtxUp + Q((upWord >> 7) & 255, mode)) * 256;
        int a2 = (CtxCol + colB) * 256;
        int a3 = (CtxPrevCol + prevQ * 32 + colB) * 256;
        int a4 = (CtxColRow + colB * 32 + rowB) * 256;
        ref short stretch = ref MemoryMarshal.GetArrayDataReference(StretchTable);

        // Exponent: 8-bit tree, MSB first; every node mixes the five models (unrolled: this loop is the coder's cost).
        int e = (word >> 7) & 255, node = 1;
        for (int d = 0; d < 8; d++)
        {
            ref int wd = ref Unsafe.Add(ref w, d * Inputs);
            ref uint p0 = ref Unsafe.Add(ref p, a0 + node), p1 = ref Unsafe.Add(ref p, a1 + node), p2 = ref Unsafe.Add(ref p, a2 + node),
                p3 = ref Unsafe.Add(ref p, a3 + node), p4 = ref Unsafe.Add(ref p, a4 + node);
            int s0 = Unsafe.Add(ref stretch, (int)(p0 >> 20)), s1 = Unsafe.Add(ref stretch, (int)(p1 >> 20)), s2 = Unsafe.Add(ref stretch, (int)(p2 >> 20)),
                s3 = Unsafe.Add(ref stretch, (int)(p3 >> 20)), s4 = Unsafe.Add(ref stretch, (int)(p4 >> 20));
            long dot = (long)wd * s0 + (long)Unsafe.Add(ref wd, 1) * s1 + (long)Unsafe.Add(ref wd, 2) * s2
                + (long)Unsafe.Add(ref wd, 3) * s3 + (long)Unsafe.Add(ref wd, 4) * s4;
            int pm = Squash((int)(dot >> 16));
            int bit = io.Bit((uint)pm, (e >> (7 - d)) & 1);
            int err = ((bit == 0 ? 65535 : 0) - pm) >> MixShift;
            wd = Math.Clamp(wd + ((s0 * err) >> 14), -WeightLimit, WeightLimit);
            Unsafe.Add(ref wd, 1) = Math.Clamp(Unsafe.Add(ref wd, 1) + ((s1 * err) >> 14), -WeightLimit, WeightLimit);
            Unsafe.Add(ref wd, 2) = Math.Clamp(Unsafe.Add(ref wd, 2) + ((s2 * err) >> 14), -WeightLimit, WeightLimit);
            Unsafe.Add(ref wd, 3) = Math.Clamp(Unsafe.Add(ref wd, 3) + ((s3 * err) >> 14), -WeightLimit, WeightLimit);
            Unsafe.Add(ref wd, 4) = Math.Clamp(Unsafe.Add(ref wd, 4) + ((s4 * err) >> 14), -WeightLimit, WeightLimit);
            Update(ref p0, ref Unsafe.Add(ref n, a0 + node), bit);
            Update(ref p1, ref Unsafe.Add(ref n, a1 + node), bit);
            Update(ref p2, ref Unsafe.Add(ref n, a2 + node), bit);
            Update(ref p3, ref Unsafe.Add(ref n, a3 + node), bit);
            Update(ref p4, ref Unsafe.Add(ref n, a4 + node), bit);
            node = (node << 1) | bit;
        }
        e = node - 256;

        // Sign given the previous element's and the upper neighbour's sign.
        int sAt = OffSign + ((prevWord >> 15) << 1) + (upWord >> 15);
        int s = io.Bit(P16(Unsafe.Add(ref p, sAt)), word >> 15);
        Update(ref Unsafe.Add(ref p, sAt), ref Unsafe.Add(ref n, sAt), s);

        // Top three mantissa bits given the exponent.
        int tAt = OffTop + e * 8, t = 1;
        for (int d = 0; d < 3; d++)
        {
            int bit = io.Bit(P16(Unsafe.Add(ref p, tAt + t)), (word >> (6 - d)) & 1);
            Update(ref Unsafe.Add(ref p, tAt + t), ref Unsafe.Add(ref n, tAt + t), bit);
            t = (t << 1) | bit;
        }
        ushort result = (ushort)((s << 15) | (e << 7) | ((t - 8) << 4));

        rowEma += ((e << 4) - rowEma) >> 2;
        _colEma[c] += ((e << 4) - _colEma[c]) >> 1;
        _up[c] = result;
        _prevWord = result;
        col = c + 1 == width ? 0 : c + 1;
        return result;
    }

    int _prevWord;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static uint P16(uint p) => Math.Clamp(p >> 16, 1u, 65535u);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static void Update(ref uint p, ref ushort count, int bit)
    {
        int c = count;
        long target = bit == 0 ? 0xFFFFFFFFL : 0;
        p = (uint)(p + (((target - p) * Unsafe.Add(ref MemoryMarshal.GetArrayDataReference(Rates), c)) >> 16));
        if (c < CountLimit) count = (ushort)(c + 1);
    }

    interface IMixIO
    {
        int Bit(uint p, int bit);
    }

    ref struct EncIO(Span<byte> dst) : IMixIO
    {
        public BinaryRangeCoder.Encoder Rc = new(dst);

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public int Bit(uint p, int bit)
        {
            Rc.EncodeBit(p, bit);
            return bit;
        }
    }

    ref struct DecIO(ReadOnlySpan<byte> src) : IMixIO
    {
        public BinaryRangeCoder.Decoder Rc = new(src);

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public int Bit(uint p, int bit) => Rc.DecodeBit(p);
    }
}
