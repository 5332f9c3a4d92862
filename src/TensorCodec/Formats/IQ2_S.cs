using TensorCodec.Numerics;

namespace TensorCodec.Formats;

/// <summary>
/// ggml IQ2_S (2.56 bits/weight): 256 values as sixteen groups of 16, each two points of the
/// 1024-point iq2s grid (10-bit indices) with full 8-bit sign masks and a 4-bit scale.
/// Layout: d | qs[32] (index low bytes) | signs[32] | qh[8] (index high bits, 2 each) | scales[8].
/// Importance weights are optional (quantize_row_iq2_s_impl).
/// </summary>
internal sealed class IQ2_S : BlockFormatBase
{
    public override string Name => "iq2_s";
    public override int GgmlTypeId => 22;
    public override int BlockSize => 256;
    public override int BlockBytes => 82;
    public override bool UsesImportance => true;

    const float GroupMaxEps = 1e-8f; // ggml's GROUP_MAX_EPS_IQ2_S

    protected override void QuantizeRow(ReadOnlySpan<float> x, Span<byte> y, ReadOnlySpan<float> importance)
    {
        var grid = IQ2Grids.Grid1024;
        Span<int> index = stackalloc int[32];
        Span<byte> signs = stackalloc byte[32];
        Span<float> scales = stackalloc float[16];
        int nbl = x.Length / 256;
        for (int ibl = 0; ibl < nbl; ibl++)
        {
            var yb = y.Slice(ibl * 82, 82);
            yb.Clear();
            var xbl = x.Slice(256 * ibl, 256);
            float sigma2 = 2 * IQ2Grids.MeanSquare(xbl);
            var qw = importance.IsEmpty ? default : importance.Slice(256 * ibl, 256);
            float maxScale = IQ2Grids.QuantizeGroups16(grid, xbl, qw, sigma2, GroupMaxEps, evenParity: false, scales, index, signs);
            for (int i8 = 0; i8 < 32; i8++)
            {
                yb[2 + i8] = (byte)index[i8];
                yb[66 + i8 / 4] |= (byte)((index[i8] >> 8) << 2 * (i8 % 4));
                yb[34 + i8] = signs[i8];
            }
            if (maxScale == 0) continue;
            float d = maxScale / 31;
            Fp16.Write(yb, 0, Fp16.FromFloat(d * 0.9875f));
            float id = 1 / d;
            IQ2Grids.PackScales(scales, id, yb.Slice(74, 8));
        }
    }

    protected override void DequantizeBlocks(ReadOnlySpan<byte> src, Span<float> dst)
    {
        var table = IQ2Grids.Grid1024.Table;
        int nb = dst.Length / 256;
        for (int i = 0; i < nb; i++)
        {
            var b = src.Slice(i * 82, 82);
            float d = Fp16.Read(b, 0);
            for (int ib = 0; ib < 8; ib++)
            {
                float db0 = d * (0.5f + (b[74 + ib] & 0xF)) * 0.25f;
                float db1 = d * (0.5f + (b[74 + ib] >> 4)) * 0.25f;
                int qh = b[66 + ib];
                var y = dst.Slice(i * 256 + 32 * ib, 32);
                for (int l = 0; l < 4; l++)
                {
                    float dl = l < 2 ? db0 : db1;
                    ulong g = table[b[2 + 4 * ib + l] | (qh << (8 - 2 * l) & 0x300)];
                    int s = b[34 + 4 * ib + l];
                    for (int j = 0; j < 8; j++)
                        y[8 * l + j] = dl * (byte)(g >> 8 * j) * ((s & (1 << j)) != 0 ? -1f : 1f);
                }
            }
        }
    }
}
