using System.Diagnostics;
using System.Numerics.Tensors;
using TensorCodec.Engine;
using TensorCodec.Numerics;

namespace TensorCodec.Eval;

/// <summary>What continuing from a restored context produced, and how it compares with a fresh prompt.</summary>
/// <param name="Tokens">The continuation followed by the generated tokens.</param>
/// <param name="Rows">Logit rows computed: the continuation's length plus max(1, generated).</param>
/// <param name="RestoreSeconds">Seconds to restore the session from the context (not to read the file).</param>
/// <param name="FreshSeconds">Seconds the fresh reference took to run the prompt less its last token; 0 when not compared.</param>
/// <param name="Compared">Whether the fresh reference was run; the fields below are false or NaN otherwise.</param>
/// <param name="BitIdentical">Every logit of every row equals the fresh run's.</param>
/// <param name="SameTokens">The fresh run's arg-max agrees with every generated token.</param>
/// <param name="KlMean">Mean KL(fresh ‖ restored) over the rows, in nats.</param>
/// <param name="KlMax">Largest KL of any row, in nats.</param>
/// <param name="Top1Percent">Rows whose arg-max token matches the fresh run's, in %.</param>
public sealed record KvContinuationResult(
    int[] Tokens, int Rows, double RestoreSeconds, double FreshSeconds, bool Compared, bool BitIdentical, bool SameTokens,
    double KlMean, double KlMax, double Top1Percent);

/// <summary>
/// Continues from a restored <see cref="KvContext"/>: feeds the prompt's last token, then the
/// continuation, then greedy tokens. The fresh reference feeds the prompt the way the saved run
/// did (all but the last token in batches, then the last alone), so with a lossless codec every
/// logit must match bit for bit, and with a lossy one the difference is the codec's alone.
/// </summary>
public static class KvContinuation
{
    /// <summary>Restores <paramref name="ctx"/>, feeds its last token and <paramref name="continuation"/>, then generates greedily.</summary>
    /// <param name="model">The model the context was saved from.</param>
    /// <param name="ctx">The restored context.</param>
    /// <param name="continuation">Tokens fed after the prompt, teacher-forced.</param>
    /// <param name="generate">Greedy tokens to generate after the continuation, capped by the model's positions.</param>
    /// <param name="compare">Also run the fresh reference and fill in the comparison fields.</param>
    /// <param name="threads">Worker threads of each session.</param>
    /// <exception cref="ArgumentException">Context plus continuation exceed the model's maximum positions.</exception>
    /// <exception cref="InvalidDataException">The model's shape differs from the context's.</exception>
    public static KvContinuationResult Run(LlamaModel model, KvContext ctx, ReadOnlySpan<int> continuation, int generate, bool compare, int threads = 1)
    {
        int vocab = model.Config.VocabSize;
        int room = model.Config.MaxSeqLen - ctx.Tokens.Length - continuation.Length;
        if (room < 0) throw new ArgumentException($"context ({ctx.Tokens.Length}) plus continuation ({continuation.Length}) exceed the model's {model.Config.MaxSeqLen} positions");
        generate = Math.Clamp(generate, 0, room + 1);
        int rows = continuation.Length + Math.Max(1, generate);
        var fed = new int[rows];            // fed[i] produces logits row i
        fed[0] = ctx.Tokens[^1];
        continuation.CopyTo(fed.AsSpan(1));
        var tokens = new int[continuation.Length + generate];
        continuation.CopyTo(tokens);
        var restored = new float[rows * vocab];

        var sw = Stopwatch.StartNew();
        using (var s = ctx.Restore(model, rows, threads))
        {
            double restoreSeconds = sw.Elapsed.TotalSeconds;
            for (int i = 0; i < rows; i++)
            {
                var l = s.Forward(fed[i]);
                l.CopyTo(restored.AsSpan(i * vocab, vocab));
                int g = i - continuation.Length; // row i predicts generated token g
                if (g >= 0 && g < generate)
                {
                    tokens[continuation.Length + g] = Sampling.ArgMax(l);
                    if (i + 1 < rows) fed[i + 1] = tokens[continuation.Length + g];
                }
            }
            if (!compare) return new(tokens, rows, restoreSeconds, 0, false, false, false, double.NaN, double.NaN, double.NaN);

            var fresh = Fresh(model, ctx.Tokens, fed, threads, out double freshSeconds);
            var (klMean, klMax, top1) = Compare(fresh, restored, vocab);
            bool same = true;
            for (int g = 0; g < generate; g++)
                same &= Sampling.ArgMax(fresh.AsSpan((continuation.Length + g) * vocab, vocab)) == tokens[continuation.Length + g];
            return new(tokens, rows, restoreSeconds, freshSeconds, true, fresh.AsSpan().SequenceEqual(restored), same, klMean, klMax, top1);
        }
    }

    /// <summary>Logits rows of a fresh run: the prompt without its last token, then <paramref name="fed"/> one at a time.</summary>
    public static float[] Fresh(LlamaModel model, ReadOnlySpan<int> prompt, ReadOnlySpan<int> fed, int threads, out double promptSeconds)
    {
        int vocab = model.Config.VocabSize, n = prompt.Length - 1;
        var rows = new float[fed.Length * vocab];
        using var s = model.CreateSession(new LlamaSessionOptions { Threads = threads, Capacity = Math.Min(model.Config.MaxSeqLen, n + fed.Length) });
        var sw = Stopwatch.StartNew();
        s.Forward(prompt[..n], Span<float>.Empty, n);
        promptSeconds = sw.Elapsed.TotalSeconds;
        for (int i = 0; i < fed.Length; i++) s.Forward(fed[i]).CopyTo(rows.AsSpan(i * vocab, vocab));
        return rows;
    }

    /// <summary>Mean and max KL(p‖q) over rows of logits (softmax in double), and top-1 agreement in %.</summary>
    public static (double Mean, double Max, double Top1Percent) Compare(ReadOnlySpan<float> p, ReadOnlySpan<float> q, int vocab)
    {
        int rows = p.Length / vocab;
        double sum = 0, max = 0; int same = 0;
        var lp = new double[vocab]; var lq = new double[vocab];
        for (int r = 0; r < rows; r++)
        {
            var a = p.Slice(r * vocab, vocab); var b = q.Slice(r * vocab, vocab);
            LogSoftmax.ToDouble(a, lp); LogSoftmax.ToDouble(b, lq);
            double kl = LogSoftmax.Kl<double>(lp, lq);
            sum += kl; max = Math.Max(max, kl);
            if (TensorPrimitives.IndexOfMax(a) == TensorPrimitives.IndexOfMax(b)) same++;
        }
        return (sum / rows, max, 100.0 * same / rows);
    }
}
