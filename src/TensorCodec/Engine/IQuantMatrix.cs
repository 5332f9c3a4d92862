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
/// and weight-only rounding for evaluation).
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
    /// Rows outer, tokens inner: a packed row stays in L1 while the tokens use it; tokens in tiles
    /// of ~96 KB of codes so a tile stays in L2 while every row of the share passes over it.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public void MatMulGgml(byte* xq, int xStride, int n, float* y, int rowStart, int rowEnd)
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
