using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;
using TensorCodec.Numerics;

namespace TensorCodec.Engine;

/// <summary>
/// Activations in ggml's own <c>vec_dot_type</c> layouts, for the integer GEMM of
/// <see cref="LinearArithmetic.LikeLlamaCpp"/>. The codes are exactly ggml's (see
/// <see cref="GgmlActivations"/>), so the products equal "round, then multiply exactly" up to float
/// summation order.
/// q8_0 row: sbyte q[cols] | float d[cols/32] (the fp16 scale's value) | int Σq[cols/32].
/// q8_K row: sbyte q[cols] | float d[cols/256] | short Σq[cols/16].
/// </summary>
internal static unsafe class GgmlQ8
{
    public static int RowBytes(GgmlActivation kind, int cols) => kind switch
    {
        GgmlActivation.Q8_0 => cols + cols / 32 * 8,
        GgmlActivation.Q8_K => cols + cols / 256 * 4 + cols / 16 * 2,
        _ => throw new ArgumentOutOfRangeException(nameof(kind)),
    };

    public static void Quantize(GgmlActivation kind, float* x, int cols, byte* dst)
    {
        if (kind == GgmlActivation.Q8_0) Q8_0(x, cols, dst);
        else Q8_K(x, cols, dst);
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    static void Q8_0(float* x, int cols, byte* dst)
    {
        int nb = cols / 32;
        sbyte* q = (sbyte*)dst;
        float* d = (float*)(dst + cols);
        int* sums = (int*)(d + nb);
        for (int b = 0; b < nb; b++)
        {
            float* xb = x + b * 32;
            var v0 = Vector256.Load(xb); var v1 = Vector256.Load(xb + 8);
            var v2 = Vector256.Load(xb + 16); var v3 = Vector256.Load(xb + 24);
            float amax = MaxLane(Vector256.Max(Vector256.Max(Vector256.Abs(v0), Vector256.Abs(v1)), Vector256.Max(Vector256.Abs(v2), Vector256.Abs(v3))));
            var vid = Vector256.Create(amax != 0 ? 127f / amax : 0f);
            var i0 = Vector256.ConvertToInt32Native(Vector256.Round(v0 * vid));
            var i1 = Vector256.ConvertToInt32Native(Vector256.Round(v1 * vid));
            var i2 = Vector256.ConvertToInt32Native(Vector256.Round(v2 * vid));
            var i3 = Vector256.ConvertToInt32Native(Vector256.Round(v3 * vid));
            Vector256.Narrow(Vector256.Narrow(i0, i1), Vector256.Narrow(i2, i3)).Store(q + b * 32);
            d[b] = Fp16Bits.ToFloat(Fp16Bits.FromFloat(amax / 127f));
            sums[b] = Vector256.Sum(i0 + i1 + i2 + i3);
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    static void Q8_K(float* x, int cols, byte* dst)
    {
        int nsb = cols / 256;
        sbyte* q = (sbyte*)dst;
        float* d = (float*)(dst + cols);
        short* bsum = (short*)(d + nsb);
        var c127 = Vector256.Create(127);
        for (int s = 0; s < nsb; s++)
        {
            float* xb = x + s * 256;
            var am = Vector256<float>.Zero;
            for (int i = 0; i < 256; i += 8) am = Vector256.Max(am, Vector256.Abs(Vector256.Load(xb + i)));
            float amax = MaxLane(am);
            if (amax == 0)
            {
                new Span<byte>(q + s * 256, 256).Clear();
                d[s] = 0;
                new Span<short>(bsum + s * 16, 16).Clear();
                continue;
            }
            // ggml keeps the sign of the first value of largest magnitude: iscale = −127/max.
            float max = 0;
            for (int i = 0; i < 256; i++) if (MathF.Abs(xb[i]) == amax) { max = xb[i]; break; }
            float iscale = -127f / max;
            var vis = Vector256.Create(iscale);
            for (int g = 0; g < 256; g += 32)
            {
                var i0 = Vector256.Min(Vector256.ConvertToInt32Native(Vector256.Round(Vector256.Load(xb + g) * vis)), c127);
                var i1 = Vector256.Min(Vector256.ConvertToInt32Native(Vector256.Round(Vector256.Load(xb + g + 8) * vis)), c127);
                var i2 = Vector256.Min(Vector256.ConvertToInt32Native(Vector256.Round(Vector256.Load(xb + g + 16) * vis)), c127);
                var i3 = Vector256.Min(Vector256.ConvertToInt32Native(Vector256.Round(Vector256.Load(xb + g + 24) * vis)), c127);
                Vector256.Narrow(Vector256.Narrow(i0, i1), Vector256.Narrow(i2, i3)).Store(q + s * 256 + g);
                bsum[s * 16 + g / 16] = (short)Vector256.Sum(i0 + i1);
                bsum[s * 16 + g / 16 + 1] = (short)Vector256.Sum(i2 + i3);
            }
            d[s] = 1 / iscale;
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static float MaxLane(Vector256<float> v)
    {
        var m = Vector128.Max(v.GetLower(), v.GetUpper());
        m = Vector128.Max(m, Vector128.Shuffle(m, Vector128.Create(2, 3, 0, 1)));
        m = Vector128.Max(m, Vector128.Shuffle(m, Vector128.Create(1, 0, 3, 2)));
        return m.ToScalar();
    }
}

/// <summary>
/// Integer matrix products of packed ggml weights with <see cref="GgmlQ8"/> activations, one weight
/// row against four tokens at a time: each block of the row is unpacked once and multiplied with all
/// four tokens' codes (vpmaddubsw, then vpmaddwd with the sub-block scale), as ggml's k-quant dot
/// products do. For the k-quants the activation scale is one per 256, so a whole super-block sums in
/// int32 and meets floating point once; the weights' offsets (q4_K/q5_K mins, q6_K's −32, q3_K's −4,
/// q2_K's mins) are applied through the activation block sums.
/// </summary>
internal static unsafe class QuantizedGemm
{
    public static bool IsSupported => QuantizedKernels.IsSupported && !Disabled;

    /// <summary>Tests set this to run the rounded fallback at the same SIMD level as the kernels.</summary>
    internal static bool Disabled;

    static Vector256<short> Ones16 => Vector256.Create((short)1);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static Vector256<int> Madd(Vector256<byte> u, Vector256<sbyte> x, Vector256<short> scale) =>
        Avx2.MultiplyAddAdjacent(Avx2.MultiplyAddAdjacent(u, x), scale);

    /// <summary>Four tokens' activation rows: codes, scales (per 32 or per 256) and block sums (int per 32 or short per 16).</summary>
    readonly struct X4
    {
        public readonly sbyte* Q0, Q1, Q2, Q3;
        public readonly float* D0, D1, D2, D3;
        public readonly byte* S0, S1, S2, S3;

        public X4(byte* x0, byte* x1, byte* x2, byte* x3, int cols, int scales)
        {
            Q0 = (sbyte*)x0; Q1 = (sbyte*)x1; Q2 = (sbyte*)x2; Q3 = (sbyte*)x3;
            D0 = (float*)(x0 + cols); D1 = (float*)(x1 + cols); D2 = (float*)(x2 + cols); D3 = (float*)(x3 + cols);
            S0 = (byte*)(D0 + scales); S1 = (byte*)(D1 + scales); S2 = (byte*)(D2 + scales); S3 = (byte*)(D3 + scales);
        }
    }

    /// <summary>Four tokens' float accumulators.</summary>
    struct Acc4
    {
        public Vector256<float> A0, A1, A2, A3;

        /// <summary>A ← A + float(i_t)·(scale·d_t[block]).</summary>
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public void Add(Vector256<int> i0, Vector256<int> i1, Vector256<int> i2, Vector256<int> i3, float scale, in X4 x, int block)
        {
            A0 = Fma.MultiplyAdd(Avx.ConvertToVector256Single(i0), Vector256.Create(scale * x.D0[block]), A0);
            A1 = Fma.MultiplyAdd(Avx.ConvertToVector256Single(i1), Vector256.Create(scale * x.D1[block]), A1);
            A2 = Fma.MultiplyAdd(Avx.ConvertToVector256Single(i2), Vector256.Create(scale * x.D2[block]), A2);
            A3 = Fma.MultiplyAdd(Avx.ConvertToVector256Single(i3), Vector256.Create(scale * x.D3[block]), A3);
        }

        /// <summary>The k-quant min term of super-block s: Σ m·(Σx per 16) by one vpmaddwd, times dmin·d_t.</summary>
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public void AddMins(Vector256<short> mins16, float dmin, in X4 x, int s) =>
            Add(BlockSums(mins16, x.S0, s), BlockSums(mins16, x.S1, s), BlockSums(mins16, x.S2, s), BlockSums(mins16, x.S3, s), dmin, x, s);

        public readonly void Store(float* result)
        {
            result[0] = Vector256.Sum(A0); result[1] = Vector256.Sum(A1); result[2] = Vector256.Sum(A2); result[3] = Vector256.Sum(A3);
        }

        public readonly void StoreMinus(in Acc4 m, float* result)
        {
            result[0] = Vector256.Sum(A0) - Vector256.Sum(m.A0); result[1] = Vector256.Sum(A1) - Vector256.Sum(m.A1);
            result[2] = Vector256.Sum(A2) - Vector256.Sum(m.A2); result[3] = Vector256.Sum(A3) - Vector256.Sum(m.A3);
        }
    }

    /// <summary>Σ w16·bsum over super-block s's sixteen 16-value sums, as eight int32 lanes.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static Vector256<int> BlockSums(Vector256<short> w16, byte* sums, int s) =>
        Avx2.MultiplyAddAdjacent(Vector256.Load((short*)sums + s * 16), w16);

    /// <summary>One 32-value block of unsigned codes against four tokens at offset k, one int16 scale vector.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static void Block(Vector256<byte> q, Vector256<short> scale, int k, in X4 x,
        ref Vector256<int> i0, ref Vector256<int> i1, ref Vector256<int> i2, ref Vector256<int> i3)
    {
        i0 += Madd(q, Vector256.Load(x.Q0 + k), scale);
        i1 += Madd(q, Vector256.Load(x.Q1 + k), scale);
        i2 += Madd(q, Vector256.Load(x.Q2 + k), scale);
        i3 += Madd(q, Vector256.Load(x.Q3 + k), scale);
    }

    /// <summary>The same with a scale per 16 values: int16 lanes 0–7 of vpmaddubsw hold values 0–15, lanes 8–15 values 16–31.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static void Block16(Vector256<byte> q, sbyte scLo, sbyte scHi, int k, in X4 x,
        ref Vector256<int> i0, ref Vector256<int> i1, ref Vector256<int> i2, ref Vector256<int> i3) =>
        Block(q, Vector256.Create(Vector128.Create((short)scLo), Vector128.Create((short)scHi)), k, x, ref i0, ref i1, ref i2, ref i3);

    /// <summary>The int32 start of a super-block whose codes carry an offset: −off·Σ sc·(Σx per 16).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static void Offsets(Vector256<short> sc16, int shift, in X4 x, int s,
        out Vector256<int> i0, out Vector256<int> i1, out Vector256<int> i2, out Vector256<int> i3)
    {
        i0 = -Vector256.ShiftLeft(BlockSums(sc16, x.S0, s), shift);
        i1 = -Vector256.ShiftLeft(BlockSums(sc16, x.S1, s), shift);
        i2 = -Vector256.ShiftLeft(BlockSums(sc16, x.S2, s), shift);
        i3 = -Vector256.ShiftLeft(BlockSums(sc16, x.S3, s), shift);
    }

    /// <summary>q8_0 × q8_0: per 32, d_w·d_x·Σ w·x (signed codes: |w| against x with w's sign).</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void Q8_0(byte* w, int cols, byte* x0, byte* x1, byte* x2, byte* x3, float* result)
    {
        int nb = cols / 32;
        var x = new X4(x0, x1, x2, x3, cols, nb);
        var acc = new Acc4();
        for (int b = 0; b < nb; b++, w += 34)
        {
            var wq = Vector256.Load((sbyte*)(w + 2));
            var aw = Avx2.Abs(wq).AsByte();
            int o = b * 32;
            acc.Add(Madd(aw, Avx2.Sign(Vector256.Load(x.Q0 + o), wq), Ones16), Madd(aw, Avx2.Sign(Vector256.Load(x.Q1 + o), wq), Ones16),
                Madd(aw, Avx2.Sign(Vector256.Load(x.Q2 + o), wq), Ones16), Madd(aw, Avx2.Sign(Vector256.Load(x.Q3 + o), wq), Ones16),
                QuantizedKernels.Half(w), x, b);
        }
        acc.Store(result);
    }

    /// <summary>q4_0 × q8_0: codes 0–15 unsigned, value (q − 8)·d, so Σ(q − 8)·x = Σ q·x − 8·Σx.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void Q4_0(byte* w, int cols, byte* x0, byte* x1, byte* x2, byte* x3, float* result)
    {
        int nb = cols / 32;
        var x = new X4(x0, x1, x2, x3, cols, nb);
        var acc = new Acc4();
        int* s0 = (int*)x.S0, s1 = (int*)x.S1, s2 = (int*)x.S2, s3 = (int*)x.S3;
        var m4 = Vector128.Create((byte)0x0F);
        var eight = Vector256.Create(8);
        for (int b = 0; b < nb; b++, w += 18)
        {
            var raw = Vector128.Load(w + 2);
            var q = Vector256.Create(raw & m4, Vector128.ShiftRightLogical(raw.AsUInt16(), 4).AsByte() & m4);
            int o = b * 32;
            // The −8·Σx goes into lane 0 of the integer sum, so the block meets floating point once.
            acc.Add(Madd(q, Vector256.Load(x.Q0 + o), Ones16) - Vector256.CreateScalar(8 * s0[b]),
                Madd(q, Vector256.Load(x.Q1 + o), Ones16) - Vector256.CreateScalar(8 * s1[b]),
                Madd(q, Vector256.Load(x.Q2 + o), Ones16) - Vector256.CreateScalar(8 * s2[b]),
                Madd(q, Vector256.Load(x.Q3 + o), Ones16) - Vector256.CreateScalar(8 * s3[b]),
                QuantizedKernels.Half(w), x, b);
        }
        acc.Store(result);
    }

    /// <summary>
    /// q4_K (and q5_K with <paramref name="five"/>) × q8_K: value d·sc·q − dmin·m per sub-block of 32;
    /// Σ over the super-block of sc·(Σ q·x) in int32, the mins through the activation's 16-value sums
    /// (vpmaddwd with each min twice). q5_K's fifth bit of sub-block j is bit j of qh[l].
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static void K45(byte* w, int cols, byte* x0, byte* x1, byte* x2, byte* x3, float* result, bool five)
    {
        int nsb = cols / 256, blockBytes = five ? 176 : 144;
        var x = new X4(x0, x1, x2, x3, cols, nsb);
        Acc4 acc = default, mins = default;
        var mask = Vector256.Create((byte)0x0F);
        var bit4 = Vector256.Create((byte)0x10);
        byte* sc = stackalloc byte[8];
        byte* mn = stackalloc byte[8];
        short* mn16 = stackalloc short[16];
        for (int s = 0; s < nsb; s++, w += blockBytes)
        {
            QuantizedKernels.ScalesMinsK4(w + 4, sc, mn);
            for (int j = 0; j < 8; j++) { mn16[2 * j] = mn[j]; mn16[2 * j + 1] = mn[j]; }
            Vector256<int> i0 = default, i1 = default, i2 = default, i3 = default;
            var qh = five ? Vector256.Load(w + 16).AsUInt16() : default;
            byte* qs = w + (five ? 48 : 16);
            for (int j = 0; j < 4; j++)
            {
                var raw = Vector256.Load(qs + 32 * j);
                var lo = raw & mask;
                var hi = Vector256.ShiftRightLogical(raw.AsUInt16(), 4).AsByte() & mask;
                if (five)
                {
                    // Shifted right by 2 per pair of sub-blocks: the two bits wanted are bits 0 and 1 of each byte.
                    lo |= Vector256.ShiftLeft(qh, 4).AsByte() & bit4;
                    hi |= Vector256.ShiftLeft(qh, 3).AsByte() & bit4;
                    qh = Vector256.ShiftRightLogical(qh, 2);
                }
                int k = s * 256 + 64 * j;
                Block(lo, Vector256.Create((short)sc[2 * j]), k, x, ref i0, ref i1, ref i2, ref i3);
                Block(hi, Vector256.Create((short)sc[2 * j + 1]), k + 32, x, ref i0, ref i1, ref i2, ref i3);
            }
            acc.Add(i0, i1, i2, i3, QuantizedKernels.Half(w), x, s);
            mins.AddMins(Vector256.Load(mn16), QuantizedKernels.Half(w + 2), x, s);
        }
        acc.StoreMinus(mins, result);
    }

    /// <summary>q4_K × q8_K (see <see cref="K45"/>).</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void Q4_K(byte* w, int cols, byte* x0, byte* x1, byte* x2, byte* x3, float* result) => K45(w, cols, x0, x1, x2, x3, result, five: false);

    /// <summary>q5_K × q8_K (see <see cref="K45"/>).</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void Q5_K(byte* w, int cols, byte* x0, byte* x1, byte* x2, byte* x3, float* result) => K45(w, cols, x0, x1, x2, x3, result, five: true);

    /// <summary>
    /// q6_K × q8_K: codes 0–63 unsigned, value d·sc·(q − 32) with an int8 scale per 16, so the
    /// super-block's integer sum is Σ sc·(Σ q·x) − 32·Σ sc·(Σx per 16).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void Q6_K(byte* w, int cols, byte* x0, byte* x1, byte* x2, byte* x3, float* result)
    {
        int nsb = cols / 256;
        var x = new X4(x0, x1, x2, x3, cols, nsb);
        var acc = new Acc4();
        short* sc16 = stackalloc short[16];
        for (int s = 0; s < nsb; s++, w += 210)
        {
            sbyte* scales = (sbyte*)(w + 192);
            for (int i = 0; i < 16; i++) sc16[i] = scales[i];
            Offsets(Vector256.Load(sc16), 5, x, s, out var i0, out var i1, out var i2, out var i3);
            for (int n = 0; n < 2; n++)
            {
                QuantizedKernels.UnpackQ6K(w, n, out var q0, out var q1, out var q2, out var q3);
                sbyte* sc = scales + 8 * n;
                int k = s * 256 + 128 * n;
                Block16(q0, sc[0], sc[1], k, x, ref i0, ref i1, ref i2, ref i3); // |pair| ≤ 2·63·127 fits int16
                Block16(q1, sc[2], sc[3], k + 32, x, ref i0, ref i1, ref i2, ref i3);
                Block16(q2, sc[4], sc[5], k + 64, x, ref i0, ref i1, ref i2, ref i3);
                Block16(q3, sc[6], sc[7], k + 96, x, ref i0, ref i1, ref i2, ref i3);
            }
            acc.Add(i0, i1, i2, i3, QuantizedKernels.Half(w + 208), x, s);
        }
        acc.Store(result);
    }

    /// <summary>
    /// q3_K × q8_K: codes low | hbit·4 in 0–7, value d·(sc − 32)·(q − 4) per 16, so the integer sum
    /// is Σ sc·(Σ q·x) − 4·Σ sc·(Σx per 16).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void Q3_K(byte* w, int cols, byte* x0, byte* x1, byte* x2, byte* x3, float* result)
    {
        int nsb = cols / 256;
        var x = new X4(x0, x1, x2, x3, cols, nsb);
        var acc = new Acc4();
        var m3 = Vector256.Create((byte)3);
        var bit2 = Vector256.Create((byte)4);
        sbyte* sc = stackalloc sbyte[16];
        short* sc16 = stackalloc short[16];
        for (int s = 0; s < nsb; s++, w += 110)
        {
            QuantizedKernels.ScalesK3(w + 96, sc);
            for (int i = 0; i < 16; i++) sc16[i] = sc[i];
            Offsets(Vector256.Load(sc16), 2, x, s, out var i0, out var i1, out var i2, out var i3);
            var hm = Vector256.Load(w).AsUInt16();
            for (int n = 0; n < 2; n++)
            {
                var q = Vector256.Load(w + 32 + 32 * n).AsUInt16();
                for (int j = 0; j < 4; j++)
                {
                    // Bit 0 of each hm byte is the current block's third bit (hm shifts right by one per block).
                    var code = (Vector256.ShiftRightLogical(q, 2 * j).AsByte() & m3) | (Vector256.ShiftLeft(hm, 2).AsByte() & bit2);
                    hm = Vector256.ShiftRightLogical(hm, 1);
                    int k = 8 * n + 2 * j;
                    Block16(code, sc[k], sc[k + 1], s * 256 + 128 * n + 32 * j, x, ref i0, ref i1, ref i2, ref i3);
                }
            }
            acc.Add(i0, i1, i2, i3, QuantizedKernels.Half(w + 108), x, s);
        }
        acc.Store(result);
    }

    /// <summary>
    /// q2_K × q8_K: codes 0–3, value d·sc·q − dmin·m per 16 (4-bit sc and m), so the two integer
    /// sums are Σ sc·(Σ q·x) and Σ m·(Σx per 16).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void Q2_K(byte* w, int cols, byte* x0, byte* x1, byte* x2, byte* x3, float* result)
    {
        int nsb = cols / 256;
        var x = new X4(x0, x1, x2, x3, cols, nsb);
        Acc4 acc = default, mins = default;
        var m3 = Vector256.Create((byte)3);
        short* mn16 = stackalloc short[16];
        for (int s = 0; s < nsb; s++, w += 84)
        {
            for (int i = 0; i < 16; i++) mn16[i] = (short)(w[i] >> 4);
            Vector256<int> i0 = default, i1 = default, i2 = default, i3 = default;
            for (int n = 0; n < 2; n++)
            {
                var q = Vector256.Load(w + 16 + 32 * n).AsUInt16();
                for (int j = 0; j < 4; j++)
                {
                    int k = 8 * n + 2 * j;
                    Block16(Vector256.ShiftRightLogical(q, 2 * j).AsByte() & m3, (sbyte)(w[k] & 0xF), (sbyte)(w[k + 1] & 0xF),
                        s * 256 + 128 * n + 32 * j, x, ref i0, ref i1, ref i2, ref i3);
                }
            }
            acc.Add(i0, i1, i2, i3, QuantizedKernels.Half(w + 80), x, s);
            mins.AddMins(Vector256.Load(mn16), QuantizedKernels.Half(w + 82), x, s);
        }
        acc.StoreMinus(mins, result);
    }
}
