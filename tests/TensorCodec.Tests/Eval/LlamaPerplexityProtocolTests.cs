using TensorCodec.Engine;
using TensorCodec.Eval;
using TensorCodec.Tests.Engine;
using TensorCodec.Tokenizers;

namespace TensorCodec.Tests.Eval;

/// <summary>`tcodec eval --text` follows llama-perplexity: whole text, BOS over each chunk's first token, second half scored.</summary>
public class LlamaPerplexityProtocolTests
{
    static LlamaModel Bard() => LlamaModel.Load(TestFiles.Sample("bard-3m-bf16.safetensors"), new LlamaLoadOptions { ConfigPath = EngineFixtures.Fixture("config.json") });
    static Tokenizer Tok() => Tokenizer.LoadLlama2c(EngineFixtures.Fixture("tok1024.bin"));

    const string Text = "First Citizen:\nBefore we proceed any further, hear me speak.\n\nAll:\nSpeak, speak.\n\n" +
        "First Citizen:\nYou are all resolved rather to die than to famish?\n\nAll:\nResolved. resolved.\n\n" +
        "First Citizen:\nFirst, you know Caius Marcius is chief enemy to the people.\n\nAll:\nWe know't, we know't.\n";

    [Fact]
    public void Whole_text_is_one_string_with_bos_and_the_trailing_newline_dropped()
    {
        var tok = Tok();
        var ids = EvalData.EncodeWhole(Text, tok);
        Assert.Equal(tok.BosId, ids[0]);
        Assert.Equal(tok.Encode(Text[..^1], bos: true), ids);
        Assert.Equal(tok.BosId, EvalData.ChunkStartToken(tok));
    }

    [Fact]
    public void Windows_and_scored_positions_equal_a_direct_computation()
    {
        var tok = Tok();
        using var model = Bard();
        const int ctx = 24;
        var ids = EvalData.EncodeWhole(Text + Text + Text, tok);
        int windows = ids.Length / ctx;
        Assert.True(windows >= 3, $"{ids.Length} tokens");
        var fed = EvalData.WithChunkStarts(ids, ctx, tok.BosId);
        var r = Perplexity.Run(model, fed, new EvalOptions { Ctx = ctx });

        // Direct: chunk i is ids[i·ctx … i·ctx+ctx) with its first token replaced by BOS; the logits at
        // positions ctx/2 … ctx−2 predict the original ids at ctx/2+1 … ctx−1 (llama-perplexity's `first`).
        using var s = model.CreateSession(new LlamaSessionOptions { Capacity = ctx });
        int vocab = model.Config.VocabSize, first = ctx / 2;
        var nll = new List<double>();
        for (int w = 0; w < windows; w++)
        {
            var chunk = ids.AsSpan(w * ctx, ctx).ToArray();
            chunk[0] = tok.BosId;
            s.Reset();
            var logits = new float[ctx * vocab];
            s.Forward(chunk, logits);
            for (int pos = first; pos <= ctx - 2; pos++)
            {
                var row = logits.AsSpan(pos * vocab, vocab);
                double max = double.NegativeInfinity, sum = 0;
                foreach (float v in row) max = Math.Max(max, v);
                foreach (float v in row) sum += Math.Exp(v - max);
                nll.Add(max + Math.Log(sum) - row[ids[w * ctx + pos + 1]]);
            }
        }
        Assert.Equal(windows, r.Windows);
        Assert.Equal(first, r.ScoreFrom);
        Assert.Equal(nll.Count, r.Scored);
        Assert.Equal(windows * (ctx - 1 - first), r.Scored);
        Assert.Equal(nll.Average(), r.MeanNll, 1e-5);
        // Each whole window starts with BOS, nothing else moved; the tail past the last window is untouched.
        for (int i = 0; i < ids.Length; i++)
            Assert.Equal(i % ctx == 0 && i + ctx <= ids.Length ? tok.BosId : ids[i], fed[i]);
    }

    [Fact]
    public void Base_log_probs_round_to_llama_cpp_uint16_codes()
    {
        var rng = new Random(5);
        var lp = new float[1000];
        for (int i = 0; i < lp.Length; i++) lp[i] = (float)(-30 * rng.NextDouble());
        lp[7] = -0.1f;
        var r = (float[])lp.Clone();
        Perplexity.RoundLikeLlamaCpp(r);
        float max = lp.Max(), min = Math.Max(lp.Min(), max - 16), step = (max - min) / 65535f;
        for (int i = 0; i < lp.Length; i++)
        {
            if (lp[i] > min) Assert.InRange(r[i] - lp[i], -step * 0.51f - 1e-6f, step * 0.51f + 1e-6f);
            else Assert.Equal(min, r[i]);
        }
        Assert.Equal(max, r.Max(), 1e-5);
        // Terms at or below −16 are left out of the KL sum: a base that puts all its mass there contributes nothing.
        var b = new float[] { -20f, -17f, -16f };
        Assert.Equal(0, Perplexity.KlLikeLlamaCpp(b, new float[] { -1f, -1f, -1f }));
        Assert.Equal(Math.Exp(-0.5) * (-0.5 + 2), Perplexity.KlLikeLlamaCpp(new float[] { -0.5f, -17f }, new float[] { -2f, -0.1f }), 1e-6);
    }
}
