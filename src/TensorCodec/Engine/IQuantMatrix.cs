using System.Buffers;
using System.Runtime.CompilerServices;
using TensorCodec.Containers;
using TensorCodec.Formats;

namespace TensorCodec.Engine;

/// <summary>
/// A packed matrix whose products can take activations already in ggml's <c>vec_dot_type</c>
/// layout (<see cref="GgmlQ8"/>): what <see cref="LinearArithmetic.LikeLlamaCpp"/> sessions hand
/// to the integer kernels.
/// </summary>
internal unsafe interface IGgmlProductMatrix : IWeightMatrix
{
    /// <summary>ggml's activation type for this weight type (the layout <see cref="MatMulGgml"/> takes).</summary>
    GgmlActivation Activation { get; }

    /// <summary>Whether <see cref="MatMulGgml"/> runs on this machine now.</summary>
    bool CanMatMulGgml { get; }

    /// <summary>Y[t][r] = W[r]·X[t] for t &lt; n, r in [rowStart, rowEnd), X in <see cref="Activation"/>'s layout, <paramref name="xStride"/> bytes per token.</summary>
    void MatMulGgml(byte* xq, int xStride, int n, float* y, int rowStart, int rowEnd);
}

/// <summary>
/// Packed i-quant (iq1_s … iq4_xs) and q1_0/q2_0 weights on the fused kernels of
/// <see cref="IQuantKernels"/>: a mat-vec quantizes the input once to ggml's vec_dot_type
/// (q8_K, or q8_0 for iq4_nl, q1_0 and q2_0) and dots every row with it straight from its blocks.
/// The kernels have a scalar form, so this runs on any CPU. Batches of
/// <see cref="QuantizedMatrix.MinDecodedBatch"/> tokens or more decode tiles of rows to F32 and run
/// the F32 GEMM, as <see cref="QuantizedMatrix"/> does (faster there, measured in BENCHMARKS.md §3,
/// and weight-only rounding for evaluation); under llama.cpp's arithmetic (<see cref="MatMulGgml"/>)
/// they do the same with the activations' rounded values.
/// </summary>
internal sealed unsafe class IQuantMatrix : IGgmlProductMatrix
{
    readonly delegate*<byte*, byte*, int, float> _dot;
    readonly IBlockFormat _format;
    readonly byte* _data;
    readonly object? _owner; // keeps the mapping alive
    readonly int _rowBytes;

    IQuantMatrix(IBlockFormat format, delegate*<byte*, byte*, int, float> dot, GgmlActivation activation, byte* data, int rows, int cols, object? owner)
    {
        _format = format; _dot = dot; Activation = activation; _data = data; _owner = owner;
        Rows = rows; Cols = cols;
        _rowBytes = cols / format.BlockSize * format.BlockBytes;
    }

    /// <summary>The kernel and activation type for <paramref name="ggmlType"/>, or null when it has none here.</summary>
    static (nint Dot, GgmlActivation Activation)? KernelFor(int ggmlType) => ggmlType switch
    {
        GgmlTypes.IQ2_XXS => ((nint)(delegate*<byte*, byte*, int, float>)&IQuantKernels.DotIQ2_XXS, GgmlActivation.Q8_K),
        GgmlTypes.IQ2_XS => ((nint)(delegate*<byte*, byte*, int, float>)&IQuantKernels.DotIQ2_XS, GgmlActivation.Q8_K),
        GgmlTypes.IQ2_S => ((nint)(delegate*<byte*, byte*, int, float>)&IQuantKernels.DotIQ2_S, GgmlActivation.Q8_K),
        GgmlTypes.IQ3_XXS => ((nint)(delegate*<byte*, byte*, int, float>)&IQuantKernels.DotIQ3_XXS, GgmlActivation.Q8_K),
        GgmlTypes.IQ3_S => ((nint)(delegate*<byte*, byte*, int, float>)&IQuantKernels.DotIQ3_S, GgmlActivation.Q8_K),
        GgmlTypes.IQ1_S => ((nint)(delegate*<byte*, byte*, int, float>)&IQuantKernels.DotIQ1_S, GgmlActivation.Q8_K),
        GgmlTypes.IQ1_M => ((nint)(delegate*<byte*, byte*, int, float>)&IQuantKernels.DotIQ1_M, GgmlActivation.Q8_K),
        GgmlTypes.IQ4_XS => ((nint)(delegate*<byte*, byte*, int, float>)&IQuantKernels.DotIQ4_XS, GgmlActivation.Q8_K),
        GgmlTypes.IQ4_NL => ((nint)(delegate*<byte*, byte*, int, float>)&IQuantKernels.DotIQ4_NL, GgmlActivation.Q8_0),
        GgmlTypes.Q1_0 => ((nint)(delegate*<byte*, byte*, int, float>)&IQuantKernels.DotQ1_0, GgmlActivation.Q8_0),
        GgmlTypes.Q2_0 => ((nint)(delegate*<byte*, byte*, int, float>)&IQuantKernels.DotQ2_0, GgmlActivation.Q8_0),
        _ => null,
    };

    /// <summary>Tests set this (before loading a model) to get the decode-a-row <see cref="BlockMatrix"/> for these types instead.</summary>
    internal static bool Disabled;

    /// <summary>Whether <paramref name="ggmlType"/> has a kernel here (any CPU: the kernels have a scalar form).</summary>
    public static bool HasKernel(int ggmlType) => KernelFor(ggmlType) is not null;

    /// <summary>A fused-kernel matrix for <paramref name="ggmlType"/>, or null without a kernel or when rows are not whole activation blocks.</summary>
    public static IQuantMatrix? TryCreate(int ggmlType, byte* data, int rows, int cols, object? owner)
    {
        if (Disabled) return null;
        if (KernelFor(ggmlType) is not { } k || BlockFormats.FromGgmlType(ggmlType) is not { } f) return null;
        if (cols <= 0 || cols % f.BlockSize != 0 || cols % GgmlActivations.BlockOf(k.Activation) != 0) return null;
        return new IQuantMatrix(f, (delegate*<byte*, byte*, int, float>)k.Dot, k.Activation, data, rows, cols, owner);
    }

    public int Rows { get; }
    public int Cols { get; }
    public string TypeName => _format.Name;
    public long ByteSize => (long)Rows * _rowBytes;
    public GgmlActivation Activation { get; }
    public bool CanMatMulGgml => true;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    float Dot(int row, byte* xq) => _dot(_data + (long)row * _rowBytes, xq, Cols);

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public void MatVec(ReadOnlySpan<float> x, Span<float> y, int rowStart, int rowEnd)
    {
        if (x.Length < Cols || y.Length < rowEnd || rowStart < 0) throw new ArgumentException("x or y is too short");
        int bytes = GgmlQ8.RowBytes(Activation, Cols);
        byte[]? rented = null;
        // Each worker quantizes x for itself: Cols operations against its share of Rows×Cols.
        Span<byte> xq = bytes <= 16384 ? stackalloc byte[bytes] : (rented = ArrayPool<byte>.Shared.Rent(bytes));
        fixed (float* px = x)
        fixed (byte* pq = xq)
        fixed (float* py = y)
        {
            GgmlQ8.Quantize(Activation, px, Cols, pq);
            for (int r = rowStart; r < rowEnd; r++) py[r] = Dot(r, pq);
        }
        if (rented is not null) ArrayPool<byte>.Shared.Return(rented);
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public void MatMul(ReadOnlySpan<float> x, int n, Span<float> y, int rowStart, int rowEnd)
    {
        if ((long)n * Cols > x.Length || (long)n * Rows > y.Length) throw new ArgumentException("x or y is too short for n rows");
        if (n >= QuantizedMatrix.MinDecodedBatch) { WeightMatrix.MatMulByDecodedTiles(this, x, n, y, rowStart, rowEnd); return; }
        int stride = GgmlQ8.RowBytes(Activation, Cols);
        byte[] rented = ArrayPool<byte>.Shared.Rent(n * stride);
        try
        {
            fixed (float* px = x)
            fixed (byte* pq = rented)
            fixed (float* py = y)
            {
                for (int t = 0; t < n; t++) GgmlQ8.Quantize(Activation, px + (long)t * Cols, Cols, pq + (long)t * stride);
                MatMulGgml(pq, stride, n, py, rowStart, rowEnd);
            }
        }
        finally { ArrayPool<byte>.Shared.Return(rented); }
    }

    /// <summary>
    /// llama.cpp's arithmetic: Σ ŵ·x̂ with x̂ the activation codes' values. Fewer than
    /// <see cref="QuantizedMatrix.MinDecodedBatch"/> tokens run the fused kernel per token; a batch turns
    /// the codes back into their F32 values (<see cref="GgmlQ8Values"/>) and runs decoded weight tiles
    /// through the F32 GEMM — the same rounding up to summation order, and 1.1–5× faster from 4 tokens
    /// (BENCHMARKS.md §2, "batch" columns), because a row is decoded once for all tokens instead of per
    /// token. Each call (each worker) decodes the n activation rows itself: n·Cols operations against its
    /// share of Rows·Cols·n.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public void MatMulGgml(byte* xq, int xStride, int n, float* y, int rowStart, int rowEnd)
    {
        if (n >= QuantizedMatrix.MinDecodedBatch) { MatMulGgmlByDecodedTiles(xq, xStride, n, y, rowStart, rowEnd); return; }
        MatMulGgmlFused(xq, xStride, n, y, rowStart, rowEnd);
    }

    /// <summary>The batch path of <see cref="MatMulGgml"/>: activation values in F32, weight tiles decoded, F32 GEMM.</summary>
    internal void MatMulGgmlByDecodedTiles(byte* xq, int xStride, int n, float* y, int rowStart, int rowEnd)
    {
        float[] x = ArrayPool<float>.Shared.Rent(n * Cols);
        try
        {
            fixed (float* px = x)
                for (int t = 0; t < n; t++) GgmlQ8Values.Dequantize(Activation, xq + (long)t * xStride, Cols, px + (long)t * Cols);
            WeightMatrix.MatMulByDecodedTiles(this, x.AsSpan(0, n * Cols), n, new Span<float>(y, n * Rows), rowStart, rowEnd);
        }
        finally { ArrayPool<float>.Shared.Return(x); }
    }

    /// <summary>
    /// The per-token path of <see cref="MatMulGgml"/> (any n): rows outer, tokens inner, so a packed row
    /// stays in L1 while the tokens use it; tokens in tiles of ~96 KB of codes so a tile stays in L2
    /// while every row of the share passes over it.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    internal void MatMulGgmlFused(byte* xq, int xStride, int n, float* y, int rowStart, int rowEnd)
    {
        int tile = Math.Max(1, 98304 / xStride);
        for (int t0 = 0; t0 < n; t0 += tile)
        {
            int t1 = Math.Min(n, t0 + tile);
            for (int r = rowStart; r < rowEnd; r++)
            {
                byte* w = _data + (long)r * _rowBytes;
                for (int t = t0; t < t1; t++) y[(long)t * Rows + r] = _dot(w, xq + (long)t * xStride, Cols);
            }
        }
    }

    public void ReadRow(int row, Span<float> destination) =>
        _format.Dequantize(new ReadOnlySpan<byte>(_data + (long)row * _rowBytes, _rowBytes), destination[..Cols]);
}
