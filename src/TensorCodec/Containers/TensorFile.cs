using TensorCodec.Numerics;

namespace TensorCodec.Containers;

/// <summary>The container formats <see cref="TensorFileReader"/> recognises; the numbers are stored in .tcz files.</summary>
public enum TensorFileFormat : byte
{
    /// <summary>Not a recognised tensor file: stored as opaque bytes.</summary>
    Opaque = 0,
    /// <summary>Hugging Face safetensors.</summary>
    Safetensors = 1,
    /// <summary>GGUF v2/v3 (llama.cpp).</summary>
    Gguf = 2,
    /// <summary>llama2.c "v0" F32 checkpoint.</summary>
    Llama2c = 3,
}

/// <summary>
/// One tensor of a file: its name, element type, shape and where its bytes lie in the file.
/// For ggml block-quantized tensors <see cref="DType"/> is <see cref="DType.Packed"/> and
/// <see cref="GgmlType"/> holds the ggml type id.
/// </summary>
/// <param name="Name">Tensor name as stored in the file.</param>
/// <param name="DType">Element type.</param>
/// <param name="Shape">Dimensions, outermost first (empty for a scalar).</param>
/// <param name="Offset">Absolute byte offset of the tensor's data in the file.</param>
/// <param name="Length">Length of the tensor's data in bytes.</param>
public sealed record TensorInfo(string Name, DType DType, long[] Shape, long Offset, long Length)
{
    /// <summary>ggml type id for GGUF tensors (also set for F32/F16 GGUF tensors), else -1.</summary>
    public int GgmlType { get; init; } = -1;

    /// <summary>Length of the innermost dimension (a "row"), used by row-aware context models.</summary>
    public long RowLength => Shape.Length == 0 ? 1 : Shape[^1];

    /// <summary>Number of elements: the product of <see cref="Shape"/> (1 for a scalar).</summary>
    public long ElementCount
    {
        get { long n = 1; foreach (var d in Shape) n *= d; return n; }
    }
}

/// <summary>
/// The in-memory model of "a tensor file": named tensors (with byte ranges into the file) plus
/// file-level metadata. Codecs and the CLI see only this, never one format's quirks. Bytes
/// outside every tensor's range (headers, padding, trailers) are preserved by the .tcz
/// container as opaque segments, which is what makes decompression byte-exact.
/// </summary>
public sealed class TensorFile
{
    /// <summary>The container format the file was read as.</summary>
    public required TensorFileFormat Format { get; init; }

    /// <summary>Length of the whole file in bytes.</summary>
    public required long FileLength { get; init; }

    /// <summary>Tensors in file order (ascending <see cref="TensorInfo.Offset"/>), non-overlapping.</summary>
    public required IReadOnlyList<TensorInfo> Tensors { get; init; }

    /// <summary>
    /// File-level metadata as strings (safetensors <c>__metadata__</c>, GGUF key/values rendered
    /// as text, llama2.c header fields). For display; the exact bytes are kept in the file itself.
    /// </summary>
    public IReadOnlyDictionary<string, string> Metadata { get; init; } = new Dictionary<string, string>();

    /// <summary>When a file that looked like a container did not parse and was read as opaque bytes
    /// (<see cref="TensorFileReader.Open(string, bool)"/> with <c>strict: false</c>): the parse error; else null.</summary>
    public string? OpaqueReason { get; init; }

    /// <summary>Tensors sorted by offset, with any gap/overlap already validated by the reader.</summary>
    public IEnumerable<TensorInfo> InFileOrder() => Tensors.OrderBy(t => t.Offset);
}
