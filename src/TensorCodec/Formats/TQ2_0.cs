using TensorCodec.Numerics;

namespace TensorCodec.Formats;

/// <summary>
/// ggml TQ2_0 (ternary, 2.0625 bpw): 256 values in {−1,0,1}·d, d = amax, as 2-bit codes 0..2.
/// Layout: qs[64] (byte m of each 32-byte group holds values m, m+32, m+64, m+96) | d.
/// </summary>
internal sealed class TQ2_0 : BlockFormatBase
{
    public override string Name => "tq2_0";
    public override int GgmlTypeId => 35;
    public override int BlockSize => 256;
    public override int BlockBytes => 66;

    protected override void QuantizeRow(ReadOnlySpan<float> x, Span<byte> y, ReadOnlySpan<float> importance)
    {
        int nb = x.Length / 256;
        for (int i = 0; i < nb; i++)
        {
            var xb = x.Slice(i * 256, 256);
            var yb = y.Slice(i * 66, 66);
            float amax = 0;
            for (int j = 0; j < 256; j++) amax = Math.Max(amax, MathF.Abs(xb[j]));
            float d = amax;
            float id = d != 0 ? 1.0f / d : 0.0f;
            Fp16.Write(yb, 64, Fp16.FromFloat(d));
            for (int j = 0; j < 64; j += 32)
                for (int m = 0; m < 32; m++)
                {
                    int q = 0;
                    for (int n = 0; n < 4; n++)
                    {
                        int xi = (int)QuantMath.RoundAway(xb[4 * j + m + n * 32] * id) + 1;
                        q += (xi & 3) << (2 * n);
                    }
                    yb[j + m] = (byte)q;
                }
        }
    }

    protected override void DequantizeBlocks(ReadOnlySpan<byte> src, Span<float> dst)
    {
        int nb = dst.Length / 256;
        for (int i = 0; i < nb; i++)
        {
            var b = src.Slice(i * 66, 66);
            float d = Fp16.Read(b, 64);
            var y = dst.Slice(i * 256, 256);
            int o = 0;
            for (int j = 0; j < 64; j += 32)
                for (int l = 0; l < 4; l++)
                    for (int m = 0; m < 32; m++)
                        y[o++] = (float)(((b[j + m] >> (2 * l)) & 3) - 1) * d;
        }
    }
}
