using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;
using TensorCodec.Numerics;

namespace TensorCodec.Engine;

/// <summary>
/// Activations quantized for integer dot products, ggml-style but with finer blocks: every 32
/// values get one float32 scale d = max|x|/127 and int8 codes q = round(x/d) (ties to even).
/// ggml uses q8_0 (fp16 scale) or q8_K (one scale per 256); a float scale per 32 is at least as
/// accurate as both and lets every weight format share one activation layout.
/// Layout of one row of <c>cols</c> values: sbyte q[cols] | float d[cols/32] | float s[cols/32],
/// where s = d·Σq is what affine formats (q4_K's min) multiply by their offset.
/// </summary>
internal static unsafe class Q8Activations
{
    public const int Block = 32;

    public static int RowBytes(int cols) => cols + cols / Block * 8;

    /// <summary>Quantizes <paramref name="cols"/> (a multiple of 32) values at <paramref name="x"/> into <paramref name="dst"/>.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void Quantize(float* x, int cols, byte* dst)
    {
        int nb = cols / Block;
        sbyte* q = (sbyte*)dst;
        float* d = (float*)(dst + cols), s = d + nb;
        for (int b = 0; b < nb; b++)
        {
            float* xb = x + b * Block;
            var v0 = Vector256.Load(xb); var v1 = Vector256.Load(xb + 8);
            var v2 = Vector256.Load(xb + 16); var v3 = Vector256.Load(xb + 24);
            var am = Vector256.Max(Vector256.Max(Vector256.Abs(v0), Vector256.Abs(v1)), Vector256.Max(Vector256.Abs(v2), Vector256.Abs(v3)));
            float amax = MaxLane(am);
            float id = amax > 0 ? 127f / amax : 0f;
            var vid = Vector256.Create(id);
            // Round then convert: the values are integral by then, so the native conversion is exact.
            var i0 = Vector256.ConvertToInt32Native(Vector256.Round(v0 * vid));
            var i1 = Vector256.ConvertToInt32Native(Vector256.Round(v1 * vid));
            var i2 = Vector256.ConvertToInt32Native(Vector256.Round(v2 * vid));
            var i3 = Vector256.ConvertToInt32Native(Vector256.Round(v3 * vid));
            // Narrow interleaves 128-bit lanes only on the x86 pack instructions; the generic
            // Narrow keeps element order, which is what the kernels assume.
            Vector256.Narrow(Vector256.Narrow(i0, i1), Vector256.Narrow(i2, i3)).Store(q + b * Block);
            float db = amax / 127f;
            d[b] = db;
            s[b] = db * Vector256.Sum(i0 + i1 + i2 + i3);
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static float MaxLane(Vector256<float> v)
    {
        var m = Vector128.Max(v.GetLower(), v.GetUpper());
        m = Vector128.Max(m, Vector128.Shuffle(m, Vector128.Create(2, 3, 0, 1)));
        m = Vector128.Max(m, Vector128.Shuffle(m, Vector128.Create(1, 0, 3, 2)));
        return m.ToScalar();
    }

    /// <summary>The values the codes stand for, d·q (tests compute the same math in double from these).</summary>
    public static void Dequantize(ReadOnlySpan<byte> row, int cols, Span<float> dst)
    {
        fixed (byte* p = row)
        {
            sbyte* q = (sbyte*)p;
            float* d = (float*)(p + cols);
            for (int i = 0; i < cols; i++) dst[i] = d[i / Block] * q[i];
        }
    }
}

/// <summary>
/// Fused dequantize-dot kernels (AVX2): one weight row in its packed ggml blocks times one row of
/// <see cref="Q8Activations"/>. Inside a 32-value block the product is exact integer arithmetic
/// (vpmaddubsw then vpmaddwd, as ggml does); the block's scales are applied in float and blocks
/// are accumulated in eight float lanes, summed once per row. The weight formats' own scales
/// (fp16 d, 6-bit sub-block scales) are used exactly as their dequantizers use them, so the
/// result equals Σ dequant(w)·dequant(x) up to float rounding of the scale products and the
/// accumulation (see the tests for the bound).
/// </summary>
internal static unsafe class QuantizedKernels
{
    public static bool IsSupported => Simd.AllowAvx2 && Avx2.IsSupported && Fma.IsSupported;

    static Vector256<short> Ones16 => Vector256.Create((short)1);

    /// <summary>Σ w·x over 32 signed int8 pairs as eight int32 partial sums (|w|, |x| ≤ 127 or w = −128 with |x| ≤ 127).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static Vector256<int> DotSigned(Vector256<sbyte> w, Vector256<sbyte> x) =>
        // vpmaddubsw needs one unsigned operand: move w's sign onto x.
        Avx2.MultiplyAddAdjacent(Avx2.MultiplyAddAdjacent(Avx2.Abs(w), Avx2.Sign(x, w)), Ones16);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static Vector256<int> DotUnsigned(Vector256<byte> w, Vector256<sbyte> x) =>
        Avx2.MultiplyAddAdjacent(Avx2.MultiplyAddAdjacent(w, x), Ones16);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static float Half(byte* p) => Fp16Bits.ToFloat(Unsafe.ReadUnaligned<ushort>(p));

    /// <summary>q8_0: 34-byte blocks, fp16 d then 32 int8.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static float DotQ8_0(byte* w, byte* xq, int cols)
    {
        int nb = cols / 32;
        sbyte* xs = (sbyte*)xq;
        float* xd = (float*)(xq + cols);
        var acc = Vector256<float>.Zero;
        for (int b = 0; b < nb; b++, w += 34)
        {
            var p = DotSigned(Vector256.Load((sbyte*)(w + 2)), Vector256.Load(xs + b * 32));
            acc = Fma.MultiplyAdd(Avx.ConvertToVector256Single(p), Vector256.Create(Half(w) * xd[b]), acc);
        }
        return Vector256.Sum(acc);
    }

    /// <summary>q4_0: 18-byte blocks, fp16 d then 16 bytes; low nibbles are values 0–15, high nibbles 16–31, value (q − 8)·d.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static float DotQ4_0(byte* w, byte* xq, int cols)
    {
        int nb = cols / 32;
        sbyte* xs = (sbyte*)xq;
        float* xd = (float*)(xq + cols);
        var acc = Vector256<float>.Zero;
        var m4 = Vector128.Create((byte)0x0F);
        var eight = Vector256.Create((sbyte)8);
        for (int b = 0; b < nb; b++, w += 18)
        {
            var raw = Vector128.Load(w + 2);
            var q = Vector256.Create(raw & m4, Vector128.ShiftRightLogical(raw.AsUInt16(), 4).AsByte() & m4).AsSByte() - eight;
            var p = DotSigned(q, Vector256.Load(xs + b * 32));
            acc = Fma.MultiplyAdd(Avx.ConvertToVector256Single(p), Vector256.Create(Half(w) * xd[b]), acc);
        }
        return Vector256.Sum(acc);
    }

    /// <summary>
    /// q4_K: 144-byte super-blocks of 256: fp16 d, fp16 dmin, 12 bytes of 6-bit scales/mins for
    /// eight sub-blocks of 32, then 128 bytes where each 32-byte run holds sub-block 2j in its low
    /// nibbles and 2j+1 in its high nibbles. Value = d·sc·q − dmin·m, so the dot is
    /// Σ d·sc·dx·(Σ q·xq) − Σ dmin·m·(dx·Σ xq).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static float DotQ4_K(byte* w, byte* xq, int cols)
    {
        int nsb = cols / 256;
        sbyte* xs = (sbyte*)xq;
        float* xd = (float*)(xq + cols), xsum = xd + cols / 32;
        var acc = Vector256<float>.Zero;
        float minAcc = 0;
        var m4 = Vector256.Create((byte)0x0F);
        byte* sc = stackalloc byte[8];
        byte* mn = stackalloc byte[8];
        for (int s = 0; s < nsb; s++, w += 144)
        {
            float d = Half(w), dmin = Half(w + 2);
            ScalesMinsK4(w + 4, sc, mn);
            int xb = s * 8;
            float m = 0;
            for (int j = 0; j < 8; j++) m += mn[j] * xsum[xb + j];
            minAcc += dmin * m;
            byte* qs = w + 16;
            for (int j = 0; j < 4; j++)
            {
                var raw = Vector256.Load(qs + 32 * j);
                var lo = raw & m4;
                var hi = Vector256.ShiftRightLogical(raw.AsUInt16(), 4).AsByte() & m4;
                int b0 = xb + 2 * j, b1 = b0 + 1;
                var p0 = DotUnsigned(lo, Vector256.Load(xs + b0 * 32));
                var p1 = DotUnsigned(hi, Vector256.Load(xs + b1 * 32));
                acc = Fma.MultiplyAdd(Avx.ConvertToVector256Single(p0), Vector256.Create(d * sc[2 * j] * xd[b0]), acc);
                acc = Fma.MultiplyAdd(Avx.ConvertToVector256Single(p1), Vector256.Create(d * sc[2 * j + 1] * xd[b1]), acc);
            }
        }
        return Vector256.Sum(acc) - minAcc;
    }

    /// <summary>
    /// q5_K: 176-byte super-blocks of 256: fp16 d, fp16 dmin, 12 bytes of scales/mins as in q4_K,
    /// qh[32] (fifth bits), then 128 bytes of nibbles laid out as q4_K's. Sub-block j's fifth bit
    /// is bit j of qh[l]. Value = d·sc·q − dmin·m with q in 0–31, so the dot splits like q4_K's.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static float DotQ5_K(byte* w, byte* xq, int cols)
    {
        int nsb = cols / 256;
        sbyte* xs = (sbyte*)xq;
        float* xd = (float*)(xq + cols), xsum = xd + cols / 32;
        var acc = Vector256<float>.Zero;
        float minAcc = 0;
        var m4 = Vector256.Create((byte)0x0F);
        var b4 = Vector256.Create((byte)0x10);
        byte* sc = stackalloc byte[8];
        byte* mn = stackalloc byte[8];
        for (int s = 0; s < nsb; s++, w += 176)
        {
            float d = Half(w), dmin = Half(w + 2);
            ScalesMinsK4(w + 4, sc, mn);
            int xb = s * 8;
            float m = 0;
            for (int j = 0; j < 8; j++) m += mn[j] * xsum[xb + j];
            minAcc += dmin * m;
            // Shifted right by 2 per pair of sub-blocks, so the two bits wanted are always bits 0
            // and 1 of each byte; 16-bit shifts only pollute the top bits, which the masks drop.
            var qh = Vector256.Load(w + 16).AsUInt16();
            byte* qs = w + 48;
            for (int j = 0; j < 4; j++)
            {
                var raw = Vector256.Load(qs + 32 * j);
                var lo = (raw & m4) | (Vector256.ShiftLeft(qh, 4).AsByte() & b4);
                var hi = (Vector256.ShiftRightLogical(raw.AsUInt16(), 4).AsByte() & m4) | (Vector256.ShiftLeft(qh, 3).AsByte() & b4);
                qh = Vector256.ShiftRightLogical(qh, 2);
                int b0 = xb + 2 * j, b1 = b0 + 1;
                var p0 = DotUnsigned(lo, Vector256.Load(xs + b0 * 32)); // |pair| ≤ 2·31·127 fits int16
                var p1 = DotUnsigned(hi, Vector256.Load(xs + b1 * 32));
                acc = Fma.MultiplyAdd(Avx.ConvertToVector256Single(p0), Vector256.Create(d * sc[2 * j] * xd[b0]), acc);
                acc = Fma.MultiplyAdd(Avx.ConvertToVector256Single(p1), Vector256.Create(d * sc[2 * j + 1] * xd[b1]), acc);
            }
        }
        return Vector256.Sum(acc) - minAcc;
    }

    /// <summary>
    /// q3_K: 110-byte super-blocks of 256: hmask[32] (third bits), qs[64] (2-bit lows), 12 bytes
    /// of 6-bit scales (offset 32) for sixteen sub-blocks of 16, fp16 d. Value = d·(sc − 32)·(q − 4)
    /// where q = low | hbit·4. Each 128-value half is four 32-value blocks from the same 32 qs
    /// bytes at bit offsets 0, 2, 4, 6; block k of the super-block takes hmask bit k.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static float DotQ3_K(byte* w, byte* xq, int cols)
    {
        int nsb = cols / 256;
        sbyte* xs = (sbyte*)xq;
        float* xd = (float*)(xq + cols);
        var acc = Vector256<float>.Zero;
        var m3 = Vector256.Create((byte)3);
        var b2 = Vector256.Create((byte)4);
        var four = Vector256.Create((sbyte)4);
        sbyte* sc = stackalloc sbyte[16];
        for (int s = 0; s < nsb; s++, w += 110)
        {
            float d = Half(w + 108);
            ScalesK3(w + 96, sc);
            var hm = Vector256.Load(w).AsUInt16();
            for (int n = 0; n < 2; n++)
            {
                var q = Vector256.Load(w + 32 + 32 * n).AsUInt16();
                for (int j = 0; j < 4; j++)
                {
                    // Bit 0 of each hm byte is the current block's third bit (hm shifts right by one per block).
                    var code = (Vector256.ShiftRightLogical(q, 2 * j).AsByte() & m3) | (Vector256.ShiftLeft(hm, 2).AsByte() & b2);
                    hm = Vector256.ShiftRightLogical(hm, 1);
                    int xb = s * 8 + n * 4 + j;
                    int k = 8 * n + 2 * j;
                    acc = Block16(code.AsSByte() - four, sc[k], sc[k + 1], xs + xb * 32, d * xd[xb], acc);
                }
            }
        }
        return Vector256.Sum(acc);
    }

    /// <summary>q3_K's sixteen 6-bit scales minus 32: low nibbles in bytes 0–7 (scales 0–7 low, 8–15 high), top 2 bits in bytes 8–11.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static void ScalesK3(byte* p, sbyte* dst)
    {
        // Four scales per uint32, one per byte: scale 4i+b's top bits sit in byte b of the last word at bit 2i.
        uint a0 = Unsafe.ReadUnaligned<uint>(p), a1 = Unsafe.ReadUnaligned<uint>(p + 4), t = Unsafe.ReadUnaligned<uint>(p + 8);
        const uint lo4 = 0x0F0F0F0F, lo2 = 0x03030303;
        uint* u = (uint*)dst;
        u[0] = (a0 & lo4) | ((t & lo2) << 4);
        u[1] = (a1 & lo4) | (((t >> 2) & lo2) << 4);
        u[2] = ((a0 >> 4) & lo4) | (((t >> 4) & lo2) << 4);
        u[3] = ((a1 >> 4) & lo4) | (((t >> 6) & lo2) << 4);
        (Vector128.Load((byte*)dst) - Vector128.Create((byte)32)).Store((byte*)dst);
    }

    /// <summary>
    /// q2_K: 84-byte super-blocks of 256: scales[16] (low nibble scale, high nibble min for each
    /// sub-block of 16), qs[64] laid out as q3_K's, fp16 d, fp16 dmin. Value = d·sc·q − dmin·m.
    /// The min term needs Σx per 16 values, finer than the activation's per-32 sums, so it is a
    /// second integer madd with the mins in place of the codes.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static float DotQ2_K(byte* w, byte* xq, int cols)
    {
        int nsb = cols / 256;
        sbyte* xs = (sbyte*)xq;
        float* xd = (float*)(xq + cols);
        var acc = Vector256<float>.Zero;
        var accMin = Vector256<float>.Zero;
        var m3 = Vector256.Create((byte)3);
        for (int s = 0; s < nsb; s++, w += 84)
        {
            float d = Half(w + 80), dmin = Half(w + 82);
            byte* scm = w;
            for (int n = 0; n < 2; n++)
            {
                var q = Vector256.Load(w + 16 + 32 * n).AsUInt16();
                for (int j = 0; j < 4; j++)
                {
                    var code = Vector256.ShiftRightLogical(q, 2 * j).AsByte() & m3;
                    int xb = s * 8 + n * 4 + j;
                    byte s0 = scm[8 * n + 2 * j], s1 = scm[8 * n + 2 * j + 1];
                    var x8 = Vector256.Load(xs + xb * 32);
                    // Lanes 0–7 of the int16 pair sums hold values 0–15, lanes 8–15 values 16–31.
                    var scv = Vector256.Create(Vector128.Create((short)(s0 & 0xF)), Vector128.Create((short)(s1 & 0xF)));
                    var mv = Vector256.Create(Vector128.Create((byte)(s0 >> 4)), Vector128.Create((byte)(s1 >> 4)));
                    var p = Avx2.MultiplyAddAdjacent(Avx2.MultiplyAddAdjacent(code, x8), scv); // |pair| ≤ 2·3·127
                    var pm = DotUnsigned(mv, x8); // |pair| ≤ 2·15·127
                    float dx = xd[xb];
                    acc = Fma.MultiplyAdd(Avx.ConvertToVector256Single(p), Vector256.Create(d * dx), acc);
                    accMin = Fma.MultiplyAdd(Avx.ConvertToVector256Single(pm), Vector256.Create(dmin * dx), accMin);
                }
            }
        }
        return Vector256.Sum(acc) - Vector256.Sum(accMin);
    }

    /// <summary>ggml's get_scale_min_k4 for all eight sub-blocks.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static void ScalesMinsK4(byte* q, byte* sc, byte* mn)
    {
        for (int j = 0; j < 4; j++)
        {
            sc[j] = (byte)(q[j] & 63);
            mn[j] = (byte)(q[j + 4] & 63);
            sc[j + 4] = (byte)((q[j + 8] & 0xF) | ((q[j] >> 6) << 4));
            mn[j + 4] = (byte)((q[j + 8] >> 4) | ((q[j + 4] >> 6) << 4));
        }
    }

    /// <summary>
    /// q6_K: 210-byte super-blocks of 256: ql[128] (low 4 bits), qh[64] (high 2 bits), int8
    /// scales[16] (one per 16 values), fp16 d. Value = d·sc·(q − 32). Each 128-value half is
    /// four 32-value blocks built from the same 32 qh bytes at bit offsets 0, 2, 4, 6.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static float DotQ6_K(byte* w, byte* xq, int cols)
    {
        int nsb = cols / 256;
        sbyte* xs = (sbyte*)xq;
        float* xd = (float*)(xq + cols);
        var acc = Vector256<float>.Zero;
        var off = Vector256.Create((sbyte)32);
        for (int s = 0; s < nsb; s++, w += 210)
        {
            float d = Half(w + 208);
            sbyte* scales = (sbyte*)(w + 192);
            for (int n = 0; n < 2; n++)
            {
                UnpackQ6K(w, n, out var q0, out var q1, out var q2, out var q3);
                int xb = s * 8 + n * 4;
                sbyte* sc = scales + 8 * n;
                acc = Block6(q0, sc[0], sc[1], xs + xb * 32, d * xd[xb], acc, off);
                acc = Block6(q1, sc[2], sc[3], xs + (xb + 1) * 32, d * xd[xb + 1], acc, off);
                acc = Block6(q2, sc[4], sc[5], xs + (xb + 2) * 32, d * xd[xb + 2], acc, off);
                acc = Block6(q3, sc[6], sc[7], xs + (xb + 3) * 32, d * xd[xb + 3], acc, off);
            }
        }
        return Vector256.Sum(acc);
    }

    /// <summary>q6_K's four 32-value blocks of codes (0–63) in 128-value half <paramref name="n"/> of the super-block at <paramref name="w"/>.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static void UnpackQ6K(byte* w, int n, out Vector256<byte> q0, out Vector256<byte> q1, out Vector256<byte> q2, out Vector256<byte> q3)
    {
        var m4 = Vector256.Create((byte)0x0F);
        var m30 = Vector256.Create((byte)0x30);
        var qlA = Vector256.Load(w + 64 * n);
        var qlB = Vector256.Load(w + 64 * n + 32);
        var h = Vector256.Load(w + 128 + 32 * n).AsUInt16();
        // Byte-wise shifts via 16-bit shifts: the mask drops bits that crossed from the neighbour byte.
        q0 = (qlA & m4) | (Vector256.ShiftLeft(h, 4).AsByte() & m30);
        q1 = (qlB & m4) | (Vector256.ShiftLeft(h, 2).AsByte() & m30);
        q2 = (Vector256.ShiftRightLogical(qlA.AsUInt16(), 4).AsByte() & m4) | (h.AsByte() & m30);
        q3 = (Vector256.ShiftRightLogical(qlB.AsUInt16(), 4).AsByte() & m4) | (Vector256.ShiftRightLogical(h, 2).AsByte() & m30);
    }

    /// <summary>One 32-value q6_K block: two 16-value halves with their own int8 scale, applied in the integer madd.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static Vector256<float> Block6(Vector256<byte> q, sbyte scLo, sbyte scHi, sbyte* x, float scale, Vector256<float> acc, Vector256<sbyte> off) =>
        Block16(q.AsSByte() - off, scLo, scHi, x, scale, acc); // −32 … 31

    /// <summary>
    /// One 32-value block of signed codes (|w| ≤ 32) in two 16-value halves, each with its own
    /// integer scale (|sc| ≤ 128) applied in the second madd; the int32 results stay exact.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static Vector256<float> Block16(Vector256<sbyte> wq, sbyte scLo, sbyte scHi, sbyte* x, float scale, Vector256<float> acc)
    {
        var x8 = Vector256.Load(x);
        var p16 = Avx2.MultiplyAddAdjacent(Avx2.Abs(wq), Avx2.Sign(x8, wq)); // |pair| ≤ 2·32·127
        // Lanes 0–7 hold values 0–15, lanes 8–15 values 16–31: one scale per 128-bit half.
        var scv = Vector256.Create(Vector128.Create((short)scLo), Vector128.Create((short)scHi));
        var p = Avx2.MultiplyAddAdjacent(p16, scv);
        return Fma.MultiplyAdd(Avx.ConvertToVector256Single(p), Vector256.Create(scale), acc);
    }
}
