using TensorCodec.Containers;
using TensorCodec.Numerics;

namespace TensorCodec.Quantization;

/// <summary>What <see cref="TensorExtractor.Extract"/> wrote.</summary>
/// <param name="Input">The input path as given.</param>
/// <param name="Output">The output path as given.</param>
/// <param name="Tensor">The tensor's name.</param>
/// <param name="StoredType">Its stored type as the CLI names it (<c>f32</c>, <c>bf16</c>, <c>q8_0</c>…).</param>
/// <param name="OutputType">The type written: <paramref name="StoredType"/>, or <c>f32</c> when decoded.</param>
/// <param name="Shape">Its shape, outermost first (PyTorch order, also for GGUF tensors).</param>
/// <param name="Values">Number of values.</param>
/// <param name="OutputBytes">Bytes written.</param>
public sealed record TensorExtractResult(string Input, string Output, string Tensor, string StoredType, string OutputType,
    long[] Shape, long Values, long OutputBytes);

/// <summary>
/// Writes one tensor of a model or tensor file (safetensors, a Hugging Face folder or index, GGUF,
/// llama2.c, or a .tcz of any of them) as raw little-endian bytes: as stored, or decoded to float32.
/// Only that tensor is read; in a .tcz only its chunks are decoded (the index says where they are).
/// </summary>
public static class TensorExtractor
{
    /// <summary>Extracts the tensor <paramref name="tensor"/> of <paramref name="inputPath"/> to <paramref name="outputPath"/>, atomically.</summary>
    /// <param name="inputPath">The file or model folder.</param>
    /// <param name="tensor">The tensor's name as the file stores it.</param>
    /// <param name="outputPath">The file to write.</param>
    /// <param name="decodeToF32">Decode (dequantize) to float32 instead of copying the stored bytes.</param>
    /// <param name="overwrite">Replace an existing output.</param>
    /// <exception cref="KeyNotFoundException">The file has no tensor of that name (the message lists close names).</exception>
    /// <exception cref="FileNotFoundException">The input does not exist.</exception>
    /// <exception cref="TensorFormatException">The input is malformed or damaged.</exception>
    /// <exception cref="NotSupportedException">The tensor's type cannot be decoded to float32.</exception>
    /// <exception cref="IOException">The output exists and <paramref name="overwrite"/> is false, or is the input.</exception>
    public static TensorExtractResult Extract(string inputPath, string tensor, string outputPath, bool decodeToF32, bool overwrite)
    {
        using var source = ModelSource.Open(inputPath, withConfig: false, tczHeader: false);
        if (source.Model.Format == TensorFileFormat.Opaque)
            throw new InvalidDataException($"{inputPath}: not a tensor file (safetensors, GGUF, llama2.c or a .tcz of one)");
        var found = source.Find(tensor) ?? throw source.NoSuchTensor(tensor);
        var info = found.Info;
        foreach (var f in source.Model.Files)
            if (FileIdentity.Same(f, outputPath)) throw new IOException($"{outputPath}: output would overwrite the input");
        if (decodeToF32 && !ModelSource.Decodable(info))
            throw new NotSupportedException($"{inputPath}: tensor '{tensor}' is {ModelSource.TypeName(info)}, which does not decode to f32");

        long cols = info.Shape.Length == 0 ? 1 : info.Shape[^1];
        long rows = cols == 0 ? 0 : info.ElementCount / cols;
        long written;
        using (var writer = new AtomicFileWriter(outputPath, overwrite))
        {
            if (decodeToF32 && info.DType != DType.F32)
            {
                var export = new HfExport.ExportTensor(info.Name, info.Name, info.Shape, DType.F32, found, info.Offset, rows, cols, 0);
                HfExport.WriteRows(source, export, writer.Stream, default);
                written = export.Bytes;
            }
            else
            {
                // Stored bytes, a megabyte at a time (a .tcz decodes one chunk at a time).
                var buffer = new byte[(int)Math.Min(1 << 20, Math.Max(1, info.Length))];
                for (long done = 0; done < info.Length;)
                {
                    int n = (int)Math.Min(buffer.Length, info.Length - done);
                    source.Read(found.Shard, info.Offset + done, buffer.AsSpan(0, n));
                    writer.Stream.Write(buffer, 0, n);
                    done += n;
                }
                written = info.Length;
            }
            writer.Commit();
        }
        return new TensorExtractResult(inputPath, outputPath, info.Name, ModelSource.TypeName(info), decodeToF32 ? "f32" : ModelSource.TypeName(info),
            info.Shape, info.ElementCount, written);
    }
}
