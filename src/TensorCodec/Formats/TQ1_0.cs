using TensorCodec.Numerics;

namespace TensorCodec.Formats;

/// <summary>
/// ggml TQ1_0 (ternary, 1.6875 bpw): 256 values in {−1,0,1}·d with d = amax. Five trits per byte
/// stored as a fixed-point fraction (ceil(t·256/243)) so a trit is recovered by multiplying
/// by 3 and taking the carry. Layout: qs[48] (5 trits each: 32 bytes × 160 values, 16 bytes ×
/// 80) | qh[4] (4 trits each) | d. Importance weights are ignored (as in ggml).
/// </summary>
internal sealed class TQ1_0 : BlockFormatBase
{
    public override string Name => "tq1_0";
    public override int GgmlTypeId => 34;
    public override int BlockSize => 256;
    public override int BlockBytes => 54;

    protected override void QuantizeRow(ReadOnlySpan<float> x, Span<byte> y, ReadOnlySpan<float> importance)
    {
        int nb = x.Length / 256;
        for (int i = 0; i < nb; i++)
        {
            var xb = x.Slice(i * 256, 256);
            var yb = y.Slice(i * 54, 54);
            float amax = 0;
            for (int j = 0; j < 256; j++) amax = Math.Max(amax, MathF.Abs(xb[j]));
            float d = amax;
            float id = d != 0 ? 1.0f / d : 0.0f;
            Fp16.Write(yb, 52, Fp16.FromFloat(d));
            // 32 bytes of 5 trits (stride 32), then 16 bytes of 5 trits (stride 16).
            Pack5(xb[..160], yb[..32], 32, id);
            Pack5(xb.Slice(160, 80), yb.Slice(32, 16), 16, id);
            var xr = xb.Slice(240, 16);
            for (int j = 0; j < 4; j++)
            {
                int q = 0;
                for (int m = 0; m < 4; m++) q = q * 3 + Trit(xr[j + m * 4], id);
                q *= 3; // the first trit becomes the most significant of five
                yb[48 + j] = (byte)((q * 256 + 242) / 243);
            }
        }
    }

    private static void Pack5(ReadOnlySpan<float> x, Span<byte> qs, int stride, float id)
    {
        for (int m = 0; m < stride; m++)
        {
            int q = 0;
            for (int n = 0; n < 5; n++) q = q * 3 + Trit(x[m + n * stride], id);
            qs[m] = (byte)((q * 256 + 242) / 243);
        }
    }

    /// <summary>lroundf(x·id) + 1: −1,0,1 → 0,1,2.</summary>
    private static int Trit(float v, float id) => (int)QuantMath.RoundAway(v * id) + 1;

    protected override void DequantizeBlocks(ReadOnlySpan<byte> src, Span<float> dst)
    {
        ReadOnlySpan<byte> pow3 = [1, 3, 9, 27, 81, 243];
        int nb = dst.Length / 256;
        for (int i = 0; i < nb; i++)
        {
            var b = src.Slice(i * 54, 54);
            float d = Fp16.Read(b, 52);
            var y = dst.Slice(i * 256, 256);
            int o = 0;
            for (int n = 0; n < 5; n++)
                for (int m = 0; m < 32; m++) y[o++] = TritAt(b[m], pow3[n]) * d;
            for (int n = 0; n < 5; n++)
                for (int m = 0; m < 16; m++) y[o++] = TritAt(b[32 + m], pow3[n]) * d;
            for (int n = 0; n < 4; n++)
                for (int j = 0; j < 4; j++) y[o++] = TritAt(b[48 + j], pow3[n]) * d;
        }
    }

    /// <summary>Trit selected by multiplying the fraction by 3^n (mod 256), then the carry out of ×3, minus 1.</summary>
    private static float TritAt(byte q, byte pow) => (float)((((byte)(q * pow)) * 3 >> 8) - 1);
}
