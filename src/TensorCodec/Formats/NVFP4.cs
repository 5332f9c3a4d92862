using TensorCodec.Numerics;

namespace TensorCodec.Formats;

/// <summary>
/// ggml NVFP4: 64 values as four 16-value sub-blocks, each an unsigned-E4M3 scale (amax/6) and
/// 16 E2M1 codes. Layout: d[4] | qs[32] (per sub-block 8 bytes, j low / j+8 high nibble).
/// Importance weights are ignored (as in ggml).
/// </summary>
internal sealed class NVFP4 : BlockFormatBase
{
    public override string Name => "nvfp4";
    public override int GgmlTypeId => 40;
    public override int BlockSize => 64;
    public override int BlockBytes => 36;

    protected override void QuantizeRow(ReadOnlySpan<float> x, Span<byte> y, ReadOnlySpan<float> importance)
    {
        int nb = x.Length / 64;
        for (int i = 0; i < nb; i++)
        {
            var yb = y.Slice(i * 36, 36);
            for (int s = 0; s < 4; s++)
            {
                var xb = x.Slice(i * 64 + s * 16, 16);
                float amax = 0;
                for (int j = 0; j < 16; j++) if (amax < MathF.Abs(xb[j])) amax = MathF.Abs(xb[j]);
                byte ue = ScaleFormats.FloatToUE4M3(amax / 6.0f);
                yb[s] = ue;
                float d = ScaleFormats.UE4M3ToFloatHalf(ue);
                for (int j = 0; j < 8; j++)
                    yb[4 + s * 8 + j] = (byte)(Fp4.BestIndex(xb[j], d) | Fp4.BestIndex(xb[j + 8], d) << 4);
            }
        }
    }

    protected override void DequantizeBlocks(ReadOnlySpan<byte> src, Span<float> dst)
    {
        var v = Fp4.Values;
        int nb = dst.Length / 64;
        for (int i = 0; i < nb; i++)
        {
            var b = src.Slice(i * 36, 36);
            for (int s = 0; s < 4; s++)
            {
                float d = ScaleFormats.UE4M3ToFloatHalf(b[s]);
                var y = dst.Slice(i * 64 + s * 16, 16);
                for (int j = 0; j < 8; j++)
                {
                    byte q = b[4 + s * 8 + j];
                    y[j] = v[q & 0xF] * d;
                    y[j + 8] = v[q >> 4] * d;
                }
            }
        }
    }
}
