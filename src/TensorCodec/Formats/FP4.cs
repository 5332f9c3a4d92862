using TensorCodec.Numerics;

namespace TensorCodec.Formats;

/// <summary>
/// E2M1 (FP4) codes as ggml stores them: doubled, so they are small integers
/// (0, 0.5, 1, 1.5, 2, 3, 4, 6 → 0, 1, 2, 3, 4, 6, 8, 12, sign in bit 3), paired with a scale
/// decoded at half weight. Nearest code by exhaustive search; the first (lowest) index wins ties.
/// </summary>
internal static class Fp4
{
    public static ReadOnlySpan<sbyte> Values => [0, 1, 2, 3, 4, 6, 8, 12, 0, -1, -2, -3, -4, -6, -8, -12];

    public static int BestIndex(float x, float e)
    {
        var v = Values;
        int best = 0;
        float bestErr = MathF.Abs(v[0] * e - x);
        for (int i = 1; i < 16; i++)
        {
            float err = MathF.Abs(v[i] * e - x);
            if (err < bestErr) { best = i; bestErr = err; }
        }
        return best;
    }
}

/// <summary>
/// ggml MXFP4 (OCP microscaling FP4): 32 E2M1 values sharing an E8M0 exponent
/// e = floor(log2(amax)) − 2 + 127. Layout: e | qs[16] (j low nibble, j+16 high nibble).
/// Importance weights are ignored (as in ggml).
/// </summary>
public sealed class MXFP4 : BlockFormatBase
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

/// <summary>
/// ggml NVFP4: 64 values as four 16-value sub-blocks, each an unsigned-E4M3 scale (amax/6) and
/// 16 E2M1 codes. Layout: d[4] | qs[32] (per sub-block 8 bytes, j low / j+8 high nibble).
/// Importance weights are ignored (as in ggml).
/// </summary>
public sealed class NVFP4 : BlockFormatBase
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
