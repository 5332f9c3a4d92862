using System.Buffers;
using System.Numerics.Tensors;
using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using TensorCodec.Formats;
using TensorCodec.Numerics;

namespace TensorCodec.Engine;

/// <summary>
/// A [Rows][Cols] weight matrix in whatever storage it came in (F32, BF16, F16 today; packed
/// quantized blocks later). Products are computed on the stored form, so a block format plugs in
/// by implementing a fused dequantize-dot kernel here, never by expanding the model to F32.
/// Methods work on a row range so the caller can split rows across threads.
/// </summary>
internal interface IWeightMatrix
{
    int Rows { get; }
    int Cols { get; }
    /// <summary>Storage type name for reports ("f32", "bf16", "q4_K", …).</summary>
    string TypeName { get; }
    long ByteSize { get; }

    /// <summary>y[r] = W[r]·x for r in [rowStart, rowEnd). <paramref name="y"/> has length Rows.</summary>
    void MatVec(ReadOnlySpan<float> x, Span<float> y, int rowStart, int rowEnd);

    /// <summary>
    /// Y[t][r] = W[r]·X[t] for t &lt; n, r in [rowStart, rowEnd). X is [n][Cols], Y is [n][Rows].
    /// Each weight row is read (and decoded) once for all n inputs, which is what makes prompt
    /// batches faster than n matrix-vector products.
    /// </summary>
    void MatMul(ReadOnlySpan<float> x, int n, Span<float> y, int rowStart, int rowEnd);

    /// <summary>Decodes one row to F32 (embedding lookup).</summary>
    void ReadRow(int row, Span<float> destination);
}

/// <summary>Row-major F32 weights at a fixed address (memory-mapped file or pinned array).</summary>
internal sealed unsafe class F32Matrix(float* data, int rows, int cols, object? owner = null) : IWeightMatrix
{
    readonly object? _owner = owner; // keeps the mapping or pinned array alive
    public int Rows => rows;
    public int Cols => cols;
    public string TypeName => "f32";
    public long ByteSize => (long)rows * cols * 4;

    ReadOnlySpan<float> Row(int r) => new(data + (long)r * cols, cols);

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public void MatVec(ReadOnlySpan<float> x, Span<float> y, int rowStart, int rowEnd)
    {
        if (x.Length < cols || y.Length < rowEnd || rowStart < 0) throw new ArgumentException("x or y is too short");
        fixed (float* px = x, py = y)
            Gemm.MatVec(data + (long)rowStart * cols, rowEnd - rowStart, cols, px, py + rowStart);
    }

    public void MatMul(ReadOnlySpan<float> x, int n, Span<float> y, int rowStart, int rowEnd)
    {
        if ((long)n * cols > x.Length || (long)n * rows > y.Length) throw new ArgumentException("x or y is too short for n rows");
        fixed (float* px = x, py = y)
            Gemm.RowsTimesTokens(data + (long)rowStart * cols, rowEnd - rowStart, cols, px, n, py + rowStart, rows);
    }

    public void ReadRow(int row, Span<float> destination) => Row(row).CopyTo(destination);
}

/// <summary>
/// Row-major BF16 weights, kept as BF16: the dot product widens on the fly (a BF16 is the top
/// half of an F32, so widening is a 16-bit shift), halving the memory traffic of F32.
/// </summary>
internal sealed unsafe class Bf16Matrix(ushort* data, int rows, int cols, object? owner = null) : IWeightMatrix
{
    readonly object? _owner = owner;
    public int Rows => rows;
    public int Cols => cols;
    public string TypeName => "bf16";
    public long ByteSize => (long)rows * cols * 2;

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public void MatVec(ReadOnlySpan<float> x, Span<float> y, int rowStart, int rowEnd)
    {
        fixed (float* px = x)
            for (int r = rowStart; r < rowEnd; r++) y[r] = Dot(data + (long)r * cols, px, cols);
    }

    public void MatMul(ReadOnlySpan<float> x, int n, Span<float> y, int rowStart, int rowEnd) =>
        WeightMatrix.MatMulByDecodedTiles(this, x, n, y, rowStart, rowEnd);

    public void ReadRow(int row, Span<float> destination) => Widen(new ReadOnlySpan<ushort>(data + (long)row * cols, cols), destination);

    public static void Widen(ReadOnlySpan<ushort> src, Span<float> dst)
    {
        int i = 0;
        fixed (ushort* s = src)
        fixed (float* d = dst)
        {
            if (Simd.AllowAvx2 && Vector256.IsHardwareAccelerated)
                for (; i + 16 <= src.Length; i += 16)
                {
                    var (lo, hi) = Vector256.Widen(Vector256.Load(s + i));
                    Vector256.ShiftLeft(lo, 16).AsSingle().Store(d + i);
                    Vector256.ShiftLeft(hi, 16).AsSingle().Store(d + i + 8);
                }
            for (; i < src.Length; i++) d[i] = BitConverter.Int32BitsToSingle(s[i] << 16);
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static float Dot(ushort* w, float* x, int n)
    {
        int i = 0;
        float sum = 0;
        if (Simd.AllowAvx2 && Vector256.IsHardwareAccelerated)
        {
            Vector256<float> a0 = default, a1 = default;
            for (; i + 16 <= n; i += 16)
            {
                var (lo, hi) = Vector256.Widen(Vector256.Load(w + i));
                a0 = Vector256.FusedMultiplyAdd(Vector256.ShiftLeft(lo, 16).AsSingle(), Vector256.Load(x + i), a0);
                a1 = Vector256.FusedMultiplyAdd(Vector256.ShiftLeft(hi, 16).AsSingle(), Vector256.Load(x + i + 8), a1);
            }
            sum = Vector256.Sum(a0 + a1);
        }
        for (; i < n; i++) sum += BitConverter.Int32BitsToSingle(w[i] << 16) * x[i];
        return sum;
    }
}

/// <summary>Row-major IEEE half weights, kept as F16 and converted per row chunk (F16C).</summary>
internal sealed unsafe class F16Matrix(Half* data, int rows, int cols, object? owner = null) : IWeightMatrix
{
    readonly object? _owner = owner;
    const int Chunk = 512;
    public int Rows => rows;
    public int Cols => cols;
    public string TypeName => "f16";
    public long ByteSize => (long)rows * cols * 2;

    public void MatVec(ReadOnlySpan<float> x, Span<float> y, int rowStart, int rowEnd)
    {
        Span<float> buf = stackalloc float[Chunk];
        for (int r = rowStart; r < rowEnd; r++)
        {
            var row = new ReadOnlySpan<Half>(data + (long)r * cols, cols);
            float sum = 0;
            for (int c = 0; c < cols; c += Chunk)
            {
                int len = Math.Min(Chunk, cols - c);
                TensorPrimitives.ConvertToSingle(row.Slice(c, len), buf[..len]);
                sum += TensorPrimitives.Dot(buf[..len], x.Slice(c, len));
            }
            y[r] = sum;
        }
    }

    public void MatMul(ReadOnlySpan<float> x, int n, Span<float> y, int rowStart, int rowEnd) =>
        WeightMatrix.MatMulByDecodedTiles(this, x, n, y, rowStart, rowEnd);

    public void ReadRow(int row, Span<float> destination) =>
        TensorPrimitives.ConvertToSingle(new ReadOnlySpan<Half>(data + (long)row * cols, cols), destination[..cols]);
}

/// <summary>
/// Block-quantized weights (any ggml block format), kept packed. This first version decodes a row
/// (MatVec) or a tile of rows (MatMul) with the format's SIMD dequantizer and runs the F32 dot.
/// It is the generic path: types with a fused kernel use <see cref="QuantizedMatrix"/> instead.
/// </summary>
internal sealed unsafe class BlockMatrix : IWeightMatrix
{
    readonly IBlockFormat _format;
    readonly byte* _data;
    readonly object? _owner;
    readonly int _rowBytes;

    public BlockMatrix(IBlockFormat format, byte* data, int rows, int cols, object? owner = null)
    {
        if (cols % format.BlockSize != 0)
            throw new InvalidDataException($"row length {cols} is not a multiple of the {format.Name} block size {format.BlockSize}");
        _format = format; _data = data; _owner = owner;
        Rows = rows; Cols = cols;
        _rowBytes = cols / format.BlockSize * format.BlockBytes;
    }

    public int Rows { get; }
    public int Cols { get; }
    public string TypeName => _format.Name;
    public long ByteSize => (long)Rows * _rowBytes;

    public void MatVec(ReadOnlySpan<float> x, Span<float> y, int rowStart, int rowEnd)
    {
        float[]? rented = null;
        Span<float> w = Cols <= 8192 ? stackalloc float[Cols] : (rented = ArrayPool<float>.Shared.Rent(Cols)).AsSpan(0, Cols);
        x = x[..Cols];
        for (int r = rowStart; r < rowEnd; r++)
        {
            ReadRow(r, w);
            y[r] = TensorPrimitives.Dot(w, x);
        }
        if (rented is not null) ArrayPool<float>.Shared.Return(rented);
    }

    public void MatMul(ReadOnlySpan<float> x, int n, Span<float> y, int rowStart, int rowEnd) =>
        WeightMatrix.MatMulByDecodedTiles(this, x, n, y, rowStart, rowEnd);

    public void ReadRow(int row, Span<float> destination) =>
        _format.Dequantize(new ReadOnlySpan<byte>(_data + (long)row * _rowBytes, _rowBytes), destination[..Cols]);
}

/// <summary>Builds weight matrices over raw tensor bytes.</summary>
internal static unsafe class WeightMatrix
{
    /// <summary>
    /// A matrix over <paramref name="rows"/>×<paramref name="cols"/> elements of <paramref name="dtype"/>
    /// at <paramref name="data"/>. With <paramref name="widenToF32"/> the data is copied to an F32 array.
    /// </summary>
    public static IWeightMatrix Create(DType dtype, byte* data, int rows, int cols, object? owner, bool widenToF32 = false, int ggmlType = -1)
    {
        if (widenToF32 && dtype != DType.F32)
        {
            var arr = GC.AllocateUninitializedArray<float>(checked(rows * cols), pinned: true);
            var m = Create(dtype, data, rows, cols, owner, false, ggmlType);
            for (int r = 0; r < rows; r++) m.ReadRow(r, arr.AsSpan(r * cols, cols));
            fixed (float* p = arr) return new F32Matrix(p, rows, cols, arr); // pinned: the address stays valid
        }
        return dtype switch
        {
            DType.F32 => new F32Matrix((float*)data, rows, cols, owner),
            DType.BF16 => new Bf16Matrix((ushort*)data, rows, cols, owner),
            DType.F16 => new F16Matrix((Half*)data, rows, cols, owner),
            // A fused kernel where one exists for the type, else decode rows and use the F32 kernel.
            DType.Packed when QuantizedMatrix.TryCreate(ggmlType, data, rows, cols, owner) is { } q => q,
            DType.Packed when IQuantMatrix.TryCreate(ggmlType, data, rows, cols, owner) is { } iq => iq,
            DType.Packed when BlockFormats.FromGgmlType(ggmlType) is { } f => new BlockMatrix(f, data, rows, cols, owner),
            _ => throw new NotSupportedException($"weight type {dtype} is not supported by the engine yet"),
        };
    }

    /// <summary>
    /// MatMul for any storage: decode a tile of rows to F32 (once for all n tokens), then run the
    /// F32 kernel on it. Block formats can use this until they have a fused kernel of their own.
    /// </summary>
    public static void MatMulByDecodedTiles(IWeightMatrix m, ReadOnlySpan<float> x, int n, Span<float> y, int rowStart, int rowEnd)
    {
        int cols = m.Cols, rows = m.Rows;
        if ((long)n * cols > x.Length || (long)n * rows > y.Length) throw new ArgumentException("x or y is too short for n rows");
        int tileRows = Math.Clamp(8192 / cols, 2, 64) & ~1; // ~32 KB of decoded weights: stays in L1/L2
        float[] tile = ArrayPool<float>.Shared.Rent(tileRows * cols);
        try
        {
            fixed (float* pt = tile, px = x, py = y)
                for (int r = rowStart; r < rowEnd; r += tileRows)
                {
                    int nr = Math.Min(tileRows, rowEnd - r);
                    for (int i = 0; i < nr; i++) m.ReadRow(r + i, tile.AsSpan(i * cols, cols));
                    Gemm.RowsTimesTokens(pt, nr, cols, px, n, py + r, rows);
                }
        }
        finally { ArrayPool<float>.Shared.Return(tile); }
    }

    /// <summary>Decodes a small vector (norm weights) to a new F32 array.</summary>
    public static float[] ReadVector(DType dtype, byte* data, int count, int ggmlType = -1)
    {
        var v = new float[count];
        Create(dtype, data, 1, count, null, false, ggmlType).ReadRow(0, v);
        return v;
    }
}
