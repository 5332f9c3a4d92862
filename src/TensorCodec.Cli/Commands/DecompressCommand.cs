using System.CommandLine;
using Spectre.Console;
using TensorCodec.Containers.Tcz;

namespace TensorCodec.Cli.Commands;

static class DecompressCommand
{
    public static Command Create()
    {
        var input = new Argument<string>("input") { Description = ".tcz file" };
        var output = CliCommon.Output();
        var threads = CliCommon.Threads();
        var force = CliCommon.Force();
        var cmd = new Command("decompress", "Restore the original file byte for byte (default output: INPUT without .tcz)") { input, output, threads, force };
        cmd.SetGuardedAction((p, ct) =>
        {
            string inPath = p.GetValue(input)!;
            string? outPath = p.GetValue(output);
            if (outPath is null)
            {
                if (!inPath.EndsWith(".tcz", StringComparison.OrdinalIgnoreCase))
                    throw new ArgumentException($"{inPath}: unknown suffix; name the output with -o");
                outPath = inPath[..^4];
            }
            using var reader = TczReader.Open(inPath);
            CliCommon.WithProgress(false, "decompress " + Path.GetFileName(inPath), reader.Index.OriginalLength, progress =>
            {
                reader.DecompressToFile(outPath, p.GetValue(force), CliCommon.ResolveThreads(p.GetValue(threads)), progress, ct);
                return 0;
            });
            AnsiConsole.MarkupLine($"{Markup.Escape(inPath)} : {CliCommon.Bytes(reader.Index.OriginalLength)} restored, checksums OK ==> {Markup.Escape(outPath)}");
            return 0;
        });
        return cmd;
    }
}
