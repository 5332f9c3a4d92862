using Spectre.Console;
using TensorCodec.Containers.Tcz;

namespace TensorCodec.Cli.Commands;

/// <summary>
/// compress/decompress of a model folder: each tensor file (every shard) becomes its own <c>.tcz</c>, the
/// index and small files are copied byte-exact, and decompress restores the folder (TczFolder does the work).
/// </summary>
static class FolderJob
{
    /// <summary>True when the input of <paramref name="job"/> is a folder (not standard input).</summary>
    public static bool Applies(FileFlags.Job job) => !job.FromStdin && Directory.Exists(job.Input);

    /// <summary>Runs compress or decompress over the folder; returns its JSON report.</summary>
    public static object Run(FileFlags.Job job, bool compress, CancellationToken ct)
    {
        var s = job.S;
        string command = compress ? "compress" : "decompress";
        if (s.ToStdout) throw new ArgumentException($"{job.Input}: a folder becomes several files, which cannot share standard output; use -o DIR");
        if (s.Remove) throw new ArgumentException($"{job.Input}: --rm is not supported for a folder; run tcodec verify on its .tcz files, then remove the originals");
        // -o names the output folder (in place without it, as the .tcz files go beside their sources).
        string? outDir = s.Output ?? (s.OutputDir is null ? null : Path.Combine(s.OutputDir, Path.GetFileName(Path.TrimEndingDirectorySeparator(job.Input))));

        IReadOnlyList<TczFolderEntry> entries;
        int tensors = 0;
        long values = 0;
        if (compress)
        {
            entries = TczFolder.Compress(job.Input, outDir, s.Force, new TczCompressOptions
            {
                Threads = s.Threads, ChunkSize = s.ChunkSize, Codec = Levels.Codec(s.Level), Cancellation = ct,
            });
            foreach (var r in entries.Select(e => e.Compression).OfType<TczCompressResult>())
            {
                var t = r.Segments.Where(x => x.Segment.Kind == TczSegmentKind.Tensor).ToList();
                tensors += t.Count;
                values += t.Sum(x => x.Segment.ElementCount);
            }
        }
        else
        {
            entries = TczFolder.Decompress(job.Input, outDir, s.Force, s.Threads, ct);
            foreach (var e in entries.Where(e => e.Action == TczFolderAction.Decompressed))
            {
                using var reader = TczReader.Open(e.Source);
                tensors += reader.Index.Tensors.Count();
            }
        }

        var coded = entries.Where(e => e.Action is TczFolderAction.Compressed or TczFolderAction.Decompressed).ToList();
        long original = compress ? coded.Sum(e => e.SourceBytes) : coded.Sum(e => e.OutputBytes);
        long compressed = compress ? coded.Sum(e => e.OutputBytes) : coded.Sum(e => e.SourceBytes);
        string shownOut = outDir ?? job.Input;
        foreach (var e in entries)
            job.Detail($"{e.Action.ToString().ToLowerInvariant(),-12} {Path.GetFileName(e.Source)}{(e.Output is null ? "" : " → " + e.Output)}");
        job.Summary($"{Markup.Escape(job.Input)} (folder) : {coded.Count} file(s) {(compress ? "compressed" : "restored")}, " +
            $"{entries.Count(e => e.Action == TczFolderAction.Copied)} copied, {entries.Count(e => e.Action == TczFolderAction.Skipped)} left as they are; " +
            $"{CliCommon.Bytes(original)} {(compress ? "→" : "←")} {CliCommon.Bytes(compressed)} ==> {Markup.Escape(shownOut)}");

        var files = entries.Select(e => new
        {
            input = e.Source,
            output = e.Output,
            action = e.Action.ToString().ToLowerInvariant(),
            input_bytes = e.SourceBytes,
            output_bytes = e.OutputBytes,
        }).ToList();
        double seconds = job.ElapsedSeconds;
        if (compress)
            return new
            {
                command, input = job.Input, output = shownOut, ok = true, format = "Folder",
                original_bytes = original, compressed_bytes = compressed, ratio = original == 0 ? 1 : (double)compressed / original,
                tensors, values, bits_per_value = values == 0 ? 0 : compressed * 8.0 / values,
                level = s.Level, chunk_size_bytes = s.ChunkSize, seconds, files,
            };
        return new
        {
            command, input = job.Input, output = shownOut, ok = true, format = "Folder",
            original_bytes = original, compressed_bytes = compressed, tensors,
            verified = true, // each .tcz's checksums, then the restored index against its shards
            seconds, files,
        };
    }
}
