using TensorCodec.Engine;
using TensorCodec.Eval;

namespace TensorCodec.Tests.Engine;

public class GenerationBenchmarkTests
{
    [Fact]
    public void Reports_the_median_between_min_and_max_and_the_greedy_ids()
    {
        using var model = LlamaModel.Load(TestFiles.Sample("stories260K.bin"));
        var g = GenerationBenchmark.Run(model, [], 16, threads: 1, runs: 3);

        Assert.Equal(3, g.Runs);
        Assert.Equal(1, g.PromptTokens);
        Assert.Equal(15, g.GeneratedTokens); // the first id comes from the prompt's logits, untimed
        Assert.InRange(g.TokensPerSecond, g.MinTokensPerSecond, g.MaxTokensPerSecond);
        Assert.True(g.MinTokensPerSecond > 0, $"min {g.MinTokensPerSecond} tok/s");

        // The same ids as a plain greedy loop from BOS.
        using var s = model.CreateSession();
        var expected = new int[16];
        var logits = s.Forward(model.Config.BosId);
        for (int i = 0; i < expected.Length; i++)
        {
            expected[i] = Sampling.ArgMax(logits);
            if (i + 1 < expected.Length) logits = s.Forward(expected[i]);
        }
        Assert.Equal(expected, g.Tokens);
    }
}
