using System.Buffers.Binary;
using System.Globalization;
using TensorCodec.Numerics;

namespace TensorCodec.Formats;

/// <summary>
/// LLM.int8()-style row-wise int8 with outlier columns kept in FP16 ("llm_int8", threshold 6.0;
/// "llm_int8_t4.5" etc. for another threshold). A column is an outlier if any |x| in it is ≥ the
/// threshold. Every other value is q = round(x/d), ties to even, with d = absmax/127 of its row
/// over the non-outlier columns (bnb's SCB), so |x − q·d| ≤ d/2.
/// Layout after the <see cref="MatrixHeader"/>, little-endian:
/// threshold f32 | k u32 | outlier column indices u32[k], ascending | row absmax f32[rows] |
/// q int8[rows·cols], row-major, 0 in outlier columns | outliers f16[k·rows], column by column.
/// </summary>
internal sealed class LlmInt8 : IMatrixFormat
{
    public const float DefaultThreshold = 6.0f;

    public LlmInt8(float threshold = DefaultThreshold)
    {
        if (!(threshold > 0) || !float.IsFinite(threshold))
            throw new ArgumentOutOfRangeException(nameof(threshold), "the outlier threshold must be positive and finite");
        Threshold = threshold;
    }

    public float Threshold { get; }
    public string Name => Threshold == DefaultThreshold ? "llm_int8" : "llm_int8_t" + Threshold.ToString("R", CultureInfo.InvariantCulture);
    public int RowMultiple => 1;
    public bool UsesImportance => false;

    /// <summary>Indices of the columns holding a value with |x| ≥ threshold (NaN/inf count as outliers).</summary>
    public int[] OutlierColumns(ReadOnlySpan<float> src, int nPerRow)
    {
        int rows = MatrixFormatChecks.Shape(Name, src.Length, nPerRow, 1);
        var isOut = new bool[nPerRow];
        for (int r = 0; r < rows; r++)
        {
            var row = src.Slice(r * nPerRow, nPerRow);
            for (int c = 0; c < nPerRow; c++)
                if (!(MathF.Abs(row[c]) < Threshold)) isOut[c] = true;
        }
        return Enumerable.Range(0, nPerRow).Where(c => isOut[c]).ToArray();
    }

    private int Length(int rows, int cols, int k) =>
        checked(MatrixHeader.Size(Name) + 8 + 4 * k + 4 * rows + rows * cols + 2 * k * rows);

    public int GetEncodedLength(ReadOnlySpan<float> src, int nPerRow)
    {
        int rows = MatrixFormatChecks.Shape(Name, src.Length, nPerRow, 1);
        return Length(rows, nPerRow, OutlierColumns(src, nPerRow).Length);
    }

    public int Encode(ReadOnlySpan<float> src, int nPerRow, Span<byte> dst, ReadOnlySpan<float> importance = default)
    {
        int rows = MatrixFormatChecks.Shape(Name, src.Length, nPerRow, 1);
        int cols = nPerRow;
        var outCols = OutlierColumns(src, nPerRow);
        int k = outCols.Length;
        int total = Length(rows, cols, k);
        if (dst.Length < total) throw new ArgumentException($"{Name}: destination needs {total} bytes", nameof(dst));
        var isOut = new bool[cols];
        foreach (int c in outCols) isOut[c] = true;

        int o = MatrixHeader.Write(dst, Name, rows, cols);
        BinaryPrimitives.WriteSingleLittleEndian(dst[o..], Threshold);
        BinaryPrimitives.WriteUInt32LittleEndian(dst[(o + 4)..], (uint)k);
        o += 8;
        foreach (int c in outCols) { BinaryPrimitives.WriteUInt32LittleEndian(dst[o..], (uint)c); o += 4; }
        int scaleAt = o, qAt = o + 4 * rows, outAt = qAt + rows * cols;
        for (int r = 0; r < rows; r++)
        {
            var row = src.Slice(r * cols, cols);
            float absmax = 0;
            for (int c = 0; c < cols; c++) if (!isOut[c]) absmax = MathF.Max(absmax, MathF.Abs(row[c]));
            BinaryPrimitives.WriteSingleLittleEndian(dst[(scaleAt + 4 * r)..], absmax);
            float d = absmax / 127f;
            var q = dst.Slice(qAt + r * cols, cols);
            for (int c = 0; c < cols; c++)
                q[c] = isOut[c] || !(d > 0) ? (byte)0 : (byte)(sbyte)Math.Clamp(MathF.Round(row[c] / d), -127f, 127f);
        }
        for (int j = 0; j < k; j++)
            for (int r = 0; r < rows; r++)
                Fp16.Write(dst, outAt + 2 * (j * rows + r), Fp16.FromFloat(src[r * cols + outCols[j]]));
        return total;
    }

    public long GetDecodedLength(ReadOnlySpan<byte> src, int nPerRow)
    {
        int o = MatrixHeader.Read(src, Name, out int rows, out int cols);
        MatrixHeader.CheckRow(Name, nPerRow, cols);
        MatrixHeader.Need(Name, src, o + 8);
        uint k = BinaryPrimitives.ReadUInt32LittleEndian(src[(o + 4)..]);
        if (k > cols) throw new InvalidDataException($"{Name}: {k} outlier columns in a row of {cols}");
        MatrixHeader.Need(Name, src, o + 8 + 4L * k + 4L * rows + (long)rows * cols + 2L * k * rows);
        return (long)rows * cols;
    }

    public void Decode(ReadOnlySpan<byte> src, int nPerRow, Span<float> dst)
    {
        GetDecodedLength(src, nPerRow);
        int o = MatrixHeader.Read(src, Name, out int rows, out int cols);
        int k = (int)BinaryPrimitives.ReadUInt32LittleEndian(src[(o + 4)..]);
        o += 8;
        int idxAt = o, scaleAt = o + 4 * k, qAt = scaleAt + 4 * rows, outAt = qAt + rows * cols;
        for (int r = 0; r < rows; r++)
        {
            float d = BinaryPrimitives.ReadSingleLittleEndian(src[(scaleAt + 4 * r)..]) / 127f;
            var q = src.Slice(qAt + r * cols, cols);
            var y = dst.Slice(r * cols, cols);
            for (int c = 0; c < cols; c++) y[c] = (sbyte)q[c] * d;
        }
        for (int j = 0; j < k; j++)
        {
            uint c = BinaryPrimitives.ReadUInt32LittleEndian(src[(idxAt + 4 * j)..]);
            if (c >= cols) throw new InvalidDataException($"{Name}: outlier column {c} out of range");
            for (int r = 0; r < rows; r++) dst[r * cols + (int)c] = Fp16.Read(src, outAt + 2 * (j * rows + r));
        }
    }

    public override string ToString() => Name;
}
