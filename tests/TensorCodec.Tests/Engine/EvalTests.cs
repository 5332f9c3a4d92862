using TensorCodec.Engine;
using TensorCodec.Eval;
using Xunit.Abstractions;

namespace TensorCodec.Tests.Engine;

public class EvalTests(ITestOutputHelper output)
{
    static LlamaModel Bf16() => LlamaModel.Load(TestFiles.Sample("bard-3m-bf16.safetensors"), new LlamaLoadOptions { ConfigPath = EngineFixtures.Fixture("config.json") });

    static int[] ValTokens() =>
        EvalData.Split(EvalData.ReadU16(TestFiles.SharedOrSkip("data/text/shakespeare.tok1024.u16")), TokenSplit.Val).ToArray();

    [Fact]
    public void Validation_split_is_the_last_twentieth()
    {
        var tokens = Enumerable.Range(0, 434911).ToArray();
        var val = EvalData.Split(tokens, TokenSplit.Val);
        Assert.Equal(21745, val.Length);
        Assert.Equal(413166, val.Span[0]);
        Assert.Equal(413166, EvalData.Split(tokens, TokenSplit.Train).Length);
    }

    [SkippableFact]
    public void Bard3m_f32_validation_perplexity_matches_the_reference()
    {
        var path = TestFiles.SharedOrSkip("data/models/bard-3m/model.safetensors");
        var val = ValTokens();
        using var model = LlamaModel.Load(path, new LlamaLoadOptions { ConfigPath = EngineFixtures.Fixture("config.json") });
        // ctx 128 is the cheaper of the two reference rows (169 windows × 63 scored, PPL 50.394 ± 1.153).
        var r = Perplexity.Run(model, val, new EvalOptions { Ctx = 128, Threads = 2 });
        output.WriteLine($"PPL {r.Ppl:F4} ± {r.PplStdErr:F4} over {r.Windows} windows, {r.Scored} scored, {r.TokensPerSecond:F0} tok/s");
        Assert.Equal(169, r.Windows);
        Assert.Equal(10647, r.Scored);
        Assert.InRange(r.Ppl, 50.394 * 0.995, 50.394 * 1.005);
        Assert.InRange(r.PplStdErr, 1.153 * 0.98, 1.153 * 1.02);
    }

    [Fact]
    public void A_model_against_itself_has_zero_divergence()
    {
        using var model = LlamaModel.Load(TestFiles.Sample("stories260K.bin"));
        var tokens = EngineFixtures.Tokens("random.tokens.csv");
        var r = Perplexity.Run(model, tokens, new EvalOptions { Ctx = 32, Base = model });
        Assert.Equal(2, r.Windows);
        Assert.Equal(2 * 15, r.Scored);
        Assert.NotNull(r.Kl);
        Assert.Equal(0, r.Kl!.Max, 1e-9);
        Assert.Equal(100, r.Kl.Top1AgreementPercent);
        Assert.Equal(0, r.Kl.RmsDeltaP, 1e-9);
        Assert.Equal(r.Ppl, r.Kl.BasePpl, 1e-9);
    }

    [SkippableFact]
    public void Bf16_against_f32_base_and_cached_base_logits_agree()
    {
        var path = TestFiles.SharedOrSkip("data/models/bard-3m/model.safetensors");
        var val = ValTokens();
        using var f32 = LlamaModel.Load(path, new LlamaLoadOptions { ConfigPath = EngineFixtures.Fixture("config.json") });
        using var bf16 = Bf16();
        using var dir = new ScratchDir();
        var cache = dir.File("base.tclp");
        var baseRun = Perplexity.Run(f32, val, new EvalOptions { Ctx = 128, MaxChunks = 8, SaveLogitsPath = cache });
        var live = Perplexity.Run(bf16, val, new EvalOptions { Ctx = 128, MaxChunks = 8, Base = f32 });
        var cached = Perplexity.Run(bf16, val, new EvalOptions { Ctx = 128, MaxChunks = 8, BaseLogitsPath = cache });
        var kl = live.Kl!;
        output.WriteLine($"bf16 vs f32: PPL {live.Ppl:F4} (base {kl.BasePpl:F4}), KL mean {kl.Mean:E3} median {kl.Median:E3} p99 {kl.P99:E3} max {kl.Max:E3}, top-1 {kl.Top1AgreementPercent:F2}%, Δp mean {kl.MeanDeltaP:E3} rms {kl.RmsDeltaP:E3}");
        Assert.Equal(baseRun.Ppl, kl.BasePpl, 1e-9);
        Assert.InRange(kl.Mean, 1e-7, 1e-2);
        Assert.True(kl.Top1AgreementPercent > 90);
        Assert.Equal(live.Kl, cached.Kl, new KlComparer());

        // A cache computed for other settings is refused, naming the field.
        var e = Assert.Throws<InvalidDataException>(() => Perplexity.Run(bf16, val, new EvalOptions { Ctx = 128, MaxChunks = 7, BaseLogitsPath = cache }));
        Assert.Contains("windows", e.Message);
    }

    sealed class KlComparer : IEqualityComparer<KlStats?>
    {
        // Cached log-probs are the float32 values the live run computes, so results agree to rounding.
        public bool Equals(KlStats? a, KlStats? b) => a is not null && b is not null
            && Math.Abs(a.Mean - b.Mean) < 1e-9 && Math.Abs(a.Max - b.Max) < 1e-8 && a.Top1AgreementPercent == b.Top1AgreementPercent
            && Math.Abs(a.RmsDeltaP - b.RmsDeltaP) < 1e-9;
        public int GetHashCode(KlStats? s) => 0;
    }

    [Fact]
    public void Bad_inputs_get_clear_errors()
    {
        using var model = LlamaModel.Load(TestFiles.Sample("stories260K.bin"));
        var tokens = EngineFixtures.Tokens("random.tokens.csv");
        var e1 = Assert.Throws<ArgumentException>(() => Perplexity.Run(model, tokens, new EvalOptions { Ctx = 128 }));
        Assert.Contains("fewer than one window", e1.Message);
        var e2 = Assert.Throws<ArgumentException>(() => Perplexity.Run(model, new int[2048], new EvalOptions { Ctx = 1024 }));
        Assert.Contains("maximum positions 512", e2.Message);
        var bad = tokens.ToArray();
        bad[5] = 9999;
        var e3 = Assert.Throws<InvalidDataException>(() => Perplexity.Run(model, bad, new EvalOptions { Ctx = 32 }));
        Assert.Contains("token 5 has id 9999", e3.Message);
        var e4 = Assert.Throws<ArgumentException>(() => Perplexity.Run(model, tokens, new EvalOptions { Ctx = 32, ScoreFrom = 31 }));
        Assert.Contains("score-from", e4.Message);
    }
}
