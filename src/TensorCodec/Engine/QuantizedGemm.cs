using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;
using TensorCodec.Containers;
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
            float amax = Q8Activations.MaxLane(Vector256.Max(Vector256.Max(Vector256.Abs(v0), Vector256.Abs(v1)), Vector256.Max(Vector256.Abs(v2), Vector256.Abs(v3))));
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
            float amax = Q8Activations.MaxLane(am);
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
}

/// <summary>
/// Integer matrix products of packed ggml weights with <see cref="GgmlQ8"/> activations, one weight
/// row against four tokens at a time, the row's scales decoded once for all its token groups
/// (<see cref="DecodeRowScales"/>): each block of the row is unpacked once and multiplied with all
/// four tokens' codes (vpmaddubsw, then vpmaddwd with the sub-block scale), as ggml's k-quant dot
/// products do. For the k-quants the activation scale is one per 256, so a whole super-block sums in
/// int32 and meets floating point once; the weights' offsets (q4_K/q5_K mins, q6_K's −32, q3_K's −4,
/// q2_K's mins) are applied through the activation block sums. Each kernel is written out in full: the
/// JIT keeps the four tokens' accumulators in registers only when nothing takes their address (helpers
/// taking them by ref spill them every block), and a method with stackalloc is never inlined.
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

    /// <summary>A super-block's (or block's) float step: acc + (float)sum · scale.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static Vector256<float> ScaleAdd(Vector256<int> sum, float scale, Vector256<float> acc) =>
        Fma.MultiplyAdd(Avx.ConvertToVector256Single(sum), Vector256.Create(scale), acc);

    /// <summary>The four tokens' results: each accumulator's lanes summed.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static void Store4(float* result, Vector256<float> a0, Vector256<float> a1, Vector256<float> a2, Vector256<float> a3)
    {
        result[0] = Vector256.Sum(a0); result[1] = Vector256.Sum(a1); result[2] = Vector256.Sum(a2); result[3] = Vector256.Sum(a3);
    }

    /// <summary>Bytes of <see cref="DecodeRowScales"/> output for a row of <paramref name="cols"/>.</summary>
    public static int RowScalesBytes(int cols) => Math.Max(cols / 32 * 4, cols / 256 * (8 + 64));

    /// <summary>
    /// A row's scales decoded once for all its token groups (the base redid this per group of four):
    /// q8_0/q4_0: float d per 32. k-quants: float (d, dmin) per super-block, then per super-block
    /// 16 int16 scales and 16 int16 mins in the lanes the kernels multiply with (q4_K/q5_K: scale j in
    /// lane j, each min twice, for the 16-value activation sums; q6_K/q3_K: the 16 signed scales, no mins;
    /// q2_K: the 16 4-bit scales and mins).
    /// </summary>
    public static void DecodeRowScales(int ggmlType, byte* w, int cols, byte* dst)
    {
        int nsb = cols / 256;
        float* dd = (float*)dst;
        short* sc = (short*)(dd + 2 * nsb), mn = sc + 16 * nsb;
        byte* s8 = stackalloc byte[16];
        byte* m8 = stackalloc byte[8];
        int type = ggmlType;
        switch (type)
        {
            case GgmlTypes.Q8_0:
                for (int b = 0; b < cols / 32; b++) dd[b] = QuantizedKernels.Half(w + 34 * b);
                break;
            case GgmlTypes.Q4_0:
                for (int b = 0; b < cols / 32; b++) dd[b] = QuantizedKernels.Half(w + 18 * b);
                break;
            case GgmlTypes.Q4_K: case GgmlTypes.Q5_K:
                for (int s = 0; s < nsb; s++)
                {
                    byte* b = w + s * (type == GgmlTypes.Q4_K ? 144 : 176);
                    dd[2 * s] = QuantizedKernels.Half(b); dd[2 * s + 1] = QuantizedKernels.Half(b + 2);
                    QuantizedKernels.ScalesMinsK4(b + 4, s8, m8);
                    for (int j = 0; j < 8; j++) { sc[16 * s + j] = s8[j]; sc[16 * s + 8 + j] = 0; mn[16 * s + 2 * j] = m8[j]; mn[16 * s + 2 * j + 1] = m8[j]; }
                }
                break;
            case GgmlTypes.Q6_K:
                for (int s = 0; s < nsb; s++)
                {
                    byte* b = w + s * 210;
                    dd[2 * s] = QuantizedKernels.Half(b + 208); dd[2 * s + 1] = 0;
                    for (int i = 0; i < 16; i++) { sc[16 * s + i] = ((sbyte*)(b + 192))[i]; mn[16 * s + i] = 0; }
                }
                break;
            case GgmlTypes.Q3_K:
                for (int s = 0; s < nsb; s++)
                {
                    byte* b = w + s * 110;
                    dd[2 * s] = QuantizedKernels.Half(b + 108); dd[2 * s + 1] = 0;
                    QuantizedKernels.ScalesK3(b + 96, (sbyte*)s8);
                    for (int i = 0; i < 16; i++) { sc[16 * s + i] = ((sbyte*)s8)[i]; mn[16 * s + i] = 0; }
                }
                break;
            case GgmlTypes.Q2_K:
                for (int s = 0; s < nsb; s++)
                {
                    byte* b = w + s * 84;
                    dd[2 * s] = QuantizedKernels.Half(b + 80); dd[2 * s + 1] = QuantizedKernels.Half(b + 82);
                    for (int i = 0; i < 16; i++) { sc[16 * s + i] = (short)(b[i] & 0xF); mn[16 * s + i] = (short)(b[i] >> 4); }
                }
                break;
            default: throw new ArgumentOutOfRangeException(nameof(ggmlType), ggmlType, "no integer GEMM for this type");
        }
    }

    /// <summary>q8_0 × q8_0: per 32, d_w·d_x·Σ w·x.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void Q8_0(byte* w, byte* rs, int cols, byte* x0, byte* x1, byte* x2, byte* x3, float* result)
    {
        int nb = cols / 32;
        float* d0 = (float*)(x0 + cols), d1 = (float*)(x1 + cols), d2 = (float*)(x2 + cols), d3 = (float*)(x3 + cols);
        Vector256<float> a0 = default, a1 = default, a2 = default, a3 = default;
        for (int b = 0; b < nb; b++, w += 34)
        {
            var wq = Vector256.Load((sbyte*)(w + 2));
            var aw = Avx2.Abs(wq);
            float dw = ((float*)rs)[b];
            int o = b * 32;
            a0 = Fma.MultiplyAdd(Avx.ConvertToVector256Single(Avx2.MultiplyAddAdjacent(Avx2.MultiplyAddAdjacent(aw, Avx2.Sign(Vector256.Load((sbyte*)x0 + o), wq)), Ones16)), Vector256.Create(dw * d0[b]), a0);
            a1 = Fma.MultiplyAdd(Avx.ConvertToVector256Single(Avx2.MultiplyAddAdjacent(Avx2.MultiplyAddAdjacent(aw, Avx2.Sign(Vector256.Load((sbyte*)x1 + o), wq)), Ones16)), Vector256.Create(dw * d1[b]), a1);
            a2 = Fma.MultiplyAdd(Avx.ConvertToVector256Single(Avx2.MultiplyAddAdjacent(Avx2.MultiplyAddAdjacent(aw, Avx2.Sign(Vector256.Load((sbyte*)x2 + o), wq)), Ones16)), Vector256.Create(dw * d2[b]), a2);
            a3 = Fma.MultiplyAdd(Avx.ConvertToVector256Single(Avx2.MultiplyAddAdjacent(Avx2.MultiplyAddAdjacent(aw, Avx2.Sign(Vector256.Load((sbyte*)x3 + o), wq)), Ones16)), Vector256.Create(dw * d3[b]), a3);
        }
        result[0] = Vector256.Sum(a0); result[1] = Vector256.Sum(a1); result[2] = Vector256.Sum(a2); result[3] = Vector256.Sum(a3);
    }

    /// <summary>q4_0 × q8_0: codes 0–15 unsigned, value (q − 8)·d, so Σ(q − 8)·x = Σ q·x − 8·Σx.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void Q4_0(byte* w, byte* rs, int cols, byte* x0, byte* x1, byte* x2, byte* x3, float* result)
    {
        int nb = cols / 32;
        float* d0 = (float*)(x0 + cols), d1 = (float*)(x1 + cols), d2 = (float*)(x2 + cols), d3 = (float*)(x3 + cols);
        int* s0 = (int*)(d0 + nb), s1 = (int*)(d1 + nb), s2 = (int*)(d2 + nb), s3 = (int*)(d3 + nb);
        Vector256<float> a0 = default, a1 = default, a2 = default, a3 = default;
        float c0 = 0, c1 = 0, c2 = 0, c3 = 0;
        var m4 = Vector128.Create((byte)0x0F);
        for (int b = 0; b < nb; b++, w += 18)
        {
            var raw = Vector128.Load(w + 2);
            var q = Vector256.Create(raw & m4, Vector128.ShiftRightLogical(raw.AsUInt16(), 4).AsByte() & m4);
            float dw = ((float*)rs)[b];
            int o = b * 32;
            float e0 = dw * d0[b], e1 = dw * d1[b], e2 = dw * d2[b], e3 = dw * d3[b];
            a0 = Fma.MultiplyAdd(Avx.ConvertToVector256Single(Madd(q, Vector256.Load((sbyte*)x0 + o), Ones16)), Vector256.Create(e0), a0);
            a1 = Fma.MultiplyAdd(Avx.ConvertToVector256Single(Madd(q, Vector256.Load((sbyte*)x1 + o), Ones16)), Vector256.Create(e1), a1);
            a2 = Fma.MultiplyAdd(Avx.ConvertToVector256Single(Madd(q, Vector256.Load((sbyte*)x2 + o), Ones16)), Vector256.Create(e2), a2);
            a3 = Fma.MultiplyAdd(Avx.ConvertToVector256Single(Madd(q, Vector256.Load((sbyte*)x3 + o), Ones16)), Vector256.Create(e3), a3);
            c0 += e0 * s0[b]; c1 += e1 * s1[b]; c2 += e2 * s2[b]; c3 += e3 * s3[b];
        }
        result[0] = Vector256.Sum(a0) - 8 * c0; result[1] = Vector256.Sum(a1) - 8 * c1;
        result[2] = Vector256.Sum(a2) - 8 * c2; result[3] = Vector256.Sum(a3) - 8 * c3;
    }

    /// <summary>
    /// q4_K × q8_K: value d·sc·q − dmin·m per sub-block of 32; Σ over the super-block of
    /// sc·(Σ q·x) in int32, the mins through the activation's 16-value sums (vpmaddwd with each min twice).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void Q4_K(byte* w, byte* rs, int cols, byte* x0, byte* x1, byte* x2, byte* x3, float* result)
    {
        int nsb = cols / 256;
        float* d0 = (float*)(x0 + cols), d1 = (float*)(x1 + cols), d2 = (float*)(x2 + cols), d3 = (float*)(x3 + cols);
        short* b0 = (short*)(d0 + nsb), b1 = (short*)(d1 + nsb), b2 = (short*)(d2 + nsb), b3 = (short*)(d3 + nsb);
        Vector256<float> a0 = default, a1 = default, a2 = default, a3 = default;
        Vector256<float> m0 = default, m1 = default, m2 = default, m3 = default;
        var mask = Vector256.Create((byte)0x0F);
        float* dd = (float*)rs;
        short* rsc = (short*)(dd + 2 * nsb), rmn = rsc + 16 * nsb;
        for (int s = 0; s < nsb; s++, w += 144)
        {
            float d = dd[2 * s], dmin = dd[2 * s + 1];
            short* sc = rsc + 16 * s, mins = rmn + 16 * s;
            Vector256<int> i0 = default, i1 = default, i2 = default, i3 = default;
            byte* qs = w + 16;
            int o = s * 256;
            for (int j = 0; j < 4; j++)
            {
                var raw = Vector256.Load(qs + 32 * j);
                var lo = raw & mask;
                var hi = Vector256.ShiftRightLogical(raw.AsUInt16(), 4).AsByte() & mask;
                var sl = Vector256.Create(sc[2 * j]);
                var sh = Vector256.Create(sc[2 * j + 1]);
                int k = o + 64 * j;
                i0 += Madd(lo, Vector256.Load((sbyte*)x0 + k), sl) + Madd(hi, Vector256.Load((sbyte*)x0 + k + 32), sh);
                i1 += Madd(lo, Vector256.Load((sbyte*)x1 + k), sl) + Madd(hi, Vector256.Load((sbyte*)x1 + k + 32), sh);
                i2 += Madd(lo, Vector256.Load((sbyte*)x2 + k), sl) + Madd(hi, Vector256.Load((sbyte*)x2 + k + 32), sh);
                i3 += Madd(lo, Vector256.Load((sbyte*)x3 + k), sl) + Madd(hi, Vector256.Load((sbyte*)x3 + k + 32), sh);
            }
            var mv = Vector256.Load(mins);
            a0 = Fma.MultiplyAdd(Avx.ConvertToVector256Single(i0), Vector256.Create(d * d0[s]), a0);
            a1 = Fma.MultiplyAdd(Avx.ConvertToVector256Single(i1), Vector256.Create(d * d1[s]), a1);
            a2 = Fma.MultiplyAdd(Avx.ConvertToVector256Single(i2), Vector256.Create(d * d2[s]), a2);
            a3 = Fma.MultiplyAdd(Avx.ConvertToVector256Single(i3), Vector256.Create(d * d3[s]), a3);
            m0 = Fma.MultiplyAdd(Avx.ConvertToVector256Single(Avx2.MultiplyAddAdjacent(Vector256.Load(b0 + s * 16), mv)), Vector256.Create(dmin * d0[s]), m0);
            m1 = Fma.MultiplyAdd(Avx.ConvertToVector256Single(Avx2.MultiplyAddAdjacent(Vector256.Load(b1 + s * 16), mv)), Vector256.Create(dmin * d1[s]), m1);
            m2 = Fma.MultiplyAdd(Avx.ConvertToVector256Single(Avx2.MultiplyAddAdjacent(Vector256.Load(b2 + s * 16), mv)), Vector256.Create(dmin * d2[s]), m2);
            m3 = Fma.MultiplyAdd(Avx.ConvertToVector256Single(Avx2.MultiplyAddAdjacent(Vector256.Load(b3 + s * 16), mv)), Vector256.Create(dmin * d3[s]), m3);
        }
        result[0] = Vector256.Sum(a0) - Vector256.Sum(m0); result[1] = Vector256.Sum(a1) - Vector256.Sum(m1);
        result[2] = Vector256.Sum(a2) - Vector256.Sum(m2); result[3] = Vector256.Sum(a3) - Vector256.Sum(m3);
    }

    /// <summary>q5_K × q8_K: q4_K with a fifth bit from qh (codes 0–31).</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void Q5_K(byte* w, byte* rs, int cols, byte* x0, byte* x1, byte* x2, byte* x3, float* result)
    {
        int nsb = cols / 256;
        float* d0 = (float*)(x0 + cols), d1 = (float*)(x1 + cols), d2 = (float*)(x2 + cols), d3 = (float*)(x3 + cols);
        short* b0 = (short*)(d0 + nsb), b1 = (short*)(d1 + nsb), b2 = (short*)(d2 + nsb), b3 = (short*)(d3 + nsb);
        Vector256<float> a0 = default, a1 = default, a2 = default, a3 = default;
        Vector256<float> m0 = default, m1 = default, m2 = default, m3 = default;
        var mask = Vector256.Create((byte)0x0F);
        var bit4 = Vector256.Create((byte)0x10);
        float* dd = (float*)rs;
        short* rsc = (short*)(dd + 2 * nsb), rmn = rsc + 16 * nsb;
        for (int s = 0; s < nsb; s++, w += 176)
        {
            float d = dd[2 * s], dmin = dd[2 * s + 1];
            short* sc = rsc + 16 * s, mins = rmn + 16 * s;
            Vector256<int> i0 = default, i1 = default, i2 = default, i3 = default;
            var qh = Vector256.Load(w + 16).AsUInt16();
            byte* qs = w + 48;
            int o = s * 256;
            for (int j = 0; j < 4; j++)
            {
                var raw = Vector256.Load(qs + 32 * j);
                var lo = (raw & mask) | (Vector256.ShiftLeft(qh, 4).AsByte() & bit4);
                var hi = (Vector256.ShiftRightLogical(raw.AsUInt16(), 4).AsByte() & mask) | (Vector256.ShiftLeft(qh, 3).AsByte() & bit4);
                qh = Vector256.ShiftRightLogical(qh, 2);
                var sl = Vector256.Create(sc[2 * j]);
                var sh = Vector256.Create(sc[2 * j + 1]);
                int k = o + 64 * j;
                i0 += Madd(lo, Vector256.Load((sbyte*)x0 + k), sl) + Madd(hi, Vector256.Load((sbyte*)x0 + k + 32), sh);
                i1 += Madd(lo, Vector256.Load((sbyte*)x1 + k), sl) + Madd(hi, Vector256.Load((sbyte*)x1 + k + 32), sh);
                i2 += Madd(lo, Vector256.Load((sbyte*)x2 + k), sl) + Madd(hi, Vector256.Load((sbyte*)x2 + k + 32), sh);
                i3 += Madd(lo, Vector256.Load((sbyte*)x3 + k), sl) + Madd(hi, Vector256.Load((sbyte*)x3 + k + 32), sh);
            }
            var mv = Vector256.Load(mins);
            a0 = Fma.MultiplyAdd(Avx.ConvertToVector256Single(i0), Vector256.Create(d * d0[s]), a0);
            a1 = Fma.MultiplyAdd(Avx.ConvertToVector256Single(i1), Vector256.Create(d * d1[s]), a1);
            a2 = Fma.MultiplyAdd(Avx.ConvertToVector256Single(i2), Vector256.Create(d * d2[s]), a2);
            a3 = Fma.MultiplyAdd(Avx.ConvertToVector256Single(i3), Vector256.Create(d * d3[s]), a3);
            m0 = Fma.MultiplyAdd(Avx.ConvertToVector256Single(Avx2.MultiplyAddAdjacent(Vector256.Load(b0 + s * 16), mv)), Vector256.Create(dmin * d0[s]), m0);
            m1 = Fma.MultiplyAdd(Avx.ConvertToVector256Single(Avx2.MultiplyAddAdjacent(Vector256.Load(b1 + s * 16), mv)), Vector256.Create(dmin * d1[s]), m1);
            m2 = Fma.MultiplyAdd(Avx.ConvertToVector256Single(Avx2.MultiplyAddAdjacent(Vector256.Load(b2 + s * 16), mv)), Vector256.Create(dmin * d2[s]), m2);
            m3 = Fma.MultiplyAdd(Avx.ConvertToVector256Single(Avx2.MultiplyAddAdjacent(Vector256.Load(b3 + s * 16), mv)), Vector256.Create(dmin * d3[s]), m3);
        }
        result[0] = Vector256.Sum(a0) - Vector256.Sum(m0); result[1] = Vector256.Sum(a1) - Vector256.Sum(m1);
        result[2] = Vector256.Sum(a2) - Vector256.Sum(m2); result[3] = Vector256.Sum(a3) - Vector256.Sum(m3);
    }

    /// <summary>
    /// q6_K × q8_K: codes 0–63 unsigned, value d·sc·(q − 32) with an int8 scale per 16, so the
    /// super-block's integer sum is Σ sc·(Σ q·x) − 32·Σ sc·(Σx per 16).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void Q6_K(byte* w, byte* rs, int cols, byte* x0, byte* x1, byte* x2, byte* x3, float* result)
    {
        int nsb = cols / 256;
        float* d0 = (float*)(x0 + cols), d1 = (float*)(x1 + cols), d2 = (float*)(x2 + cols), d3 = (float*)(x3 + cols);
        short* b0 = (short*)(d0 + nsb), b1 = (short*)(d1 + nsb), b2 = (short*)(d2 + nsb), b3 = (short*)(d3 + nsb);
        Vector256<float> a0 = default, a1 = default, a2 = default, a3 = default;
        float* dd = (float*)rs;
        short* rsc = (short*)(dd + 2 * nsb), rmn = rsc + 16 * nsb;
        for (int s = 0; s < nsb; s++, w += 210)
        {
            float d = dd[2 * s];
            short* scales = rsc + 16 * s;
            var scv = Vector256.Load(scales);
            int o = s * 256;
            // The −32 offset: 32·Σ sc·bsum per token, subtracted from the integer sum.
            var i0 = -Vector256.ShiftLeft(Avx2.MultiplyAddAdjacent(Vector256.Load(b0 + s * 16), scv), 5);
            var i1 = -Vector256.ShiftLeft(Avx2.MultiplyAddAdjacent(Vector256.Load(b1 + s * 16), scv), 5);
            var i2 = -Vector256.ShiftLeft(Avx2.MultiplyAddAdjacent(Vector256.Load(b2 + s * 16), scv), 5);
            var i3 = -Vector256.ShiftLeft(Avx2.MultiplyAddAdjacent(Vector256.Load(b3 + s * 16), scv), 5);
            for (int n = 0; n < 2; n++)
            {
                QuantizedKernels.UnpackQ6K(w, n, out var q0, out var q1, out var q2, out var q3);
                short* sc = scales + 8 * n;
                Block6(q0, sc[0], sc[1], o + 128 * n, x0, x1, x2, x3, ref i0, ref i1, ref i2, ref i3);
                Block6(q1, sc[2], sc[3], o + 128 * n + 32, x0, x1, x2, x3, ref i0, ref i1, ref i2, ref i3);
                Block6(q2, sc[4], sc[5], o + 128 * n + 64, x0, x1, x2, x3, ref i0, ref i1, ref i2, ref i3);
                Block6(q3, sc[6], sc[7], o + 128 * n + 96, x0, x1, x2, x3, ref i0, ref i1, ref i2, ref i3);
            }
            a0 = Fma.MultiplyAdd(Avx.ConvertToVector256Single(i0), Vector256.Create(d * d0[s]), a0);
            a1 = Fma.MultiplyAdd(Avx.ConvertToVector256Single(i1), Vector256.Create(d * d1[s]), a1);
            a2 = Fma.MultiplyAdd(Avx.ConvertToVector256Single(i2), Vector256.Create(d * d2[s]), a2);
            a3 = Fma.MultiplyAdd(Avx.ConvertToVector256Single(i3), Vector256.Create(d * d3[s]), a3);
        }
        result[0] = Vector256.Sum(a0); result[1] = Vector256.Sum(a1); result[2] = Vector256.Sum(a2); result[3] = Vector256.Sum(a3);
    }

    /// <summary>One 32-value block of unsigned codes in two 16-value halves with their own scale, for four tokens.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static void Block6(Vector256<byte> q, short scLo, short scHi, int k, byte* x0, byte* x1, byte* x2, byte* x3,
        ref Vector256<int> i0, ref Vector256<int> i1, ref Vector256<int> i2, ref Vector256<int> i3)
    {
        // int16 lanes 0–7 of vpmaddubsw hold values 0–15, lanes 8–15 values 16–31.
        var scv = Vector256.Create(Vector128.Create(scLo), Vector128.Create(scHi));
        i0 += Madd(q, Vector256.Load((sbyte*)x0 + k), scv); // |pair| ≤ 2·63·127 fits int16
        i1 += Madd(q, Vector256.Load((sbyte*)x1 + k), scv);
        i2 += Madd(q, Vector256.Load((sbyte*)x2 + k), scv);
        i3 += Madd(q, Vector256.Load((sbyte*)x3 + k), scv);
    }

    /// <summary>
    /// q3_K × q8_K: codes low | hbit·4 in 0–7, value d·(sc − 32)·(q − 4) per 16, so the integer sum
    /// is Σ sc·(Σ q·x) − 4·Σ sc·(Σx per 16).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void Q3_K(byte* w, byte* rs, int cols, byte* x0, byte* x1, byte* x2, byte* x3, float* result)
    {
        int nsb = cols / 256;
        float* d0 = (float*)(x0 + cols), d1 = (float*)(x1 + cols), d2 = (float*)(x2 + cols), d3 = (float*)(x3 + cols);
        short* b0 = (short*)(d0 + nsb), b1 = (short*)(d1 + nsb), b2 = (short*)(d2 + nsb), b3 = (short*)(d3 + nsb);
        Vector256<float> a0 = default, a1 = default, a2 = default, a3 = default;
        var m3 = Vector256.Create((byte)3);
        var b2v = Vector256.Create((byte)4);
        float* dd = (float*)rs;
        short* rsc = (short*)(dd + 2 * nsb), rmn = rsc + 16 * nsb;
        for (int s = 0; s < nsb; s++, w += 110)
        {
            float d = dd[2 * s];
            short* sc = rsc + 16 * s;
            var scv = Vector256.Load(sc);
            var i0 = -Vector256.ShiftLeft(Avx2.MultiplyAddAdjacent(Vector256.Load(b0 + s * 16), scv), 2);
            var i1 = -Vector256.ShiftLeft(Avx2.MultiplyAddAdjacent(Vector256.Load(b1 + s * 16), scv), 2);
            var i2 = -Vector256.ShiftLeft(Avx2.MultiplyAddAdjacent(Vector256.Load(b2 + s * 16), scv), 2);
            var i3 = -Vector256.ShiftLeft(Avx2.MultiplyAddAdjacent(Vector256.Load(b3 + s * 16), scv), 2);
            var hm = Vector256.Load(w).AsUInt16();
            int o = s * 256;
            for (int n = 0; n < 2; n++)
            {
                var q = Vector256.Load(w + 32 + 32 * n).AsUInt16();
                for (int j = 0; j < 4; j++)
                {
                    var code = (Vector256.ShiftRightLogical(q, 2 * j).AsByte() & m3) | (Vector256.ShiftLeft(hm, 2).AsByte() & b2v);
                    hm = Vector256.ShiftRightLogical(hm, 1);
                    int k = 8 * n + 2 * j;
                    Block6(code, sc[k], sc[k + 1], o + 128 * n + 32 * j, x0, x1, x2, x3, ref i0, ref i1, ref i2, ref i3);
                }
            }
            a0 = ScaleAdd(i0, d * d0[s], a0); a1 = ScaleAdd(i1, d * d1[s], a1);
            a2 = ScaleAdd(i2, d * d2[s], a2); a3 = ScaleAdd(i3, d * d3[s], a3);
        }
        Store4(result, a0, a1, a2, a3);
    }

    /// <summary>
    /// q2_K × q8_K: codes 0–3, value d·sc·q − dmin·m per 16 (4-bit sc and m), so the two integer
    /// sums are Σ sc·(Σ q·x) and Σ m·(Σx per 16).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void Q2_K(byte* w, byte* rs, int cols, byte* x0, byte* x1, byte* x2, byte* x3, float* result)
    {
        int nsb = cols / 256;
        float* d0 = (float*)(x0 + cols), d1 = (float*)(x1 + cols), d2 = (float*)(x2 + cols), d3 = (float*)(x3 + cols);
        short* b0 = (short*)(d0 + nsb), b1 = (short*)(d1 + nsb), b2 = (short*)(d2 + nsb), b3 = (short*)(d3 + nsb);
        Vector256<float> a0 = default, a1 = default, a2 = default, a3 = default;
        Vector256<float> m0 = default, m1 = default, m2 = default, m3v = default;
        var m3 = Vector256.Create((byte)3);
        float* dd = (float*)rs;
        short* rsc = (short*)(dd + 2 * nsb), rmn = rsc + 16 * nsb;
        for (int s = 0; s < nsb; s++, w += 84)
        {
            float d = dd[2 * s], dmin = dd[2 * s + 1];
            short* sc = rsc + 16 * s;
            var mv = Vector256.Load(rmn + 16 * s);
            Vector256<int> i0 = default, i1 = default, i2 = default, i3 = default;
            int o = s * 256;
            for (int n = 0; n < 2; n++)
            {
                var q = Vector256.Load(w + 16 + 32 * n).AsUInt16();
                for (int j = 0; j < 4; j++)
                {
                    var code = Vector256.ShiftRightLogical(q, 2 * j).AsByte() & m3;
                    int k = 8 * n + 2 * j;
                    var scv = Vector256.Create(Vector128.Create(sc[k]), Vector128.Create(sc[k + 1]));
                    int xo = o + 128 * n + 32 * j;
                    i0 += Madd(code, Vector256.Load((sbyte*)x0 + xo), scv);
                    i1 += Madd(code, Vector256.Load((sbyte*)x1 + xo), scv);
                    i2 += Madd(code, Vector256.Load((sbyte*)x2 + xo), scv);
                    i3 += Madd(code, Vector256.Load((sbyte*)x3 + xo), scv);
                }
            }
            a0 = Fma.MultiplyAdd(Avx.ConvertToVector256Single(i0), Vector256.Create(d * d0[s]), a0);
            a1 = Fma.MultiplyAdd(Avx.ConvertToVector256Single(i1), Vector256.Create(d * d1[s]), a1);
            a2 = Fma.MultiplyAdd(Avx.ConvertToVector256Single(i2), Vector256.Create(d * d2[s]), a2);
            a3 = Fma.MultiplyAdd(Avx.ConvertToVector256Single(i3), Vector256.Create(d * d3[s]), a3);
            m0 = Fma.MultiplyAdd(Avx.ConvertToVector256Single(Avx2.MultiplyAddAdjacent(Vector256.Load(b0 + s * 16), mv)), Vector256.Create(dmin * d0[s]), m0);
            m1 = Fma.MultiplyAdd(Avx.ConvertToVector256Single(Avx2.MultiplyAddAdjacent(Vector256.Load(b1 + s * 16), mv)), Vector256.Create(dmin * d1[s]), m1);
            m2 = Fma.MultiplyAdd(Avx.ConvertToVector256Single(Avx2.MultiplyAddAdjacent(Vector256.Load(b2 + s * 16), mv)), Vector256.Create(dmin * d2[s]), m2);
            m3v = Fma.MultiplyAdd(Avx.ConvertToVector256Single(Avx2.MultiplyAddAdjacent(Vector256.Load(b3 + s * 16), mv)), Vector256.Create(dmin * d3[s]), m3v);
        }
        result[0] = Vector256.Sum(a0) - Vector256.Sum(m0); result[1] = Vector256.Sum(a1) - Vector256.Sum(m1);
        result[2] = Vector256.Sum(a2) - Vector256.Sum(m2); result[3] = Vector256.Sum(a3) - Vector256.Sum(m3v);
    }
}
