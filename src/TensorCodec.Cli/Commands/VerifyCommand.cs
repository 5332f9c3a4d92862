using System.CommandLine;
using Spectre.Console;
using TensorCodec.Containers.Tcz;

namespace TensorCodec.Cli.Commands;

static class VerifyCommand
{
    public static Command Create()
    {
        var input = new Argument<string>("input") { Description = ".tcz file" };
        var threads = CliCommon.Threads();
        var json = CliCommon.Json();
        var cmd = new Command("verify", "Decode everything and check every checksum, without writing") { input, threads, json };
        cmd.SetGuardedAction((p, ct) =>
        {
            string inPath = p.GetValue(input)!;
            bool asJson = p.GetValue(json);
            using var reader = TczReader.Open(inPath);
            CliCommon.WithProgress(asJson, "verify " + Path.GetFileName(inPath), reader.Index.OriginalLength, progress =>
            {
                reader.DecompressTo(null, CliCommon.ResolveThreads(p.GetValue(threads)), progress, ct);
                return 0;
            });
            int chunks = reader.Index.Segments.Sum(s => s.Chunks.Count);
            if (asJson) CliCommon.WriteJson(new { file = inPath, ok = true, original_bytes = reader.Index.OriginalLength, chunks, segments = reader.Index.Segments.Count });
            else AnsiConsole.MarkupLine($"{Markup.Escape(inPath)} : [green]OK[/] ({chunks} chunks, {reader.Index.Segments.Count} segments, {CliCommon.Bytes(reader.Index.OriginalLength)} original)");
            return 0;
        });
        return cmd;
    }
}
