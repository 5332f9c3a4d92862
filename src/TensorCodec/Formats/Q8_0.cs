using TensorCodec.Numerics;

namespace TensorCodec.Formats;

/// <summary>
/// ggml Q8_0: 32 values as fp16 scale d = amax/127 and 32 int8 quants round(x/d), halves away
/// from zero (C roundf). ggml ignores importance weights for this type.
/// Layout: d (2 bytes) | qs[32].
/// </summary>
internal sealed class Q8_0 : BlockFormatBase
{
    public const int QK = 32;
    public override string Name => "q8_0";
    public override int GgmlTypeId => 8;
    public override int BlockSize => QK;
    public override int BlockBytes => 34;

    protected override void QuantizeRow(ReadOnlySpan<float> x, Span<byte> y, ReadOnlySpan<float> importance) => Quantize(x, y);

    /// <summary>Quantizes whole blocks: the fast path where supported, else the reference (identical output).</summary>
    internal static void Quantize(ReadOnlySpan<float> x, Span<byte> y)
    {
        if (Q8_0Fast.IsSupported) Q8_0Fast.Quantize(x, y);
        else QuantizeReference(x, y);
    }

    protected override void DequantizeBlocks(ReadOnlySpan<byte> src, Span<float> dst)
    {
        if (Q8_0Fast.IsSupported) Q8_0Fast.Dequantize(src, dst);
        else DequantizeReference(src, dst);
    }

    /// <summary>Scalar reference, operation for operation like ggml's quantize_row_q8_0_ref.</summary>
    public static void QuantizeReference(ReadOnlySpan<float> x, Span<byte> y)
    {
        int nb = x.Length / QK;
        for (int i = 0; i < nb; i++)
        {
            var xb = x.Slice(i * QK, QK);
            var yb = y.Slice(i * 34, 34);
            float amax = 0;
            for (int j = 0; j < QK; j++) amax = Math.Max(amax, MathF.Abs(xb[j]));
            float d = amax / 127;
            float id = d != 0 ? 1.0f / d : 0.0f;
            Fp16.Write(yb, 0, Fp16.FromFloat(d));
            for (int j = 0; j < QK; j++)
                yb[2 + j] = (byte)(sbyte)QuantMath.RoundAway(xb[j] * id);
        }
    }

    public static void DequantizeReference(ReadOnlySpan<byte> src, Span<float> dst)
    {
        int nb = dst.Length / QK;
        for (int i = 0; i < nb; i++)
        {
            var b = src.Slice(i * 34, 34);
            float d = Fp16.Read(b, 0);
            for (int j = 0; j < QK; j++) dst[i * QK + j] = (sbyte)b[2 + j] * d;
        }
    }
}
