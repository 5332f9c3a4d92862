using System.CommandLine;
using Spectre.Console;
using TensorCodec.Engine;
using TensorCodec.Eval;

namespace TensorCodec.Cli.Commands;

/// <summary><c>tcodec imatrix</c>: llama-imatrix's importance matrix from our engine, in either of llama.cpp's file formats.</summary>
static class ImatrixCommand
{
    public static Command Create()
    {
        var model = new Argument<string>("model") { Description = "Model to calibrate: a Hugging Face folder or model.safetensors.index.json, safetensors with config.json beside it, GGUF, or llama2.c .bin" };
        var output = CliCommon.Output();
        output.Required = true;
        var evalText = new EvalTextOptions();
        var ctx = new Option<int>("--ctx", "-c") { Description = "Tokens per chunk, each run from an empty cache", DefaultValueFactory = _ => 512 };
        var chunks = new Option<int>("--chunks") { Description = "Use at most N chunks (0 = all)" };
        var format = new Option<string?>("--format") { Description = "gguf or dat (llama.cpp's legacy format); default: by the output's extension (.dat → dat, else gguf)" };
        var processOutput = new Option<bool>("--process-output") { Description = "Also collect output.weight's input, as llama-imatrix --process-output" };
        var config = new Option<string?>("--config") { Description = "config.json for a safetensors MODEL (default: beside the model)" };
        var threads = CliCommon.Threads();
        var force = CliCommon.Force();
        var json = CliCommon.Json();
        var cmd = new Command("imatrix", "Importance matrix (llama-imatrix): per linear weight, the mean squared input activation per column over calibration text")
        {
            model, output, evalText.Text, evalText.Paragraphs, evalText.Tokenizer, evalText.Tokens, evalText.Split, ctx, chunks, format, processOutput, config, threads, force, json,
        };
        cmd.SetGuardedAction((p, ct) =>
        {
            string modelPath = p.GetValue(model)!, outPath = p.GetValue(output)!;
            bool legacy = p.GetValue(format)?.ToLowerInvariant() switch
            {
                null => outPath.EndsWith(".dat", StringComparison.OrdinalIgnoreCase),
                "dat" => true,
                "gguf" => false,
                var f => throw new ArgumentException($"--format {f}: use gguf or dat"),
            };
            // As llama-imatrix: the whole text as one string, BOS over each window's first token.
            var data = evalText.Read(p, modelPath, p.GetValue(ctx));
            using var m = LlamaModel.Load(modelPath, new LlamaLoadOptions { ConfigPath = p.GetValue(config) });
            var options = new ImatrixOptions
            {
                Ctx = p.GetValue(ctx), MaxChunks = p.GetValue(chunks), Threads = CliCommon.ResolveThreads(p.GetValue(threads)),
                ProcessOutput = p.GetValue(processOutput),
            };
            var sw = System.Diagnostics.Stopwatch.StartNew();
            var total = Math.Max(1, options.MaxChunks > 0 ? Math.Min(options.MaxChunks, data.Length / Math.Max(1, options.Ctx)) : data.Length / Math.Max(1, options.Ctx));
            var result = CliCommon.WithProgress(p.GetValue(json), "imatrix", total,
                progress => ImatrixCollector.Collect(m, data.Span, options, progress, ct));
            string dataset = p.GetValue(evalText.Text) ?? p.GetValue(evalText.Tokens)!;
            result.Save(outPath, dataset, legacy, p.GetValue(force));
            if (p.GetValue(json))
            {
                JsonOutput.Write("imatrix", new { input = modelPath, output = outPath, config = p.GetValue(config) }, evalText.JsonPaths(p), new
                {
                    format = legacy ? "dat" : "gguf", split = p.GetValue(evalText.Split).ToString().ToLowerInvariant(), ctx = result.ChunkSize,
                    chunks = result.Chunks, tokens = result.Tokens, entries = result.Names.Count, seconds = sw.Elapsed.TotalSeconds,
                });
                return 0;
            }
            AnsiConsole.MarkupLine($"{Markup.Escape(modelPath)}: {result.Chunks} chunks of {result.ChunkSize} tokens → {Markup.Escape(outPath)} " +
                $"({(legacy ? "legacy .dat" : "GGUF")}, {result.Names.Count} entries, {sw.Elapsed.TotalSeconds:0.00} s)");
            return 0;
        });
        return cmd;
    }
}
