using System.Runtime.InteropServices;
using TensorCodec.Containers;
using TensorCodec.Formats;

namespace TensorCodec.Quantization;

/// <summary>
/// The work behind <c>tcodec tensor …</c>: raw little-endian float32 files of rows × nPerRow
/// values in, quantized bytes out (and back), with the input checks users need. Outputs are
/// written through <see cref="AtomicFileWriter"/>, so nothing appears under the output name on failure.
/// </summary>
public static class RawTensorTool
{
    /// <summary>What a quantize or dequantize run converted.</summary>
    /// <param name="Type">The format's canonical name.</param>
    /// <param name="Values">Number of float32 values.</param>
    /// <param name="Rows">Number of rows of the given row length.</param>
    /// <param name="Bytes">Size of the quantized data in bytes (written by Quantize, read by Dequantize).</param>
    public sealed record Result(string Type, long Values, long Rows, long Bytes);

    /// <summary>Reads rows × nPerRow float32 values, checking the shape for <paramref name="format"/>.</summary>
    internal static float[] ReadRows(string path, int nPerRow, IMatrixFormat format, bool allowNonfinite)
    {
        if (nPerRow <= 0) throw new ArgumentException($"--row must be positive, got {nPerRow}");
        if (nPerRow % format.RowMultiple != 0)
            throw new ArgumentException($"{format.Name}: row length {nPerRow} is not a multiple of the block size {format.RowMultiple}");
        var x = ReadF32(path);
        if (x.Length == 0 || x.Length % nPerRow != 0)
            throw new InvalidDataException($"{path}: {x.Length} values is not a whole number of rows of {nPerRow}");
        if (!allowNonfinite) CheckFinite(x, path);
        return x;
    }

    internal static float[] ReadF32(string path)
    {
        if (!File.Exists(path)) throw new FileNotFoundException($"{path}: no such file");
        InputFile.EnsureRegular(path);
        var bytes = File.ReadAllBytes(path);
        ContainerSniff.RefuseContainer(bytes, bytes.Length, path, "raw float32 values");
        if (bytes.Length % 4 != 0) throw new InvalidDataException($"{path}: {bytes.Length} bytes is not a whole number of float32 values");
        var x = MemoryMarshal.Cast<byte, float>(bytes).ToArray();
        if (!BitConverter.IsLittleEndian)
            for (int i = 0; i < x.Length; i++) x[i] = BitConverter.Int32BitsToSingle(System.Buffers.Binary.BinaryPrimitives.ReverseEndianness(BitConverter.SingleToInt32Bits(x[i])));
        return x;
    }

    /// <summary>Throws naming the first NaN/Inf (flat index, row and column when the row length is known).</summary>
    internal static void CheckFinite(ReadOnlySpan<float> x, string name, int nPerRow = 0)
    {
        for (int i = 0; i < x.Length; i++)
            if (!float.IsFinite(x[i]))
                throw new InvalidDataException($"{name}: value {x[i]} at index {i}{(nPerRow > 0 ? $" (row {i / nPerRow}, column {i % nPerRow})" : "")} is not finite (use --allow-nonfinite to quantize it anyway)");
    }

    private static float[]? ReadImportance(string? path, int nPerRow)
    {
        if (path is null) return null;
        var w = ReadF32(path);
        if (w.Length != nPerRow)
            throw new InvalidDataException($"{path}: importance matrix has {w.Length} values; it needs one per column ({nPerRow})");
        CheckFinite(w, path);
        return w;
    }

    /// <summary>Quantizes the raw float32 file <paramref name="input"/> to <paramref name="output"/>.</summary>
    /// <param name="type">Format name, as <see cref="QuantFormats.Get"/> accepts.</param>
    /// <param name="nPerRow">Row length in values; must be a multiple of the format's row multiple.</param>
    /// <param name="input">Little-endian float32 file of whole rows.</param>
    /// <param name="output">File to write the quantized bytes to.</param>
    /// <param name="imatrix">Optional raw float32 file of one importance weight per column.</param>
    /// <param name="force">Replace an existing output file.</param>
    /// <param name="allowNonfinite">Quantize NaN and ±infinity instead of refusing them.</param>
    /// <exception cref="KeyNotFoundException"><paramref name="type"/> is not a known format.</exception>
    /// <exception cref="ArgumentException"><paramref name="nPerRow"/> is not positive or not a multiple of the format's row multiple.</exception>
    /// <exception cref="FileNotFoundException"><paramref name="input"/> or <paramref name="imatrix"/> does not exist.</exception>
    /// <exception cref="InvalidDataException">The input is not whole rows of float32, holds a non-finite value, or
    /// the imatrix has the wrong length or a non-finite value.</exception>
    /// <exception cref="IOException"><paramref name="output"/> exists and <paramref name="force"/> is false.</exception>
    public static Result Quantize(string type, int nPerRow, string input, string output, string? imatrix = null, bool force = false, bool allowNonfinite = false)
    {
        var f = QuantFormats.Get(type);
        var x = ReadRows(input, nPerRow, f, allowNonfinite);
        var w = ReadImportance(imatrix, nPerRow);
        var bytes = new byte[f.GetEncodedLength(x, nPerRow)];
        int n = f.Encode(x, nPerRow, bytes, w);
        Write(output, bytes.AsSpan(0, n), force);
        return new Result(f.Name, x.Length, x.Length / nPerRow, n);
    }

    /// <summary>Decodes the quantized file <paramref name="input"/> to a raw float32 file <paramref name="output"/>.</summary>
    /// <param name="type">Format name, as <see cref="QuantFormats.Get"/> accepts.</param>
    /// <param name="nPerRow">Row length in values, as used when quantizing.</param>
    /// <param name="input">Quantized bytes.</param>
    /// <param name="output">File to write little-endian float32 values to.</param>
    /// <param name="force">Replace an existing output file.</param>
    /// <exception cref="KeyNotFoundException"><paramref name="type"/> is not a known format.</exception>
    /// <exception cref="ArgumentException"><paramref name="nPerRow"/> is not positive or does not fit the format.</exception>
    /// <exception cref="FileNotFoundException"><paramref name="input"/> does not exist.</exception>
    /// <exception cref="InvalidDataException">The input is not a whole number of encoded rows.</exception>
    /// <exception cref="IOException"><paramref name="output"/> exists and <paramref name="force"/> is false.</exception>
    public static Result Dequantize(string type, int nPerRow, string input, string output, bool force = false)
    {
        var f = QuantFormats.Get(type);
        if (nPerRow <= 0) throw new ArgumentException($"--row must be positive, got {nPerRow}");
        if (!File.Exists(input)) throw new FileNotFoundException($"{input}: no such file");
        InputFile.EnsureRegular(input);
        var q = File.ReadAllBytes(input);
        ContainerSniff.RefuseContainer(q, q.Length, input, $"raw {f.Name} blocks");
        long count = f.GetDecodedLength(q, nPerRow);
        var y = new float[checked((int)count)];
        f.Decode(q, nPerRow, y);
        Write(output, MemoryMarshal.AsBytes(y.AsSpan()), force);
        return new Result(f.Name, y.Length, y.Length / nPerRow, q.Length);
    }

    /// <summary>Quantizes <paramref name="input"/> in memory and measures the round-trip error; writes nothing.</summary>
    /// <param name="type">Format name, as <see cref="QuantFormats.Get"/> accepts.</param>
    /// <param name="nPerRow">Row length in values.</param>
    /// <param name="input">Little-endian float32 file of whole rows.</param>
    /// <param name="imatrix">Optional raw float32 file of one importance weight per column.</param>
    /// <param name="allowNonfinite">Accept NaN and ±infinity in the input.</param>
    /// <exception cref="KeyNotFoundException"><paramref name="type"/> is not a known format.</exception>
    /// <exception cref="ArgumentException"><paramref name="nPerRow"/> is not positive or not a multiple of the format's row multiple.</exception>
    /// <exception cref="FileNotFoundException"><paramref name="input"/> or <paramref name="imatrix"/> does not exist.</exception>
    /// <exception cref="InvalidDataException">The input or imatrix has the wrong size or a non-finite value.</exception>
    public static QuantStats Stats(string type, int nPerRow, string input, string? imatrix = null, bool allowNonfinite = false)
    {
        var f = QuantFormats.Get(type);
        var x = ReadRows(input, nPerRow, f, allowNonfinite);
        return QuantMetrics.Measure(f, x, nPerRow, ReadImportance(imatrix, nPerRow));
    }

    private static void Write(string path, ReadOnlySpan<byte> data, bool force)
    {
        using var w = new AtomicFileWriter(path, force);
        w.Stream.Write(data);
        w.Commit();
    }
}
