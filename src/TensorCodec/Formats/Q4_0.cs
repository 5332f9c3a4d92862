using TensorCodec.Numerics;

namespace TensorCodec.Formats;

/// <summary>
/// ggml Q4_0: 32 values as fp16 d and 4-bit quants q with x ≈ (q − 8)·d. The reference scale is
/// the signed value of largest magnitude over −8, so that value maps exactly to q = 0; with
/// importance weights ggml instead searches the scale (make_qx_quants, weights qw·√(σ²+x²)).
/// Layout: d | qs[16], value j in the low nibble of qs[j], value j+16 in the high nibble.
/// </summary>
internal sealed class Q4_0 : BlockFormatBase
{
    public const int QK = 32;
    public const int Bytes = 18;
    public override string Name => "q4_0";
    public override int GgmlTypeId => 2;
    public override int BlockSize => QK;
    public override int BlockBytes => Bytes;
    public override bool UsesImportance => true;

    protected override void QuantizeRow(ReadOnlySpan<float> x, Span<byte> y, ReadOnlySpan<float> importance)
    {
        if (!importance.IsEmpty) { QuantizeWeighted(x, y, importance); return; }
        if (Q4_0Fast.IsSupported) Q4_0Fast.Quantize(x, y);
        else QuantizeReference(x, y);
    }

    protected override void DequantizeBlocks(ReadOnlySpan<byte> src, Span<float> dst)
    {
        if (Q4_0Fast.IsSupported) Q4_0Fast.Dequantize(src, dst);
        else DequantizeReference(src, dst);
    }

    public static void QuantizeReference(ReadOnlySpan<float> x, Span<byte> y)
    {
        int nb = x.Length / QK;
        for (int i = 0; i < nb; i++)
        {
            var xb = x.Slice(i * QK, QK);
            var yb = y.Slice(i * Bytes, Bytes);
            float amax = 0, max = 0;
            for (int j = 0; j < QK; j++)
            {
                float v = xb[j];
                if (amax < MathF.Abs(v)) { amax = MathF.Abs(v); max = v; }
            }
            float d = max / -8;
            float id = d != 0 ? 1.0f / d : 0.0f;
            Fp16.Write(yb, 0, Fp16.FromFloat(d));
            for (int j = 0; j < QK / 2; j++)
            {
                // C truncates x·id + 8.5 toward zero; the result is ≥ 0 so that is floor-and-round.
                int q0 = Math.Min(15, (int)(xb[j] * id + 8.5f));
                int q1 = Math.Min(15, (int)(xb[j + QK / 2] * id + 8.5f));
                yb[2 + j] = (byte)(q0 | q1 << 4);
            }
        }
    }

    private static void QuantizeWeighted(ReadOnlySpan<float> x, Span<byte> y, ReadOnlySpan<float> qwRow)
    {
        Span<float> weight = stackalloc float[QK];
        Span<sbyte> L = stackalloc sbyte[QK];
        float sigma2 = SumSquares(x) / x.Length;
        int nb = x.Length / QK;
        for (int ib = 0; ib < nb; ib++)
        {
            var xb = x.Slice(ib * QK, QK);
            var qw = qwRow.Slice(ib * QK, QK);
            QuantMath.ImportanceWeights(xb, qw, sigma2, weight);
            float d = QuantMath.MakeQxQuants(QK, 8, xb, L, 1, weight);
            var yb = y.Slice(ib * Bytes, Bytes);
            Fp16.Write(yb, 0, Fp16.FromFloat(d));
            for (int j = 0; j < 16; j++) yb[2 + j] = (byte)((byte)L[j] | (byte)L[j + 16] << 4);
        }
    }

    /// <summary>Σx² accumulated left to right in float, as ggml does for its σ².</summary>
    internal static float SumSquares(ReadOnlySpan<float> x)
    {
        float s = 0;
        for (int j = 0; j < x.Length; j++) s += x[j] * x[j];
        return s;
    }

    public static void DequantizeReference(ReadOnlySpan<byte> src, Span<float> dst)
    {
        int nb = dst.Length / QK;
        for (int i = 0; i < nb; i++)
        {
            var b = src.Slice(i * Bytes, Bytes);
            float d = Fp16.Read(b, 0);
            var yb = dst.Slice(i * QK, QK);
            for (int j = 0; j < QK / 2; j++)
            {
                yb[j] = ((b[2 + j] & 0x0F) - 8) * d;
                yb[j + QK / 2] = ((b[2 + j] >> 4) - 8) * d;
            }
        }
    }
}
