using TensorCodec.Numerics;

namespace TensorCodec.Formats;

/// <summary>
/// ggml IQ4_XS: 256 values, the IQ4_NL table with 6-bit block scales of a fp16 super-scale.
/// Layout: d | scales_h (uint16, 2 bits per block) | scales_l[4] (nibbles) | qs[128].
/// </summary>
internal sealed class IQ4_XS : BlockFormatBase
{
    public override string Name => "iq4_xs";
    public override int GgmlTypeId => 23;
    public override int BlockSize => 256;
    public override int BlockBytes => 136;
    public override bool UsesImportance => true;

    protected override void QuantizeRow(ReadOnlySpan<float> x, Span<byte> y, ReadOnlySpan<float> importance)
    {
        int nb = x.Length / 256;
        for (int ib = 0; ib < nb; ib++)
        {
            var yb = y.Slice(ib * 136, 136);
            var qw = importance.IsEmpty ? default : importance.Slice(ib * 256, 256);
            IQ4.QuantizeSuper(256, x.Slice(ib * 256, 256), out ushort dh, yb[8..], out ushort sh, yb.Slice(4, 4), qw, 7);
            Fp16.Write(yb, 0, dh);
            Fp16.Write(yb, 2, sh);
        }
    }

    protected override void DequantizeBlocks(ReadOnlySpan<byte> src, Span<float> dst)
    {
        var values = IQ4.Values;
        int nb = dst.Length / 256;
        for (int i = 0; i < nb; i++)
        {
            var b = src.Slice(i * 136, 136);
            float d = Fp16.Read(b, 0);
            int sh = b[2] | b[3] << 8;
            for (int ib = 0; ib < 8; ib++)
            {
                int ls = ((b[4 + ib / 2] >> (4 * (ib % 2))) & 0xF) | ((sh >> (2 * ib)) & 3) << 4;
                float dl = d * (ls - 32);
                var qs = b.Slice(8 + 16 * ib, 16);
                var y = dst.Slice(i * 256 + 32 * ib, 32);
                for (int j = 0; j < 16; j++)
                {
                    y[j] = dl * values[qs[j] & 0xF];
                    y[j + 16] = dl * values[qs[j] >> 4];
                }
            }
        }
    }
}
