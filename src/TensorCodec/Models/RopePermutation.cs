namespace TensorCodec.Models;

/// <summary>
/// The Q/K row permutation between Hugging Face's RoPE convention (rotate_half: dimension i
/// pairs with i + head_dim/2) and GGUF/llama.cpp's (adjacent pairs 2i, 2i+1). Within each head,
/// rows are viewed as [2, head_dim/2] and transposed to [head_dim/2, 2], exactly what
/// llama.cpp's converter does with reshape(n_head, 2, head_dim/2, in).swapaxes(1, 2).
/// </summary>
internal static class RopePermutation
{
    /// <summary>Source row for destination row <paramref name="row"/> (HF → GGUF).</summary>
    public static int SourceRow(int row, int headDim)
    {
        int half = headDim / 2;
        int head = row / headDim, r = row % headDim;
        int i = r / 2, j = r % 2;           // destination: [head, i, j]
        return head * headDim + j * half + i; // source: [head, j, i]
    }

    /// <summary>HF → GGUF: permutes the rows of a [rows, cols] row-major matrix.</summary>
    public static float[] ToGguf(ReadOnlySpan<float> w, int rows, int cols, int headCount) =>
        Permute(w, rows, cols, headCount, inverse: false);

    /// <summary>GGUF → HF, the inverse of <see cref="ToGguf"/>.</summary>
    public static float[] FromGguf(ReadOnlySpan<float> w, int rows, int cols, int headCount) =>
        Permute(w, rows, cols, headCount, inverse: true);

    static float[] Permute(ReadOnlySpan<float> w, int rows, int cols, int headCount, bool inverse)
    {
        if (headCount <= 0 || rows % headCount != 0 || (rows / headCount) % 2 != 0)
            throw new ArgumentException($"cannot permute {rows} rows for RoPE: need {headCount} heads of an even head size");
        if (w.Length != (long)rows * cols) throw new ArgumentException($"expected {(long)rows * cols} values, got {w.Length}");
        int headDim = rows / headCount;
        var result = new float[w.Length];
        for (int row = 0; row < rows; row++)
        {
            int src = SourceRow(row, headDim);
            int from = inverse ? row : src, to = inverse ? src : row;
            w.Slice(from * cols, cols).CopyTo(result.AsSpan(to * cols, cols));
        }
        return result;
    }
}
