using TensorCodec.Engine;
using TensorCodec.Eval;
using TensorCodec.Quantization;
using Xunit.Abstractions;

namespace TensorCodec.Tests.Quantization;

/// <summary>A real llama.cpp (node-llama-cpp) loads a --size GGUF no larger than llama.cpp's q3_K_M with an imatrix, and finds it closer to the F32 model.</summary>
public class MixedPrecisionInteropTests(ITestOutputHelper output)
{
    [NodeLlamaFact]
    public void LlamaCppRunsBudgetFileWithLowerKlThanTheMixOfTheSameSize()
    {
        var f32 = TestFiles.SharedOrSkip("data/models/bard-3m/model.safetensors");
        var refDir = TestFiles.SharedOrSkip("data/models/bard-3m/reference");
        var text = TestFiles.SharedOrSkip("data/text/shakespeare.tok1024.u16");
        using var dir = new ScratchDir();
        using var model = LlamaModel.Load(f32);
        var calib = GptqInteropTests.TrainSplitCalibration(model, text);
        var train = EvalData.Split(EvalData.ReadU16(text), TokenSplit.Train); // the damage meter measures on the same split
        string mixPath = dir.File("bard-q3_K_M-imatrix.gguf"), bpwPath = dir.File("bard-size-gptq.gguf");
        var mix = ModelQuantizer.Quantize(f32, mixPath, new ModelQuantizeOptions
        {
            Mix = QuantMix.Get("q3_K_M"), TokenizerPath = ModelQuantizerTests.Tokenizer, Method = QuantMethod.Imatrix, Calibration = calib, Threads = 2,
        });
        using var meter = new KldDamageMeter(f32, null, train.Span, 128, 4, 2);
        var bpw = ModelQuantizer.Quantize(f32, bpwPath, new ModelQuantizeOptions
        {
            Mix = QuantMix.Get("q3_K_M"), TokenizerPath = ModelQuantizerTests.Tokenizer, Method = QuantMethod.Gptq, Calibration = calib, Threads = 2,
            TargetBytes = mix.OutputBytes, Damage = DamageMode.Scaled, DamageMeter = meter,
        });
        Assert.True(bpw.OutputBytes <= mix.OutputBytes);
        Assert.Contains(bpw.MixedPrecision!.Tensors, t => !t.Fixed && t.Type != "Q3_K"); // a real mix, not one type

        var positions = Enumerable.Range(0, 64).Select(i => 2 * i).ToArray();
        var args = new List<string> { NodeLlamaFactAttribute.Script(), "--modules", Environment.GetEnvironmentVariable(NodeLlamaFactAttribute.Variable)!,
            "--ref-tokens", Path.Combine(refDir, "val.first128.tokens.csv"), "--ref-logits", Path.Combine(refDir, "val.first128.logits.f32"),
            "--positions", string.Join(",", positions), "--kv-f32", "--model", mixPath, "--model", bpwPath };
        var reports = NodeLlamaFactAttribute.RunScript(args, output);
        var llama = reports.ToDictionary(r => r.RootElement.GetProperty("model").GetString()!,
            r => r.RootElement.GetProperty("kl").EnumerateObject().Average(p => p.Value.GetDouble()));
        double llamaMix = llama[Path.GetFileName(mixPath)], llamaBpw = llama[Path.GetFileName(bpwPath)];
        output.WriteLine($"llama.cpp mean KL vs PyTorch over {positions.Length} positions: q3_K_M imatrix {llamaMix:G4} ({mix.OutputBytes} bytes), " +
            $"--size gptq {llamaBpw:G4} ({bpw.OutputBytes} bytes)");
        Assert.True(llamaBpw < llamaMix, $"llama.cpp: --size KL {llamaBpw} not below the mix's {llamaMix}");

        // Our engine agrees on the same positions.
        double oursMix = GptqInteropTests.EngineKl(mixPath, refDir, positions), oursBpw = GptqInteropTests.EngineKl(bpwPath, refDir, positions);
        output.WriteLine($"tcodec engine: q3_K_M imatrix {oursMix:G4}, --size gptq {oursBpw:G4}");
        Assert.True(oursBpw < oursMix);
        Assert.Equal(llamaMix, oursMix, 0.2 * llamaMix);
        Assert.Equal(llamaBpw, oursBpw, 0.2 * llamaBpw);
    }
}
