using System.Runtime.InteropServices;
using TensorCodec.Numerics;

namespace TensorCodec.Formats;

/// <summary>ggml BF16: the high half of each float32, rounded to nearest even, NaN kept quiet.</summary>
internal sealed class BF16Format : BlockFormatBase
{
    public override string Name => "bf16";
    public override int GgmlTypeId => 30;
    public override int BlockSize => 1;
    public override int BlockBytes => 2;

    protected override void QuantizeRow(ReadOnlySpan<float> x, Span<byte> y, ReadOnlySpan<float> importance) =>
        BFloat16.FromFloat(x, MemoryMarshal.Cast<byte, ushort>(y));

    protected override void DequantizeBlocks(ReadOnlySpan<byte> src, Span<float> dst) =>
        BFloat16.ToFloat(MemoryMarshal.Cast<byte, ushort>(src), dst);
}
