using TensorCodec.Numerics;

namespace TensorCodec.Formats;

/// <summary>
/// ggml IQ3_XXS (3.0625 bpw): 256 values as 64 points of the 256-point D4 grid (four magnitudes
/// each), seven sign bits per eight values (the eighth sign is their parity) and a 4-bit scale per
/// 32 values. Layout: d | qs[64] grid indices | 8 × uint32 (bits 0–27 four 7-bit sign groups,
/// bits 28–31 the scale). Value = d·(0.5+s)·0.5·grid·sign. The quantizer is ggml's
/// <c>quantize_row_iq3_xxs_impl</c> (grid size 256); importance weights are optional.
/// </summary>
internal sealed class IQ3_XXS : BlockFormatBase
{
    public override string Name => "iq3_xxs";
    public override int GgmlTypeId => 18;
    public override int BlockSize => 256;
    public override int BlockBytes => 98;
    public override bool UsesImportance => true;

    private const float GroupMaxEps = 1e-8f; // ggml's GROUP_MAX_EPS_IQ3_XXS

    protected override void QuantizeRow(ReadOnlySpan<float> x, Span<byte> y, ReadOnlySpan<float> importance)
    {
        var lat = IQ3Grids.For(256);
        Span<float> scales = stackalloc float[8];
        Span<float> weight = stackalloc float[32];
        Span<float> xval = stackalloc float[32];
        Span<float> waux = stackalloc float[32];
        Span<sbyte> L = stackalloc sbyte[32];
        Span<byte> signs = stackalloc byte[4];
        Span<uint> scalesAndSigns = stackalloc uint[8];
        int nbl = x.Length / 256;
        for (int ibl = 0; ibl < nbl; ibl++)
        {
            var yb = y.Slice(ibl * 98, 98);
            yb.Clear();
            scalesAndSigns.Clear();
            var q3 = yb.Slice(2, 64);
            var xbl = x.Slice(256 * ibl, 256);
            float maxScale = 0, sumx2 = 0;
            for (int i = 0; i < 256; i++) sumx2 += xbl[i] * xbl[i];
            float sigma2 = 2 * sumx2 / 256;
            for (int ib = 0; ib < 8; ib++)
            {
                var xb = xbl.Slice(32 * ib, 32);
                IQ3Grids.Weights(xb, importance.IsEmpty ? default : importance.Slice(256 * ibl + 32 * ib, 32), sigma2, weight, waux);
                for (int k = 0; k < 4; k++)
                {
                    int nflip = 0, s = 0;
                    for (int i = 0; i < 8; i++)
                    {
                        float v = xb[8 * k + i];
                        if (v >= 0) xval[8 * k + i] = v;
                        else { xval[8 * k + i] = -v; nflip++; s |= 1 << i; }
                    }
                    if (nflip % 2 != 0)
                    {
                        // An odd count cannot be stored: flip the element that costs least.
                        int imin = 0;
                        float min = weight[8 * k] * xb[8 * k] * xb[8 * k];
                        for (int i = 1; i < 8; i++)
                        {
                            float ax = weight[8 * k + i] * xb[8 * k + i] * xb[8 * k + i];
                            if (ax < min) { min = ax; imin = i; }
                        }
                        xval[8 * k + imin] = -xval[8 * k + imin];
                        s ^= 1 << imin;
                    }
                    signs[k] = (byte)(s & 127);
                }
                float max = xval[0];
                for (int i = 1; i < 32; i++) max = MathF.Max(max, xval[i]);
                if (max < GroupMaxEps)
                {
                    scales[ib] = 0;
                    continue;
                }
                float scale = lat.FitBlock(xval, weight, waux, max, 15, refitAll: false, L);
                if (scale < 0)
                {
                    // ggml: "should never happen"; the scale is stored unsigned, so flip the signs instead.
                    scale = -scale;
                    for (int k = 0; k < 4; k++) signs[k] = (byte)(~signs[k] & 127);
                }
                for (int k = 0; k < 8; k++)
                {
                    int g = lat.Map[IQ3Grids.Lattice.Code(L.Slice(4 * k, 4))];
                    if (g < 0) throw new InvalidOperationException("iq3_xxs: quantized point is not on the grid");
                    q3[8 * ib + k] = (byte)g;
                }
                scalesAndSigns[ib] = (uint)(signs[0] | signs[1] << 7 | signs[2] << 14 | signs[3] << 21);
                scales[ib] = scale;
                maxScale = MathF.Max(maxScale, scale);
            }
            if (maxScale == 0)
            {
                yb.Clear();
                continue;
            }
            float d = maxScale / 31;
            Fp16.Write(yb, 0, Fp16.FromFloat(d * 1.0125f));
            float invD = 1 / d;
            for (int ib = 0; ib < 8; ib++)
            {
                int l = Math.Clamp(QuantMath.NearestInt(0.5f * (invD * scales[ib] - 1)), 0, 15);
                uint v = scalesAndSigns[ib] | (uint)l << 28;
                System.Buffers.Binary.BinaryPrimitives.WriteUInt32LittleEndian(yb.Slice(66 + 4 * ib, 4), v);
            }
        }
    }

    protected override void DequantizeBlocks(ReadOnlySpan<byte> src, Span<float> dst)
    {
        if (IQ3_XXSFast.IsSupported) IQ3_XXSFast.Dequantize(src, dst);
        else DequantizeReference(src, dst);
    }

    /// <summary>The scalar reference (ggml's <c>dequantize_row_iq3_xxs</c>).</summary>
    public static void DequantizeReference(ReadOnlySpan<byte> src, Span<float> dst)
    {
        var grid = IQ3Grids.Iq3xxsGrid;
        int nb = dst.Length / 256;
        for (int i = 0; i < nb; i++)
        {
            var b = src.Slice(i * 98, 98);
            float d = Fp16.Read(b, 0);
            for (int ib = 0; ib < 8; ib++)
            {
                uint aux = System.Buffers.Binary.BinaryPrimitives.ReadUInt32LittleEndian(b.Slice(66 + 4 * ib, 4));
                float db = d * (0.5f + (aux >> 28)) * 0.5f;
                var y = dst.Slice(256 * i + 32 * ib, 32);
                for (int l = 0; l < 4; l++)
                {
                    int signs = IQ3Grids.KSigns((int)(aux >> (7 * l)) & 127);
                    uint g1 = grid[b[2 + 8 * ib + 2 * l]], g2 = grid[b[2 + 8 * ib + 2 * l + 1]];
                    IQ3Grids.Eight(g1, g2, signs, db, y.Slice(8 * l, 8));
                }
            }
        }
    }
}
