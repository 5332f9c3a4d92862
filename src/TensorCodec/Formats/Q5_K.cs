namespace TensorCodec.Formats;

/// <summary>ggml Q5_K. Layout: d | dmin | scales[12] | qh[32] | qs[128]; see <see cref="KQuant45"/>.</summary>
internal sealed class Q5_K : BlockFormatBase
{
    public override string Name => "q5_K";
    public override int GgmlTypeId => 13;
    public override int BlockSize => 256;
    public override int BlockBytes => 176;
    public override bool UsesImportance => true;

    protected override void QuantizeRow(ReadOnlySpan<float> x, Span<byte> y, ReadOnlySpan<float> importance)
    {
        if (KQuantQuantizeFast.IsSupported) KQuantQuantizeFast.QuantizeQ45(x, y, importance, 31, 176, -0.5f, 15);
        else KQuant45.QuantizeReference(x, y, importance, 31, 176, -0.5f, 15);
    }

    protected override void DequantizeBlocks(ReadOnlySpan<byte> src, Span<float> dst)
    {
        if (KQuantFast.IsSupported) KQuantFast.DequantizeQ45(src, dst, 31, 176);
        else KQuant45.DequantizeReference(src, dst, 31, 176);
    }
}
