using TensorCodec.Numerics;

namespace TensorCodec.Formats;

/// <summary>
/// ggml Q4_K and Q5_K share everything but the quant width: 256 values in 8 sub-blocks of 32,
/// each with a 6-bit scale and 6-bit min (times fp16 d and dmin), x ≈ d·sc·q − dmin·m.
/// Reference: make_qkx2_quants per sub-block (weights √(mean x²) + |x|), scales rounded to
/// 63 steps of the largest. Importance: make_qkx3_quants with qw·√(σ²+x²), then make_qp_quants
/// for the scale and min codes.
/// </summary>
internal static class KQuant45
{
    /// <summary>The 6-bit sub-block scale and min codes, each rounded on 63 steps of its largest value.</summary>
    internal static void ScaleCodes(ReadOnlySpan<float> scales, ReadOnlySpan<float> mins, float maxScale, float maxMin, Span<byte> Ls, Span<byte> Lm)
    {
        float invScale = maxScale > 0 ? 63f / maxScale : 0f;
        float invMin = maxMin > 0 ? 63f / maxMin : 0f;
        for (int j = 0; j < 8; j++)
        {
            Ls[j] = Math.Min((byte)63, (byte)QuantMath.NearestInt(invScale * scales[j]));
            Lm[j] = Math.Min((byte)63, (byte)QuantMath.NearestInt(invMin * mins[j]));
        }
    }

    public static void QuantizeReference(ReadOnlySpan<float> x, Span<byte> y, ReadOnlySpan<float> importance, int nmax, int bytes,
        float refRmin, int refNstep)
    {
        const int QK = 256;
        Span<byte> L = stackalloc byte[QK];
        Span<byte> Laux = stackalloc byte[32];
        Span<float> weights = stackalloc float[32];
        Span<float> mins = stackalloc float[8];
        Span<float> scales = stackalloc float[8];
        Span<float> sw = stackalloc float[8];
        Span<byte> Ls = stackalloc byte[8];
        Span<byte> Lm = stackalloc byte[8];
        int nb = x.Length / QK;
        for (int i = 0; i < nb; i++)
        {
            var xb = x.Slice(i * QK, QK);
            var yb = y.Slice(i * bytes, bytes);
            var sc = yb.Slice(4, 12);
            sc.Clear();
            ushort dh, mh;
            if (importance.IsEmpty)
            {
                float maxScale = 0, maxMin = 0;
                for (int j = 0; j < 8; j++)
                {
                    var xs = xb.Slice(32 * j, 32);
                    float sumX2 = 0;
                    for (int l = 0; l < 32; l++) sumX2 += xs[l] * xs[l];
                    float avX = MathF.Sqrt(sumX2 / 32);
                    for (int l = 0; l < 32; l++) weights[l] = avX + MathF.Abs(xs[l]);
                    scales[j] = QuantMath.MakeQkx2Quants(32, nmax, xs, weights, L.Slice(32 * j, 32), out mins[j], Laux,
                        refRmin, 0.1f, refNstep, false);
                    if (scales[j] > maxScale) maxScale = scales[j];
                    if (mins[j] > maxMin) maxMin = mins[j];
                }
                ScaleCodes(scales, mins, maxScale, maxMin, Ls, Lm);
                dh = Fp16.FromFloat(maxScale / 63f);
                mh = Fp16.FromFloat(maxMin / 63f);
            }
            else
            {
                float sumX2 = Q4_0.SumSquares(xb);
                float sigma2 = 2 * sumX2 / QK;
                for (int j = 0; j < 8; j++)
                {
                    var xs = xb.Slice(32 * j, 32);
                    var qw = importance.Slice(QK * i + 32 * j, 32);
                    sw[j] = QuantMath.ImportanceWeights(xs, qw, sigma2, weights);
                    scales[j] = QuantMath.MakeQkx3Quants(32, nmax, xs, weights, L.Slice(32 * j, 32), out mins[j], Laux,
                        -0.9f, 0.05f, 36, false);
                }
                float dBlock = QuantMath.MakeQpQuants(8, 63, scales, Ls, sw);
                float mBlock = QuantMath.MakeQpQuants(8, 63, mins, Lm, sw);
                for (int j = 0; j < 8; j++) { Ls[j] = Math.Min((byte)63, Ls[j]); Lm[j] = Math.Min((byte)63, Lm[j]); }
                dh = Fp16.FromFloat(dBlock);
                mh = Fp16.FromFloat(mBlock);
            }
            QuantMath.PackScaleMinK4(Ls, Lm, sc);
            Fp16.Write(yb, 0, dh);
            Fp16.Write(yb, 2, mh);
            float dAll = Fp16.ToFloat(dh), mAll = Fp16.ToFloat(mh);
            for (int j = 0; j < 8; j++)
            {
                QuantMath.GetScaleMinK4(j, sc, out byte s, out byte m);
                float d = dAll * s;
                if (d == 0) continue;
                float dm = mAll * m;
                for (int ii = 0; ii < 32; ii++)
                {
                    int l = QuantMath.NearestInt((xb[32 * j + ii] + dm) / d);
                    L[32 * j + ii] = (byte)Math.Max(0, Math.Min(nmax, l));
                }
            }
            if (nmax == 15)
            {
                var q = yb.Slice(16, 128);
                for (int j = 0; j < QK; j += 64)
                    for (int l = 0; l < 32; l++) q[j / 2 + l] = (byte)(L[j + l] | L[j + l + 32] << 4);
            }
            else
            {
                var qh = yb.Slice(16, 32);
                var ql = yb.Slice(48, 128);
                qh.Clear();
                byte m1 = 1, m2 = 2;
                for (int n = 0; n < QK; n += 64)
                {
                    for (int j = 0; j < 32; j++)
                    {
                        int l1 = L[n + j], l2 = L[n + j + 32];
                        if (l1 > 15) { l1 -= 16; qh[j] |= m1; }
                        if (l2 > 15) { l2 -= 16; qh[j] |= m2; }
                        ql[n / 2 + j] = (byte)(l1 | l2 << 4);
                    }
                    m1 <<= 2; m2 <<= 2;
                }
            }
        }
    }

    public static void DequantizeReference(ReadOnlySpan<byte> src, Span<float> dst, int nmax, int bytes)
    {
        const int QK = 256;
        int nb = dst.Length / QK;
        for (int i = 0; i < nb; i++)
        {
            var b = src.Slice(i * bytes, bytes);
            float d = Fp16.Read(b, 0), min = Fp16.Read(b, 2);
            var sc = b.Slice(4, 12);
            var y = dst.Slice(i * QK, QK);
            int is_ = 0;
            for (int j = 0; j < QK; j += 64)
            {
                QuantMath.GetScaleMinK4(is_, sc, out byte s1, out byte m1b);
                QuantMath.GetScaleMinK4(is_ + 1, sc, out byte s2, out byte m2b);
                float d1 = d * s1, m1 = min * m1b, d2 = d * s2, m2 = min * m2b;
                if (nmax == 15)
                {
                    var q = b.Slice(16 + j / 2, 32);
                    for (int l = 0; l < 32; l++) y[j + l] = d1 * (q[l] & 0xF) - m1;
                    for (int l = 0; l < 32; l++) y[j + 32 + l] = d2 * (q[l] >> 4) - m2;
                }
                else
                {
                    var qh = b.Slice(16, 32);
                    var ql = b.Slice(48 + j / 2, 32);
                    int u1 = 1 << (j / 32), u2 = 2 << (j / 32);
                    for (int l = 0; l < 32; l++) y[j + l] = d1 * ((ql[l] & 0xF) + ((qh[l] & u1) != 0 ? 16 : 0)) - m1;
                    for (int l = 0; l < 32; l++) y[j + 32 + l] = d2 * ((ql[l] >> 4) + ((qh[l] & u2) != 0 ? 16 : 0)) - m2;
                }
                is_ += 2;
            }
        }
    }
}
