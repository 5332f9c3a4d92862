using System.CommandLine;
using Spectre.Console;
using TensorCodec.Eval;

namespace TensorCodec.Cli.Commands;

static class DemoCommand
{
    public static Command Create()
    {
        var threads = CliCommon.Threads();
        var json = CliCommon.Json();
        var dir = new Option<string?>("--samples") { Description = "Folder of sample models (default: the bundled samples)" };
        var cmd = new Command("demo", "Compress the bundled sample models, check the round trip, and compare with zstd") { threads, json, dir };
        cmd.SetGuardedAction((p, ct) =>
        {
            string samples = p.GetValue(dir) ?? Path.Combine(AppContext.BaseDirectory, "samples");
            var files = Directory.Exists(samples)
                ? Directory.GetFiles(samples).Where(f => !f.EndsWith(".json") && !f.EndsWith(".md")).Order().ToArray()
                : throw new DirectoryNotFoundException($"{samples}: sample folder not found");
            bool asJson = p.GetValue(json);
            var rows = new List<LosslessComparisonRow>();
            foreach (var f in files)
            {
                ct.ThrowIfCancellationRequested();
                if (!asJson) AnsiConsole.MarkupLine($"[grey]compressing {Markup.Escape(Path.GetFileName(f))} (and zstd -3/-19 for comparison)…[/]");
                rows.Add(LosslessComparison.Run(f, CliCommon.ResolveThreads(p.GetValue(threads))));
            }
            if (asJson) { CliCommon.WriteJson(rows); return rows.All(r => r.RoundTripExact) ? 0 : 1; }

            var table = new Table().Border(TableBorder.Rounded).Title("[bold]TensorCodec lossless demo[/]");
            table.AddColumns("file", "format", "original", ".tcz", "bits/value", "H0 bound", "zstd -3", "zstd -19", ".tcz vs zstd -19", "round trip");
            foreach (var c in table.Columns.Skip(2)) c.RightAligned();
            foreach (var r in rows)
                table.AddRow(Markup.Escape(r.File), r.Format, CliCommon.Bytes(r.OriginalBytes), CliCommon.Bytes(r.TczBytes),
                    $"{r.BitsPerValue:0.000}", $"{r.EntropyBoundBitsPerValue:0.000}", CliCommon.Bytes(r.Zstd3Bytes), CliCommon.Bytes(r.Zstd19Bytes),
                    $"{100 * (r.TczVsZstd19 - 1):+0.0;-0.0}%", r.RoundTripExact ? "[green]sha256 identical[/]" : "[red]MISMATCH[/]");
            AnsiConsole.Write(table);
            AnsiConsole.MarkupLine("[grey]bits/value: .tcz bytes × 8 / tensor values. H0 bound: order-0 entropy of the split float streams.[/]");
            return rows.All(r => r.RoundTripExact) ? 0 : 1;
        });
        return cmd;
    }
}
