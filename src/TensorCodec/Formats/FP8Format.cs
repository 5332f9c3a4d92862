using TensorCodec.Numerics;

namespace TensorCodec.Formats;

/// <summary>
/// Plain per-element FP8 without scales ("fp8_e4m3", "fp8_e5m2"): each float becomes one OCP
/// FP8 byte, round to nearest even, saturating (out-of-range values clamp to ±max; NaN stays NaN).
/// </summary>
internal sealed class FP8Format(MiniFloat element) : BlockFormatBase
{
    public MiniFloat Element { get; } = element.Bits == 8 ? element : throw new ArgumentException("FP8 needs an 8-bit element type");
    public override string Name => "fp8_" + Element.Name;
    public override int GgmlTypeId => -1;
    public override int BlockSize => 1;
    public override int BlockBytes => 1;

    protected override void QuantizeRow(ReadOnlySpan<float> x, Span<byte> y, ReadOnlySpan<float> importance) =>
        Element.Encode(x, y, saturate: true);

    protected override void DequantizeBlocks(ReadOnlySpan<byte> src, Span<float> dst) => Element.Decode(src[..dst.Length], dst);
}
