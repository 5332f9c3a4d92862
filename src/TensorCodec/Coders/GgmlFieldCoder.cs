using System.Buffers;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;

namespace TensorCodec.Coders;

/// <summary>One bit or bit-tree symbol through the range coder, the same call for both directions: the encoder codes
/// the given value and returns it, the decoder ignores it and returns what it decoded. The block walk below is
/// written once against this, so encoder and decoder cannot disagree about a context.</summary>
internal interface IBitIO
{
    int Tree(ref ushort probs, ref byte counts, int bits, int symbol);
}

/// <summary>
/// Chunk mode 3 (FORMAT.md): whole ggml blocks coded field by field (<see cref="GgmlBlockFields"/>) with adaptive
/// binary models (<see cref="BinaryRangeCoder"/>), each field with its own models and contexts:
/// <list type="bullet">
/// <item>fp16 <c>d</c> and <c>m</c>/<c>dmin</c>: exponent-split — sign and exponent (6 bits) given the same field's
/// previous exponent, the top 3 mantissa bits given the exponent, the low 7 bits alone;</item>
/// <item>Q4_K/Q5_K 6-bit scales alone, mins given the scale; Q6_K int8 scales alone;</item>
/// <item>quants given the quant the sub-block's min maps to and the scale (Q4_K/Q5_K), the magnitude of the sub-block
/// scale (Q6_K) or the block's exponent (the 32-value types).</item>
/// </list>
/// Models start fresh in every chunk, so chunks decode independently. One instance serves one thread.
/// </summary>
internal sealed class GgmlFieldCoder
{
    // Model regions, in nodes (a tree of b bits takes 2^b entries; entry 0 unused).
    const int HalfFields = 2, ExpCtx = 65;
    const int OffHalfExp = 0;                                             // [field][ExpCtx] × 64
    const int OffHalfTop = OffHalfExp + HalfFields * ExpCtx * 64;         // [field][64] × 8
    const int OffHalfLow = OffHalfTop + HalfFields * 64 * 8;              // [field] × 128
    const int OffScale = OffHalfLow + HalfFields * 128;                   // 256 (Q6_K int8) or 64 (6-bit)
    const int OffMin = OffScale + 256;                                    // [16] × 64
    const int OffQuant = OffMin + 16 * 64;
    const int SideBuckets = 4;                                            // Q4_K/Q5_K: sub-block scale / 16

    readonly GgmlBlock _block = new();
    readonly ushort[] _probs;
    readonly byte[] _counts;
    int _prevExpD, _prevExpM;

    public GgmlFieldCoder()
    {
        _probs = new ushort[OffQuant + MaxQuantNodes];
        _counts = new byte[_probs.Length];
    }

    /// <summary>Contexts of the quant field of <paramref name="type"/> (shared with mode 4, <see cref="GgmlTableCoder"/>).</summary>
    internal static int QuantContexts(int type) => type switch
    {
        GgmlBlockFields.Q4_K => 17 * SideBuckets,
        GgmlBlockFields.Q5_K => 33 * SideBuckets,
        GgmlBlockFields.Q6_K => 16,
        _ => 32,
    };

    const int MaxQuantNodes = 32 * 256;

    void Reset(int type)
    {
        int used = OffQuant + QuantContexts(type) * (1 << GgmlBlockFields.QuantBits(type));
        BinaryRangeCoder.Reset(_probs.AsSpan(0, used), _counts.AsSpan(0, used));
        _prevExpD = _prevExpM = 64;
    }

    /// <summary>Codes the whole blocks of <paramref name="raw"/> (its length a multiple of the block size) into
    /// <paramref name="dst"/>; returns the bytes written, or −1 if they do not fit.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public int Encode(int type, ReadOnlySpan<byte> raw, Span<byte> dst)
    {
        int bb = GgmlBlockFields.BlockBytes(type);
        Reset(type);
        var io = new EncIO(dst);
        for (int o = 0; o + bb <= raw.Length; o += bb)
        {
            GgmlBlockFields.Split(type, raw.Slice(o, bb), _block);
            CodeBlock(ref io, type);
            if (io.Rc.Overflow) return -1;
        }
        int n = io.Rc.Finish();
        return io.Rc.Overflow ? -1 : n;
    }

    /// <summary>Decodes <paramref name="src"/> into the whole blocks of <paramref name="raw"/>; false if the coded bytes are
    /// not exactly what the blocks consume (a corrupt chunk).</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public bool Decode(int type, ReadOnlySpan<byte> src, Span<byte> raw)
    {
        int bb = GgmlBlockFields.BlockBytes(type);
        Reset(type);
        var io = new DecIO(src);
        for (int o = 0; o + bb <= raw.Length; o += bb)
        {
            CodeBlock(ref io, type);
            if (io.Rc.Overread > 0) return false;
            GgmlBlockFields.Join(type, _block, raw.Slice(o, bb));
        }
        return io.Rc.Overread == 0 && io.Rc.Position == src.Length;
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    void CodeBlock<T>(ref T io, int type) where T : IBitIO, allows ref struct
    {
        var f = _block;
        // Every context index below is bounded by construction (see the region sizes), so no bounds checks.
        ref ushort p = ref MemoryMarshal.GetArrayDataReference(_probs);
        ref byte c = ref MemoryMarshal.GetArrayDataReference(_counts);
        f.D = CodeHalf(ref io, 0, f.D, ref _prevExpD);
        if (GgmlBlockFields.HasM(type)) f.M = CodeHalf(ref io, 1, f.M, ref _prevExpM);
        int nv = GgmlBlockFields.BlockValues(type), qb = GgmlBlockFields.QuantBits(type), qn = 1 << qb;
        ref ushort qp = ref Unsafe.Add(ref p, OffQuant);
        ref byte qc = ref Unsafe.Add(ref c, OffQuant);
        var q = f.Q;
        switch (type)
        {
            case GgmlBlockFields.Q4_K:
            case GgmlBlockFields.Q5_K:
            {
                for (int j = 0; j < 8; j++)
                {
                    // Scales alone (the previous scale did not pay on bard-3m); mins given their scale.
                    f.Scale[j] = (byte)io.Tree(ref Unsafe.Add(ref p, OffScale), ref Unsafe.Add(ref c, OffScale), 6, f.Scale[j]);
                    int mc = f.Scale[j] >> 2;
                    f.Min[j] = (byte)io.Tree(ref Unsafe.Add(ref p, OffMin + mc * 64), ref Unsafe.Add(ref c, OffMin + mc * 64), 6, f.Min[j]);
                }
                float d = (float)BitConverter.UInt16BitsToHalf(f.D), dmin = (float)BitConverter.UInt16BitsToHalf(f.M);
                int top = type == GgmlBlockFields.Q4_K ? 15 : 31;
                for (int j = 0; j < 8; j++)
                {
                    int ctx = KQuantContext(d, dmin, f.Scale[j], f.Min[j], top);
                    ref ushort tp = ref Unsafe.Add(ref qp, ctx * qn);
                    ref byte tc = ref Unsafe.Add(ref qc, ctx * qn);
                    for (int l = 0; l < 32; l++) q[j * 32 + l] = (byte)io.Tree(ref tp, ref tc, qb, q[j * 32 + l]);
                }
                break;
            }
            case GgmlBlockFields.Q6_K:
            {
                for (int k = 0; k < 16; k++)
                    f.Scale[k] = (byte)io.Tree(ref Unsafe.Add(ref p, OffScale), ref Unsafe.Add(ref c, OffScale), 8, f.Scale[k]);
                for (int s = 0; s < 16; s++)
                {
                    int ctx = Q6Context(f.Scale[s]);
                    ref ushort tp = ref Unsafe.Add(ref qp, ctx * qn);
                    ref byte tc = ref Unsafe.Add(ref qc, ctx * qn);
                    for (int k = s * 16; k < s * 16 + 16; k++) q[k] = (byte)io.Tree(ref tp, ref tc, qb, q[k]);
                }
                break;
            }
            default:
            {
                // 32-value blocks: the exponent of d says which tensor region (and spread) the block is from.
                int ctx = BlockContext(f.D);
                ref ushort tp = ref Unsafe.Add(ref qp, ctx * qn);
                ref byte tc = ref Unsafe.Add(ref qc, ctx * qn);
                for (int k = 0; k < nv; k++) q[k] = (byte)io.Tree(ref tp, ref tc, qb, q[k]);
                break;
            }
        }
    }

    /// <summary>Q4_K/Q5_K quant context of a sub-block: its zero point (<see cref="ZeroPoint"/>) and scale / 16.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static int KQuantContext(float d, float dmin, int scale, int min, int top)
    {
        int z = ZeroPoint(d * scale, dmin * min, top);
        return (z < 0 ? top + 1 : z) * SideBuckets + Math.Min(scale >> 4, SideBuckets - 1);
    }

    /// <summary>Q6_K quant context of a sub-block: the magnitude of its int8 scale / 8.</summary>
    internal static int Q6Context(byte scale) => Math.Min(Math.Abs((int)(sbyte)scale) >> 3, 15);

    /// <summary>Quant context of a 32-value block: the exponent bits of its <c>d</c>.</summary>
    internal static int BlockContext(ushort d) => (d >> 10) & 31;

    /// <summary>The quant that dequantizes to zero, <c>round(dmin·m / (d·sc))</c> clamped to the quant range, or −1 when
    /// the block's scales make it meaningless (zero, negative, not finite). IEEE single arithmetic, the same on every machine.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static int ZeroPoint(float scale, float offset, int top)
    {
        if (!(scale > 0) || !float.IsFinite(scale) || !float.IsFinite(offset)) return -1;
        float r = offset / scale;
        if (!(r >= 0)) return r < 0 ? 0 : -1;
        return r >= top ? top : (int)(r + 0.5f);
    }

    /// <summary>An fp16 field, exponent-split: sign+exponent given the field's previous one, top 3 mantissa bits
    /// given the exponent, low 7 bits alone.</summary>
    ushort CodeHalf<T>(ref T io, int field, ushort value, ref int prevExp) where T : IBitIO, allows ref struct
    {
        ref ushort p = ref MemoryMarshal.GetArrayDataReference(_probs);
        ref byte c = ref MemoryMarshal.GetArrayDataReference(_counts);
        int eAt = OffHalfExp + (field * ExpCtx + prevExp) * 64;
        int e = io.Tree(ref Unsafe.Add(ref p, eAt), ref Unsafe.Add(ref c, eAt), 6, value >> 10);
        int tAt = OffHalfTop + (field * 64 + e) * 8;
        int t = io.Tree(ref Unsafe.Add(ref p, tAt), ref Unsafe.Add(ref c, tAt), 3, (value >> 7) & 7);
        int lAt = OffHalfLow + field * 128;
        int l = io.Tree(ref Unsafe.Add(ref p, lAt), ref Unsafe.Add(ref c, lAt), 7, value & 127);
        prevExp = e;
        return (ushort)((e << 10) | (t << 7) | l);
    }

    ref struct EncIO(Span<byte> dst) : IBitIO
    {
        public BinaryRangeCoder.Encoder Rc = new(dst);

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public int Tree(ref ushort probs, ref byte counts, int bits, int symbol)
        {
            Rc.EncodeTree(ref probs, ref counts, bits, symbol);
            return symbol;
        }
    }

    ref struct DecIO(ReadOnlySpan<byte> src) : IBitIO
    {
        public BinaryRangeCoder.Decoder Rc = new(src);

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public int Tree(ref ushort probs, ref byte counts, int bits, int symbol) => Rc.DecodeTree(ref probs, ref counts, bits);
    }
}
