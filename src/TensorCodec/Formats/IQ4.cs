using TensorCodec.Numerics;

namespace TensorCodec.Formats;

/// <summary>
/// The non-linear 4-bit codebook shared by IQ4_NL and IQ4_XS, and their common quantizer
/// (ggml's quantize_row_iq4_nl_impl): per 32-value block a weighted least-squares scale with a
/// ±7 sweep of the inverse scale; for IQ4_XS the block scales are then coded as 6-bit integers
/// of a fp16 super-scale and the indices recomputed.
/// </summary>
internal static class IQ4
{
    public static ReadOnlySpan<sbyte> Values => [-127, -104, -83, -65, -49, -35, -22, -10, 1, 13, 25, 38, 53, 69, 89, 113];

    /// <summary>
    /// One super-block of <paramref name="superBlock"/> values (32 for NL, 256 for XS).
    /// Writes d and q4 (superBlock/2 bytes); for XS also scalesH/scalesL.
    /// </summary>
    public static void QuantizeSuper(int superBlock, ReadOnlySpan<float> x, out ushort dh, Span<byte> q4,
        out ushort scalesH, Span<byte> scalesL, ReadOnlySpan<float> qw, int ntry)
    {
        const int bs = 32;
        var values = Values;
        Span<float> weight = stackalloc float[bs];
        Span<float> scales = stackalloc float[superBlock / bs];
        Span<byte> L = stackalloc byte[superBlock];
        L.Clear();
        float sigma2 = 0;
        for (int j = 0; j < superBlock; j++) sigma2 += x[j] * x[j];
        sigma2 *= 2f / superBlock;
        q4[..(superBlock / 2)].Clear();
        dh = 0;
        scalesH = 0;
        float maxScale = 0, amaxScale = 0;
        for (int ib = 0; ib < superBlock / bs; ib++)
        {
            var xb = x.Slice(ib * bs, bs);
            var Lb = L.Slice(ib * bs, bs);
            if (!qw.IsEmpty)
                QuantMath.ImportanceWeights(xb, qw.Slice(ib * bs, bs), sigma2, weight);
            else
                for (int j = 0; j < bs; j++) weight[j] = xb[j] * xb[j];
            float amax = 0, max = 0;
            for (int j = 0; j < bs; j++)
            {
                float ax = MathF.Abs(xb[j]);
                if (ax > amax) { amax = ax; max = xb[j]; }
            }
            if (amax < QuantMath.GroupMaxEps)
            {
                scales[ib] = 0;
                continue;
            }
            float d = ntry > 0 ? -max / values[0] : max / values[0];
            float id = 1 / d;
            float sumqx = 0, sumq2 = 0;
            for (int j = 0; j < bs; j++)
            {
                int l = QuantMath.BestIndexInt8(values, id * xb[j]);
                Lb[j] = (byte)l;
                float q = values[l];
                float w = weight[j];
                sumqx += w * q * xb[j];
                sumq2 += w * q * q;
            }
            d = sumq2 > 0 ? sumqx / sumq2 : 0f;
            float best = d * sumqx;
            for (int itry = -ntry; itry <= ntry; itry++)
            {
                id = (itry + values[0]) / max;
                sumqx = sumq2 = 0;
                for (int j = 0; j < bs; j++)
                {
                    int l = QuantMath.BestIndexInt8(values, id * xb[j]);
                    float q = values[l];
                    float w = weight[j];
                    sumqx += w * q * xb[j];
                    sumq2 += w * q * q;
                }
                if (sumq2 > 0 && sumqx * sumqx > best * sumq2)
                {
                    d = sumqx / sumq2;
                    best = d * sumqx;
                }
            }
            scales[ib] = d;
            float absD = MathF.Abs(d);
            if (absD > amaxScale) { amaxScale = absD; maxScale = d; }
        }

        if (superBlock / bs > 1)
        {
            float d = -maxScale / 32;
            dh = Fp16.FromFloat(d);
            float id = d != 0 ? 1 / d : 0f;
            for (int ib = 0; ib < superBlock / bs; ib++)
            {
                int l = QuantMath.NearestInt(id * scales[ib]);
                l = Math.Max(-32, Math.Min(31, l));
                // Indices are chosen against the unrounded d·l, not the fp16 one (as ggml does).
                float dl = d * l;
                float idl = dl != 0 ? 1 / dl : 0f;
                var Lb = L.Slice(ib * bs, bs);
                var xb = x.Slice(ib * bs, bs);
                for (int j = 0; j < bs; j++) Lb[j] = (byte)QuantMath.BestIndexInt8(values, idl * xb[j]);
                l += 32;
                if (ib % 2 == 0) scalesL[ib / 2] = (byte)(l & 0xF);
                else scalesL[ib / 2] |= (byte)((l & 0xF) << 4);
                scalesH |= (ushort)((l >> 4) << (2 * (ib % 8)));
            }
        }
        else
        {
            dh = Fp16.FromFloat(scales[0]);
            if (ntry > 0)
            {
                float id = scales[0] != 0 ? 1 / scales[0] : 0;
                for (int j = 0; j < superBlock; j++) L[j] = (byte)QuantMath.BestIndexInt8(values, id * x[j]);
            }
        }
        for (int i = 0; i < superBlock / 32; i++)
            for (int j = 0; j < 16; j++)
                q4[16 * i + j] = (byte)(L[32 * i + j] | L[32 * i + 16 + j] << 4);
    }
}
