using TensorCodec.Numerics;

namespace TensorCodec.Formats;

/// <summary>
/// ggml Q4_1: 32 values as fp16 d, fp16 m and 4-bit q with x ≈ q·d + m. Reference: m = min,
/// d = (max−min)/15. With importance weights: make_qkx3_quants (weighted min/scale search).
/// Layout: d | m | qs[16].
/// </summary>
internal sealed class Q4_1 : BlockFormatBase
{
    public const int QK = 32;
    public const int Bytes = 20;
    public override string Name => "q4_1";
    public override int GgmlTypeId => 3;
    public override int BlockSize => QK;
    public override int BlockBytes => Bytes;
    public override bool UsesImportance => true;

    protected override void QuantizeRow(ReadOnlySpan<float> x, Span<byte> y, ReadOnlySpan<float> importance)
    {
        int nb = x.Length / QK;
        if (importance.IsEmpty)
        {
            for (int i = 0; i < nb; i++)
            {
                var xb = x.Slice(i * QK, QK);
                var yb = y.Slice(i * Bytes, Bytes);
                float min = float.MaxValue, max = -float.MaxValue;
                for (int j = 0; j < QK; j++)
                {
                    if (xb[j] < min) min = xb[j];
                    if (xb[j] > max) max = xb[j];
                }
                float d = (max - min) / 15;
                float id = d != 0 ? 1.0f / d : 0.0f;
                Fp16.Write(yb, 0, Fp16.FromFloat(d));
                Fp16.Write(yb, 2, Fp16.FromFloat(min));
                for (int j = 0; j < QK / 2; j++)
                {
                    int q0 = Math.Min(15, (int)((xb[j] - min) * id + 0.5f));
                    int q1 = Math.Min(15, (int)((xb[j + QK / 2] - min) * id + 0.5f));
                    yb[4 + j] = (byte)(q0 | q1 << 4);
                }
            }
            return;
        }
        Span<float> weight = stackalloc float[QK];
        Span<byte> L = stackalloc byte[QK];
        Span<byte> Laux = stackalloc byte[QK];
        float sigma2 = Q4_0.SumSquares(x) / x.Length;
        for (int ib = 0; ib < nb; ib++)
        {
            var xb = x.Slice(ib * QK, QK);
            var qw = importance.Slice(ib * QK, QK);
            QuantMath.ImportanceWeights(xb, qw, sigma2, weight);
            float d = QuantMath.MakeQkx3Quants(QK, 15, xb, weight, L, out float min, Laux, -0.9f, 0.05f, 36, false);
            var yb = y.Slice(ib * Bytes, Bytes);
            Fp16.Write(yb, 0, Fp16.FromFloat(d));
            Fp16.Write(yb, 2, Fp16.FromFloat(-min));
            for (int j = 0; j < 16; j++) yb[4 + j] = (byte)(L[j] | L[j + 16] << 4);
        }
    }

    protected override void DequantizeBlocks(ReadOnlySpan<byte> src, Span<float> dst)
    {
        int nb = dst.Length / QK;
        for (int i = 0; i < nb; i++)
        {
            var b = src.Slice(i * Bytes, Bytes);
            float d = Fp16.Read(b, 0), m = Fp16.Read(b, 2);
            var yb = dst.Slice(i * QK, QK);
            for (int j = 0; j < QK / 2; j++)
            {
                yb[j] = (b[4 + j] & 0x0F) * d + m;
                yb[j + QK / 2] = (b[4 + j] >> 4) * d + m;
            }
        }
    }
}
