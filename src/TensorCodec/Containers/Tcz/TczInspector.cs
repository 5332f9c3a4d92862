using System.Buffers;
using System.Text.Json.Serialization;
using TensorCodec.Coders;
using TensorCodec.Numerics;

namespace TensorCodec.Containers.Tcz;

/// <summary>One row of `tcodec inspect`: a tensor, what it holds and what it costs coded. The exponent figures
/// are 0 for types without an exponent stream (all but BF16, F16, F32); a float tensor's exponent stream
/// always costs some bytes, so a non-zero <c>ExponentCodedBitsPerValue</c> tells which rows have one.</summary>
/// <remarks>The entropies are those the codec works against: each chunk's streams are measured with that
/// chunk's own histogram (as each chunk carries its own code table), summed over the tensor's chunks and
/// divided by its values. A file-wide figure is therefore the value-weighted mean of these rows, not the
/// entropy of one histogram pooled over the file (which is higher: tensors differ in scale).</remarks>
public sealed record TensorReportRow(
    string Name, string DType, long[] Shape, long Values, long RawBytes, long EncodedBytes,
    double ExponentEntropyBitsPerValue, double ExponentOrder1EntropyBitsPerValue, double EntropyBoundBitsPerValue, double BitsPerValue,
    double ExponentCodedBitsPerValue)
{
    /// <summary>For a sharded model, the shard file (name within the model folder) that holds the tensor; else null (and left out of JSON).</summary>
    [System.Text.Json.Serialization.JsonIgnore(Condition = System.Text.Json.Serialization.JsonIgnoreCondition.WhenWritingNull)]
    public string? Shard { get; init; }
}

/// <summary>What <see cref="TczInspector"/> found in one file.</summary>
/// <param name="Path">The file inspected.</param>
/// <param name="Format">Its container: Safetensors, Gguf, Llama2c, Opaque, or Tcz.</param>
/// <param name="FileBytes">Size of the file on disk.</param>
/// <param name="OriginalBytes">Size of the original file (for a .tcz, what it decompresses to).</param>
/// <param name="EncodedBytes">Size as a .tcz: measured by coding in memory for a source file, the stored size for a .tcz.</param>
/// <param name="Tensors">One row per tensor, in file order.</param>
/// <param name="Metadata">The source file's string metadata (safetensors <c>__metadata__</c>, GGUF strings), if any.</param>
public sealed record FileReport(
    string Path, string Format, long FileBytes, long OriginalBytes, long EncodedBytes,
    IReadOnlyList<TensorReportRow> Tensors, IReadOnlyDictionary<string, string> Metadata)
{
    /// <summary>Values over all tensors.</summary>
    /// <exception cref="TensorFormatException">The sum overflows a 64-bit count (a crafted file); names the tensor where it does.</exception>
    public long TotalValues
    {
        get
        {
            long total = 0;
            foreach (var t in Tensors)
            {
                if (t.Values < 0 || t.Values > long.MaxValue - total)
                    throw new TensorFormatException(Path, null, t.Name.Length > 120 ? t.Name[..120] + "…" : t.Name, $"the tensors' value counts overflow a 64-bit sum here ({t.Values} more after {total})");
                total += t.Values;
            }
            return total;
        }
    }

    /// <summary>For a .tcz: false, because inspect checks the index and the tensor chunks it decodes but not the
    /// opaque bytes or the whole-file checksum (<c>tcodec verify</c> does). Null for a source file, which is not checked.</summary>
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public bool? Verified { get; init; }
}

/// <summary>
/// Measures a file tensor by tensor. A source file is coded in memory (nothing written); a
/// .tcz file reports its stored sizes and is decoded to measure the entropy of its tensors.
/// </summary>
public static class TczInspector
{
    static readonly ChunkCodecOptions MeasureOptions = new() { MeasureOrder1 = true };

    /// <summary>True when the file starts with the .tcz magic number.</summary>
    /// <exception cref="IOException">The file cannot be read.</exception>
    public static bool IsTcz(string path)
    {
        Span<byte> head = stackalloc byte[8];
        InputFile.EnsureRegular(path);
        using var fs = File.OpenRead(path);
        return fs.ReadAtLeast(head, 8, throwOnEndOfStream: false) == 8 && TczReader.HasMagic(head);
    }

    /// <summary>Inspects a .tcz (<see cref="InspectTcz"/>) or any other file (<see cref="InspectSource"/>), by its magic number.</summary>
    /// <param name="path">The file.</param>
    /// <param name="threads">Coding threads for a source file.</param>
    /// <param name="progress">Receives the raw bytes processed so far.</param>
    /// <exception cref="TensorFormatException">The file claims a format it does not follow.</exception>
    public static FileReport Inspect(string path, int threads = 1, IProgress<long>? progress = null)
    {
        if (Directory.Exists(path)) path = ShardedSafetensors.FileInFolder(path);
        if (ShardedSafetensors.IsIndexName(path)) return InspectSharded(path, threads, progress);
        return IsTcz(path) ? InspectTcz(path, progress) : InspectSource(path, threads, progress);
    }

    /// <summary>
    /// Inspects every shard of the model indexed by <paramref name="indexPath"/> (after checking that index and
    /// shards agree), one report row per tensor across all shards, each naming its shard.
    /// </summary>
    /// <param name="indexPath">A <c>model.safetensors.index.json</c>.</param>
    /// <param name="threads">Coding threads.</param>
    /// <param name="progress">Receives the raw bytes coded so far, over all shards.</param>
    /// <exception cref="TensorFormatException">The index or a shard is malformed, or they disagree.</exception>
    /// <exception cref="FileNotFoundException">The index names a shard that does not exist.</exception>
    public static FileReport InspectSharded(string indexPath, int threads = 1, IProgress<long>? progress = null)
    {
        var model = ShardedSafetensors.Open(indexPath);
        var rows = new List<TensorReportRow>();
        long bytes = 0, encoded = 0;
        foreach (var shard in model.Shards)
        {
            long before = bytes;
            var one = InspectSource(shard, threads, progress is null ? null : new Progress(p => progress.Report(before + p)));
            string name = System.IO.Path.GetFileName(shard);
            rows.AddRange(one.Tensors.Select(r => r with { Shard = name }));
            bytes += one.FileBytes;
            encoded += one.EncodedBytes;
        }
        return new FileReport(indexPath, TensorFileFormat.Safetensors.ToString(), bytes, bytes, encoded, rows, model.Metadata);
    }

    /// <summary>Synchronous, unlike <see cref="Progress{T}"/>, so the reports arrive in order on the caller's thread.</summary>
    sealed class Progress(Action<long> report) : IProgress<long>
    {
        public void Report(long value) => report(value);
    }

    /// <summary>Codes a safetensors, GGUF, llama2.c or opaque file in memory, as <c>tcodec compress</c> would, and reports each tensor; nothing is written.</summary>
    /// <param name="path">The file.</param>
    /// <param name="threads">Coding threads.</param>
    /// <param name="progress">Receives the raw bytes coded so far.</param>
    /// <exception cref="TensorFormatException">The file claims a format it does not follow.</exception>
    public static FileReport InspectSource(string path, int threads = 1, IProgress<long>? progress = null)
    {
        var layout = TensorFileReader.Open(path);
        var result = TczWriter.Compress(path, layout, Stream.Null, new TczCompressOptions { Threads = threads, Progress = progress, CollectStatistics = true, Codec = MeasureOptions });
        var rows = result.Segments.Where(s => s.Segment.Kind == TczSegmentKind.Tensor)
            .Select(s => Row(s.Segment, s.Segment.EncodedLength, s.Stats)).ToList();
        return new FileReport(path, layout.Format.ToString(), layout.FileLength, layout.FileLength, result.CompressedBytes, rows, layout.Metadata);
    }

    /// <summary>Reports a .tcz file's stored sizes, and decodes every tensor to measure its entropy; the tensor chunks'
    /// checksums are checked on the way, the opaque segments and the whole-file checksum are not (<see cref="FileReport.Verified"/>).</summary>
    /// <param name="path">The .tcz file.</param>
    /// <param name="progress">Receives the raw bytes decoded so far.</param>
    /// <exception cref="TensorFormatException">The file is damaged (names the field or chunk).</exception>
    public static FileReport InspectTcz(string path, IProgress<long>? progress = null)
    {
        using var reader = TczReader.Open(path);
        // A delta or lossy archive is inspected as stored: its rows describe the coded bytes.
        reader.CodedFormOnly = reader.Reference is not null;
        var rows = new List<TensorReportRow>();
        // Sized from the file's chunks, not the chunk size it declares (see TczReader.DecompressTo).
        int cap = reader.Index.MaxChunkRawLength;
        var enc = ArrayPool<byte>.Shared.Rent(reader.Index.MaxChunkEncodedLength);
        var raw = ArrayPool<byte>.Shared.Rent(cap);
        var scratch = ArrayPool<byte>.Shared.Rent(ChunkCodec.MaxEncodedLength(cap));
        using var decoder = new ChunkDecoder();
        using var encoder = new ChunkEncoder(MeasureOptions);
        long done = 0;
        try
        {
            foreach (var seg in reader.Index.Tensors)
            {
                var stats = new ChunkStats();
                for (int c = 0; c < seg.Chunks.Count; c++)
                {
                    var span = raw.AsSpan(0, seg.Chunks[c].RawLength);
                    reader.DecodeChunk(seg, c, decoder, enc, span);
                    encoder.Encode(span, seg.DType, scratch, out _, stats);
                    done += span.Length;
                    progress?.Report(done);
                }
                rows.Add(Row(seg, seg.EncodedLength, stats));
            }
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(enc);
            ArrayPool<byte>.Shared.Return(raw);
            ArrayPool<byte>.Shared.Return(scratch);
        }
        var meta = new Dictionary<string, string>
        {
            ["source_format"] = reader.Index.SourceFormat.ToString(),
            ["version"] = $"{TczConstants.VersionMajor}.{reader.VersionMinor}",
            ["chunk_size"] = reader.Index.NominalChunkSize.ToString(),
            ["original_hash_xxh3"] = reader.Index.OriginalHash.ToString("x16"),
        };
        if (reader.Reference is { } r)
        {
            if (r.Tensors > 0) { meta["reference"] = r.Label; meta["reference_id_xxh128"] = r.IdHex; meta["delta_tensors"] = r.DeltaSegments.ToString(); }
            if (r.DuplicateSegments > 0) meta["duplicate_tensors"] = r.DuplicateSegments.ToString();
            if (r.LossySegments > 0)
                meta["lossy"] = r.LossyDeltaSegments == 0 ? $"{r.LossySegments} tensor(s) stored quantized (rows show the stored bytes)"
                    : $"{r.LossySegments} tensor(s) stored lossy, {r.LossyDeltaSegments} of them as lossy deltas ({r.LossyDelta}) (rows show the stored bytes)";
        }
        return new FileReport(path, "Tcz", reader.FileLength, reader.Index.OriginalLength, reader.FileLength, rows, meta) { Verified = false };
    }

    static TensorReportRow Row(TczSegment seg, long encodedBytes, ChunkStats stats)
    {
        long values = seg.ElementCount;
        double perValue(double bits) => values == 0 ? 0 : bits / values;
        var exp = stats.Streams.Where(s => s.Name.EndsWith(".exp")).ToList();
        double expBits = exp.Sum(s => s.Order0EntropyBits);
        double expOrder1Bits = exp.Sum(s => s.Order1EntropyBits);
        double expCoded = exp.Sum(s => s.EncodedBytes * 8.0);
        double bound = stats.Streams.Sum(s => s.Order0EntropyBits);
        string dtype = seg.DType == DType.Packed && GgmlTypes.TryGet(seg.GgmlType, out var ggml) ? ggml.Name
            : seg.DType == DType.Packed ? $"ggml type {seg.GgmlType}" : seg.DType.ToString();
        return new TensorReportRow(seg.Name, dtype, seg.Shape, values, seg.Length, encodedBytes,
            perValue(expBits), perValue(expOrder1Bits), perValue(bound), perValue(encodedBytes * 8.0), perValue(expCoded));
    }
}
