using TensorCodec.Engine;
using TensorCodec.Eval;
using TensorCodec.Quantization;
using TensorCodec.Tests.Engine;
using TensorCodec.Tests.Quantization;
using TensorCodec.Tokenizers;
using Xunit.Abstractions;

namespace TensorCodec.Tests.Eval;

/// <summary>
/// `tcodec eval --like-llama-cpp` against llama-perplexity --kl-divergence computed on llama.cpp's own
/// logits (node-llama-cpp's prebuilt CPU build, default F16 KV cache; bench/llama-cpp-kld.mjs): bard-3m
/// q4_K_M against its F32 base, ctx 256, the text's first 20 chunks of the last 5% of Tiny Shakespeare.
/// </summary>
public class LlamaCppKldInteropTests(ITestOutputHelper output)
{
    static string Script()
    {
        for (var d = new DirectoryInfo(AppContext.BaseDirectory); d is not null; d = d.Parent)
        {
            var p = Path.Combine(d.FullName, "bench", "llama-cpp-kld.mjs");
            if (File.Exists(p)) return p;
        }
        throw new FileNotFoundException("bench/llama-cpp-kld.mjs not found above the test output folder");
    }

    [NodeLlamaFact]
    public void Q4_K_M_kl_divergence_matches_llama_perplexity_within_2_percent()
    {
        var st = TestFiles.SharedOrSkip("data/models/bard-3m/model.safetensors");
        var tokPath = TestFiles.SharedOrSkip("data/models/bard-3m/tok1024.bin");
        var text = File.ReadAllText(TestFiles.SharedOrSkip("data/text/shakespeare.txt"));
        using var dir = new ScratchDir();
        string f32 = dir.File("bard-f32.gguf"), q4 = dir.File("bard-q4_K_M.gguf");
        ModelQuantizer.Quantize(st, f32, new ModelQuantizeOptions { Mix = QuantMix.Get("f32"), TokenizerPath = tokPath });
        ModelQuantizer.Quantize(st, q4, new ModelQuantizeOptions { Mix = QuantMix.Get("q4_K_M"), TokenizerPath = tokPath });
        // llama.cpp tokenizes this text to the same ids (checked when the protocol was written); BOS first.
        var ids = EvalData.EncodeWhole(text[(text.Length - text.Length / 20)..], Tokenizer.LoadLlama2c(tokPath));
        const int ctx = 256, chunks = 20;
        File.WriteAllText(dir.File("ids.csv"), string.Join(",", ids));

        var llama = NodeLlamaFactAttribute.RunScript(
            [Script(), "--modules", Environment.GetEnvironmentVariable(NodeLlamaFactAttribute.Variable)!, "--base", f32, "--model", q4,
             "--tokens", dir.File("ids.csv"), "--ctx", $"{ctx}", "--chunks", $"{chunks}"], output)[0].RootElement;
        double llamaKl = llama.GetProperty("klMean").GetDouble();

        using var baseModel = LlamaModel.Load(f32);
        using var model = LlamaModel.Load(q4);
        var fed = EvalData.WithChunkStarts(ids, ctx, 1);
        var like = Perplexity.Run(model, fed, new EvalOptions { Ctx = ctx, MaxChunks = chunks, Base = baseModel, LikeLlamaCpp = true });
        var exact = Perplexity.Run(model, fed, new EvalOptions { Ctx = ctx, MaxChunks = chunks, Base = baseModel });
        output.WriteLine($"KL mean: llama.cpp {llamaKl:E4}, ours --like-llama-cpp {like.Kl!.Mean:E4} ({100 * (like.Kl.Mean / llamaKl - 1):+0.0;-0.0}%), ours exact {exact.Kl!.Mean:E4}; " +
            $"PPL llama.cpp {llama.GetProperty("ppl").GetDouble():F4} vs ours {like.Ppl:F4}");
        Assert.Equal(chunks * (ctx - 1 - ctx / 2), llama.GetProperty("scored").GetInt32());
        Assert.InRange(like.Kl.Mean / llamaKl, 0.98, 1.02);
    }
}
