using System.Buffers.Binary;
using TensorCodec.Numerics;

namespace TensorCodec.Formats;

/// <summary>
/// ggml IQ1_M (1.75 bits/weight): 256 values as sixteen groups of 16, each two points of the 2048-point
/// ternary iq1s grid with a per-point shift sign, and a 3-bit scale per group; the fp16 super-scale is
/// spread over the top nibbles of the four scale words. Layout: qs[32] | qh[16] (3 high index bits and
/// the shift sign per point) | scales[8]. Importance weights are optional (quantize_row_iq1_m_impl).
/// </summary>
internal sealed class IQ1_M : BlockFormatBase
{
    public override string Name => "iq1_m";
    public override int GgmlTypeId => 29;
    public override int BlockSize => 256;
    public override int BlockBytes => 56;
    public override bool UsesImportance => true;

    const float GroupMaxEps = 1e-7f; // ggml's GROUP_MAX_EPS_IQ1_M
    const int Bs = 16;

    protected override void QuantizeRow(ReadOnlySpan<float> x, Span<byte> y, ReadOnlySpan<float> importance)
    {
        var grid = IQ2Grids.Grid2048;
        const float delta = IQ2Grids.IQ1Delta;
        ReadOnlySpan<float> xP = [-1 + delta, delta, 1 + delta];
        ReadOnlySpan<float> xM = [-1 - delta, -delta, 1 - delta];
        ReadOnlySpan<byte> masks = [0x00, 0x80, 0x08, 0x88];
        Span<float> scales = stackalloc float[16];
        Span<int> shifts = stackalloc int[16];
        Span<float> weight = stackalloc float[Bs];
        Span<int> order = stackalloc int[Bs];
        Span<sbyte> L = stackalloc sbyte[Bs];
        Span<int> index = stackalloc int[2];
        Span<float> sumqx = stackalloc float[4];
        Span<float> sumq2 = stackalloc float[4];
        Span<ushort> sc = stackalloc ushort[4];
        int nbl = x.Length / 256;
        for (int ibl = 0; ibl < nbl; ibl++)
        {
            var yb = y.Slice(ibl * 56, 56);
            yb.Clear();
            var qs = yb[..32];
            var qh = yb.Slice(32, 16);
            float maxScale = 0;
            var xbl = x.Slice(256 * ibl, 256);
            float sigma2 = 2 * IQ2Grids.MeanSquare(xbl);
            for (int ib = 0; ib < 16; ib++)
            {
                var xb = xbl.Slice(Bs * ib, Bs);
                Weights(xb, importance, 256 * ibl + Bs * ib, sigma2, weight);
                float max = MathF.Abs(xb[0]);
                for (int i = 1; i < Bs; i++) { float a = MathF.Abs(xb[i]); max = max > a ? max : a; }
                if (max < GroupMaxEps) { scales[ib] = 0; shifts[ib] = 0; continue; }
                IQ2Grids.SortedOrder(xb, order);
                float bestScore = -float.MaxValue, scale = max;
                int besti1 = -1, besti2 = -1, bestK = -1;
                // Every split (i1, i2) of the sorted values into levels 0/1/2, under the four shift choices
                // (+,+), (+,−), (−,+), (−,−) of the two halves, summed term by term in sorted order as ggml does.
                for (int i1 = 0; i1 <= Bs; i1++)
                    for (int i2 = i1; i2 <= Bs; i2++)
                    {
                        sumqx.Clear();
                        sumq2.Clear();
                        for (int j = 0; j < Bs; j++)
                        {
                            int lv = j < i1 ? 0 : j < i2 ? 1 : 2;
                            int i = order[j];
                            float w = weight[i], p = xP[lv], m = xM[lv];
                            // First half: choices 0,1 use +, 2,3 use −; second half: 0,2 use +, 1,3 use −.
                            int a = i < Bs / 2 ? 1 : 2;
                            sumqx[0] += w * p * xb[i];
                            sumqx[a] += w * p * xb[i];
                            sumqx[3 - a] += w * m * xb[i];
                            sumqx[3] += w * m * xb[i];
                            sumq2[0] += w * p * p;
                            sumq2[a] += w * p * p;
                            sumq2[3 - a] += w * m * m;
                            sumq2[3] += w * m * m;
                        }
                        for (int k = 0; k < 4; k++)
                            if (sumq2[k] > 0 && sumqx[k] * sumqx[k] > bestScore * sumq2[k])
                            {
                                scale = sumqx[k] / sumq2[k]; bestScore = scale * sumqx[k];
                                besti1 = i1; besti2 = i2; bestK = k;
                            }
                    }
                if (besti1 < 0 || besti2 < 0 || bestK < 0) { scales[ib] = 0; shifts[ib] = 0; continue; }
                for (int j = 0; j < besti1; j++) L[order[j]] = 0;
                for (int j = besti1; j < besti2; j++) L[order[j]] = 1;
                for (int j = besti2; j < Bs; j++) L[order[j]] = 2;
                if (scale < 0)
                {
                    for (int j = 0; j < Bs; j++) L[j] = (sbyte)(2 - L[j]);
                    scale = -scale;
                    bestK = 3 - bestK;
                }
                bool allOnGrid = true;
                for (int k = 0; k < 2; k++)
                {
                    var xx = Shifted(bestK, k, xP, xM);
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
                    float sqx = 0, sq2 = 0;
                    for (int k = 0; k < 2; k++)
                    {
                        var xx = Shifted(bestK, k, xP, xM);
                        for (int j = 0; j < 8; j++)
                        {
                            float w = weight[8 * k + j];
                            float q = xx[(grid.Pos[8 * index[k] + j] - 1) / 2];
                            sqx += w * q * xb[8 * k + j];
                            sq2 += w * q * q;
                        }
                    }
                    if (sqx > 0 && sq2 > 0) scale = sqx / sq2;
                }
                qs[2 * ib] = (byte)index[0];
                qs[2 * ib + 1] = (byte)index[1];
                qh[ib] = (byte)((index[0] >> 8) | ((index[1] >> 8) << 4));
                scales[ib] = scale;
                shifts[ib] = bestK;
                maxScale = maxScale > scale ? maxScale : scale;
            }
            if (maxScale == 0) continue;

            sc.Clear();
            float d = maxScale / 15;
            float id = 1 / d;
            float sumqxF = 0, sumq2F = 0;
            for (int ib = 0; ib < 16; ib++)
            {
                int l = QuantMath.NearestInt(0.5f * (id * scales[ib] - 1));
                l = Math.Max(0, Math.Min(7, l));
                sc[ib / 4] |= (ushort)(l << 3 * (ib % 4));
                qh[ib] |= masks[shifts[ib]];
                var xb = xbl.Slice(Bs * ib, Bs);
                Weights(xb, importance, 256 * ibl + Bs * ib, sigma2, weight);
                for (int k = 0; k < 2; k++)
                {
                    var xx = Shifted(shifts[ib], k, xP, xM);
                    int gi = qs[2 * ib + k] + ((qh[ib] << (8 - 4 * k)) & 0x700);
                    for (int j = 0; j < 8; j++)
                    {
                        float w = weight[8 * k + j];
                        float q = xx[(grid.Pos[8 * gi + j] - 1) / 2] * (2 * l + 1);
                        sumqxF += w * q * xb[8 * k + j];
                        sumq2F += w * q * q;
                    }
                }
            }
            if (sumq2F > 0) d = sumqxF / sumq2F;
            ushort s = Fp16.FromFloat(d * 1.1125f);
            sc[0] |= (ushort)((s & 0x000f) << 12);
            sc[1] |= (ushort)((s & 0x00f0) << 8);
            sc[2] |= (ushort)((s & 0x0f00) << 4);
            sc[3] |= (ushort)(s & 0xf000);
            for (int j = 0; j < 4; j++) BinaryPrimitives.WriteUInt16LittleEndian(yb.Slice(48 + 2 * j, 2), sc[j]);
        }
    }

    /// <summary>Shift choice k of ggml's four (+,+), (+,−), (−,+), (−,−) for half <paramref name="half"/>.</summary>
    static ReadOnlySpan<float> Shifted(int k, int half, ReadOnlySpan<float> xP, ReadOnlySpan<float> xM) =>
        half == 0 ? (k < 2 ? xP : xM) : (k % 2 == 0 ? xP : xM);

    static void Weights(ReadOnlySpan<float> xb, ReadOnlySpan<float> importance, int offset, float sigma2, Span<float> weight)
    {
        if (!importance.IsEmpty)
            for (int i = 0; i < Bs; i++) weight[i] = importance[offset + i] * MathF.Sqrt(sigma2 + xb[i] * xb[i]);
        else
            for (int i = 0; i < Bs; i++) weight[i] = xb[i] * xb[i];
    }

    protected override void DequantizeBlocks(ReadOnlySpan<byte> src, Span<float> dst)
    {
        var table = IQ2Grids.Grid2048.Table;
        int nb = dst.Length / 256;
        Span<float> delta = stackalloc float[4];
        Span<int> idx = stackalloc int[4];
        for (int i = 0; i < nb; i++)
        {
            var b = src.Slice(i * 56, 56);
            int sc0 = BinaryPrimitives.ReadUInt16LittleEndian(b.Slice(48, 2)), sc1 = BinaryPrimitives.ReadUInt16LittleEndian(b.Slice(50, 2));
            int sc2 = BinaryPrimitives.ReadUInt16LittleEndian(b.Slice(52, 2)), sc3 = BinaryPrimitives.ReadUInt16LittleEndian(b.Slice(54, 2));
            float d = Fp16.ToFloat((ushort)((sc0 >> 12) | ((sc1 >> 8) & 0x00f0) | ((sc2 >> 4) & 0x0f00) | (sc3 & 0xf000)));
            for (int ib = 0; ib < 8; ib++)
            {
                int sc = BinaryPrimitives.ReadUInt16LittleEndian(b.Slice(48 + 2 * (ib / 2), 2));
                float dl1 = d * (2 * ((sc >> (6 * (ib % 2))) & 7) + 1);
                float dl2 = d * (2 * ((sc >> (6 * (ib % 2) + 3)) & 7) + 1);
                var qs = b.Slice(4 * ib, 4);
                int h0 = b[32 + 2 * ib], h1 = b[33 + 2 * ib];
                idx[0] = qs[0] | ((h0 << 8) & 0x700);
                idx[1] = qs[1] | ((h0 << 4) & 0x700);
                idx[2] = qs[2] | ((h1 << 8) & 0x700);
                idx[3] = qs[3] | ((h1 << 4) & 0x700);
                delta[0] = (h0 & 0x08) != 0 ? -IQ2Grids.IQ1Delta : IQ2Grids.IQ1Delta;
                delta[1] = (h0 & 0x80) != 0 ? -IQ2Grids.IQ1Delta : IQ2Grids.IQ1Delta;
                delta[2] = (h1 & 0x08) != 0 ? -IQ2Grids.IQ1Delta : IQ2Grids.IQ1Delta;
                delta[3] = (h1 & 0x80) != 0 ? -IQ2Grids.IQ1Delta : IQ2Grids.IQ1Delta;
                var y = dst.Slice(i * 256 + 32 * ib, 32);
                for (int l = 0; l < 4; l++)
                {
                    ulong g = table[idx[l]];
                    float dl = l < 2 ? dl1 : dl2;
                    for (int j = 0; j < 8; j++) y[8 * l + j] = dl * ((sbyte)(g >> 8 * j) + delta[l]);
                }
            }
        }
    }
}
