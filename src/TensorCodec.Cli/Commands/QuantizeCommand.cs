using System.CommandLine;
using Spectre.Console;
using TensorCodec.Quantization;

namespace TensorCodec.Cli.Commands;

static class QuantizeCommand
{
    public static Command Create()
    {
        var input = new Argument<string>("model") { Description = "Hugging Face Llama folder or model.safetensors.index.json, safetensors (config.json beside it), llama2.c checkpoint, or GGUF" };
        var output = CliCommon.Output();
        output.Required = true;
        var type = new Option<string>("--type", "-t")
        {
            Description = "llama.cpp mix: " + string.Join(", ", QuantMix.All.Select(m => m.Name)),
            DefaultValueFactory = _ => "q4_K_M",
        };
        var imatrix = new Option<string?>("--imatrix")
        {
            Description = "Importance weights, llama.cpp's imatrix (GGUF with X.in_sum2/X.counts, or legacy .dat: int32 count; per entry " +
                "int32 name length, name, int32 ncall, int32 nval, float32[nval]; weight = value/ncall), keyed by GGUF tensor name, one weight per column",
        };
        var tokenizer = new Option<string?>("--tokenizer")
        {
            Description = "Tokenizer to embed: llama2.c tokenizer.bin (e.g. tok1024.bin) or a Hugging Face tokenizer.json (default: tokenizer.json beside a safetensors model)",
        };
        var requireTokenizer = new Option<bool>("--require-tokenizer") { Description = "Fail (writing nothing) instead of writing a GGUF without a tokenizer" };
        var config = new Option<string?>("--config") { Description = "Hugging Face config.json (default: beside the model)" };
        var name = new Option<string?>("--name") { Description = "general.name (default: from the input path)" };
        var allowNonFinite = new Option<bool>("--allow-nonfinite") { Description = "Quantize weights containing NaN/Inf instead of refusing" };
        // llama-quantize's per-tensor options, with its names and semantics.
        var pure = new Option<bool>("--pure") { Description = "Disable the mix's per-tensor rules: every quantized tensor gets the mix's base type (the row-length fallback still applies)" };
        var outputType = new Option<string?>("--output-tensor-type") { Description = "ggml type for output.weight (e.g. q8_0, f16)" };
        var embdType = new Option<string?>("--token-embedding-type") { Description = "ggml type for token_embd.weight" };
        var tensorType = new Option<string[]>("--tensor-type")
        {
            Description = "PATTERN=TYPE: quantize the tensors whose GGUF name contains a match of the regular expression PATTERN (lower-cased) as TYPE; " +
                "repeatable, the first matching pattern wins (e.g. --tensor-type attn_v=q8_0)",
            AllowMultipleArgumentsPerToken = false,
        };
        var leaveOutput = new Option<bool>("--leave-output-tensor") { Description = "Leave output.weight unquantized (its F32/F16/BF16 source type)" };
        var budget = new MixedPrecisionOptions();
        var calibration = new CalibrationOptions();
        var threads = CliCommon.Threads();
        var force = CliCommon.Force();
        var json = CliCommon.Json();
        var cmd = new Command("quantize", "Quantize a whole model to a GGUF that llama.cpp loads, with llama.cpp's per-tensor type mix")
        {
            input, output, type, imatrix, tokenizer, requireTokenizer, config, name, allowNonFinite, threads, force, json,
            pure, outputType, embdType, tensorType, leaveOutput,
        };
        foreach (var o in calibration.All) cmd.Options.Add(o);
        foreach (var o in budget.All) cmd.Options.Add(o);
        cmd.SetGuardedAction((p, ct) =>
        {
            string inPath = p.GetValue(input)!;
            if (!File.Exists(inPath) && !Directory.Exists(inPath)) throw new FileNotFoundException($"{inPath}: no such file");
            CliCommon.CheckOutputName("quantize", p.GetValue(output), ".gguf");
            bool asJson = p.GetValue(json);
            var mix = QuantMix.Get(p.GetValue(type)!);
            var method = CalibrationOptions.ParseMethod(p.GetValue(calibration.Method));
            var target = budget.Target(p);
            var calib = calibration.Build(p, inPath, p.GetValue(config), p.GetValue(tokenizer), CliCommon.ResolveThreads(p.GetValue(threads)), ct, budget: target is not null);
            using var calibModel = calib?.Model;
            using var meter = target is null ? null : budget.Meter(p, inPath, p.GetValue(config), calib?.Tokens, p.GetValue(calibration.Ctx), CliCommon.ResolveThreads(p.GetValue(threads)), ct);
            ModelQuantizeOptions Options(IProgress<QuantizeProgress>? progress) => new()
            {
                Mix = mix,
                ConfigPath = p.GetValue(config),
                TokenizerPath = p.GetValue(tokenizer),
                RequireTokenizer = p.GetValue(requireTokenizer),
                ImatrixPath = p.GetValue(imatrix),
                ModelName = p.GetValue(name),
                Threads = CliCommon.ResolveThreads(p.GetValue(threads)),
                AllowNonFinite = p.GetValue(allowNonFinite),
                Pure = p.GetValue(pure),
                OutputTensorType = p.GetValue(outputType),
                TokenEmbeddingType = p.GetValue(embdType),
                TensorTypes = p.GetValue(tensorType) ?? [],
                LeaveOutputTensor = p.GetValue(leaveOutput),
                Overwrite = p.GetValue(force),
                Progress = progress,
                Cancellation = ct,
                Method = method,
                Calibration = calib?.Stats,
                TargetBitsPerWeight = target?.Bpw,
                TargetBytes = target?.Bytes,
                Damage = budget.Damage(p, meter is not null),
                DamageMeter = meter,
            };

            QuantizeResult result;
            if (asJson || !AnsiConsole.Profile.Capabilities.Interactive)
                result = ModelQuantizer.Quantize(inPath, p.GetValue(output)!, Options(null));
            else
            {
                result = null!;
                AnsiConsole.Progress().AutoClear(true)
                    .Columns(new TaskDescriptionColumn(), new ProgressBarColumn(), new PercentageColumn(), new RemainingTimeColumn())
                    .Start(ctx =>
                    {
                        var task = ctx.AddTask("quantize", maxValue: 1);
                        result = ModelQuantizer.Quantize(inPath, p.GetValue(output)!, Options(new Progress(task)));
                    });
            }

            // A GGUF without a tokenizer is written but llama.cpp cannot load it: say so on stderr.
            var warnings = result.TokenizerEmbedded ? [] : result.Notes.Where(n => n.StartsWith("no tokenizer embedded", StringComparison.Ordinal)).ToList();
            foreach (var w in warnings) Console.Error.WriteLine($"warning: {w}");
            // Predicted against measured: the written file's KL divergence on the same calibration windows.
            var fileEval = result.MixedPrecision is not null ? meter?.MeasureFile(result.Output) : null;
            if (asJson)
            {
                JsonOutput.Write("quantize", new
                {
                    input = result.Input, output = result.Output, config = p.GetValue(config), tokenizer = p.GetValue(tokenizer), imatrix = p.GetValue(imatrix),
                    method = method.ToString().ToLowerInvariant(), calibration = p.GetValue(calibration.Calibration),
                    input_format = result.InputFormat.ToString(), mix = result.Mix.Name, output_bytes = result.OutputBytes, tensor_bytes = result.TensorBytes,
                    tensors = result.Tensors.Count, values = result.Elements, bits_per_value = result.BitsPerWeight,
                    tokenizer_embedded = result.TokenizerEmbedded, imatrix_used = result.ImatrixUsed, seconds = result.Elapsed.TotalSeconds, notes = result.Notes,
                    warnings,
                    mixed_precision = MixedPrecisionOptions.Json(result, fileEval),
                    tensor_list = result.Tensors.Select(t => new
                    {
                        name = t.Name, source_name = t.SourceName, dtype = JsonOutput.DType(t.Type), shape = JsonOutput.Shape(t.Dims), values = t.Elements,
                        bytes = t.Bytes, bits_per_value = t.BitsPerWeight, fallback_from = t.FallbackFrom is { } f ? JsonOutput.DType(f) : null,
                    }),
                });
                return 0;
            }

            if (result.MixedPrecision is { } mp)
            {
                MixedPrecisionOptions.Print(result, mp, fileEval);
                return 0;
            }
            var table = new Table().Border(TableBorder.Simple);
            table.AddColumns("tensor", "type", "dims (ne0 first)", "bytes", "bits/weight");
            foreach (var c in table.Columns.Skip(3)) c.RightAligned();
            foreach (var t in result.Tensors)
                table.AddRow(Markup.Escape(t.Name), t.FallbackFrom is null ? t.Type : $"{t.Type} [yellow](fallback from {t.FallbackFrom})[/]",
                    Markup.Escape("[" + string.Join(", ", t.Dims) + "]"), t.Bytes.ToString("N0"), $"{t.BitsPerWeight:0.000}");
            table.AddRow("[bold]total[/]", result.Mix.Name, $"{result.Elements:N0} weights", $"[bold]{result.TensorBytes:N0}[/]", $"[bold]{result.BitsPerWeight:0.000}[/]");
            AnsiConsole.Write(table);
            foreach (var n in result.Notes) AnsiConsole.MarkupLine($"[yellow]note:[/] {Markup.Escape(n)}");
            AnsiConsole.MarkupLine($"{Markup.Escape(result.Input)} ({result.InputFormat}) → {Markup.Escape(result.Output)}: {result.Mix.Name}, " +
                $"{CliCommon.Bytes(result.OutputBytes)}, {result.Tensors.Count} tensors, {result.Elapsed.TotalSeconds:0.00} s");
            return 0;
        });
        return cmd;
    }

    /// <summary>One bar for the model; its label names the tensor being quantized.</summary>
    sealed class Progress(ProgressTask task) : IProgress<QuantizeProgress>
    {
        public void Report(QuantizeProgress p)
        {
            task.MaxValue = Math.Max(1, p.ValuesTotal);
            task.Value = p.ValuesDone;
            task.Description = Markup.Escape($"[{Math.Min(p.TensorIndex + 1, p.TensorCount)}/{p.TensorCount}] {p.Tensor}");
        }
    }
}
