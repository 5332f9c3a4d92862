using TensorCodec.Numerics;

namespace TensorCodec.Formats;

/// <summary>
/// ggml MXFP4 (OCP microscaling FP4): 32 E2M1 values sharing an E8M0 exponent
/// e = floor(log2(amax)) − 2 + 127. Layout: e | qs[16] (j low nibble, j+16 high nibble).
/// Importance weights are ignored (as in ggml).
/// </summary>
internal sealed class MXFP4 : BlockFormatBase
{
    public override string Name => "mxfp4";
    public override int GgmlTypeId => 39;
    public override int BlockSize => 32;
    public override int BlockBytes => 17;

    protected override void QuantizeRow(ReadOnlySpan<float> x, Span<byte> y, ReadOnlySpan<float> importance)
    {
        int nb = x.Length / 32;
        for (int i = 0; i < nb; i++)
        {
            var xb = x.Slice(i * 32, 32);
            var yb = y.Slice(i * 17, 17);
            float amax = 0;
            for (int j = 0; j < 32; j++) if (amax < MathF.Abs(xb[j])) amax = MathF.Abs(xb[j]);
            // log2f, not the exponent bits: just below a power of two log2f can round up to it.
            byte e = amax > 0 ? (byte)(int)(MathF.Floor(MathF.Log2(amax)) - 2 + 127) : (byte)0;
            float d = ScaleFormats.E8M0ToFloatHalf(e);
            yb[0] = e;
            for (int j = 0; j < 16; j++)
                yb[1 + j] = (byte)(Fp4.BestIndex(xb[j], d) | Fp4.BestIndex(xb[j + 16], d) << 4);
        }
    }

    protected override void DequantizeBlocks(ReadOnlySpan<byte> src, Span<float> dst)
    {
        var v = Fp4.Values;
        int nb = dst.Length / 32;
        for (int i = 0; i < nb; i++)
        {
            var b = src.Slice(i * 17, 17);
            float d = ScaleFormats.E8M0ToFloatHalf(b[0]);
            var y = dst.Slice(i * 32, 32);
            for (int j = 0; j < 16; j++)
            {
                y[j] = v[b[1 + j] & 0xF] * d;
                y[j + 16] = v[b[1 + j] >> 4] * d;
            }
        }
    }
}
