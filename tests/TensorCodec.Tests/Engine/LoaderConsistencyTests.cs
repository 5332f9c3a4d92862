using TensorCodec.Engine;
using TensorCodec.Quantization;
using Xunit.Abstractions;
using TensorCodec.Models;

namespace TensorCodec.Tests.Engine;

/// <summary>
/// One model, three containers, one set of logits: the GGUF that our quantizer writes at type
/// f32 must run exactly like the file it came from.
/// </summary>
public class LoaderConsistencyTests(ITestOutputHelper output)
{
    static float[] Logits(LlamaModel m, int[] tokens)
    {
        using var s = m.CreateSession(new LlamaSessionOptions { MaxBatch = 64 });
        var logits = new float[tokens.Length * m.Config.VocabSize];
        s.Forward(tokens, logits);
        return logits;
    }

    static string ToF32Gguf(string input, string dest, string? config = null)
    {
        ModelQuantizer.Quantize(input, dest, new ModelQuantizeOptions { Mix = QuantMix.Get("f32"), ConfigPath = config });
        return dest;
    }

    /// <summary>
    /// llama2.c and GGUF both use adjacent-pair RoPE and the quantizer copies F32 weights
    /// unchanged, so every product is the same sum in the same order: the logits are identical.
    /// </summary>
    [Fact]
    public void Stories260K_llama2c_and_its_f32_gguf_give_identical_logits()
    {
        using var dir = new ScratchDir();
        var src = TestFiles.Sample("stories260K.bin");
        using var a = LlamaModel.Load(src);
        using var b = LlamaModel.Load(ToF32Gguf(src, dir.File("stories-f32.gguf")));
        Assert.Equal(a.Config with { Rope = b.Config.Rope }, b.Config with { Rope = b.Config.Rope });
        var tokens = EngineFixtures.Tokens("random.tokens.csv");
        var (max, at) = EngineFixtures.MaxAbsDiff(Logits(a, tokens), Logits(b, tokens));
        output.WriteLine($"stories260K llama2.c vs GGUF f32: max |Δ| {max:E3} at position {at / a.Config.VocabSize}");
        Assert.Equal(0.0, max);
    }

    /// <summary>
    /// HF safetensors run rotate_half RoPE on the original Q/K rows; the GGUF has the rows permuted
    /// to adjacent pairs. The rotated values are the same numbers, but q·k then sums the head's
    /// elements in another order, so logits agree to float rounding (measured 5.2e-6), not bitwise.
    /// </summary>
    [SkippableFact]
    public void Bard3m_safetensors_and_its_f32_gguf_give_the_same_logits()
    {
        var hf = TestFiles.SharedOrSkip("data/models/bard-3m/model.safetensors");
        using var dir = new ScratchDir();
        var cfg = EngineFixtures.Fixture("config.json");
        using var a = LlamaModel.Load(hf, new LlamaLoadOptions { ConfigPath = cfg });
        using var b = LlamaModel.Load(ToF32Gguf(hf, dir.File("bard-f32.gguf"), cfg));
        Assert.Equal(RopeStyle.HalfSplit, a.Config.Rope);
        Assert.Equal(RopeStyle.AdjacentPairs, b.Config.Rope);
        var tokens = EngineFixtures.Tokens("val.first128.tokens.csv");
        var (max, at) = EngineFixtures.MaxAbsDiff(Logits(a, tokens), Logits(b, tokens));
        output.WriteLine($"bard-3m safetensors vs GGUF f32: max |Δ| {max:E3} at position {at / a.Config.VocabSize}");
        Assert.True(max <= 2e-5, $"logits differ by {max} at position {at / a.Config.VocabSize}");
    }
}
