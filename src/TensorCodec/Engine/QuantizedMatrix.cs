using System.Buffers;
using System.Runtime.CompilerServices;
using TensorCodec.Containers;
using TensorCodec.Formats;

namespace TensorCodec.Engine;

/// <summary>
/// Packed ggml weights with a fused dequantize-dot kernel (<see cref="QuantizedKernels"/>): the
/// input vector is quantized once to <see cref="Q8Activations"/> per call, then every weight row
/// is dotted with it straight from its blocks, never decoded to F32. Types without a kernel, and
/// CPUs without AVX2/FMA, use <see cref="BlockMatrix"/>.
/// </summary>
internal sealed unsafe class QuantizedMatrix : IGgmlProductMatrix
{
    enum Kernel : byte { Q8_0, Q4_0, Q4_K, Q6_K, Q5_K, Q3_K, Q2_K }

    readonly IBlockFormat _format;
    readonly Kernel _kernel;
    readonly byte* _data;
    readonly object? _owner; // keeps the mapping alive
    readonly int _rowBytes;

    QuantizedMatrix(IBlockFormat format, Kernel kernel, byte* data, int rows, int cols, object? owner)
    {
        _format = format; _kernel = kernel; _data = data; _owner = owner;
        Rows = rows; Cols = cols;
        _rowBytes = cols / format.BlockSize * format.BlockBytes;
    }

    /// <summary>A fused-kernel matrix for <paramref name="ggmlType"/>, or null when there is no kernel for it (or no AVX2).</summary>
    public static QuantizedMatrix? TryCreate(int ggmlType, byte* data, int rows, int cols, object? owner)
    {
        if (!QuantizedKernels.IsSupported || BlockFormats.FromGgmlType(ggmlType) is not { } f) return null;
        Kernel? k = ggmlType switch
        {
            GgmlTypes.Q8_0 => Kernel.Q8_0,
            GgmlTypes.Q4_0 => Kernel.Q4_0,
            GgmlTypes.Q4_K => Kernel.Q4_K,
            GgmlTypes.Q6_K => Kernel.Q6_K,
            GgmlTypes.Q5_K => Kernel.Q5_K,
            GgmlTypes.Q3_K => Kernel.Q3_K,
            GgmlTypes.Q2_K => Kernel.Q2_K,
            _ => null,
        };
        if (k is null || cols % f.BlockSize != 0 || cols % Q8Activations.Block != 0) return null;
        return new QuantizedMatrix(f, k.Value, data, rows, cols, owner);
    }

    /// <summary>Whether <paramref name="ggmlType"/> runs on a fused kernel on this machine.</summary>
    public static bool HasKernel(int ggmlType) => QuantizedKernels.IsSupported &&
        ggmlType is GgmlTypes.Q8_0 or GgmlTypes.Q4_0 or GgmlTypes.Q4_K or GgmlTypes.Q6_K
            or GgmlTypes.Q5_K or GgmlTypes.Q3_K or GgmlTypes.Q2_K;

    /// <summary>Batches at least this large decode tiles to F32 instead of running the fused kernel per token.</summary>
    public const int MinDecodedBatch = 4;

    public int Rows { get; }
    public int Cols { get; }
    public string TypeName => _format.Name;
    public long ByteSize => (long)Rows * _rowBytes;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    float Dot(int row, byte* xq)
    {
        byte* w = _data + (long)row * _rowBytes;
        return _kernel switch
        {
            Kernel.Q8_0 => QuantizedKernels.DotQ8_0(w, xq, Cols),
            Kernel.Q4_0 => QuantizedKernels.DotQ4_0(w, xq, Cols),
            Kernel.Q4_K => QuantizedKernels.DotQ4_K(w, xq, Cols),
            Kernel.Q6_K => QuantizedKernels.DotQ6_K(w, xq, Cols),
            Kernel.Q5_K => QuantizedKernels.DotQ5_K(w, xq, Cols),
            Kernel.Q3_K => QuantizedKernels.DotQ3_K(w, xq, Cols),
            _ => QuantizedKernels.DotQ2_K(w, xq, Cols),
        };
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public void MatVec(ReadOnlySpan<float> x, Span<float> y, int rowStart, int rowEnd)
    {
        if (x.Length < Cols || y.Length < rowEnd || rowStart < 0) throw new ArgumentException("x or y is too short");
        int bytes = Q8Activations.RowBytes(Cols);
        byte[]? rented = null;
        // Each worker quantizes x for itself: Cols operations against its share of Rows×Cols.
        Span<byte> xq = bytes <= 16384 ? stackalloc byte[bytes] : (rented = ArrayPool<byte>.Shared.Rent(bytes));
        fixed (float* px = x)
        fixed (byte* pq = xq)
        fixed (float* py = y)
        {
            Q8Activations.Quantize(px, Cols, pq);
            for (int r = rowStart; r < rowEnd; r++) py[r] = Dot(r, pq);
        }
        if (rented is not null) ArrayPool<byte>.Shared.Return(rented);
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public void MatMul(ReadOnlySpan<float> x, int n, Span<float> y, int rowStart, int rowEnd)
    {
        if ((long)n * Cols > x.Length || (long)n * Rows > y.Length) throw new ArgumentException("x or y is too short for n rows");
        // A batch amortises one decode of each row over n tokens and then runs the register-blocked
        // F32 GEMM, which beats n fused dots (each re-decodes the row) from n = 4 on: measured on
        // bard-3m, 8,000+ vs 1,400 prompt tokens/s. It is also weight-only rounding, so evaluation
        // (which runs batches) measures the format itself, not the activation codes.
        if (n >= MinDecodedBatch) { WeightMatrix.MatMulByDecodedTiles(this, x, n, y, rowStart, rowEnd); return; }
        int bytes = Q8Activations.RowBytes(Cols);
        byte[] rented = ArrayPool<byte>.Shared.Rent(n * bytes);
        try
        {
            fixed (float* px = x)
            fixed (byte* pq = rented)
            fixed (float* py = y)
            {
                for (int t = 0; t < n; t++) Q8Activations.Quantize(px + (long)t * Cols, Cols, pq + (long)t * bytes);
                // Row outer, tokens inner: the packed row stays in L1 while all n tokens use it.
                for (int r = rowStart; r < rowEnd; r++)
                    for (int t = 0; t < n; t++)
                        py[(long)t * Rows + r] = Dot(r, pq + (long)t * bytes);
            }
        }
        finally { ArrayPool<byte>.Shared.Return(rented); }
    }

    /// <summary>ggml's activation type for this weight type (what <see cref="MatMulGgml"/> takes).</summary>
    public GgmlActivation Activation => _kernel is Kernel.Q8_0 or Kernel.Q4_0 ? GgmlActivation.Q8_0 : GgmlActivation.Q8_K;

    /// <summary>Whether <see cref="MatMulGgml"/> can run here (AVX2 and FMA).</summary>
    public static bool HasGgmlGemm => QuantizedGemm.IsSupported;

    public bool CanMatMulGgml => HasGgmlGemm;

    /// <summary>
    /// Bytes of activation codes per token tile of <see cref="MatMulGgml"/>; each tile re-decodes every row's
    /// scales, so a tile is as large as L2 comfortably holds beside the rows (1 MB L2 on the Zen 4 this was
    /// measured on: 256 KB tiles 1.03–1.18× of 96 KB ones, 9–28 KB tiles 0.5–0.85×). A field so the bench can sweep it.
    /// </summary>
    internal static int TileBytes = 262144;

    /// <summary>
    /// Y[t][r] = W[r]·X[t] for t &lt; n, r in [rowStart, rowEnd), with X already in ggml's activation
    /// layout (<see cref="GgmlQ8"/>, <see cref="Activation"/>, <paramref name="xStride"/> bytes per token):
    /// llama.cpp's arithmetic. Token tiles outer, then rows, then tokens in fours, so a packed row stays
    /// in L1 while the tile's tokens use it and the tile's codes stay in L2 while the rows pass.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public void MatMulGgml(byte* xq, int xStride, int n, float* y, int rowStart, int rowEnd)
    {
        float* r4 = stackalloc float[4];
        bool wide = QuantizedGemm512.IsSupported; // q3_K only: 64 codes per multiply-add, bit-identical results
        int scaleBytes = QuantizedGemm.RowScalesBytes(Cols);
        byte[]? rented = null;
        Span<byte> scales = scaleBytes <= 16384 ? stackalloc byte[scaleBytes] : (rented = ArrayPool<byte>.Shared.Rent(scaleBytes));
        fixed (byte* rs = scales)
        {
            // Tokens in tiles of TileBytes of codes, so a tile stays in L2 while every row of the share passes over it.
            int tile = Math.Max(4, TileBytes / xStride & ~3);
            for (int t0 = 0; t0 < n; t0 += tile)
            for (int r = rowStart; r < rowEnd; r++)
            {
                byte* w = _data + (long)r * _rowBytes;
                QuantizedGemm.DecodeRowScales(_format.GgmlTypeId, w, Cols, rs);
                for (int t = t0; t < Math.Min(n, t0 + tile); t += 4)
                {
                    // A short group repeats its last token; the extra results are dropped.
                    byte* x0 = xq + (long)t * xStride;
                    byte* x1 = xq + (long)Math.Min(t + 1, n - 1) * xStride;
                    byte* x2 = xq + (long)Math.Min(t + 2, n - 1) * xStride;
                    byte* x3 = xq + (long)Math.Min(t + 3, n - 1) * xStride;
                    switch (_kernel)
                    {
                        case Kernel.Q8_0: QuantizedGemm.Q8_0(w, rs, Cols, x0, x1, x2, x3, r4); break;
                        case Kernel.Q4_0: QuantizedGemm.Q4_0(w, rs, Cols, x0, x1, x2, x3, r4); break;
                        case Kernel.Q4_K: QuantizedGemm.Q4_K(w, rs, Cols, x0, x1, x2, x3, r4); break;
                        case Kernel.Q6_K: QuantizedGemm.Q6_K(w, rs, Cols, x0, x1, x2, x3, r4); break;
                        case Kernel.Q5_K: QuantizedGemm.Q5_K(w, rs, Cols, x0, x1, x2, x3, r4); break;
                        case Kernel.Q3_K when wide: QuantizedGemm512.Q3_K(w, rs, Cols, x0, x1, x2, x3, r4); break;
                        case Kernel.Q3_K: QuantizedGemm.Q3_K(w, rs, Cols, x0, x1, x2, x3, r4); break;
                        default: QuantizedGemm.Q2_K(w, rs, Cols, x0, x1, x2, x3, r4); break;
                    }
                    int m = Math.Min(4, n - t);
                    for (int k = 0; k < m; k++) y[(long)(t + k) * Rows + r] = r4[k];
                }
            }
        }
        if (rented is not null) ArrayPool<byte>.Shared.Return(rented);
    }

    public void ReadRow(int row, Span<float> destination) =>
        _format.Dequantize(new ReadOnlySpan<byte>(_data + (long)row * _rowBytes, _rowBytes), destination[..Cols]);
}
