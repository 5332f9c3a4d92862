namespace TensorCodec.Containers.Tkv;

/// <summary>
/// The header of a <c>.tkv</c> file (FORMAT.md, "KV context files"): which model, its KV shape,
/// the prompt's tokens and the codec of the sections. The file holds positions 0…n−2 of the
/// n tokens.
/// </summary>
internal sealed record TkvHeader(byte[] ModelId, int Layers, int KvHeads, int HeadDim, int Vocab, int[] Tokens, KvCodecSpec Codec)
{
    /// <summary>The only version this library reads and writes.</summary>
    public const int Version = 1;
    internal const int FixedSize = 56;
    internal static ReadOnlySpan<byte> Magic => ContainerSniff.TkvMagic;

    /// <summary>Cached positions: all tokens but the last.</summary>
    public int Positions => Tokens.Length - 1;
    /// <summary>Channels per position: KvHeads × HeadDim.</summary>
    public int KvDim => KvHeads * HeadDim;
    /// <summary>Bytes of the header including its checksum.</summary>
    public int Size => FixedSize + 2 * Layers + 4 * Tokens.Length + 8;
    /// <summary>Keys and values of all cached positions as F16, the "raw dump" baseline.</summary>
    public long RawF16Bytes => 2L * Layers * Positions * KvDim * 2;
}
