using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace TensorCodec.Engine;

/// <summary>
/// AVX-512BW forms of <see cref="QuantizedGemm"/>'s kernels (same arguments, same layouts): each
/// vpmaddubsw/vpmaddwd covers 64 values, two of the AVX2 kernel's 32-value blocks, so a token costs
/// one load and two multiply-adds per 64 weights instead of two and four. Results are bit-for-bit the
/// AVX2 kernels': for the k-quants the 16 int32 lanes fold (lower + upper half, exact integer
/// addition) into the AVX2 kernel's 8 lanes before the one float step per super-block; for q8_0/q4_0,
/// whose scale changes every 32 values, the 16 lanes convert to float and the two halves are
/// multiply-added in block order, as the AVX2 kernel does one block at a time.
/// .NET 10 exposes no AVX-512 VNNI (<c>vpdpbusd</c> on zmm comes with <c>AvxVnni.V512</c> in .NET 11;
/// <c>AvxVnni</c> is the VEX form, which Zen 4 lacks), so the products stay vpmaddubsw + vpmaddwd.
/// </summary>
internal static unsafe class QuantizedGemm512
{
    /// <summary>Whether the kernels may run: AVX-512BW here and allowed by <see cref="Numerics.Simd"/>.</summary>
    public static bool IsSupported => Avx512BW.IsSupported && Numerics.Simd.AllowAvx512;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static Vector512<int> Madd(Vector512<byte> u, Vector512<sbyte> x, Vector512<short> scale) =>
        Avx512BW.MultiplyAddAdjacent(Avx512BW.MultiplyAddAdjacent(u, x), scale);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static Vector256<int> Fold(Vector512<int> v) => v.GetLower() + v.GetUpper();

    /// <summary>vpermw indices: int16 lane l takes entry <paramref name="first"/> + l/8 (one scale per 16 codes).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static Vector512<short> Groups16(int first) => Vector512.Create(
        (short)first, (short)first, (short)first, (short)first, (short)first, (short)first, (short)first, (short)first,
        (short)(first + 1), (short)(first + 1), (short)(first + 1), (short)(first + 1), (short)(first + 1), (short)(first + 1), (short)(first + 1), (short)(first + 1),
        (short)(first + 2), (short)(first + 2), (short)(first + 2), (short)(first + 2), (short)(first + 2), (short)(first + 2), (short)(first + 2), (short)(first + 2),
        (short)(first + 3), (short)(first + 3), (short)(first + 3), (short)(first + 3), (short)(first + 3), (short)(first + 3), (short)(first + 3), (short)(first + 3));

    /// <summary>q8_0 × q8_0, two blocks per step; an odd last block runs as in the AVX2 kernel.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void Q8_0(byte* w, byte* rs, int cols, byte* x0, byte* x1, byte* x2, byte* x3, float* result)
    {
        int nb = cols / 32;
        float* d0 = (float*)(x0 + cols), d1 = (float*)(x1 + cols), d2 = (float*)(x2 + cols), d3 = (float*)(x3 + cols);
        Vector256<float> a0 = default, a1 = default, a2 = default, a3 = default;
        var ones = Vector512.Create((short)1);
        int b = 0;
        for (; b + 2 <= nb; b += 2, w += 68)
        {
            var wq = Vector512.Create(Vector256.Load((sbyte*)(w + 2)), Vector256.Load((sbyte*)(w + 36)));
            var aw = Avx512BW.Abs(wq);
            // sign(x, w): |w|·x·sign(w); where w = 0 the product is 0 either way.
            var neg = Vector512.LessThan(wq, Vector512<sbyte>.Zero);
            float dw0 = ((float*)rs)[b], dw1 = ((float*)rs)[b + 1];
            int o = b * 32;
            var v0 = Vector512.Load((sbyte*)x0 + o); var v1 = Vector512.Load((sbyte*)x1 + o);
            var v2 = Vector512.Load((sbyte*)x2 + o); var v3 = Vector512.Load((sbyte*)x3 + o);
            var f0 = Vector512.ConvertToSingle(Avx512BW.MultiplyAddAdjacent(Avx512BW.MultiplyAddAdjacent(aw, Vector512.ConditionalSelect(neg, -v0, v0)), ones));
            var f1 = Vector512.ConvertToSingle(Avx512BW.MultiplyAddAdjacent(Avx512BW.MultiplyAddAdjacent(aw, Vector512.ConditionalSelect(neg, -v1, v1)), ones));
            var f2 = Vector512.ConvertToSingle(Avx512BW.MultiplyAddAdjacent(Avx512BW.MultiplyAddAdjacent(aw, Vector512.ConditionalSelect(neg, -v2, v2)), ones));
            var f3 = Vector512.ConvertToSingle(Avx512BW.MultiplyAddAdjacent(Avx512BW.MultiplyAddAdjacent(aw, Vector512.ConditionalSelect(neg, -v3, v3)), ones));
            a0 = Fma.MultiplyAdd(f0.GetUpper(), Vector256.Create(dw1 * d0[b + 1]), Fma.MultiplyAdd(f0.GetLower(), Vector256.Create(dw0 * d0[b]), a0));
            a1 = Fma.MultiplyAdd(f1.GetUpper(), Vector256.Create(dw1 * d1[b + 1]), Fma.MultiplyAdd(f1.GetLower(), Vector256.Create(dw0 * d1[b]), a1));
            a2 = Fma.MultiplyAdd(f2.GetUpper(), Vector256.Create(dw1 * d2[b + 1]), Fma.MultiplyAdd(f2.GetLower(), Vector256.Create(dw0 * d2[b]), a2));
            a3 = Fma.MultiplyAdd(f3.GetUpper(), Vector256.Create(dw1 * d3[b + 1]), Fma.MultiplyAdd(f3.GetLower(), Vector256.Create(dw0 * d3[b]), a3));
        }
        if (b < nb)
        {
            var wq = Vector256.Load((sbyte*)(w + 2));
            var aw = Avx2.Abs(wq);
            var ones256 = Vector256.Create((short)1);
            float dw = ((float*)rs)[b];
            int o = b * 32;
            a0 = Fma.MultiplyAdd(Avx.ConvertToVector256Single(Avx2.MultiplyAddAdjacent(Avx2.MultiplyAddAdjacent(aw, Avx2.Sign(Vector256.Load((sbyte*)x0 + o), wq)), ones256)), Vector256.Create(dw * d0[b]), a0);
            a1 = Fma.MultiplyAdd(Avx.ConvertToVector256Single(Avx2.MultiplyAddAdjacent(Avx2.MultiplyAddAdjacent(aw, Avx2.Sign(Vector256.Load((sbyte*)x1 + o), wq)), ones256)), Vector256.Create(dw * d1[b]), a1);
            a2 = Fma.MultiplyAdd(Avx.ConvertToVector256Single(Avx2.MultiplyAddAdjacent(Avx2.MultiplyAddAdjacent(aw, Avx2.Sign(Vector256.Load((sbyte*)x2 + o), wq)), ones256)), Vector256.Create(dw * d2[b]), a2);
            a3 = Fma.MultiplyAdd(Avx.ConvertToVector256Single(Avx2.MultiplyAddAdjacent(Avx2.MultiplyAddAdjacent(aw, Avx2.Sign(Vector256.Load((sbyte*)x3 + o), wq)), ones256)), Vector256.Create(dw * d3[b]), a3);
        }
        result[0] = Vector256.Sum(a0); result[1] = Vector256.Sum(a1); result[2] = Vector256.Sum(a2); result[3] = Vector256.Sum(a3);
    }

    /// <summary>q4_0 × q8_0, two blocks per step; the −8 offset through the activation sums, in the AVX2 kernel's order.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void Q4_0(byte* w, byte* rs, int cols, byte* x0, byte* x1, byte* x2, byte* x3, float* result)
    {
        int nb = cols / 32;
        float* d0 = (float*)(x0 + cols), d1 = (float*)(x1 + cols), d2 = (float*)(x2 + cols), d3 = (float*)(x3 + cols);
        int* s0 = (int*)(d0 + nb), s1 = (int*)(d1 + nb), s2 = (int*)(d2 + nb), s3 = (int*)(d3 + nb);
        Vector256<float> a0 = default, a1 = default, a2 = default, a3 = default;
        float c0 = 0, c1 = 0, c2 = 0, c3 = 0;
        var m4 = Vector128.Create((byte)0x0F);
        var ones = Vector512.Create((short)1);
        int b = 0;
        for (; b + 2 <= nb; b += 2, w += 36)
        {
            var rawA = Vector128.Load(w + 2);
            var rawB = Vector128.Load(w + 20);
            var q = Vector512.Create(
                Vector256.Create(rawA & m4, Vector128.ShiftRightLogical(rawA.AsUInt16(), 4).AsByte() & m4),
                Vector256.Create(rawB & m4, Vector128.ShiftRightLogical(rawB.AsUInt16(), 4).AsByte() & m4));
            float dwA = ((float*)rs)[b], dwB = ((float*)rs)[b + 1];
            int o = b * 32;
            float e0 = dwA * d0[b], e1 = dwA * d1[b], e2 = dwA * d2[b], e3 = dwA * d3[b];
            float g0 = dwB * d0[b + 1], g1 = dwB * d1[b + 1], g2 = dwB * d2[b + 1], g3 = dwB * d3[b + 1];
            var f0 = Vector512.ConvertToSingle(Madd(q, Vector512.Load((sbyte*)x0 + o), ones));
            var f1 = Vector512.ConvertToSingle(Madd(q, Vector512.Load((sbyte*)x1 + o), ones));
            var f2 = Vector512.ConvertToSingle(Madd(q, Vector512.Load((sbyte*)x2 + o), ones));
            var f3 = Vector512.ConvertToSingle(Madd(q, Vector512.Load((sbyte*)x3 + o), ones));
            a0 = Fma.MultiplyAdd(f0.GetUpper(), Vector256.Create(g0), Fma.MultiplyAdd(f0.GetLower(), Vector256.Create(e0), a0));
            a1 = Fma.MultiplyAdd(f1.GetUpper(), Vector256.Create(g1), Fma.MultiplyAdd(f1.GetLower(), Vector256.Create(e1), a1));
            a2 = Fma.MultiplyAdd(f2.GetUpper(), Vector256.Create(g2), Fma.MultiplyAdd(f2.GetLower(), Vector256.Create(e2), a2));
            a3 = Fma.MultiplyAdd(f3.GetUpper(), Vector256.Create(g3), Fma.MultiplyAdd(f3.GetLower(), Vector256.Create(e3), a3));
            c0 += e0 * s0[b]; c1 += e1 * s1[b]; c2 += e2 * s2[b]; c3 += e3 * s3[b];
            c0 += g0 * s0[b + 1]; c1 += g1 * s1[b + 1]; c2 += g2 * s2[b + 1]; c3 += g3 * s3[b + 1];
        }
        if (b < nb)
        {
            var raw = Vector128.Load(w + 2);
            var q = Vector256.Create(raw & m4, Vector128.ShiftRightLogical(raw.AsUInt16(), 4).AsByte() & m4);
            var ones256 = Vector256.Create((short)1);
            float dw = ((float*)rs)[b];
            int o = b * 32;
            float e0 = dw * d0[b], e1 = dw * d1[b], e2 = dw * d2[b], e3 = dw * d3[b];
            a0 = Fma.MultiplyAdd(Avx.ConvertToVector256Single(Avx2.MultiplyAddAdjacent(Avx2.MultiplyAddAdjacent(q, Vector256.Load((sbyte*)x0 + o)), ones256)), Vector256.Create(e0), a0);
            a1 = Fma.MultiplyAdd(Avx.ConvertToVector256Single(Avx2.MultiplyAddAdjacent(Avx2.MultiplyAddAdjacent(q, Vector256.Load((sbyte*)x1 + o)), ones256)), Vector256.Create(e1), a1);
            a2 = Fma.MultiplyAdd(Avx.ConvertToVector256Single(Avx2.MultiplyAddAdjacent(Avx2.MultiplyAddAdjacent(q, Vector256.Load((sbyte*)x2 + o)), ones256)), Vector256.Create(e2), a2);
            a3 = Fma.MultiplyAdd(Avx.ConvertToVector256Single(Avx2.MultiplyAddAdjacent(Avx2.MultiplyAddAdjacent(q, Vector256.Load((sbyte*)x3 + o)), ones256)), Vector256.Create(e3), a3);
            c0 += e0 * s0[b]; c1 += e1 * s1[b]; c2 += e2 * s2[b]; c3 += e3 * s3[b];
        }
        result[0] = Vector256.Sum(a0) - 8 * c0; result[1] = Vector256.Sum(a1) - 8 * c1;
        result[2] = Vector256.Sum(a2) - 8 * c2; result[3] = Vector256.Sum(a3) - 8 * c3;
    }

    /// <summary>q4_K × q8_K: a 32-byte load of codes is 64 values (low nibbles, then high), their two scales through vpermw.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void Q4_K(byte* w, byte* rs, int cols, byte* x0, byte* x1, byte* x2, byte* x3, float* result)
    {
        int nsb = cols / 256;
        float* d0 = (float*)(x0 + cols), d1 = (float*)(x1 + cols), d2 = (float*)(x2 + cols), d3 = (float*)(x3 + cols);
        short* b0 = (short*)(d0 + nsb), b1 = (short*)(d1 + nsb), b2 = (short*)(d2 + nsb), b3 = (short*)(d3 + nsb);
        Vector256<float> a0 = default, a1 = default, a2 = default, a3 = default;
        Vector256<float> m0 = default, m1 = default, m2 = default, m3 = default;
        var mask = Vector512.Create((byte)0x0F);
        var shifts = Vector512.Create(Vector256<ushort>.Zero, Vector256.Create((ushort)4));
        var pair0 = Pair32(0);
        var two = Vector512.Create((short)2);
        float* dd = (float*)rs;
        short* rsc = (short*)(dd + 2 * nsb), rmn = rsc + 16 * nsb;
        for (int s = 0; s < nsb; s++, w += 144)
        {
            float d = dd[2 * s], dmin = dd[2 * s + 1];
            // Scale j (lane j of the row's table) for 32-value block j: lanes 0–15 of the pair take 2j, 16–31 take 2j+1.
            var scs = Vector512.Create(Vector256.Load(rsc + 16 * s), Vector256<short>.Zero);
            Vector512<int> i0 = default, i1 = default, i2 = default, i3 = default;
            byte* qs = w + 16;
            int o = s * 256;
            var idx = pair0;
            for (int j = 0; j < 4; j++, idx += two)
            {
                var raw = Vector256.Load(qs + 32 * j).AsUInt16();
                var q = Avx512BW.ShiftRightLogicalVariable(Vector512.Create(raw, raw), shifts).AsByte() & mask;
                var scv = Avx512BW.PermuteVar32x16(scs, idx);
                int k = o + 64 * j;
                i0 += Madd(q, Vector512.Load((sbyte*)x0 + k), scv);
                i1 += Madd(q, Vector512.Load((sbyte*)x1 + k), scv);
                i2 += Madd(q, Vector512.Load((sbyte*)x2 + k), scv);
                i3 += Madd(q, Vector512.Load((sbyte*)x3 + k), scv);
            }
            var mv = Vector256.Load(rmn + 16 * s);
            a0 = Fma.MultiplyAdd(Avx.ConvertToVector256Single(Fold(i0)), Vector256.Create(d * d0[s]), a0);
            a1 = Fma.MultiplyAdd(Avx.ConvertToVector256Single(Fold(i1)), Vector256.Create(d * d1[s]), a1);
            a2 = Fma.MultiplyAdd(Avx.ConvertToVector256Single(Fold(i2)), Vector256.Create(d * d2[s]), a2);
            a3 = Fma.MultiplyAdd(Avx.ConvertToVector256Single(Fold(i3)), Vector256.Create(d * d3[s]), a3);
            m0 = Fma.MultiplyAdd(Avx.ConvertToVector256Single(Avx2.MultiplyAddAdjacent(Vector256.Load(b0 + s * 16), mv)), Vector256.Create(dmin * d0[s]), m0);
            m1 = Fma.MultiplyAdd(Avx.ConvertToVector256Single(Avx2.MultiplyAddAdjacent(Vector256.Load(b1 + s * 16), mv)), Vector256.Create(dmin * d1[s]), m1);
            m2 = Fma.MultiplyAdd(Avx.ConvertToVector256Single(Avx2.MultiplyAddAdjacent(Vector256.Load(b2 + s * 16), mv)), Vector256.Create(dmin * d2[s]), m2);
            m3 = Fma.MultiplyAdd(Avx.ConvertToVector256Single(Avx2.MultiplyAddAdjacent(Vector256.Load(b3 + s * 16), mv)), Vector256.Create(dmin * d3[s]), m3);
        }
        result[0] = Vector256.Sum(a0) - Vector256.Sum(m0); result[1] = Vector256.Sum(a1) - Vector256.Sum(m1);
        result[2] = Vector256.Sum(a2) - Vector256.Sum(m2); result[3] = Vector256.Sum(a3) - Vector256.Sum(m3);
    }

    /// <summary>vpermw indices: int16 lanes 0–15 take entry <paramref name="first"/>, lanes 16–31 entry first + 1.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static Vector512<short> Pair32(int first) => Vector512.Create(Vector256.Create((short)first), Vector256.Create((short)(first + 1)));

    /// <summary>q5_K × q8_K: q4_K with the fifth bit of each code from qh (bit 2j for the low nibbles, 2j+1 for the high).</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void Q5_K(byte* w, byte* rs, int cols, byte* x0, byte* x1, byte* x2, byte* x3, float* result)
    {
        int nsb = cols / 256;
        float* d0 = (float*)(x0 + cols), d1 = (float*)(x1 + cols), d2 = (float*)(x2 + cols), d3 = (float*)(x3 + cols);
        short* b0 = (short*)(d0 + nsb), b1 = (short*)(d1 + nsb), b2 = (short*)(d2 + nsb), b3 = (short*)(d3 + nsb);
        Vector256<float> a0 = default, a1 = default, a2 = default, a3 = default;
        Vector256<float> m0 = default, m1 = default, m2 = default, m3 = default;
        var mask = Vector512.Create((byte)0x0F);
        var bit4 = Vector512.Create((byte)0x10);
        var shifts = Vector512.Create(Vector256<ushort>.Zero, Vector256.Create((ushort)4));
        var pair0 = Pair32(0);
        var two = Vector512.Create((short)2);
        var hshifts = Vector512.Create(Vector256.Create((ushort)4), Vector256.Create((ushort)3));
        float* dd = (float*)rs;
        short* rsc = (short*)(dd + 2 * nsb), rmn = rsc + 16 * nsb;
        for (int s = 0; s < nsb; s++, w += 176)
        {
            float d = dd[2 * s], dmin = dd[2 * s + 1];
            var scs = Vector512.Create(Vector256.Load(rsc + 16 * s), Vector256<short>.Zero);
            Vector512<int> i0 = default, i1 = default, i2 = default, i3 = default;
            var qh256 = Vector256.Load(w + 16).AsUInt16();
            var qh = Vector512.Create(qh256, qh256);
            byte* qs = w + 48;
            int o = s * 256;
            var idx = pair0;
            for (int j = 0; j < 4; j++, idx += two)
            {
                var raw = Vector256.Load(qs + 32 * j).AsUInt16();
                // The AVX2 kernel's (qh >> 2j) << 4 and << 3: shift right first, so no bit leaves the 16-bit lane.
                var q = (Avx512BW.ShiftRightLogicalVariable(Vector512.Create(raw, raw), shifts).AsByte() & mask)
                    | (Avx512BW.ShiftLeftLogicalVariable(qh, hshifts).AsByte() & bit4);
                qh = Vector512.ShiftRightLogical(qh, 2);
                var scv = Avx512BW.PermuteVar32x16(scs, idx);
                int k = o + 64 * j;
                i0 += Madd(q, Vector512.Load((sbyte*)x0 + k), scv);
                i1 += Madd(q, Vector512.Load((sbyte*)x1 + k), scv);
                i2 += Madd(q, Vector512.Load((sbyte*)x2 + k), scv);
                i3 += Madd(q, Vector512.Load((sbyte*)x3 + k), scv);
            }
            var mv = Vector256.Load(rmn + 16 * s);
            a0 = Fma.MultiplyAdd(Avx.ConvertToVector256Single(Fold(i0)), Vector256.Create(d * d0[s]), a0);
            a1 = Fma.MultiplyAdd(Avx.ConvertToVector256Single(Fold(i1)), Vector256.Create(d * d1[s]), a1);
            a2 = Fma.MultiplyAdd(Avx.ConvertToVector256Single(Fold(i2)), Vector256.Create(d * d2[s]), a2);
            a3 = Fma.MultiplyAdd(Avx.ConvertToVector256Single(Fold(i3)), Vector256.Create(d * d3[s]), a3);
            m0 = Fma.MultiplyAdd(Avx.ConvertToVector256Single(Avx2.MultiplyAddAdjacent(Vector256.Load(b0 + s * 16), mv)), Vector256.Create(dmin * d0[s]), m0);
            m1 = Fma.MultiplyAdd(Avx.ConvertToVector256Single(Avx2.MultiplyAddAdjacent(Vector256.Load(b1 + s * 16), mv)), Vector256.Create(dmin * d1[s]), m1);
            m2 = Fma.MultiplyAdd(Avx.ConvertToVector256Single(Avx2.MultiplyAddAdjacent(Vector256.Load(b2 + s * 16), mv)), Vector256.Create(dmin * d2[s]), m2);
            m3 = Fma.MultiplyAdd(Avx.ConvertToVector256Single(Avx2.MultiplyAddAdjacent(Vector256.Load(b3 + s * 16), mv)), Vector256.Create(dmin * d3[s]), m3);
        }
        result[0] = Vector256.Sum(a0) - Vector256.Sum(m0); result[1] = Vector256.Sum(a1) - Vector256.Sum(m1);
        result[2] = Vector256.Sum(a2) - Vector256.Sum(m2); result[3] = Vector256.Sum(a3) - Vector256.Sum(m3);
    }

    /// <summary>q6_K × q8_K: two of <see cref="QuantizedKernels.UnpackQ6K"/>'s 32-value blocks per step, four 16-value scales through vpermw.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void Q6_K(byte* w, byte* rs, int cols, byte* x0, byte* x1, byte* x2, byte* x3, float* result)
    {
        int nsb = cols / 256;
        float* d0 = (float*)(x0 + cols), d1 = (float*)(x1 + cols), d2 = (float*)(x2 + cols), d3 = (float*)(x3 + cols);
        short* b0 = (short*)(d0 + nsb), b1 = (short*)(d1 + nsb), b2 = (short*)(d2 + nsb), b3 = (short*)(d3 + nsb);
        Vector256<float> a0 = default, a1 = default, a2 = default, a3 = default;
        var groups0 = Groups16(0);
        var four = Vector512.Create((short)4);
        var eight = Vector512.Create((short)8);
        float* dd = (float*)rs;
        short* rsc = (short*)(dd + 2 * nsb);
        for (int s = 0; s < nsb; s++, w += 210)
        {
            float d = dd[2 * s];
            var scv = Vector256.Load(rsc + 16 * s);
            var scs = Vector512.Create(scv, Vector256<short>.Zero);
            int o = s * 256;
            Vector512<int> i0 = default, i1 = default, i2 = default, i3 = default;
            var idx = groups0;
            for (int n = 0; n < 2; n++, idx += eight)
            {
                QuantizedKernels.UnpackQ6K(w, n, out var q0, out var q1, out var q2, out var q3);
                var qa = Vector512.Create(q0, q1);
                var qb = Vector512.Create(q2, q3);
                var sa = Avx512BW.PermuteVar32x16(scs, idx);
                var sb = Avx512BW.PermuteVar32x16(scs, idx + four);
                int k = o + 128 * n;
                i0 += Madd(qa, Vector512.Load((sbyte*)x0 + k), sa) + Madd(qb, Vector512.Load((sbyte*)x0 + k + 64), sb);
                i1 += Madd(qa, Vector512.Load((sbyte*)x1 + k), sa) + Madd(qb, Vector512.Load((sbyte*)x1 + k + 64), sb);
                i2 += Madd(qa, Vector512.Load((sbyte*)x2 + k), sa) + Madd(qb, Vector512.Load((sbyte*)x2 + k + 64), sb);
                i3 += Madd(qa, Vector512.Load((sbyte*)x3 + k), sa) + Madd(qb, Vector512.Load((sbyte*)x3 + k + 64), sb);
            }
            // The −32 offset, as in the AVX2 kernel: 32·Σ sc·bsum per token.
            var j0 = Fold(i0) - Vector256.ShiftLeft(Avx2.MultiplyAddAdjacent(Vector256.Load(b0 + s * 16), scv), 5);
            var j1 = Fold(i1) - Vector256.ShiftLeft(Avx2.MultiplyAddAdjacent(Vector256.Load(b1 + s * 16), scv), 5);
            var j2 = Fold(i2) - Vector256.ShiftLeft(Avx2.MultiplyAddAdjacent(Vector256.Load(b2 + s * 16), scv), 5);
            var j3 = Fold(i3) - Vector256.ShiftLeft(Avx2.MultiplyAddAdjacent(Vector256.Load(b3 + s * 16), scv), 5);
            a0 = Fma.MultiplyAdd(Avx.ConvertToVector256Single(j0), Vector256.Create(d * d0[s]), a0);
            a1 = Fma.MultiplyAdd(Avx.ConvertToVector256Single(j1), Vector256.Create(d * d1[s]), a1);
            a2 = Fma.MultiplyAdd(Avx.ConvertToVector256Single(j2), Vector256.Create(d * d2[s]), a2);
            a3 = Fma.MultiplyAdd(Avx.ConvertToVector256Single(j3), Vector256.Create(d * d3[s]), a3);
        }
        result[0] = Vector256.Sum(a0); result[1] = Vector256.Sum(a1); result[2] = Vector256.Sum(a2); result[3] = Vector256.Sum(a3);
    }

    /// <summary>q3_K × q8_K: the AVX2 kernel's codes, two 32-value blocks per step.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void Q3_K(byte* w, byte* rs, int cols, byte* x0, byte* x1, byte* x2, byte* x3, float* result)
    {
        int nsb = cols / 256;
        float* d0 = (float*)(x0 + cols), d1 = (float*)(x1 + cols), d2 = (float*)(x2 + cols), d3 = (float*)(x3 + cols);
        short* b0 = (short*)(d0 + nsb), b1 = (short*)(d1 + nsb), b2 = (short*)(d2 + nsb), b3 = (short*)(d3 + nsb);
        Vector256<float> a0 = default, a1 = default, a2 = default, a3 = default;
        var m3 = Vector256.Create((byte)3);
        var b2v = Vector256.Create((byte)4);
        var groups0 = Groups16(0);
        var four = Vector512.Create((short)4);
        float* dd = (float*)rs;
        short* rsc = (short*)(dd + 2 * nsb);
        for (int s = 0; s < nsb; s++, w += 110)
        {
            float d = dd[2 * s];
            var scv = Vector256.Load(rsc + 16 * s);
            var scs = Vector512.Create(scv, Vector256<short>.Zero);
            var hm = Vector256.Load(w).AsUInt16();
            int o = s * 256;
            Vector512<int> i0 = default, i1 = default, i2 = default, i3 = default;
            var idx = groups0;
            for (int n = 0; n < 2; n++)
            {
                var q = Vector256.Load(w + 32 + 32 * n).AsUInt16();
                for (int j = 0; j < 4; j += 2, idx += four)
                {
                    var lo = (Vector256.ShiftRightLogical(q, 2 * j).AsByte() & m3) | (Vector256.ShiftLeft(hm, 2).AsByte() & b2v);
                    var hi = (Vector256.ShiftRightLogical(q, 2 * j + 2).AsByte() & m3) | (Vector256.ShiftLeft(hm, 1).AsByte() & b2v);
                    hm = Vector256.ShiftRightLogical(hm, 2);
                    var code = Vector512.Create(lo, hi);
                    var sc = Avx512BW.PermuteVar32x16(scs, idx);
                    int k = o + 128 * n + 32 * j;
                    i0 += Madd(code, Vector512.Load((sbyte*)x0 + k), sc);
                    i1 += Madd(code, Vector512.Load((sbyte*)x1 + k), sc);
                    i2 += Madd(code, Vector512.Load((sbyte*)x2 + k), sc);
                    i3 += Madd(code, Vector512.Load((sbyte*)x3 + k), sc);
                }
            }
            var j0 = Fold(i0) - Vector256.ShiftLeft(Avx2.MultiplyAddAdjacent(Vector256.Load(b0 + s * 16), scv), 2);
            var j1 = Fold(i1) - Vector256.ShiftLeft(Avx2.MultiplyAddAdjacent(Vector256.Load(b1 + s * 16), scv), 2);
            var j2 = Fold(i2) - Vector256.ShiftLeft(Avx2.MultiplyAddAdjacent(Vector256.Load(b2 + s * 16), scv), 2);
            var j3 = Fold(i3) - Vector256.ShiftLeft(Avx2.MultiplyAddAdjacent(Vector256.Load(b3 + s * 16), scv), 2);
            a0 = Fma.MultiplyAdd(Avx.ConvertToVector256Single(j0), Vector256.Create(d * d0[s]), a0);
            a1 = Fma.MultiplyAdd(Avx.ConvertToVector256Single(j1), Vector256.Create(d * d1[s]), a1);
            a2 = Fma.MultiplyAdd(Avx.ConvertToVector256Single(j2), Vector256.Create(d * d2[s]), a2);
            a3 = Fma.MultiplyAdd(Avx.ConvertToVector256Single(j3), Vector256.Create(d * d3[s]), a3);
        }
        result[0] = Vector256.Sum(a0); result[1] = Vector256.Sum(a1); result[2] = Vector256.Sum(a2); result[3] = Vector256.Sum(a3);
    }

    /// <summary>q2_K × q8_K: codes (q &gt;&gt; 2j) &amp; 3 for two j per step, four 16-value scales through vpermw.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void Q2_K(byte* w, byte* rs, int cols, byte* x0, byte* x1, byte* x2, byte* x3, float* result)
    {
        int nsb = cols / 256;
        float* d0 = (float*)(x0 + cols), d1 = (float*)(x1 + cols), d2 = (float*)(x2 + cols), d3 = (float*)(x3 + cols);
        short* b0 = (short*)(d0 + nsb), b1 = (short*)(d1 + nsb), b2 = (short*)(d2 + nsb), b3 = (short*)(d3 + nsb);
        Vector256<float> a0 = default, a1 = default, a2 = default, a3 = default;
        Vector256<float> m0 = default, m1 = default, m2 = default, m3v = default;
        var m3 = Vector512.Create((byte)3);
        var shifts = Vector512.Create(Vector256<ushort>.Zero, Vector256.Create((ushort)2));
        var groups0 = Groups16(0);
        var four = Vector512.Create((short)4);
        float* dd = (float*)rs;
        short* rsc = (short*)(dd + 2 * nsb), rmn = rsc + 16 * nsb;
        for (int s = 0; s < nsb; s++, w += 84)
        {
            float d = dd[2 * s], dmin = dd[2 * s + 1];
            var scs = Vector512.Create(Vector256.Load(rsc + 16 * s), Vector256<short>.Zero);
            var mv = Vector256.Load(rmn + 16 * s);
            Vector512<int> i0 = default, i1 = default, i2 = default, i3 = default;
            int o = s * 256;
            var idx = groups0;
            for (int n = 0; n < 2; n++)
            {
                var q256 = Vector256.Load(w + 16 + 32 * n).AsUInt16();
                var q = Avx512BW.ShiftRightLogicalVariable(Vector512.Create(q256, q256), shifts);
                for (int j = 0; j < 4; j += 2, idx += four)
                {
                    var code = Vector512.ShiftRightLogical(q, 2 * j).AsByte() & m3;
                    var sc = Avx512BW.PermuteVar32x16(scs, idx);
                    int k = o + 128 * n + 32 * j;
                    i0 += Madd(code, Vector512.Load((sbyte*)x0 + k), sc);
                    i1 += Madd(code, Vector512.Load((sbyte*)x1 + k), sc);
                    i2 += Madd(code, Vector512.Load((sbyte*)x2 + k), sc);
                    i3 += Madd(code, Vector512.Load((sbyte*)x3 + k), sc);
                }
            }
            a0 = Fma.MultiplyAdd(Avx.ConvertToVector256Single(Fold(i0)), Vector256.Create(d * d0[s]), a0);
            a1 = Fma.MultiplyAdd(Avx.ConvertToVector256Single(Fold(i1)), Vector256.Create(d * d1[s]), a1);
            a2 = Fma.MultiplyAdd(Avx.ConvertToVector256Single(Fold(i2)), Vector256.Create(d * d2[s]), a2);
            a3 = Fma.MultiplyAdd(Avx.ConvertToVector256Single(Fold(i3)), Vector256.Create(d * d3[s]), a3);
            m0 = Fma.MultiplyAdd(Avx.ConvertToVector256Single(Avx2.MultiplyAddAdjacent(Vector256.Load(b0 + s * 16), mv)), Vector256.Create(dmin * d0[s]), m0);
            m1 = Fma.MultiplyAdd(Avx.ConvertToVector256Single(Avx2.MultiplyAddAdjacent(Vector256.Load(b1 + s * 16), mv)), Vector256.Create(dmin * d1[s]), m1);
            m2 = Fma.MultiplyAdd(Avx.ConvertToVector256Single(Avx2.MultiplyAddAdjacent(Vector256.Load(b2 + s * 16), mv)), Vector256.Create(dmin * d2[s]), m2);
            m3v = Fma.MultiplyAdd(Avx.ConvertToVector256Single(Avx2.MultiplyAddAdjacent(Vector256.Load(b3 + s * 16), mv)), Vector256.Create(dmin * d3[s]), m3v);
        }
        result[0] = Vector256.Sum(a0) - Vector256.Sum(m0); result[1] = Vector256.Sum(a1) - Vector256.Sum(m1);
        result[2] = Vector256.Sum(a2) - Vector256.Sum(m2); result[3] = Vector256.Sum(a3) - Vector256.Sum(m3v);
    }
}
