using TensorCodec.Engine;
using Xunit.Abstractions;
using TensorCodec.Models;

namespace TensorCodec.Tests.Engine;

/// <summary>The F32 forward pass against logits computed by llama2.c / PyTorch, at every position.</summary>
public class LogitsReferenceTests(ITestOutputHelper output)
{
    const double F32Tolerance = 1e-4;
    // bard-3m BF16 weights vs the F32 reference: rounding every weight to 8 mantissa bits moves
    // logits by a few hundredths (measured max 0.037 over the 128×1024 logits, 126/128 argmax
    // agree). 0.1 absolute plus ≥ 90% argmax agreement catches a broken kernel with margin.
    const double Bf16Tolerance = 0.1;

    static float[] Run(LlamaModel model, int[] tokens, int threads, int batch)
    {
        using var s = model.CreateSession(new LlamaSessionOptions { Threads = threads, MaxBatch = batch });
        var logits = new float[tokens.Length * model.Config.VocabSize];
        if (batch == 1)
            for (int i = 0; i < tokens.Length; i++) s.Forward(tokens[i]).CopyTo(logits.AsSpan(i * model.Config.VocabSize));
        else
            s.Forward(tokens, logits);
        return logits;
    }

    void Check(string label, float[] actual, float[] expected, int vocab, double tolerance)
    {
        var (max, at) = EngineFixtures.MaxAbsDiff(actual, expected);
        output.WriteLine($"{label}: max |Δlogit| = {max:E3} at position {at / vocab}, id {at % vocab}");
        Assert.True(max <= tolerance, $"{label}: logit at position {at / vocab}, id {at % vocab} is {actual[at]}, reference {expected[at]} (|Δ| {max:E3} > {tolerance})");
    }

    [Theory]
    [InlineData("greedy", 1, 1)]
    [InlineData("greedy", 1, 64)]
    [InlineData("greedy", 2, 7)]
    [InlineData("random", 1, 1)]
    [InlineData("random", 2, 64)]
    public void Stories260K_matches_llama2c_reference(string which, int threads, int batch)
    {
        using var model = LlamaModel.Load(TestFiles.Sample("stories260K.bin"));
        Assert.Equal(RopeStyle.AdjacentPairs, model.Config.Rope);
        var tokens = EngineFixtures.Tokens($"{which}.tokens.csv");
        var logits = Run(model, tokens, threads, batch);
        Check($"stories260K {which} T={threads} batch={batch}", logits, EngineFixtures.Logits($"{which}.logits.f32"), 512, F32Tolerance);
    }

    [Fact]
    public void Stories260K_greedy_continuation_reproduces_the_reference_ids()
    {
        using var model = LlamaModel.Load(TestFiles.Sample("stories260K.bin"));
        var expected = EngineFixtures.Tokens("greedy.tokens.csv");
        using var s = model.CreateSession();
        int token = expected[0];
        for (int i = 1; i < expected.Length; i++)
        {
            token = TensorCodec.Engine.Sampling.ArgMax(s.Forward(token));
            Assert.Equal(expected[i], token);
        }
    }

    [SkippableTheory]
    [InlineData(1, 64)]
    [InlineData(2, 128)]
    [InlineData(1, 1)]
    public void Bard3m_f32_matches_pytorch_reference(int threads, int batch)
    {
        var path = TestFiles.SharedOrSkip("data/models/bard-3m/model.safetensors");
        using var model = LlamaModel.Load(path, new LlamaLoadOptions { ConfigPath = EngineFixtures.Fixture("config.json") });
        Assert.Equal(RopeStyle.HalfSplit, model.Config.Rope);
        Assert.False(ReferenceEquals(model.Output, model.Embedding));
        var logits = Run(model, EngineFixtures.Tokens("val.first128.tokens.csv"), threads, batch);
        Check($"bard-3m f32 T={threads} batch={batch}", logits, EngineFixtures.Logits("val.first128.logits.f32"), 1024, F32Tolerance);
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void Bard3m_bf16_is_close_to_the_f32_reference(bool widen)
    {
        using var model = LlamaModel.Load(TestFiles.Sample("bard-3m-bf16.safetensors"),
            new LlamaLoadOptions { ConfigPath = EngineFixtures.Fixture("config.json"), WidenToF32 = widen });
        Assert.Equal(widen ? "f32" : "bf16", model.Layers[0].Wq.TypeName);
        var tokens = EngineFixtures.Tokens("val.first128.tokens.csv");
        var logits = Run(model, tokens, 1, 64);
        var reference = EngineFixtures.Logits("val.first128.logits.f32");
        Check($"bard-3m bf16 (widen={widen})", logits, reference, 1024, Bf16Tolerance);
        int agree = 0;
        for (int i = 0; i < tokens.Length; i++)
            if (Sampling.ArgMax(logits.AsSpan(i * 1024, 1024)) == Sampling.ArgMax(reference.AsSpan(i * 1024, 1024))) agree++;
        output.WriteLine($"top-1 agreement with F32 reference: {agree}/{tokens.Length}");
        Assert.True(agree >= tokens.Length * 9 / 10, $"only {agree}/{tokens.Length} argmax agree with the F32 reference");
    }

    [Fact]
    public void Bf16_fused_kernel_equals_widen_then_f32_kernel()
    {
        using var fused = LlamaModel.Load(TestFiles.Sample("bard-3m-bf16.safetensors"), new LlamaLoadOptions { ConfigPath = EngineFixtures.Fixture("config.json") });
        using var wide = LlamaModel.Load(TestFiles.Sample("bard-3m-bf16.safetensors"), new LlamaLoadOptions { ConfigPath = EngineFixtures.Fixture("config.json"), WidenToF32 = true });
        var tokens = EngineFixtures.Tokens("val.first128.tokens.csv")[..40];
        // Summation order differs between the fused dot and TensorPrimitives.Dot: float rounding only.
        var (max, _) = EngineFixtures.MaxAbsDiff(Run(fused, tokens, 1, 1), Run(wide, tokens, 1, 1));
        output.WriteLine($"fused vs widened: max |Δ| {max:E3}");
        Assert.True(max < 1e-3, $"fused BF16 kernel differs from widen+F32 by {max}");
    }

    [Theory]
    [InlineData("stories260K.bin")]
    [InlineData("bard-3m-bf16.safetensors")]
    public void A_generated_token_allocates_nothing(string sample)
    {
        using var model = LlamaModel.Load(TestFiles.Sample(sample), new LlamaLoadOptions { ConfigPath = EngineFixtures.Fixture("config.json") });
        using var s = model.CreateSession();
        int token = 1;
        for (int i = 0; i < 8; i++) token = Sampling.ArgMax(s.Forward(token)); // warm-up (JIT, tiered compilation)
        // Tiered-JIT transitions (OSR, tier-up) can allocate once on this thread while a window is
        // measured; an allocation in the hot path would show in every window. So: the best of three.
        long allocated = long.MaxValue;
        for (int attempt = 0; attempt < 3 && allocated != 0; attempt++)
        {
            long before = GC.GetAllocatedBytesForCurrentThread();
            for (int i = 0; i < 48; i++) token = Sampling.ArgMax(s.Forward(token));
            allocated = Math.Min(allocated, GC.GetAllocatedBytesForCurrentThread() - before);
        }
        Assert.True(allocated == 0, $"{allocated} bytes allocated over 48 tokens, in each of three windows");
    }

    [Fact]
    public void Sequence_longer_than_capacity_is_a_clear_error()
    {
        using var model = LlamaModel.Load(TestFiles.Sample("stories260K.bin"));
        using var s = model.CreateSession(new LlamaSessionOptions { Capacity = 4 });
        var e = Assert.Throws<InvalidOperationException>(() => s.Forward([1, 2, 3, 4, 5], new float[5 * 512]));
        Assert.Contains("capacity", e.Message);
        s.Reset();
        var e2 = Assert.Throws<ArgumentOutOfRangeException>(() => s.Forward(512));
        Assert.Contains("512", e2.Message);
    }
}
