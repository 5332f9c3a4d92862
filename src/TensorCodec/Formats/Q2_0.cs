using TensorCodec.Numerics;

namespace TensorCodec.Formats;

/// <summary>
/// ggml Q2_0 (2.25 bpw; type 42, added in llama.cpp 34af94cd): 64 values as codes c in 0..3 of one
/// fp16 scale, value (c−1)·d, i.e. {−d, 0, d, 2d}. Layout: d | qs[16], value j is bits 2·(j%4) of
/// byte j/4. The quantizer takes d = max|x| and c = round(x/d)+1 (halves away from zero), clamped to
/// 0..3 — so a ternary code in practice. Importance weights are ignored, as in ggml (the golden
/// files are identical with and without an imatrix).
/// </summary>
internal sealed class Q2_0 : BlockFormatBase
{
    public override string Name => "q2_0";
    public override int GgmlTypeId => 42;
    public override int BlockSize => 64;
    public override int BlockBytes => 18;

    protected override void QuantizeRow(ReadOnlySpan<float> x, Span<byte> y, ReadOnlySpan<float> importance)
    {
        int nb = x.Length / 64;
        for (int i = 0; i < nb; i++)
        {
            var xb = x.Slice(i * 64, 64);
            var yb = y.Slice(i * 18, 18);
            float amax = 0;
            for (int j = 0; j < 64; j++) amax = MathF.Max(amax, MathF.Abs(xb[j]));
            float id = amax != 0 ? 1 / amax : 0f;
            Fp16.Write(yb, 0, Fp16.FromFloat(amax));
            yb[2..].Clear();
            for (int j = 0; j < 64; j++)
            {
                int q = Math.Clamp((int)QuantMath.RoundAway(xb[j] * id) + 1, 0, 3);
                yb[2 + j / 4] |= (byte)(q << (2 * (j % 4)));
            }
        }
    }

    protected override void DequantizeBlocks(ReadOnlySpan<byte> src, Span<float> dst)
    {
        int nb = dst.Length / 64;
        for (int i = 0; i < nb; i++)
        {
            var b = src.Slice(i * 18, 18);
            float d = Fp16.Read(b, 0);
            var y = dst.Slice(i * 64, 64);
            for (int j = 0; j < 64; j++) y[j] = ((b[2 + j / 4] >> (2 * (j % 4)) & 3) - 1) * d;
        }
    }
}
