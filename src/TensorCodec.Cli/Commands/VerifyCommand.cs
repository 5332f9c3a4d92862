using System.CommandLine;
using Spectre.Console;

namespace TensorCodec.Cli.Commands;

static class VerifyCommand
{
    public static Command Create() => FileFlags.CreateCommand("verify",
        "Decode everything and check every checksum, without writing",
        ".tcz files (- for standard input)", FileOp.Verify);

    /// <summary>Verifies one input; returns its JSON report.</summary>
    internal static object Run(FileFlags.Job job, CancellationToken ct)
    {
        var s = job.S;
        string inPath = job.Input;
        using var reader = DecompressCommand.Open(job);
        CliCommon.WithProgress(job.NoProgress, "verify " + Path.GetFileName(inPath), reader.Index.OriginalLength, progress =>
        {
            reader.DecompressTo(null, s.Threads, progress, ct);
            return 0;
        });
        int chunks = reader.Index.Segments.Sum(x => x.Chunks.Count);
        string shownIn = job.FromStdin ? "stdin" : inPath;
        job.Summary($"{Markup.Escape(shownIn)} : [green]OK[/] ({chunks} chunks, {reader.Index.Segments.Count} segments, {CliCommon.Bytes(reader.Index.OriginalLength)} original)");
        double seconds = job.ElapsedSeconds;
        job.Detail($"{reader.Index.SourceFormat}, {s.Threads} thread(s), {seconds:0.000} s, {reader.Index.OriginalLength / 1e6 / Math.Max(seconds, 1e-9):0.0} MB/s");
        return DecompressCommand.WithReference(new
        {
            command = "verify",
            input = inPath,
            ok = true,
            format = reader.Index.SourceFormat.ToString(),
            original_bytes = reader.Index.OriginalLength,
            compressed_bytes = reader.FileLength,
            chunks,
            segments = reader.Index.Segments.Count,
            tensors = reader.Index.Tensors.Count(),
            seconds,
        }, reader.Reference);
    }
}
