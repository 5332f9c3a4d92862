namespace TensorCodec.Formats;

/// <summary>
/// A block quantization format: fixed-size blocks of <see cref="BlockSize"/> values stored in
/// <see cref="BlockBytes"/> bytes. ggml formats reproduce ggml's <c>ggml_quantize_chunk</c> and
/// <c>to_float</c> bit for bit.
/// </summary>
public interface IBlockFormat
{
    /// <summary>ggml's lower-case type name, e.g. "q4_0", "q4_K", "iq4_xs".</summary>
    string Name { get; }
    /// <summary>ggml's enum value, or -1 for formats ggml does not have.</summary>
    int GgmlTypeId { get; }
    /// <summary>Values per block.</summary>
    int BlockSize { get; }
    /// <summary>Bytes per block.</summary>
    int BlockBytes { get; }
    /// <summary>Whether importance weights change the result (otherwise they are ignored).</summary>
    bool UsesImportance { get; }

    /// <summary>
    /// Quantizes <c>src.Length / nPerRow</c> rows. <paramref name="importance"/> is empty or holds
    /// one weight per column (length <paramref name="nPerRow"/>), like a llama.cpp imatrix entry.
    /// </summary>
    void Quantize(ReadOnlySpan<float> src, Span<byte> dst, int nPerRow, ReadOnlySpan<float> importance = default);

    /// <summary>Decodes whole blocks: <c>dst.Length / BlockSize</c> blocks are read from <paramref name="src"/>.</summary>
    void Dequantize(ReadOnlySpan<byte> src, Span<float> dst);
}

/// <summary>Shared argument checks and the per-row loop.</summary>
internal abstract class BlockFormatBase : IBlockFormat
{
    public abstract string Name { get; }
    public abstract int GgmlTypeId { get; }
    public abstract int BlockSize { get; }
    public abstract int BlockBytes { get; }
    public virtual bool UsesImportance => false;
    /// <summary>Whether quantizing refuses to run without importance weights (ggml's iq2_xxs, iq2_xs, iq1_s).</summary>
    public virtual bool RequiresImportance => false;

    /// <summary>Bytes taken by <paramref name="nValues"/> values (a multiple of the block size).</summary>
    public long RowBytes(long nValues) => nValues / BlockSize * BlockBytes;

    public void Quantize(ReadOnlySpan<float> src, Span<byte> dst, int nPerRow, ReadOnlySpan<float> importance = default)
    {
        if (nPerRow <= 0 || nPerRow % BlockSize != 0)
            throw new ArgumentException($"{Name}: row length {nPerRow} is not a positive multiple of {BlockSize}", nameof(nPerRow));
        if (src.Length % nPerRow != 0)
            throw new ArgumentException($"{Name}: {src.Length} values is not a whole number of rows of {nPerRow}", nameof(src));
        if (!importance.IsEmpty && importance.Length != nPerRow)
            throw new ArgumentException($"{Name}: importance needs one weight per column ({nPerRow}), got {importance.Length}", nameof(importance));
        int rows = src.Length / nPerRow;
        int rowBytes = nPerRow / BlockSize * BlockBytes;
        if (dst.Length < (long)rows * rowBytes)
            throw new ArgumentException($"{Name}: destination needs {(long)rows * rowBytes} bytes", nameof(dst));
        for (int r = 0; r < rows; r++)
            QuantizeRow(src.Slice(r * nPerRow, nPerRow), dst.Slice(r * rowBytes, rowBytes), importance);
    }

    public void Dequantize(ReadOnlySpan<byte> src, Span<float> dst)
    {
        if (dst.Length % BlockSize != 0)
            throw new ArgumentException($"{Name}: {dst.Length} values is not a whole number of blocks of {BlockSize}", nameof(dst));
        long need = (long)dst.Length / BlockSize * BlockBytes;
        if (src.Length < need)
            throw new ArgumentException($"{Name}: source needs {need} bytes", nameof(src));
        DequantizeBlocks(src[..(int)need], dst);
    }

    /// <summary>One row; <paramref name="importance"/> is empty or one weight per value of the row.</summary>
    protected abstract void QuantizeRow(ReadOnlySpan<float> x, Span<byte> y, ReadOnlySpan<float> importance);

    protected abstract void DequantizeBlocks(ReadOnlySpan<byte> src, Span<float> dst);

    public override string ToString() => Name;
}
