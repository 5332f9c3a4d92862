namespace TensorCodec.Formats;

/// <summary>ggml Q4_K. Layout: d | dmin | scales[12] | qs[128]; see <see cref="KQuant45"/>.</summary>
internal sealed class Q4_K : BlockFormatBase
{
    public override string Name => "q4_K";
    public override int GgmlTypeId => 12;
    public override int BlockSize => 256;
    public override int BlockBytes => 144;
    public override bool UsesImportance => true;

    protected override void QuantizeRow(ReadOnlySpan<float> x, Span<byte> y, ReadOnlySpan<float> importance)
    {
        if (KQuantQuantizeFast.IsSupported) KQuantQuantizeFast.QuantizeQ45(x, y, importance, 15, 144, -1f, 20);
        else KQuant45.QuantizeReference(x, y, importance, 15, 144, -1f, 20);
    }

    protected override void DequantizeBlocks(ReadOnlySpan<byte> src, Span<float> dst)
    {
        if (KQuantFast.IsSupported) KQuantFast.DequantizeQ45(src, dst, 15, 144);
        else KQuant45.DequantizeReference(src, dst, 15, 144);
    }
}
