using TensorCodec.Numerics;

namespace TensorCodec.Formats;

/// <summary>
/// ggml Q1_0 (1.125 bpw; type 41, added in llama.cpp 34af94cd): 128 values as signs of one fp16
/// scale. Layout: d | qs[16], value j is bit j%8 of byte j/8 (1 = +d, 0 = −d). The quantizer stores
/// d = Σ|x|/128 (the mean magnitude, summed in order) and the sign of each value, zero counting as
/// positive. Importance weights are ignored, as in ggml (the golden files are identical with and
/// without an imatrix).
/// </summary>
internal sealed class Q1_0 : BlockFormatBase
{
    public override string Name => "q1_0";
    public override int GgmlTypeId => 41;
    public override int BlockSize => 128;
    public override int BlockBytes => 18;

    protected override void QuantizeRow(ReadOnlySpan<float> x, Span<byte> y, ReadOnlySpan<float> importance)
    {
        int nb = x.Length / 128;
        for (int i = 0; i < nb; i++)
        {
            var xb = x.Slice(i * 128, 128);
            var yb = y.Slice(i * 18, 18);
            float sumAbs = 0;
            for (int j = 0; j < 128; j++) sumAbs += MathF.Abs(xb[j]);
            Fp16.Write(yb, 0, Fp16.FromFloat(sumAbs / 128));
            yb[2..].Clear();
            for (int j = 0; j < 128; j++)
                if (xb[j] >= 0) yb[2 + j / 8] |= (byte)(1 << (j % 8));
        }
    }

    protected override void DequantizeBlocks(ReadOnlySpan<byte> src, Span<float> dst)
    {
        int nb = dst.Length / 128;
        for (int i = 0; i < nb; i++)
        {
            var b = src.Slice(i * 18, 18);
            float d = Fp16.Read(b, 0);
            var y = dst.Slice(i * 128, 128);
            for (int j = 0; j < 128; j++) y[j] = (b[2 + j / 8] >> (j % 8) & 1) != 0 ? d : -d;
        }
    }
}
