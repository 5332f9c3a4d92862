using System.CommandLine;
using Spectre.Console;
using TensorCodec.Engine;
using TensorCodec.Eval;

namespace TensorCodec.Cli.Commands;

static class EvalCommand
{
    public static Command Create()
    {
        var model = new Argument<string>("model") { Description = "Model to evaluate: a Hugging Face folder or model.safetensors.index.json, safetensors with config.json beside it, GGUF, or llama2.c .bin" };
        var baseModel = new Option<string?>("--base") { Description = "Base model: adds KL(base‖model), top-1 agreement and Δp statistics" };
        var evalText = new EvalTextOptions();
        var ctx = new Option<int>("--ctx") { Description = "Window length in tokens", DefaultValueFactory = _ => 256 };
        var chunks = new Option<int>("--chunks") { Description = "Evaluate at most N windows (0 = all)" };
        var scoreFrom = new Option<int?>("--score-from") { Description = "First scored position in each window (default ctx/2)" };
        var config = new Option<string?>("--config") { Description = "config.json for a safetensors MODEL (default: beside the model)" };
        var baseConfig = new Option<string?>("--base-config") { Description = "config.json for a safetensors --base" };
        var saveLogits = new Option<string?>("--save-logits") { Description = "Save reference log-probabilities (the base's, or this model's without --base)" };
        var baseLogits = new Option<string?>("--base-logits") { Description = "Use log-probabilities saved by --save-logits as the base" };
        var forceCtx = new Option<bool>("--force-ctx") { Description = "Allow --ctx beyond the model's maximum positions" };
        var kv = new Option<string>("--kv") { Description = "KV cache type of MODEL: f32, f16, q8_0, kivi2, kivi4, kvmix (K4/V2); KIVI types take :k=B,v=B,g=G,r=R (docs/KV.md)", DefaultValueFactory = _ => "f32" };
        var likeLlama = new Option<bool>("--like-llama-cpp") { Description = "Reproduce llama-perplexity's arithmetic: activations rounded to 8 bits before each quantized matmul as llama.cpp's CPU backend does, base log-probs as its uint16 codes, base log-probs below -16 left out of KL (docs/EVAL.md)" };
        var threads = CliCommon.Threads();
        var json = CliCommon.Json();
        var force = CliCommon.Force();
        var cmd = new Command("eval", "Perplexity (llama.cpp protocol) and, with a base, KL divergence statistics")
        {
            model, baseModel, evalText.Text, evalText.Paragraphs, evalText.Tokenizer, evalText.Tokens, evalText.Split, ctx, chunks, scoreFrom, config, baseConfig, saveLogits, baseLogits, forceCtx, kv, likeLlama, threads, json, force,
        };
        cmd.SetGuardedAction((p, ct) =>
        {
            bool asJson = p.GetValue(json);
            var kvSpec = KvSpec.Parse(p.GetValue(kv)!);
            if (p.GetValue(baseModel) is not null && p.GetValue(baseLogits) is not null)
                throw new ArgumentException("give either --base or --base-logits, not both");
            string modelPath = p.GetValue(model)!;
            var data = evalText.Read(p, modelPath, p.GetValue(ctx));

            using var m = LlamaModel.Load(modelPath, new LlamaLoadOptions { ConfigPath = p.GetValue(config) });
            using var b = p.GetValue(baseModel) is { } bp ? LlamaModel.Load(bp, new LlamaLoadOptions { ConfigPath = p.GetValue(baseConfig) }) : null;

            int ctxValue = p.GetValue(ctx);
            int maxPos = Math.Min(m.Config.MaxSeqLen, b?.Config.MaxSeqLen ?? int.MaxValue);
            if (ctxValue > maxPos && p.GetValue(forceCtx))
                Console.Error.WriteLine($"tcodec: warning: --ctx {ctxValue} exceeds the model's maximum positions {maxPos}; results beyond it are extrapolation");
            var options = new EvalOptions
            {
                Ctx = ctxValue, ScoreFrom = p.GetValue(scoreFrom), MaxChunks = p.GetValue(chunks),
                Threads = CliCommon.ResolveThreads(p.GetValue(threads)), AllowLongContext = p.GetValue(forceCtx),
                Base = b, BaseLogitsPath = p.GetValue(baseLogits), SaveLogitsPath = p.GetValue(saveLogits), Overwrite = p.GetValue(force),
                Kv = kvSpec, LikeLlamaCpp = p.GetValue(likeLlama),
            };
            var result = RunWithProgress(asJson, Path.GetFileName(modelPath), progress => Perplexity.Run(m, data.Span, options, progress, ct));

            if (asJson)
            {
                var kl = result.Kl;
                JsonOutput.Write("eval", new
                {
                    input = modelPath, base_model = p.GetValue(baseModel), base_logits = p.GetValue(baseLogits), save_logits = p.GetValue(saveLogits),
                    config = p.GetValue(config), base_config = p.GetValue(baseConfig),
                }, evalText.JsonPaths(p), new
                {
                    text_mode = evalText.TextMode(p), split = p.GetValue(evalText.Split).ToString().ToLowerInvariant(), tokens = data.Length, ctx = result.Ctx, score_from = result.ScoreFrom,
                    windows = result.Windows, scored = result.Scored, mean_nll = result.MeanNll, ppl = result.Ppl, ppl_std_err = result.PplStdErr,
                    base_ppl = kl?.BasePpl, base_ppl_std_err = kl?.BasePplStdErr, kl_mean = kl?.Mean, kl_mean_std_err = kl?.MeanStdErr, kl_median = kl?.Median,
                    kl_p90 = kl?.P90, kl_p99 = kl?.P99, kl_max = kl?.Max, top1_agreement = kl is null ? (double?)null : JsonOutput.Fraction(kl.Top1AgreementPercent),
                    top1_agreement_std_err = kl is null ? (double?)null : JsonOutput.Fraction(kl.Top1StdErrPercent), mean_delta_p = kl?.MeanDeltaP, rms_delta_p = kl?.RmsDeltaP,
                    kv = result.KvType, kv_bytes = result.KvBytes, kv_bytes_per_token = result.KvBytes / (double)(result.Ctx - 1), like_llama_cpp = options.LikeLlamaCpp, threads = options.Threads,
                    seconds = result.Seconds, tokens_per_s = result.TokensPerSecond,
                });
                return 0;
            }
            AnsiConsole.MarkupLine($"[bold]{Markup.Escape(modelPath)}[/]: {data.Length:N0} tokens, ctx {result.Ctx}, {result.Windows} windows, scoring positions {result.ScoreFrom}…{result.Ctx - 2} ({result.Scored:N0} predictions)");
            AnsiConsole.MarkupLine($"  PPL = [bold]{result.Ppl:F4}[/] ± {result.PplStdErr:F4}   (mean NLL {result.MeanNll:F6})");
            if (result.Kl is { } k)
            {
                AnsiConsole.MarkupLine($"  base PPL = {k.BasePpl:F4} ± {k.BasePplStdErr:F4}   ln(PPL/PPL_base) = {Math.Log(result.Ppl / k.BasePpl):F6}");
                AnsiConsole.MarkupLine($"  KL(base‖model): mean {k.Mean:G5} ± {k.MeanStdErr:G3}, median {k.Median:G5}, p90 {k.P90:G5}, p99 {k.P99:G5}, max {k.Max:G5}");
                AnsiConsole.MarkupLine($"  top-1 agreement {k.Top1AgreementPercent:F3} ± {k.Top1StdErrPercent:F3} %   Δp mean {100 * k.MeanDeltaP:F4} %, RMS {100 * k.RmsDeltaP:F4} %");
            }
            AnsiConsole.MarkupLine($"  KV cache {Markup.Escape(result.KvType)}: {result.KvBytes:N0} bytes for {result.Ctx - 1} positions ({result.KvBytes / (double)(result.Ctx - 1):F1} bytes/token)");
            if (options.LikeLlamaCpp) AnsiConsole.MarkupLine("  arithmetic: like llama.cpp (activations rounded to the weights' ggml vec_dot_type, uint16 base log-probs, base log-probs ≤ −16 left out of KL)");
            AnsiConsole.MarkupLine($"  {result.Seconds:F2} s, {result.TokensPerSecond:F0} tokens/s (model under test, -T {options.Threads})");
            return 0;
        });
        return cmd;
    }

    /// <summary>A progress bar whose label carries the running perplexity (interactive terminals only).</summary>
    static EvalResult RunWithProgress(bool quiet, string label, Func<IProgress<EvalProgress>?, EvalResult> work)
    {
        if (quiet || !AnsiConsole.Profile.Capabilities.Interactive) return work(null);
        EvalResult result = null!;
        AnsiConsole.Progress().AutoClear(true)
            .Columns(new TaskDescriptionColumn(), new ProgressBarColumn(), new PercentageColumn(), new RemainingTimeColumn())
            .Start(ctx =>
            {
                var task = ctx.AddTask(Markup.Escape($"eval {label}"), maxValue: 1);
                result = work(new Progress(task, label));
            });
        return result;
    }

    sealed class Progress(ProgressTask task, string label) : IProgress<EvalProgress>
    {
        public void Report(EvalProgress p)
        {
            task.MaxValue = p.Windows;
            task.Value = p.Window;
            task.Description = Markup.Escape($"eval {label}  PPL {p.RunningPpl:F3}");
        }
    }
}
