using System.CommandLine;
using Spectre.Console;
using TensorCodec.Cli.Reports;
using TensorCodec.Eval;

namespace TensorCodec.Cli.Commands;

static class DemoCommand
{
    const string LossyModel = "bard-3m-bf16.safetensors";
    const string LossyTokens = "shakespeare-val-4k.tokens.u16";
    static readonly string[] LossyTypes = ["q8_0", "q6_K", "q5_K_M", "q4_K_M", "q3_K_M", "q2_K", "nf4"];

    public static Command Create()
    {
        var threads = CliCommon.Threads();
        var json = CliCommon.Json();
        var dir = new Option<string?>("--samples") { Description = "Folder of sample models (default: the bundled samples)" };
        var cmd = new Command("demo",
            "On the bundled samples: lossless .tcz against zstd (round trip checked), then what quantization costs in quality") { threads, json, dir };
        cmd.SetGuardedAction((p, ct) =>
        {
            string samples = p.GetValue(dir) ?? Path.Combine(AppContext.BaseDirectory, "samples");
            if (!Directory.Exists(samples)) throw new DirectoryNotFoundException($"{samples}: sample folder not found");
            var models = Directory.GetFiles(samples)
                .Where(f => f.EndsWith(".safetensors") || f.EndsWith(".bin") || f.EndsWith(".gguf")).Order().ToArray();
            bool asJson = p.GetValue(json);
            int t = CliCommon.ResolveThreads(p.GetValue(threads));

            var rows = new List<LosslessComparisonRow>();
            foreach (var f in models)
            {
                ct.ThrowIfCancellationRequested();
                if (!asJson) AnsiConsole.MarkupLine($"[grey]compressing {Markup.Escape(Path.GetFileName(f))} (and zstd -3/-19 for comparison)…[/]");
                rows.Add(LosslessComparison.Run(f, t));
            }

            SweepResult? sweep = null;
            string lossyModel = Path.Combine(samples, LossyModel), lossyTokens = Path.Combine(samples, LossyTokens);
            if (File.Exists(lossyModel) && File.Exists(lossyTokens))
            {
                var tokens = EvalData.ReadU16(lossyTokens);
                var options = new SweepOptions { Types = LossyTypes, Ctx = 256, Threads = t };
                sweep = CliCommon.WithProgress(asJson, $"quantize + evaluate {LossyTypes.Length} types", LossyTypes.Length + 1, progress =>
                    Sweep.Run(lossyModel, tokens, options, progress is null ? null : new StepProgress(progress), ct));
            }

            bool ok = rows.All(r => r.RoundTripExact);
            if (asJson)
            {
                JsonOutput.Write("demo", new
                {
                    input = samples, ok,
                    lossless = rows.Select((r, i) => new
                    {
                        input = models[i], format = r.Format, original_bytes = r.OriginalBytes, compressed_bytes = r.TczBytes,
                        ratio = r.OriginalBytes == 0 ? 1 : (double)r.TczBytes / r.OriginalBytes, values = r.Values, bits_per_value = r.BitsPerValue,
                        entropy_bound_bits_per_value = r.EntropyBoundBitsPerValue, zstd3_bytes = r.Zstd3Bytes, zstd19_bytes = r.Zstd19Bytes,
                        ratio_vs_zstd19 = r.TczVsZstd19, round_trip_exact = r.RoundTripExact, compress_seconds = r.CompressSeconds,
                        decompress_seconds = r.DecompressSeconds,
                    }),
                    lossy = sweep is null ? null : JsonOutput.Object(null, new { input = lossyModel, tokens_file = lossyTokens }, SweepReport.Json(sweep)),
                });
                return ok ? 0 : 1;
            }

            var table = new Table().Border(TableBorder.Rounded).Title("[bold]Lossless: .tcz[/]");
            table.AddColumns("file", "format", "original", ".tcz", "bits/value", "H0 bound", "zstd -3", "zstd -19", ".tcz vs zstd -19", "round trip");
            foreach (var c in table.Columns.Skip(2)) c.RightAligned();
            foreach (var r in rows)
                table.AddRow(Markup.Escape(r.File), r.Format, CliCommon.Bytes(r.OriginalBytes), CliCommon.Bytes(r.TczBytes),
                    $"{r.BitsPerValue:0.000}", $"{r.EntropyBoundBitsPerValue:0.000}", CliCommon.Bytes(r.Zstd3Bytes), CliCommon.Bytes(r.Zstd19Bytes),
                    $"{100 * (r.TczVsZstd19 - 1):+0.0;-0.0}%", r.RoundTripExact ? "[green]sha256 identical[/]" : "[red]MISMATCH[/]");
            AnsiConsole.Write(table);
            AnsiConsole.MarkupLine("[grey]bits/value: .tcz bytes × 8 / tensor values. H0 bound: order-0 entropy of the split float streams.[/]");

            if (sweep is not null)
            {
                var lossy = new Table().Border(TableBorder.Rounded)
                    .Title($"[bold]Lossy: {Markup.Escape(LossyModel)}, {sweep.Tokens:N0} Shakespeare validation tokens, ctx 256[/]");
                lossy.AddColumns("type", "bits/weight", "size", "perplexity", "KL(base ‖ q) mean", "KL p99", "top-1 agrees");
                foreach (var c in lossy.Columns.Skip(1)) c.RightAligned();
                var b = sweep.Base;
                lossy.AddRow($"base ({Markup.Escape(b.Method)})", $"{b.BitsPerWeight:0.00}", CliCommon.Bytes(b.Bytes), $"{b.Result.Ppl:0.00} ± {b.Result.PplStdErr:0.00}", "0", "0", "100%");
                foreach (var e in sweep.Entries)
                    lossy.AddRow(e.Type, $"{e.BitsPerWeight:0.00}", CliCommon.Bytes(e.Bytes), $"{e.Result.Ppl:0.00} ± {e.Result.PplStdErr:0.00}",
                        $"{e.Result.Kl!.Mean:0.00000}", $"{e.Result.Kl.P99:0.0000}", $"{e.Result.Kl.Top1AgreementPercent:0.0}%");
                AnsiConsole.Write(lossy);
                AnsiConsole.MarkupLine("[grey]llama.cpp mixes as `tcodec quantize` writes them; nf4 = bitsandbytes NF4 on every 2-D weight. Full curve: docs/rd/report.md.[/]");
            }
            return ok ? 0 : 1;
        });
        return cmd;
    }

    /// <summary>Turns sweep steps into the progress bar's value.</summary>
    sealed class StepProgress(IProgress<long> bar) : IProgress<SweepProgress>
    {
        public void Report(SweepProgress value) => bar.Report(value.Step);
    }
}
