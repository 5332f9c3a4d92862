using TensorCodec.Engine;
using TensorCodec.Eval;
using TensorCodec.Numerics;
using TensorCodec.Quantization;
using Xunit.Abstractions;

namespace TensorCodec.Tests.Quantization;

/// <summary>A real llama.cpp (node-llama-cpp) loads a --method gptq GGUF and finds it closer to the F32 model than llama.cpp's own mix.</summary>
public class GptqInteropTests(ITestOutputHelper output)
{
    [NodeLlamaFact]
    public void LlamaCppRunsGptqFileWithLowerKlThanTheSameMix()
    {
        var f32 = TestFiles.SharedOrSkip("data/models/bard-3m/model.safetensors");
        var refDir = TestFiles.SharedOrSkip("data/models/bard-3m/reference");
        var text = TestFiles.SharedOrSkip("data/text/shakespeare.tok1024.u16");
        using var dir = new ScratchDir();
        using var model = LlamaModel.Load(f32);
        var calib = TrainSplitCalibration(model, text);
        var files = new Dictionary<string, string>();
        foreach (var (label, method) in new[] { ("rtn", QuantMethod.Rtn), ("gptq", QuantMethod.Gptq) })
        {
            var path = files[label] = dir.File($"bard-q4_K_M-{label}.gguf");
            ModelQuantizer.Quantize(f32, path, new ModelQuantizeOptions
            {
                Mix = QuantMix.Get("q4_K_M"), TokenizerPath = ModelQuantizerTests.Tokenizer, Method = method,
                Calibration = method == QuantMethod.Rtn ? null : calib, Threads = 2,
            });
        }
        var positions = Enumerable.Range(0, 64).Select(i => 2 * i).ToArray();
        var args = new List<string> { NodeLlamaFactAttribute.Script(), "--modules", Environment.GetEnvironmentVariable(NodeLlamaFactAttribute.Variable)!,
            "--ref-tokens", Path.Combine(refDir, "val.first128.tokens.csv"), "--ref-logits", Path.Combine(refDir, "val.first128.logits.f32"),
            "--positions", string.Join(",", positions), "--kv-f32" };
        foreach (var f in files.Values) args.AddRange(["--model", f]);
        var reports = NodeLlamaFactAttribute.RunScript(args, output);
        var llama = reports.ToDictionary(r => r.RootElement.GetProperty("model").GetString()!,
            r => r.RootElement.GetProperty("kl").EnumerateObject().Average(p => p.Value.GetDouble()));
        double llamaRtn = llama[Path.GetFileName(files["rtn"])], llamaGptq = llama[Path.GetFileName(files["gptq"])];
        output.WriteLine($"llama.cpp mean KL vs PyTorch over {positions.Length} positions: rtn {llamaRtn:G4}, gptq {llamaGptq:G4}");
        Assert.True(llamaGptq < llamaRtn, $"llama.cpp: gptq KL {llamaGptq} not below rtn {llamaRtn}");

        // Our engine agrees on the same positions.
        double Ours(string path) => EngineKl(path, refDir, positions);
        double oursRtn = Ours(files["rtn"]), oursGptq = Ours(files["gptq"]);
        output.WriteLine($"tcodec engine: rtn {oursRtn:G4}, gptq {oursGptq:G4}");
        Assert.True(oursGptq < oursRtn);
        Assert.Equal(llamaRtn, oursRtn, 0.2 * llamaRtn);
        Assert.Equal(llamaGptq, oursGptq, 0.2 * llamaGptq);
    }

    /// <summary>Our engine's mean KL against the PyTorch reference logits of <c>val.first128</c> at <paramref name="positions"/>.</summary>
    /// <summary>
    /// Calibration both interop tests quantize with: the training split (ctx 128, 64 chunks, with H), so the
    /// reference positions — the validation split's first 128 tokens — are never calibrated on.
    /// </summary>
    internal static CalibrationStats TrainSplitCalibration(LlamaModel model, string text)
    {
        var train = EvalData.Split(EvalData.ReadU16(text), TokenSplit.Train);
        return new CalibrationStats(model, train.Span, new ImatrixOptions { Ctx = 128, MaxChunks = 64, Threads = 2 }, text, hessian: true);
    }

    internal static double EngineKl(string path, string refDir, int[] positions)
    {
        var ids = EvalData.ReadTokens(Path.Combine(refDir, "val.first128.tokens.csv"));
        var refLogits = File.ReadAllBytes(Path.Combine(refDir, "val.first128.logits.f32"));
        using var q = LlamaModel.Load(path);
        int vocab = q.Config.VocabSize;
        using var s = q.CreateSession(new LlamaSessionOptions { Capacity = ids.Length });
        var logits = new float[ids.Length * vocab];
        s.Forward(ids, logits);
        double sum = 0;
        foreach (int pos in positions)
        {
            var p = new float[vocab];
            Buffer.BlockCopy(refLogits, pos * vocab * 4, p, 0, vocab * 4);
            var lq = logits.AsSpan(pos * vocab, vocab).ToArray();
            LogSoftmax.Rows(p, vocab);
            LogSoftmax.Rows(lq, vocab);
            for (int i = 0; i < vocab; i++) sum += Math.Exp(p[i]) * (p[i] - lq[i]);
        }
        return sum / positions.Length;
    }
}
