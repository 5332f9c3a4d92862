using System.CommandLine;
using System.Diagnostics;
using Spectre.Console;
using TensorCodec.Containers;
using TensorCodec.Containers.Tkv;
using TensorCodec.Engine;
using TensorCodec.Eval;
using TensorCodec.Models;
using TensorCodec.Tokenizers;

namespace TensorCodec.Cli.Commands;

/// <summary><c>tcodec kv save|load|bench</c>: a prompt's KV cache as a compact, checked file (docs/KV.md).</summary>
static class KvCommand
{
    public static Command Create()
    {
        var cmd = new Command("kv", "Save a prompt's KV cache to a .tkv file and continue from it later (docs/KV.md)");
        cmd.Subcommands.Add(Save());
        cmd.Subcommands.Add(Load());
        cmd.Subcommands.Add(Bench());
        return cmd;
    }

    static Argument<string> ModelArg() => new("model") { Description = "Hugging Face folder or model.safetensors.index.json, safetensors with config.json beside it, GGUF, or llama2.c .bin" };
    static Option<string?> TokenizerOpt() => new("--tokenizer") { Description = "Tokenizer (default: the model's own — a GGUF's vocabulary or tokenizer.json in its folder — else tokenizer.bin or tok*.bin beside it)" };
    static Option<string?> ConfigOpt() => new("--config") { Description = "config.json for a safetensors model (default: beside the model)" };
    static Option<string> CodecOpt() => new("--kv-codec")
    {
        Description = "f32 (lossless), f16, or qB[:k=B,v=B,layers=B/B/…,delta=none|anchor|prev,anchor=N]",
        DefaultValueFactory = _ => "f32",
    };

    static Command Save()
    {
        var model = ModelArg();
        var text = new Option<string?>("--text") { Description = "Prompt text file (tokenized as eval does: BOS + paragraph + \"\\n\" per paragraph)" };
        var tokens = new Option<string?>("--tokens") { Description = "Prompt token ids instead: .u16 or .csv file" };
        var from = new Option<int>("--from") { Description = "First token of the prompt within the file's tokens" };
        var count = new Option<int>("--count") { Description = "Prompt length in tokens (default: all, capped to leave a quarter of the model's positions for the continuation)" };
        var dump = new Option<string?>("--dump-f16") { Description = "Also write the raw F16 dump (layer-major, keys then values) for baselines such as zstd -19" };
        var tok = TokenizerOpt(); var config = ConfigOpt(); var codec = CodecOpt();
        var output = CliCommon.Output(); var threads = CliCommon.Threads(); var json = CliCommon.Json(); var force = CliCommon.Force();
        var cmd = new Command("save", "Run a prompt and write its KV cache to a .tkv file") { model, text, tokens, from, count, dump, tok, config, codec, output, threads, json, force };
        cmd.SetGuardedAction((p, ct) =>
        {
            string modelPath = p.GetValue(model)!;
            string outPath = p.GetValue(output) ?? throw new ArgumentException("-o ctx.tkv is required");
            using var m = LlamaModel.Load(modelPath, new LlamaLoadOptions { ConfigPath = p.GetValue(config) });
            var spec = KvCodecSpec.Parse(p.GetValue(codec)!, m.Config.Layers);
            int[] all = p.GetValue(text) is { } tp ? EvalData.Tokenize(tp, CliCommon.ResolveTokenizer(p.GetValue(tok), modelPath))
                : p.GetValue(tokens) is { } tf ? EvalData.ReadTokens(tf)
                : throw new ArgumentException("give --text FILE or --tokens FILE");
            int start = p.GetValue(from);
            if (start < 0 || start >= all.Length) throw new ArgumentException($"--from {start} is outside the {all.Length} tokens");
            int n = p.GetValue(count) > 0 ? p.GetValue(count) : Math.Min(all.Length - start, m.Config.MaxSeqLen - m.Config.MaxSeqLen / 4);
            if (start + n > all.Length) throw new ArgumentException($"--from {start} --count {n} runs past the {all.Length} tokens");
            var prompt = all.AsSpan(start, n);
            EvalData.CheckRange(prompt, m.Config.VocabSize, "prompt");

            var sw = Stopwatch.StartNew();
            var ctx = KvContext.Capture(m, prompt, CliCommon.ResolveThreads(p.GetValue(threads)));
            double runSeconds = sw.Elapsed.TotalSeconds;
            sw.Restart();
            KvSaveStats stats;
            using (var w = new AtomicFileWriter(outPath, p.GetValue(force)))
            {
                stats = ctx.Write(w.Stream, spec);
                w.Commit();
            }
            double saveSeconds = sw.Elapsed.TotalSeconds;
            if (p.GetValue(dump) is { } dumpPath)
                using (var w = new AtomicFileWriter(dumpPath, p.GetValue(force)))
                {
                    w.Stream.Write(ctx.RawF16Dump());
                    w.Commit();
                }
            double perToken = stats.FileBytes / (double)ctx.Positions;
            if (p.GetValue(json))
                JsonOutput.Write("kv save", new
                {
                    input = modelPath, config = p.GetValue(config), text = p.GetValue(text), tokenizer = p.GetValue(tok), tokens_file = p.GetValue(tokens),
                    output = outPath, dump_f16 = p.GetValue(dump), codec = spec.Name, lossless = spec.Lossless, tokens = n, positions = ctx.Positions,
                    output_bytes = stats.FileBytes, bytes_per_token = perToken, raw_f16_bytes = stats.RawF16Bytes,
                    ratio = stats.FileBytes / (double)stats.RawF16Bytes, key_bytes = stats.KeyBytes, value_bytes = stats.ValueBytes,
                    prompt_seconds = runSeconds, save_seconds = saveSeconds,
                });
            else
                AnsiConsole.MarkupLine($"wrote [bold]{Markup.Escape(outPath)}[/]: {n} tokens ({ctx.Positions} cached positions), codec {Markup.Escape(spec.Name)}, " +
                    $"{stats.FileBytes:N0} bytes = {perToken:F1} bytes/token, F16 dump / file = {stats.RawF16Bytes / (double)stats.FileBytes:F2} " +
                    $"(keys {stats.KeyBytes:N0}, values {stats.ValueBytes:N0}); prompt {runSeconds * 1000:F0} ms, encode+write {saveSeconds * 1000:F0} ms");
            return 0;
        });
        return cmd;
    }

    static Command Load()
    {
        var model = ModelArg();
        var file = new Argument<string>("context") { Description = ".tkv file written by tcodec kv save" };
        var cont = new Option<string?>("--continue") { Description = "Text to feed after the restored context (no BOS)" };
        var generate = new Option<int>("--generate") { Description = "Greedy tokens to generate after the continuation", DefaultValueFactory = _ => 32 };
        var noCheck = new Option<bool>("--no-check") { Description = "Skip the fresh-prompt comparison" };
        var tok = TokenizerOpt(); var config = ConfigOpt();
        var threads = CliCommon.Threads(); var json = CliCommon.Json();
        var cmd = new Command("load", "Restore a .tkv context and continue generation; compares with a fresh prompt")
        {
            model, file, cont, generate, noCheck, tok, config, threads, json,
        };
        cmd.SetGuardedAction((p, ct) =>
        {
            string modelPath = p.GetValue(model)!, path = p.GetValue(file)!;
            int t = CliCommon.ResolveThreads(p.GetValue(threads));
            using var m = LlamaModel.Load(modelPath, new LlamaLoadOptions { ConfigPath = p.GetValue(config) });
            var tokenizer = p.GetValue(cont) is not null || !p.GetValue(json) ? CliCommon.ResolveTokenizer(p.GetValue(tok), modelPath) : null;
            int[] continuation = p.GetValue(cont) is { } c ? tokenizer!.Encode(c, addSpecial: false, parseSpecial: false) : [];
            EvalData.CheckRange(continuation, m.Config.VocabSize, "--continue");

            var sw = Stopwatch.StartNew();
            KvContext ctx;
            ctx = KvContext.Read(path, m);
            double readSeconds = sw.Elapsed.TotalSeconds;
            var r = KvContinuation.Run(m, ctx, continuation, p.GetValue(generate), compare: !p.GetValue(noCheck), t);
            string generated = tokenizer?.Decode(r.Tokens.AsSpan(continuation.Length)) ?? "";
            if (p.GetValue(json))
            {
                JsonOutput.Write("kv load", new
                {
                    input = modelPath, context = path, config = p.GetValue(config), tokenizer = p.GetValue(tok), codec = ctx.Codec,
                    prompt_tokens = ctx.Tokens.Length, continuation_tokens = continuation.Length, generated_tokens = r.Tokens.Length - continuation.Length,
                    continuation_token_ids = r.Tokens[..continuation.Length], generated_token_ids = r.Tokens[continuation.Length..],
                    generated_text = generated, read_seconds = readSeconds, restore_seconds = r.RestoreSeconds, fresh_prompt_seconds = r.FreshSeconds,
                    compared = r.Compared, bit_identical = r.BitIdentical, same_generated_ids = r.SameTokens, kl_mean = r.KlMean, kl_max = r.KlMax,
                    top1_agreement = JsonOutput.Fraction(r.Top1Percent),
                });
                return 0;
            }
            AnsiConsole.MarkupLine($"restored [bold]{Markup.Escape(path)}[/] ({ctx.Tokens.Length} prompt tokens, codec {Markup.Escape(ctx.Codec)}): read {readSeconds * 1000:F1} ms, restore {r.RestoreSeconds * 1000:F1} ms");
            Console.WriteLine(tokenizer!.Decode(continuation) + generated);
            if (r.Compared)
            {
                AnsiConsole.MarkupLine($"vs fresh prompt ({r.FreshSeconds * 1000:F1} ms): " + (r.BitIdentical ? "[green]bit-identical logits[/]" :
                    $"KL(fresh‖restored) mean {r.KlMean:G4}, max {r.KlMax:G4} over {r.Rows} next-token distributions; top-1 agreement {r.Top1Percent:F1} %; " +
                    (r.SameTokens ? "same generated tokens" : "generated tokens differ")));
            }
            return 0;
        });
        return cmd;
    }

    static Command Bench()
    {
        var model = ModelArg();
        var tokens = new Option<string>("--tokens") { Description = "Token ids (.u16 or .csv)", Required = true };
        var split = new Option<TokenSplit>("--split") { Description = "all, train or val", DefaultValueFactory = _ => TokenSplit.Val };
        var ctxOpt = new Option<int>("--ctx") { Description = "Window: prompt + continuation", DefaultValueFactory = _ => 256 };
        var promptOpt = new Option<int>("--prompt") { Description = "Prompt tokens saved per window (the rest is the teacher-forced continuation)", DefaultValueFactory = _ => 192 };
        var windows = new Option<int>("--windows") { Description = "Windows to measure", DefaultValueFactory = _ => 8 };
        var codecs = new Option<string>("--kv-codec") { Description = "Codecs separated by ';'", DefaultValueFactory = _ => "f32;f16;q8;q6;q5;q4" };
        var config = ConfigOpt(); var threads = CliCommon.Threads(); var json = CliCommon.Json();
        var cmd = new Command("bench", "Measure .tkv codecs: bytes/token vs an F16 dump and zstd -19 of it, save/load speed, KL vs the fresh prompt")
        {
            model, tokens, split, ctxOpt, promptOpt, windows, codecs, config, threads, json,
        };
        cmd.SetGuardedAction((p, ct) =>
        {
            string modelPath = p.GetValue(model)!, tf = p.GetValue(tokens)!;
            using var m = LlamaModel.Load(modelPath, new LlamaLoadOptions { ConfigPath = p.GetValue(config) });
            int[] all = EvalData.ReadTokens(tf);
            var data = EvalData.Split(all, p.GetValue(split));
            var specs = p.GetValue(codecs)!.Split(';', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).Select(s => KvCodecSpec.Parse(s, m.Config.Layers)).ToArray();
            var rows = KvBench.Run(m, data.Span, p.GetValue(ctxOpt), p.GetValue(promptOpt), p.GetValue(windows), specs, CliCommon.ResolveThreads(p.GetValue(threads)), ct);
            if (p.GetValue(json))
            {
                JsonOutput.Write("kv bench", new
                {
                    input = modelPath, config = p.GetValue(config), tokens_file = tf, split = p.GetValue(split).ToString().ToLowerInvariant(), tokens = data.Length,
                    ctx = p.GetValue(ctxOpt), prompt_tokens = p.GetValue(promptOpt), windows = rows.Count > 0 ? rows[0].Windows : 0,
                    entries = rows.Select(r => new
                    {
                        codec = r.Codec, lossless = r.Lossless, positions_per_window = r.PositionsPerWindow, bytes_per_token = r.BytesPerToken,
                        f16_bytes_per_token = r.F16BytesPerToken, zstd19_bytes_per_token = r.ZstdBytesPerToken,
                        ratio = r.BytesPerToken / r.F16BytesPerToken, ratio_vs_zstd19 = r.BytesPerToken / r.ZstdBytesPerToken,
                        kl_mean = r.KlMean, kl_max = r.KlMax, top1_agreement = JsonOutput.Fraction(r.Top1Percent), bit_identical = r.BitIdentical,
                        save_mb_per_s = r.SaveMBps, load_mb_per_s = r.LoadMBps, save_ms = r.SaveMsPerContext, load_ms = r.LoadMsPerContext,
                    }),
                });
                return 0;
            }
            var table = new Table().AddColumns("codec", "bytes/token", "× vs f16", "× vs zstd-19(f16)", "KL mean", "KL max", "top-1 %", "save MB/s", "load MB/s");
            foreach (var r in rows)
                table.AddRow(Markup.Escape(r.Codec), $"{r.BytesPerToken:F1}", $"{r.RatioVsF16:F2}", $"{r.RatioVsZstd:F2}", $"{r.KlMean:G3}", $"{r.KlMax:G3}", $"{r.Top1Percent:F2}",
                    $"{r.SaveMBps:F0}", $"{r.LoadMBps:F0}");
            AnsiConsole.Write(table);
            var f = rows[0];
            AnsiConsole.MarkupLine($"F16 dump {f.F16BytesPerToken:F1} bytes/token; zstd -19 of it {f.ZstdBytesPerToken:F1} bytes/token; MB/s count F16-dump bytes");
            return 0;
        });
        return cmd;
    }
}
