using System.CommandLine;
using System.Runtime.InteropServices;
using Spectre.Console;
using TensorCodec.Containers;
using TensorCodec.Engine;
using TensorCodec.Eval;

namespace TensorCodec.Cli.Commands;

static class LogitsCommand
{
    public static Command Create()
    {
        var model = new Argument<string>("model") { Description = "Hugging Face folder or model.safetensors.index.json, safetensors with config.json beside it, GGUF, or llama2.c .bin" };
        var tokens = new Option<string?>("--tokens") { Description = "Token ids: comma-separated list, or a .csv/.u16 file" };
        var config = new Option<string?>("--config") { Description = "config.json for a safetensors model (default: beside the model)" };
        var generate = new Option<int>("--generate") { Description = "Instead of logits: greedily generate N tokens after --tokens (default BOS) and report tokens/s" };
        var runs = new Option<int>("--runs") { Description = "With --generate: timed runs to take the median of", DefaultValueFactory = _ => 10 };
        var kv = new Option<string>("--kv") { Description = "KV cache type: f32, f16, q8_0, kivi2, kivi4, kvmix[:k=B,v=B,g=G,r=R] (docs/KV.md)", DefaultValueFactory = _ => "f32" };
        var output = CliCommon.Output();
        var threads = CliCommon.Threads();
        var json = CliCommon.Json();
        var force = CliCommon.Force();
        var cmd = new Command("logits", "One forward pass over token ids, writing [n][vocab] float32 logits (or a greedy generation benchmark)")
        {
            model, tokens, config, generate, runs, kv, output, threads, json, force,
        };
        cmd.SetGuardedAction((p, ct) =>
        {
            string modelPath = p.GetValue(model)!;
            int t = CliCommon.ResolveThreads(p.GetValue(threads));
            using var m = LlamaModel.Load(modelPath, new LlamaLoadOptions { ConfigPath = p.GetValue(config) });
            int[] ids = p.GetValue(tokens) is { } spec ? ReadTokens(spec) : [];
            EvalData.CheckRange(ids, m.Config.VocabSize, "--tokens");
            var kvSpec = KvSpec.Parse(p.GetValue(kv)!);

            if (p.GetValue(generate) is int n and > 0)
            {
                int r = p.GetValue(runs);
                if (r < 1) throw new ArgumentException($"--runs must be at least 1, got {r}");
                var g = GenerationBenchmark.Run(m, ids, n, t, r, kvSpec.Kind == KvKind.F32 ? null : kvSpec);
                // The last generated token is never fed back, so the cache holds the prompt and one fewer than were generated.
                long kvBytes = kvSpec.BytesFor(m.Config, g.PromptTokens + g.GeneratedTokens);
                // g.GeneratedTokens counts the timed forward passes, one fewer than the ids generated (the first
                // comes from the prompt's logits); the count reported beside the ids is the ids' own.
                int generated = g.Tokens.Length;
                if (p.GetValue(json))
                    JsonOutput.Write("logits", new
                    {
                        input = modelPath, config = p.GetValue(config), threads = t, kv = kvSpec.Name, kv_bytes = kvBytes, prompt_tokens = g.PromptTokens,
                        generated_tokens = generated, timed_tokens = g.GeneratedTokens, runs = g.Runs, prompt_tokens_per_s = g.PromptTokensPerSecond,
                        tokens_per_s = g.TokensPerSecond, tokens_per_cpu_s = g.TokensPerCpuSecond, min_tokens_per_s = g.MinTokensPerSecond,
                        max_tokens_per_s = g.MaxTokensPerSecond, generated_token_ids = g.Tokens,
                    });
                else
                {
                    Console.WriteLine(string.Join(",", g.Tokens));
                    AnsiConsole.MarkupLine($"{generated} tokens generated at [bold]{g.TokensPerSecond:F0} tokens/s[/] ({g.TokensPerCpuSecond:F0} per CPU-second; -T {t}, median of {g.Runs}); prompt {g.PromptTokens} tokens at {g.PromptTokensPerSecond:F0} tokens/s; KV cache {Markup.Escape(kvSpec.Name)} {kvBytes:N0} bytes");
                }
                return 0;
            }

            string outPath = p.GetValue(output) ?? throw new ArgumentException("-o OUT.f32 is required (or use --generate N)");
            if (ids.Length == 0) throw new ArgumentException("--tokens is required");
            if (ids.Length > m.Config.MaxSeqLen) throw new ArgumentException($"{ids.Length} tokens exceed the model's maximum positions {m.Config.MaxSeqLen}");
            var logits = new float[(long)ids.Length * m.Config.VocabSize];
            using (var s = m.CreateSession(new LlamaSessionOptions { Threads = t, Capacity = ids.Length, Kv = kvSpec }))
                s.Forward(ids, logits);
            using (var w = new AtomicFileWriter(outPath, p.GetValue(force)))
            {
                w.Stream.Write(MemoryMarshal.AsBytes(logits.AsSpan()));
                w.Commit();
            }
            if (p.GetValue(json))
                JsonOutput.Write("logits", new { input = modelPath, config = p.GetValue(config), output = outPath, kv = kvSpec.Name, tokens = ids.Length, vocab = m.Config.VocabSize });
            else AnsiConsole.MarkupLine($"wrote [bold]{Markup.Escape(outPath)}[/]: [[{ids.Length}]][[{m.Config.VocabSize}]] float32 logits");
            return 0;
        });
        return cmd;
    }

    static int[] ReadTokens(string spec)
    {
        if (File.Exists(spec))
            return EvalData.ReadTokens(spec);
        return EvalData.ParseCsv(spec);
    }
}
