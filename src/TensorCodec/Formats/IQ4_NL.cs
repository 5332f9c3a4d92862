using TensorCodec.Numerics;

namespace TensorCodec.Formats;

/// <summary>ggml IQ4_NL: 32 values as fp16 d and 4-bit indices into a non-linear table. Layout: d | qs[16].</summary>
internal sealed class IQ4_NL : BlockFormatBase
{
    public override string Name => "iq4_nl";
    public override int GgmlTypeId => 20;
    public override int BlockSize => 32;
    public override int BlockBytes => 18;
    public override bool UsesImportance => true;

    protected override void QuantizeRow(ReadOnlySpan<float> x, Span<byte> y, ReadOnlySpan<float> importance)
    {
        int nb = x.Length / 32;
        for (int ib = 0; ib < nb; ib++)
        {
            var yb = y.Slice(ib * 18, 18);
            var qw = importance.IsEmpty ? default : importance.Slice(ib * 32, 32);
            IQ4.QuantizeSuper(32, x.Slice(ib * 32, 32), out ushort dh, yb[2..], out _, default, qw, 7);
            Fp16.Write(yb, 0, dh);
        }
    }

    protected override void DequantizeBlocks(ReadOnlySpan<byte> src, Span<float> dst)
    {
        var values = IQ4.Values;
        int nb = dst.Length / 32;
        for (int i = 0; i < nb; i++)
        {
            var b = src.Slice(i * 18, 18);
            float d = Fp16.Read(b, 0);
            var y = dst.Slice(i * 32, 32);
            for (int j = 0; j < 16; j++)
            {
                y[j] = d * values[b[2 + j] & 0xF];
                y[j + 16] = d * values[b[2 + j] >> 4];
            }
        }
    }
}
