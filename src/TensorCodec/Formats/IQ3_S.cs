using TensorCodec.Numerics;

namespace TensorCodec.Formats;

/// <summary>
/// ggml IQ3_S (3.4375 bpw): 256 values as 64 points of the 512-point D4 grid, an explicit sign
/// bit per value and a 4-bit scale per 32 values. Layout: d | qs[64] (low 8 bits of the grid
/// indices) | qh[8] (the ninth bits, one per index) | signs[32] | scales[4] (two nibbles).
/// Value = d·(1+2s)·grid·sign. The quantizer is ggml's <c>quantize_row_iq3_s_impl</c> (block size
/// 32); importance weights are optional.
/// </summary>
internal sealed class IQ3_S : BlockFormatBase
{
    public override string Name => "iq3_s";
    public override int GgmlTypeId => 21;
    public override int BlockSize => 256;
    public override int BlockBytes => 110;
    public override bool UsesImportance => true;

    private const int QsAt = 2, QhAt = 66, SignsAt = 74, ScalesAt = 106;

    protected override void QuantizeRow(ReadOnlySpan<float> x, Span<byte> y, ReadOnlySpan<float> importance)
    {
        var lat = IQ3Grids.For(512);
        Span<float> scales = stackalloc float[8];
        Span<float> weight = stackalloc float[32];
        Span<float> xval = stackalloc float[32];
        Span<float> waux = stackalloc float[32];
        Span<sbyte> L = stackalloc sbyte[32];
        Span<byte> signs = stackalloc byte[4];
        int nbl = x.Length / 256;
        for (int ibl = 0; ibl < nbl; ibl++)
        {
            var yb = y.Slice(ibl * 110, 110);
            yb.Clear();
            // ggml advances its qs/signs cursors only for blocks it encodes: an all-zero block makes
            // the next block's indices and signs land in its slot (qh is indexed by block).
            int qs = QsAt, sg = SignsAt;
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
                    int s = 0;
                    for (int i = 0; i < 8; i++)
                    {
                        float v = xb[8 * k + i];
                        if (v >= 0) xval[8 * k + i] = v;
                        else { xval[8 * k + i] = -v; s |= 1 << i; }
                    }
                    signs[k] = (byte)s;
                }
                float max = xval[0];
                for (int i = 1; i < 32; i++) max = MathF.Max(max, xval[i]);
                if (max == 0)
                {
                    scales[ib] = 0;
                    continue;
                }
                float scale = lat.FitBlock(xval, weight, waux, max, 9, refitAll: true, L);
                if (scale < 0)
                {
                    scale = -scale;
                    for (int k = 0; k < 4; k++) signs[k] = (byte)~signs[k];
                }
                for (int k = 0; k < 8; k++)
                {
                    int g = lat.Map[IQ3Grids.Lattice.Code(L.Slice(4 * k, 4))];
                    if (g < 0) throw new InvalidOperationException("iq3_s: quantized point is not on the grid");
                    yb[qs + k] = (byte)g;
                    yb[QhAt + ib] |= (byte)((g >> 8) << k);
                }
                qs += 8;
                signs.CopyTo(yb.Slice(sg, 4));
                sg += 4;
                scales[ib] = scale;
                maxScale = MathF.Max(maxScale, scale);
            }
            if (maxScale == 0) continue;
            float d = maxScale / 31;
            Fp16.Write(yb, 0, Fp16.FromFloat(d * 1.033f));
            float invD = 1 / d;
            for (int ib = 0; ib < 8; ib += 2)
            {
                int l1 = Math.Clamp(QuantMath.NearestInt(0.5f * (invD * scales[ib] - 1)), 0, 15);
                int l2 = Math.Clamp(QuantMath.NearestInt(0.5f * (invD * scales[ib + 1] - 1)), 0, 15);
                yb[ScalesAt + ib / 2] = (byte)(l1 | l2 << 4);
            }
        }
    }

    protected override void DequantizeBlocks(ReadOnlySpan<byte> src, Span<float> dst)
    {
        if (IQ3_SFast.IsSupported) IQ3_SFast.Dequantize(src, dst);
        else DequantizeReference(src, dst);
    }

    /// <summary>The scalar reference (ggml's <c>dequantize_row_iq3_s</c>).</summary>
    public static void DequantizeReference(ReadOnlySpan<byte> src, Span<float> dst)
    {
        var grid = IQ3Grids.Iq3sGrid;
        int nb = dst.Length / 256;
        for (int i = 0; i < nb; i++)
        {
            var b = src.Slice(i * 110, 110);
            float d = Fp16.Read(b, 0);
            for (int ib = 0; ib < 8; ib++)
            {
                int sc = b[ScalesAt + ib / 2] >> (4 * (ib % 2)) & 0xF;
                float db = d * (1 + 2 * sc);
                int qh = b[QhAt + ib];
                var y = dst.Slice(256 * i + 32 * ib, 32);
                for (int l = 0; l < 4; l++)
                {
                    int s = b[SignsAt + 4 * ib + l];
                    uint g1 = grid[b[QsAt + 8 * ib + 2 * l] | (qh << (8 - 2 * l) & 256)];
                    uint g2 = grid[b[QsAt + 8 * ib + 2 * l + 1] | (qh << (7 - 2 * l) & 256)];
                    IQ3Grids.Eight(g1, g2, s, db, y.Slice(8 * l, 8));
                }
            }
        }
    }
}
