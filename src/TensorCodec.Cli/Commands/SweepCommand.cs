using System.CommandLine;
using Spectre.Console;
using TensorCodec.Cli.Reports;
using TensorCodec.Engine;
using TensorCodec.Eval;

namespace TensorCodec.Cli.Commands;

static class SweepCommand
{
    public static Command Create()
    {
        var model = new Argument<string>("model") { Description = "Unquantized model (Hugging Face folder or index, safetensors with config.json, llama2.c .bin, or GGUF)" };
        var types = new Option<string>("--types") { Description = "Comma-separated llama.cpp mixes (q8_0, q4_K_M …) and/or formats (nf4, ocp_mxfp4, int4_g128 …)", Required = true };
        var evalText = new EvalTextOptions();
        var ctx = new Option<int>("--ctx") { Description = "Window length in tokens", DefaultValueFactory = _ => 256 };
        var chunks = new Option<int>("--chunks") { Description = "Evaluate at most N windows (0 = all)" };
        var config = new Option<string?>("--config") { Description = "config.json for a safetensors MODEL (default: beside the model)" };
        var imatrix = new Option<string?>("--imatrix") { Description = "llama.cpp importance matrix for the mixes, as quantize --imatrix (iq1_*, iq2_*, iq3_xxs, iq3_xs and q2_K_S need one)" };
        var output = new Option<string>("--output", "-o") { Description = "Output folder for report.md and rd.svg", Required = true };
        var threads = CliCommon.Threads();
        var json = CliCommon.Json();
        var cmd = new Command("sweep", "Rate–distortion sweep: quantize to each type in memory, evaluate against the unquantized model, write report.md and rd.svg")
        {
            model, types, evalText.Text, evalText.Paragraphs, evalText.Tokenizer, evalText.Tokens, evalText.Split, ctx, chunks, config, output, threads, json, imatrix,
        };
        cmd.SetGuardedAction((p, ct) =>
        {
            string modelPath = p.GetValue(model)!;
            var data = evalText.Read(p, modelPath, p.GetValue(ctx));
            var options = new SweepOptions
            {
                Types = p.GetValue(types)!.Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries),
                Ctx = p.GetValue(ctx), MaxChunks = p.GetValue(chunks), ConfigPath = p.GetValue(config), ImatrixPath = p.GetValue(imatrix),
                Threads = CliCommon.ResolveThreads(p.GetValue(threads)),
            };
            string dir = p.GetValue(output)!;
            // -o names a folder; a chart file name there (rd.png, x.svg) is a mistake to catch before the sweep runs.
            if (Path.GetExtension(dir.TrimEnd('/', '\\')) is var ext && (ext.Equals(".png", StringComparison.OrdinalIgnoreCase) || ext.Equals(".svg", StringComparison.OrdinalIgnoreCase)))
                throw new ArgumentException($"{dir}: --output is a folder (sweep writes report.md and rd.svg into it; charts are SVG, PNG is not offered)");
            Directory.CreateDirectory(dir);

            SweepResult result = null!;
            if (p.GetValue(json) || !AnsiConsole.Profile.Capabilities.Interactive)
                result = Sweep.Run(modelPath, data, options, null, ct);
            else
                AnsiConsole.Progress().AutoClear(true)
                    .Columns(new TaskDescriptionColumn(), new ProgressBarColumn(), new PercentageColumn(), new RemainingTimeColumn())
                    .Start(c =>
                    {
                        var task = c.AddTask("sweep", maxValue: 1);
                        result = Sweep.Run(modelPath, data, options, new Reporter(task), ct);
                    });

            // Record the command as a user would type it, so the report says how to reproduce it.
            string command = "tcodec sweep " + string.Join(' ', Environment.GetCommandLineArgs().Skip(2).Select(a => a.Contains(' ') ? $"\"{a}\"" : a));
            string md = Path.Combine(dir, "report.md"), svg = Path.Combine(dir, "rd.svg");
            File.WriteAllText(md, SweepReport.Markdown(result, command));
            SweepReport.Plot(result, svg);

            if (p.GetValue(json))
            {
                JsonOutput.Write("sweep", new { input = modelPath, config = p.GetValue(config) }, evalText.JsonPaths(p),
                    new { split = p.GetValue(evalText.Split).ToString().ToLowerInvariant(), report = md, plot = svg }, SweepReport.Json(result));
                return 0;
            }
            var table = new Table().AddColumns("type", "bits/weight", "size", "PPL", "KLD mean", "KLD p99", "top-1 %");
            table.AddRow("base", $"{result.Base.BitsPerWeight:F2}", CliCommon.Bytes(result.Base.Bytes), $"{result.Base.Result.Ppl:F3}", "0", "0", "100");
            foreach (var e in result.Entries.OrderByDescending(e => e.BitsPerWeight))
                table.AddRow(Markup.Escape(e.Type), $"{e.BitsPerWeight:F2}", CliCommon.Bytes(e.Bytes), $"{e.Result.Ppl:F3} ± {e.Result.PplStdErr:F3}",
                    $"{e.Result.Kl!.Mean:G4}", $"{e.Result.Kl.P99:G4}", $"{e.Result.Kl.Top1AgreementPercent:F2}");
            AnsiConsole.Write(table);
            AnsiConsole.MarkupLine($"wrote [bold]{Markup.Escape(md)}[/] and [bold]{Markup.Escape(svg)}[/] ({result.Seconds:F0} s)");
            return 0;
        });
        return cmd;
    }

    /// <summary>One bar over every window of every model (base included); the label names the current type and its running perplexity.</summary>
    sealed class Reporter(ProgressTask task) : IProgress<SweepProgress>
    {
        public void Report(SweepProgress p)
        {
            task.MaxValue = (double)p.Steps * Math.Max(1, p.Windows);
            task.Value = (double)p.Step * p.Windows + p.Window;
            task.Description = Markup.Escape(p.Window == 0 ? $"[{p.Step + 1}/{p.Steps}] {p.Label}" : $"[{p.Step + 1}/{p.Steps}] {p.Label}  PPL {p.RunningPpl:F3}");
        }
    }
}
