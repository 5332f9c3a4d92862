using System.Buffers.Binary;
using System.Text;

namespace TensorCodec.Formats;

/// <summary>
/// A quantization format for a whole rows × cols matrix (row-major float32 in, bytes out). Every
/// <see cref="IBlockFormat"/> is one (<see cref="BlockMatrixFormat"/>: the blocks, nothing else,
/// so ggml's bytes are reproduced exactly); formats whose storage is not a run of fixed-size
/// blocks (per-tensor scales, outlier columns, double quantization, GPTQ's transposed packing)
/// implement it directly and write a self-describing <see cref="MatrixHeader"/> first.
/// </summary>
public interface IMatrixFormat
{
    /// <summary>Registry name, e.g. "q4_K", "llm_int8", "int4_g128".</summary>
    string Name { get; }
    /// <summary>Row lengths must be a positive multiple of this.</summary>
    int RowMultiple { get; }
    /// <summary>Whether importance weights (one per column) change the result.</summary>
    bool UsesImportance { get; }
    /// <summary>Exact encoded size of <paramref name="src"/> (may scan it, e.g. for outlier columns).</summary>
    int GetEncodedLength(ReadOnlySpan<float> src, int nPerRow);
    /// <summary>Encodes <c>src.Length / nPerRow</c> rows; returns the bytes written.</summary>
    int Encode(ReadOnlySpan<float> src, int nPerRow, Span<byte> dst, ReadOnlySpan<float> importance = default);
    /// <summary>How many values <paramref name="src"/> decodes to (headerless formats need <paramref name="nPerRow"/>).</summary>
    long GetDecodedLength(ReadOnlySpan<byte> src, int nPerRow);
    /// <summary>Decodes all of <paramref name="src"/> into <paramref name="dst"/> (length from <see cref="GetDecodedLength"/>).</summary>
    void Decode(ReadOnlySpan<byte> src, int nPerRow, Span<float> dst);
}

/// <summary>A block format seen as a matrix format: the output is the blocks of every row, back to back.</summary>
internal sealed class BlockMatrixFormat(IBlockFormat format) : IMatrixFormat
{
    public IBlockFormat Format { get; } = format;
    public string Name => Format.Name;
    public int RowMultiple => Format.BlockSize;
    public bool UsesImportance => Format.UsesImportance;

    public int GetEncodedLength(ReadOnlySpan<float> src, int nPerRow)
    {
        MatrixFormatChecks.Shape(Name, src.Length, nPerRow, RowMultiple);
        return checked((int)((long)src.Length / Format.BlockSize * Format.BlockBytes));
    }

    public int Encode(ReadOnlySpan<float> src, int nPerRow, Span<byte> dst, ReadOnlySpan<float> importance = default)
    {
        int n = GetEncodedLength(src, nPerRow);
        Format.Quantize(src, dst[..n], nPerRow, importance);
        return n;
    }

    public long GetDecodedLength(ReadOnlySpan<byte> src, int nPerRow)
    {
        if (nPerRow <= 0 || nPerRow % Format.BlockSize != 0)
            throw new ArgumentException($"{Name}: row length {nPerRow} is not a positive multiple of the block size {Format.BlockSize}");
        long rowBytes = (long)nPerRow / Format.BlockSize * Format.BlockBytes;
        if (src.Length % rowBytes != 0)
            throw new InvalidDataException($"{Name}: {src.Length} bytes is not a whole number of rows of {rowBytes} bytes ({nPerRow} values)");
        return src.Length / rowBytes * nPerRow;
    }

    public void Decode(ReadOnlySpan<byte> src, int nPerRow, Span<float> dst)
    {
        long n = GetDecodedLength(src, nPerRow);
        Format.Dequantize(src, dst[..checked((int)n)]);
    }

    public override string ToString() => Name;
}

internal static class MatrixFormatChecks
{
    public static int Shape(string name, long count, int nPerRow, int multiple)
    {
        if (nPerRow <= 0 || nPerRow % multiple != 0)
            throw new ArgumentException($"{name}: row length {nPerRow} is not a positive multiple of {multiple}");
        if (count % nPerRow != 0)
            throw new ArgumentException($"{name}: {count} values is not a whole number of rows of {nPerRow}");
        return checked((int)(count / nPerRow));
    }
}

/// <summary>
/// Header of the self-describing matrix layouts, all little-endian:
/// <c>"TCQM" | version u8 (1) | name length u8 | name (ASCII) | rows u32 | cols u32</c>, then the
/// format's payload. Decoding checks the name, so a file cannot be read as the wrong format.
/// </summary>
internal static class MatrixHeader
{
    public const byte Version = 1;
    private static ReadOnlySpan<byte> Magic => "TCQM"u8;

    public static int Size(string name) => 4 + 1 + 1 + name.Length + 8;

    public static int Write(Span<byte> dst, string name, int rows, int cols)
    {
        Magic.CopyTo(dst);
        dst[4] = Version;
        dst[5] = (byte)name.Length;
        Encoding.ASCII.GetBytes(name, dst[6..]);
        int o = 6 + name.Length;
        BinaryPrimitives.WriteUInt32LittleEndian(dst[o..], (uint)rows);
        BinaryPrimitives.WriteUInt32LittleEndian(dst[(o + 4)..], (uint)cols);
        return o + 8;
    }

    /// <summary>Reads and checks a header; returns the payload offset.</summary>
    public static int Read(ReadOnlySpan<byte> src, string expectedName, out int rows, out int cols)
    {
        if (src.Length < 6 || !src[..4].SequenceEqual(Magic))
            throw new InvalidDataException($"{expectedName}: not a TensorCodec matrix (missing TCQM header)");
        if (src[4] != Version)
            throw new InvalidDataException($"{expectedName}: unsupported layout version {src[4]}");
        int len = src[5];
        if (src.Length < 6 + len + 8) throw new InvalidDataException($"{expectedName}: truncated header");
        string name = Encoding.ASCII.GetString(src.Slice(6, len));
        if (!string.Equals(name, expectedName, StringComparison.OrdinalIgnoreCase))
            throw new InvalidDataException($"data was written as '{name}', not '{expectedName}'");
        int o = 6 + len;
        uint r = BinaryPrimitives.ReadUInt32LittleEndian(src[o..]);
        uint c = BinaryPrimitives.ReadUInt32LittleEndian(src[(o + 4)..]);
        if (r > int.MaxValue || c > int.MaxValue || (long)r * c > int.MaxValue)
            throw new InvalidDataException($"{expectedName}: implausible shape {r}×{c}");
        rows = (int)r; cols = (int)c;
        return o + 8;
    }

    /// <summary>Checks a caller-given row length against the stored one (0 = accept any).</summary>
    public static void CheckRow(string name, int nPerRow, int cols)
    {
        if (nPerRow > 0 && nPerRow != cols)
            throw new ArgumentException($"{name}: data has rows of {cols} values, not {nPerRow}");
    }

    public static void Need(string name, ReadOnlySpan<byte> src, long bytes)
    {
        if (src.Length < bytes) throw new InvalidDataException($"{name}: truncated ({src.Length} bytes, need {bytes})");
    }
}
