using System.Buffers.Binary;
using TensorCodec.Numerics;

namespace TensorCodec.Formats;

/// <summary>
/// ggml IQ2_XS (2.31 bits/weight): 256 values as sixteen groups of 16, each two points of the
/// 512-point iq2xs grid with 7-bit sign masks (uint16: index | signs &lt;&lt; 9) and a 4-bit scale.
/// Layout: d | qs[32] (uint16) | scales[8] (nibbles). Quantizing needs importance weights, as in ggml
/// (quantize_row_iq2_xs_impl).
/// </summary>
internal sealed class IQ2_XS : BlockFormatBase
{
    public override string Name => "iq2_xs";
    public override int GgmlTypeId => 17;
    public override int BlockSize => 256;
    public override int BlockBytes => 74;
    public override bool UsesImportance => true;
    public override bool RequiresImportance => true;

    protected override void QuantizeRow(ReadOnlySpan<float> x, Span<byte> y, ReadOnlySpan<float> importance)
    {
        if (importance.IsEmpty) throw IQ2Grids.NeedsImportance(Name);
        var grid = IQ2Grids.Grid512;
        Span<int> index = stackalloc int[32];
        Span<byte> signs = stackalloc byte[32];
        Span<float> scales = stackalloc float[16];
        int nbl = x.Length / 256;
        for (int ibl = 0; ibl < nbl; ibl++)
        {
            var yb = y.Slice(ibl * 74, 74);
            yb.Clear();
            var xbl = x.Slice(256 * ibl, 256);
            float sigma2 = IQ2Grids.MeanSquare(xbl);
            float maxScale = IQ2Grids.QuantizeGroups16(grid, xbl, importance.Slice(256 * ibl, 256), sigma2, QuantMath.GroupMaxEps,
                evenParity: true, scales, index, signs);
            if (maxScale == 0) continue;
            float d = maxScale / 31;
            Fp16.Write(yb, 0, Fp16.FromFloat(d));
            float id = 1 / d;
            IQ2Grids.PackScales(scales, id, yb.Slice(66, 8));
            for (int j = 0; j < 32; j++) BinaryPrimitives.WriteUInt16LittleEndian(yb.Slice(2 + 2 * j, 2), (ushort)(index[j] | signs[j] << 9));
        }
    }

    protected override void DequantizeBlocks(ReadOnlySpan<byte> src, Span<float> dst)
    {
        var table = IQ2Grids.Grid512.Table;
        var ksigns = IQ2Grids.KSigns;
        int nb = dst.Length / 256;
        for (int i = 0; i < nb; i++)
        {
            var b = src.Slice(i * 74, 74);
            float d = Fp16.Read(b, 0);
            for (int ib = 0; ib < 8; ib++)
            {
                float db0 = d * (0.5f + (b[66 + ib] & 0xF)) * 0.25f;
                float db1 = d * (0.5f + (b[66 + ib] >> 4)) * 0.25f;
                var y = dst.Slice(i * 256 + 32 * ib, 32);
                for (int l = 0; l < 4; l++)
                {
                    int q = BinaryPrimitives.ReadUInt16LittleEndian(b.Slice(2 + 2 * (4 * ib + l), 2));
                    ulong g = table[q & 511];
                    int s = ksigns[q >> 9];
                    float dl = l < 2 ? db0 : db1;
                    for (int j = 0; j < 8; j++)
                        y[8 * l + j] = dl * (byte)(g >> 8 * j) * ((s & (1 << j)) != 0 ? -1f : 1f);
                }
            }
        }
    }
}
