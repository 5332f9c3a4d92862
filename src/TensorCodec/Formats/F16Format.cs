using System.Runtime.InteropServices;
using TensorCodec.Numerics;

namespace TensorCodec.Formats;

/// <summary>ggml F16: little-endian IEEE half per value, round-to-nearest-even.</summary>
internal sealed class F16Format : BlockFormatBase
{
    public override string Name => "f16";
    public override int GgmlTypeId => 1;
    public override int BlockSize => 1;
    public override int BlockBytes => 2;

    protected override void QuantizeRow(ReadOnlySpan<float> x, Span<byte> y, ReadOnlySpan<float> importance) =>
        Fp16.FromFloat(x, MemoryMarshal.Cast<byte, ushort>(y));

    protected override void DequantizeBlocks(ReadOnlySpan<byte> src, Span<float> dst) =>
        Fp16.ToFloat(MemoryMarshal.Cast<byte, ushort>(src), dst);
}
