using System.Buffers.Binary;
using TensorCodec.Numerics;

namespace TensorCodec.Formats;

/// <summary>
/// ggml IQ2_XXS (2.06 bits/weight): 256 values as eight groups of 32, each four points of the
/// 256-point iq2xxs grid (8 magnitudes apiece), four 7-bit sign masks and a 4-bit scale of a fp16
/// super-scale. Layout: d | 8 × (4 grid indices, uint32 signs·scale).
/// Quantizing needs importance weights, as in ggml (quantize_row_iq2_xxs_impl).
/// </summary>
internal sealed class IQ2_XXS : BlockFormatBase
{
    public override string Name => "iq2_xxs";
    public override int GgmlTypeId => 16;
    public override int BlockSize => 256;
    public override int BlockBytes => 66;
    public override bool UsesImportance => true;
    public override bool RequiresImportance => true;

    protected override void QuantizeRow(ReadOnlySpan<float> x, Span<byte> y, ReadOnlySpan<float> importance)
    {
        if (importance.IsEmpty) throw IQ2Grids.NeedsImportance(Name);
        var grid = IQ2Grids.Grid256;
        const int kMaxQ = 3;
        Span<float> scales = stackalloc float[8];
        Span<float> weight = stackalloc float[32];
        Span<float> xval = stackalloc float[32];
        Span<float> waux = stackalloc float[32];
        Span<sbyte> L = stackalloc sbyte[32];
        Span<sbyte> Laux = stackalloc sbyte[32];
        Span<byte> Lq = stackalloc byte[32];
        Span<byte> signs = stackalloc byte[4];
        Span<uint> q2 = stackalloc uint[16];
        int nbl = x.Length / 256;
        for (int ibl = 0; ibl < nbl; ibl++)
        {
            var yb = y.Slice(ibl * 66, 66);
            q2.Clear();
            float maxScale = 0;
            var xbl = x.Slice(256 * ibl, 256);
            float sigma2 = IQ2Grids.MeanSquare(xbl);
            for (int ib = 0; ib < 8; ib++)
            {
                var xb = xbl.Slice(32 * ib, 32);
                var qw = importance.Slice(256 * ibl + 32 * ib, 32);
                for (int i = 0; i < 32; i++) weight[i] = qw[i] * MathF.Sqrt(sigma2 + xb[i] * xb[i]);
                for (int i = 0; i < 32; i++) waux[i] = MathF.Sqrt(weight[i]);
                for (int k = 0; k < 4; k++)
                    signs[k] = (byte)(IQ2Grids.Signs(xb.Slice(8 * k, 8), weight.Slice(8 * k, 8), xval.Slice(8 * k, 8), true) & 127);
                float max = xval[0];
                for (int i = 1; i < 32; i++) max = max > xval[i] ? max : xval[i];
                if (max < QuantMath.GroupMaxEps) { scales[ib] = 0; continue; }
                float scale = QuantMath.MakeQpQuants(32, kMaxQ + 1, xval, Lq, weight);
                for (int i = 0; i < 32; i++) L[i] = (sbyte)Lq[i];
                float effMax = scale * kMaxQ;
                if (effMax <= 0) { scales[ib] = 0; continue; }
                float best = 0;
                for (int step = -6; step <= 6; step++)
                {
                    float id = (2 * kMaxQ - 1 + step * 0.1f) / effMax;
                    float thisScale = 1 / id;
                    for (int k = 0; k < 4; k++)
                    {
                        int u = IQ2Grids.SnapLevels(xval.Slice(8 * k, 8), id, Laux.Slice(8 * k, 8));
                        if (grid.Map[u] < 0)
                            grid.BestNeighbour(u, xval.Slice(8 * k, 8), waux.Slice(8 * k, 8), thisScale, Laux.Slice(8 * k, 8));
                    }
                    IQ2Grids.OddFit(weight, xval, Laux, out float sumqx, out float sumq2);
                    if (sumq2 > 0 && sumqx * sumqx > best * sumq2)
                    {
                        scale = sumqx / sumq2;
                        best = scale * sumqx;
                        Laux.CopyTo(L);
                    }
                }
                if (scale > 0)
                {
                    float id = 1 / scale;
                    for (int k = 0; k < 4; k++)
                    {
                        // Levels land in L either way: snapped (on the grid) or the neighbour's.
                        int u = IQ2Grids.SnapLevels(xval.Slice(8 * k, 8), id, L.Slice(8 * k, 8));
                        int gi = grid.Map[u];
                        if (gi < 0) gi = grid.BestNeighbour(u, xval.Slice(8 * k, 8), waux.Slice(8 * k, 8), scale, L.Slice(8 * k, 8));
                        for (int i = 0; i < 8; i++) L[8 * k + i] = (sbyte)((grid.Pos[8 * gi + i] - 1) / 2);
                    }
                    IQ2Grids.OddFit(weight, xval, L, out float sumqx, out float sumq2);
                    if (sumq2 > 0) scale = sumqx / sumq2;
                }
                if (scale < 0)
                {
                    // ggml: "should never happen"; the scale is stored unsigned, so flip the signs instead.
                    scale = -scale;
                    for (int k = 0; k < 4; k++) signs[k] = (byte)(~signs[k] & 127);
                }
                for (int k = 0; k < 4; k++)
                {
                    int gi = grid.Map[IQGrid.Code(L.Slice(8 * k, 8))];
                    if (gi < 0) throw new InvalidOperationException($"{Name}: point off the grid (non-finite input?)");
                    q2[2 * ib] |= (uint)gi << 8 * k;
                    q2[2 * ib + 1] |= (uint)signs[k] << 7 * k;
                }
                scales[ib] = scale;
                maxScale = maxScale > scale ? maxScale : scale;
            }
            if (maxScale == 0)
            {
                yb.Clear();
                continue;
            }
            float d = maxScale / 31;
            Fp16.Write(yb, 0, Fp16.FromFloat(d));
            float idd = 1 / d;
            for (int ib = 0; ib < 8; ib++)
            {
                int l = QuantMath.NearestInt(0.5f * (idd * scales[ib] - 1));
                l = Math.Max(0, Math.Min(15, l));
                q2[2 * ib + 1] |= (uint)l << 28;
            }
            for (int j = 0; j < 16; j++) BinaryPrimitives.WriteUInt32LittleEndian(yb.Slice(2 + 4 * j, 4), q2[j]);
        }
    }

    protected override void DequantizeBlocks(ReadOnlySpan<byte> src, Span<float> dst)
    {
        var table = IQ2Grids.Grid256.Table;
        var ksigns = IQ2Grids.KSigns;
        int nb = dst.Length / 256;
        for (int i = 0; i < nb; i++)
        {
            var b = src.Slice(i * 66, 66);
            float d = Fp16.Read(b, 0);
            for (int ib = 0; ib < 8; ib++)
            {
                uint a0 = BinaryPrimitives.ReadUInt32LittleEndian(b.Slice(2 + 8 * ib, 4));
                uint a1 = BinaryPrimitives.ReadUInt32LittleEndian(b.Slice(6 + 8 * ib, 4));
                float db = d * (0.5f + (a1 >> 28)) * 0.25f;
                var y = dst.Slice(i * 256 + 32 * ib, 32);
                for (int l = 0; l < 4; l++)
                {
                    ulong g = table[(a0 >> 8 * l) & 0xFF];
                    int s = ksigns[(a1 >> 7 * l) & 127];
                    for (int j = 0; j < 8; j++)
                        y[8 * l + j] = db * (byte)(g >> 8 * j) * ((s & (1 << j)) != 0 ? -1f : 1f);
                }
            }
        }
    }
}
