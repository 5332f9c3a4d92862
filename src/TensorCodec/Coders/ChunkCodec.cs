using System.Buffers;
using TensorCodec.Numerics;

namespace TensorCodec.Coders;

/// <summary>
/// The chunk payload format's constants and one-shot helpers (FORMAT.md, chunk payload section). Code
/// that encodes or decodes more than one chunk should hold a <see cref="ChunkEncoder"/> or
/// <see cref="ChunkDecoder"/> and reuse it: the one-shot methods build a fresh context, scratch and
/// zstd state included, on every call.
/// </summary>
public static class ChunkCodec
{
    internal const byte ModeStored = 0, ModeZstd = 1, ModeSplit = 2, ModeGgml = 3, ModeGgmlTables = 4;
    internal const byte MethodStored = 0, MethodConstant = 1, MethodHuffman = 2, MethodRans = 3, MethodZstd = 4, MethodRansWide = 5;

    /// <summary>Upper bound of an encoded chunk for <paramref name="rawLength"/> input bytes.</summary>
    public static int MaxEncodedLength(int rawLength)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(rawLength);
        return checked(rawLength + 1);
    }

    /// <summary>One-shot <see cref="ChunkEncoder.Encode(ReadOnlySpan{byte}, DType, Span{byte}, out int, ChunkStats)"/>.</summary>
    public static OperationStatus Encode(ReadOnlySpan<byte> source, DType dtype, Span<byte> destination, out int bytesWritten,
        ChunkCodecOptions? options = null, ChunkStats? stats = null)
    {
        using var encoder = new ChunkEncoder(options);
        return encoder.Encode(source, dtype, destination, out bytesWritten, stats);
    }

    /// <summary>One-shot <see cref="ChunkDecoder.Decode"/>.</summary>
    public static OperationStatus Decode(ReadOnlySpan<byte> source, Span<byte> destination, out int bytesWritten)
    {
        using var decoder = new ChunkDecoder();
        return decoder.Decode(source, destination, out bytesWritten);
    }
}
