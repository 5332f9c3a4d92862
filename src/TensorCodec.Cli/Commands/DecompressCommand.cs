using System.CommandLine;
using System.Text.Json.Nodes;
using Spectre.Console;
using TensorCodec.Containers.Tcz;

namespace TensorCodec.Cli.Commands;

static class DecompressCommand
{
    public static Command Create() => FileFlags.CreateCommand("decompress",
        "Restore the original files byte for byte (default output: INPUT without .tcz; standard input goes to standard output)",
        ".tcz files, or a folder written by compress DIR (- for standard input)", FileOp.Decompress);

    /// <summary>Opens a .tcz input: a file, or standard input copied to a temporary file that is always removed
    /// (the index sits at the end of a .tcz, and chunks are read where it says).</summary>
    internal static TczReader Open(FileFlags.Job job)
    {
        var reader = OpenArchive(job);
        try
        {
            if (job.S.Reference is not null) reader.AttachReference(job.S.Reference);
            // Without the reference a delta archive fails in one line naming it; no note before that.
            if (reader.Reference is { } r && (r.Tensors == 0 || job.S.Reference is not null)) job.Note(Describe(r));
            return reader;
        }
        catch
        {
            reader.Dispose();
            throw;
        }
    }

    /// <summary>One line saying what an archive needs and holds beyond plain lossless coding.</summary>
    internal static string Describe(TczReferenceInfo r) =>
        string.Join("; ", new[]
        {
            r.Tensors > 0 ? $"coded against reference '{r.Label}' (id {r.IdHex}): {r.DeltaSegments} tensor(s) as deltas; decompress needs --ref" : null,
            r.DuplicateSegments > 0 ? $"{r.DuplicateSegments} duplicate tensor(s) stored once" : null,
            r.LossySegments > r.LossyDeltaSegments ? $"LOSSY: {r.LossySegments - r.LossyDeltaSegments} optimizer tensor(s) stored quantized, rebuilt approximately" : null,
            r.LossyDeltaSegments > 0 ? $"LOSSY: {r.LossyDeltaSegments} tensor(s) stored as lossy deltas ({r.LossyDelta}), rebuilt as reference + decoded delta" : null,
        }.Where(x => x is not null));

    /// <summary>A command's JSON report, with the reference and lossy keys of docs/JSON.md when the archive has them.</summary>
    internal static object WithReference(object report, TczReferenceInfo? r)
    {
        if (r is null) return report;
        var extra = new JsonObject();
        if (r.Tensors > 0) { extra["reference"] = r.Label; extra["reference_id"] = r.IdHex; }
        extra["lossy"] = r.LossySegments > 0;
        if (r.LossyDelta is not null) { extra["lossy_delta"] = r.LossyDelta; extra["lossy_delta_tensors"] = r.LossyDeltaSegments; }
        return JsonOutput.Object(null, report, extra);
    }

    static TczReader OpenArchive(FileFlags.Job job)
    {
        if (!job.FromStdin) return TczReader.Open(job.Input);
        if (!Console.IsInputRedirected)
            throw new IOException("stdin: refusing to read compressed data from a terminal; redirect standard input or name a file");
        job.Detail($"stdin: copied to an unnamed temporary file in {Path.GetTempPath()} (a .tcz is read from its end), removed when done");
        using var stdin = Console.OpenStandardInput(1 << 20);
        return TczReader.OpenStream(stdin, "stdin");
    }

    /// <summary>Decompresses one input; returns its JSON report.</summary>
    internal static object Run(FileFlags.Job job, CancellationToken ct)
    {
        if (job.S.Reference is not null && FolderJob.Applies(job))
            throw new ArgumentException($"{job.Input}: --ref takes one archive, not a folder");
        if (FolderJob.Applies(job)) return FolderJob.Run(job, compress: false, ct);
        var s = job.S;
        string inPath = job.Input;
        string? defaultName = job.FromStdin || !inPath.EndsWith(".tcz", StringComparison.OrdinalIgnoreCase) ? null : inPath[..^4];
        string outPath = job.OutputFor(defaultName, job.FromStdin
            ? "standard input has no name to derive an output name from; use -o FILE or -c"
            : "unknown suffix; name the output with -o");
        var stamp = job.FromStdin ? default : FileFlags.Job.Stamp(inPath);
        Timing.Mark("parse arguments");
        using var reader = Open(job);
        Timing.Mark("open archive, read index");
        if (outPath == FileFlags.StdStream)
        {
            using var stdout = Console.OpenStandardOutput();
            reader.DecompressTo(stdout, s.Threads, null, ct);
        }
        else
        {
            CliCommon.WithProgress(job.NoProgress, "decompress " + Path.GetFileName(inPath), reader.Index.OriginalLength, progress =>
            {
                reader.DecompressToFile(outPath, s.Force, s.Threads, progress, ct);
                return 0;
            });
        }
        Timing.Mark("decode, check, write, commit");
        string shownIn = job.FromStdin ? "stdin" : inPath, shownOut = outPath == FileFlags.StdStream ? "stdout" : outPath;
        job.Summary($"{Markup.Escape(shownIn)} : {CliCommon.Bytes(reader.Index.OriginalLength)} restored, checksums OK ==> {Markup.Escape(shownOut)}");
        double seconds = job.ElapsedSeconds;
        int chunks = reader.Index.Segments.Sum(x => x.Chunks.Count);
        job.Detail($"{reader.Index.SourceFormat}, {chunks} chunks, {s.Threads} thread(s), {seconds:0.000} s, {reader.Index.OriginalLength / 1e6 / Math.Max(seconds, 1e-9):0.0} MB/s");
        bool removed = job.RemoveInput(outPath, () => reader.CheckRestored(outPath), stamp);
        return WithReference(new
        {
            command = "decompress",
            input = inPath,
            output = outPath,
            ok = true,
            format = reader.Index.SourceFormat.ToString(),
            original_bytes = reader.Index.OriginalLength,
            compressed_bytes = reader.FileLength,
            chunks,
            tensors = reader.Index.Tensors.Count(),
            verified = true, // DecompressTo throws unless every chunk and the whole-file checksum matched
            seconds,
            input_removed = removed,
        }, reader.Reference);
    }
}
