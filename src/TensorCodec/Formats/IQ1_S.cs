using System.Buffers.Binary;
using TensorCodec.Numerics;

namespace TensorCodec.Formats;

/// <summary>
/// ggml IQ1_S (1.56 bits/weight): 256 values as eight groups of 32, each four points of the 2048-point
/// ternary iq1s grid shifted by ±<see cref="IQ2Grids.IQ1Delta"/>, with a 3-bit scale and the shift's sign.
/// Layout: d | qs[32] (index low bytes) | qh[8] (uint16: 3 high index bits per point, scale &lt;&lt; 12, shift sign in bit 15).
/// Quantizing needs importance weights, as in ggml (quantize_row_iq1_s_impl).
/// </summary>
internal sealed class IQ1_S : BlockFormatBase
{
    public override string Name => "iq1_s";
    public override int GgmlTypeId => 19;
    public override int BlockSize => 256;
    public override int BlockBytes => 50;
    public override bool UsesImportance => true;
    public override bool RequiresImportance => true;

    const float GroupMaxEps = 1e-12f; // ggml's GROUP_MAX_EPS_IQ1_S
    const int Bs = 32;

    protected override void QuantizeRow(ReadOnlySpan<float> x, Span<byte> y, ReadOnlySpan<float> importance)
    {
        if (importance.IsEmpty) throw IQ2Grids.NeedsImportance(Name);
        var grid = IQ2Grids.Grid2048;
        const float delta = IQ2Grids.IQ1Delta;
        ReadOnlySpan<float> xP = [-1 + delta, delta, 1 + delta];
        ReadOnlySpan<float> xM = [-1 - delta, -delta, 1 - delta];
        Span<float> scales = stackalloc float[8];
        Span<int> shifts = stackalloc int[8];
        Span<float> weight = stackalloc float[Bs];
        Span<float> sumx = stackalloc float[Bs + 1];
        Span<float> sumw = stackalloc float[Bs + 1];
        Span<int> order = stackalloc int[Bs];
        Span<sbyte> L = stackalloc sbyte[Bs];
        Span<int> index = stackalloc int[4];
        Span<ushort> qh = stackalloc ushort[8];
        int nbl = x.Length / 256;
        for (int ibl = 0; ibl < nbl; ibl++)
        {
            var yb = y.Slice(ibl * 50, 50);
            yb.Clear();
            qh.Clear();
            float maxScale = 0;
            var xbl = x.Slice(256 * ibl, 256);
            float sigma2 = 2 * IQ2Grids.MeanSquare(xbl);
            for (int ib = 0; ib < 8; ib++)
            {
                var xb = xbl.Slice(Bs * ib, Bs);
                var qw = importance.Slice(256 * ibl + Bs * ib, Bs);
                for (int i = 0; i < Bs; i++) weight[i] = qw[i] * MathF.Sqrt(sigma2 + xb[i] * xb[i]);
                float max = MathF.Abs(xb[0]);
                for (int i = 1; i < Bs; i++) { float a = MathF.Abs(xb[i]); max = max > a ? max : a; }
                if (max < GroupMaxEps) { scales[ib] = 0; shifts[ib] = 1; continue; }
                IQ2Grids.SortedOrder(xb, order);
                sumx[0] = sumw[0] = 0;
                for (int j = 0; j < Bs; j++)
                {
                    int i = order[j];
                    sumx[j + 1] = sumx[j] + weight[i] * xb[i];
                    sumw[j + 1] = sumw[j] + weight[i];
                }
                float bestScore = -float.MaxValue, scale = max;
                int besti1 = -1, besti2 = -1, bestShift = 0;
                for (int i1 = 0; i1 <= Bs; i1++)
                    for (int i2 = i1; i2 <= Bs; i2++)
                    {
                        float sumqx = (sumx[i1] - sumx[0]) * xP[0] + (sumx[i2] - sumx[i1]) * xP[1] + (sumx[Bs] - sumx[i2]) * xP[2];
                        float sumq2 = (sumw[i1] - sumw[0]) * xP[0] * xP[0] + (sumw[i2] - sumw[i1]) * xP[1] * xP[1] + (sumw[Bs] - sumw[i2]) * xP[2] * xP[2];
                        if (sumq2 > 0 && sumqx * sumqx > bestScore * sumq2)
                        {
                            scale = sumqx / sumq2; bestScore = scale * sumqx;
                            besti1 = i1; besti2 = i2; bestShift = 1;
                        }
                        sumqx = (sumx[i1] - sumx[0]) * xM[0] + (sumx[i2] - sumx[i1]) * xM[1] + (sumx[Bs] - sumx[i2]) * xM[2];
                        sumq2 = (sumw[i1] - sumw[0]) * xM[0] * xM[0] + (sumw[i2] - sumw[i1]) * xM[1] * xM[1] + (sumw[Bs] - sumw[i2]) * xM[2] * xM[2];
                        if (sumq2 > 0 && sumqx * sumqx > bestScore * sumq2)
                        {
                            scale = sumqx / sumq2; bestScore = scale * sumqx;
                            besti1 = i1; besti2 = i2; bestShift = -1;
                        }
                    }
                if (besti1 < 0 || besti2 < 0 || bestShift == 0) { scales[ib] = 0; shifts[ib] = 1; continue; }
                for (int j = 0; j < besti1; j++) L[order[j]] = 0;
                for (int j = besti1; j < besti2; j++) L[order[j]] = 1;
                for (int j = besti2; j < Bs; j++) L[order[j]] = 2;
                if (scale < 0)
                {
                    for (int j = 0; j < Bs; j++) L[j] = (sbyte)(2 - L[j]);
                    scale = -scale; bestShift = -bestShift;
                }
                bool allOnGrid = true;
                var xx = bestShift == 1 ? xP : xM;
                for (int k = 0; k < Bs / 8; k++)
                {
                    int u = IQGrid.Code(L.Slice(8 * k, 8));
                    int gi = grid.Map[u];
                    if (gi < 0)
                    {
                        allOnGrid = false;
                        gi = grid.BestNeighbour1(u, xb.Slice(8 * k, 8), weight.Slice(8 * k, 8), scale, xx, L.Slice(8 * k, 8));
                    }
                    index[k] = gi;
                }
                if (!allOnGrid)
                {
                    float sumqx = 0, sumq2 = 0;
                    for (int k = 0; k < Bs / 8; k++)
                        for (int j = 0; j < 8; j++)
                        {
                            float w = weight[8 * k + j];
                            float q = xx[(grid.Pos[8 * index[k] + j] - 1) / 2];
                            sumqx += w * q * xb[8 * k + j];
                            sumq2 += w * q * q;
                        }
                    if (sumqx > 0 && sumq2 > 0) scale = sumqx / sumq2;
                }
                int h = 0;
                for (int k = 0; k < Bs / 8; k++)
                {
                    yb[2 + 4 * ib + k] = (byte)index[k];
                    h |= (index[k] >> 8) << 3 * k;
                }
                qh[ib] = (ushort)h;
                scales[ib] = scale;
                shifts[ib] = bestShift;
                maxScale = maxScale > scale ? maxScale : scale;
            }
            if (maxScale != 0)
            {
                float d = maxScale / 15;
                Fp16.Write(yb, 0, Fp16.FromFloat(d * 1.125f));
                float id = 1 / d;
                for (int ib = 0; ib < 8; ib++)
                {
                    int l = QuantMath.NearestInt(0.5f * (id * scales[ib] - 1));
                    l = Math.Max(0, Math.Min(7, l));
                    if (shifts[ib] == -1) l |= 8;
                    qh[ib] |= (ushort)(l << 12);
                }
            }
            for (int ib = 0; ib < 8; ib++) BinaryPrimitives.WriteUInt16LittleEndian(yb.Slice(34 + 2 * ib, 2), qh[ib]);
        }
    }

    protected override void DequantizeBlocks(ReadOnlySpan<byte> src, Span<float> dst)
    {
        var table = IQ2Grids.Grid2048.Table;
        int nb = dst.Length / 256;
        for (int i = 0; i < nb; i++)
        {
            var b = src.Slice(i * 50, 50);
            float d = Fp16.Read(b, 0);
            for (int ib = 0; ib < 8; ib++)
            {
                int qh = BinaryPrimitives.ReadUInt16LittleEndian(b.Slice(34 + 2 * ib, 2));
                float dl = d * (2 * ((qh >> 12) & 7) + 1);
                float delta = (qh & 0x8000) != 0 ? -IQ2Grids.IQ1Delta : IQ2Grids.IQ1Delta;
                var y = dst.Slice(i * 256 + 32 * ib, 32);
                for (int l = 0; l < 4; l++)
                {
                    ulong g = table[b[2 + 4 * ib + l] | ((qh >> 3 * l) & 7) << 8];
                    for (int j = 0; j < 8; j++) y[8 * l + j] = dl * ((sbyte)(g >> 8 * j) + delta);
                }
            }
        }
    }
}
