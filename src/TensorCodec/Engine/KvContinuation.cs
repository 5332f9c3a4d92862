using System.Diagnostics;
using System.Numerics.Tensors;
using TensorCodec.Numerics;
using ZstdSharp;

namespace TensorCodec.Engine;

/// <summary>What continuing from a restored context produced, and how it compares with a fresh prompt.</summary>
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

public sealed record KvBenchRow(
    string Codec, bool Lossless, int Windows, int PositionsPerWindow, double BytesPerToken, double F16BytesPerToken, double ZstdBytesPerToken,
    double RatioVsF16, double RatioVsZstd, double KlMean, double KlMax, double Top1Percent, bool BitIdentical,
    double SaveMBps, double LoadMBps, double SaveMsPerContext, double LoadMsPerContext);

/// <summary>
/// Measures .tkv codecs over consecutive windows: the first <c>prompt</c> tokens of each window
/// are saved, the rest of the window is fed teacher-forced after restoring, and the next-token
/// distributions are compared with the uncompressed context's.
/// </summary>
public static class KvBench
{
    public static IReadOnlyList<KvBenchRow> Run(LlamaModel model, ReadOnlySpan<int> tokens, int ctx, int prompt, int windows, IReadOnlyList<KvCodecSpec> codecs,
        int threads = 1, CancellationToken ct = default)
    {
        if (prompt < 2 || prompt >= ctx) throw new ArgumentException($"--prompt {prompt} must lie in 2 … ctx−1 = {ctx - 1}");
        if (ctx > model.Config.MaxSeqLen) throw new ArgumentException($"--ctx {ctx} exceeds the model's {model.Config.MaxSeqLen} positions");
        windows = Math.Min(windows, tokens.Length / ctx);
        if (windows < 1) throw new ArgumentException($"{tokens.Length} tokens are fewer than one window of {ctx}");
        int vocab = model.Config.VocabSize;
        var id = KvContext.ModelIdentity(model);
        int n = codecs.Count;
        var bytes = new long[n]; var save = new double[n]; var load = new double[n];
        var klSum = new double[n]; var klMax = new double[n]; var top1 = new double[n]; var ident = Enumerable.Repeat(true, n).ToArray();
        long f16 = 0, zstd = 0, positions = 0; int rowsTotal = 0;
        using var compressor = new Compressor(19);
        for (int w = 0; w < windows; w++)
        {
            ct.ThrowIfCancellationRequested();
            var window = tokens.Slice(w * ctx, ctx);
            var context = KvContext.Capture(model, window[..prompt], threads, id);
            var fed = window[(prompt - 1)..(ctx - 1)].ToArray();
            var reference = KvContinuation.Fresh(model, window[..prompt], fed, threads, out _);
            var dump = context.RawF16Dump();
            f16 += dump.Length;
            zstd += compressor.Wrap(dump).Length;
            positions += context.Positions;
            rowsTotal += fed.Length;
            for (int c = 0; c < n; c++)
            {
                var ms = new MemoryStream();
                long t0 = Stopwatch.GetTimestamp();
                context.Write(ms, codecs[c]);
                save[c] += Stopwatch.GetElapsedTime(t0).TotalSeconds;
                bytes[c] += ms.Length;
                var file = ms.ToArray();
                t0 = Stopwatch.GetTimestamp();
                var back = KvContext.Read(file, "bench", model, id);
                using var s = back.Restore(model, fed.Length, threads);
                load[c] += Stopwatch.GetElapsedTime(t0).TotalSeconds;
                var rows = new float[fed.Length * vocab];
                for (int i = 0; i < fed.Length; i++) s.Forward(fed[i]).CopyTo(rows.AsSpan(i * vocab, vocab));
                var (mean, max, t1) = KvContinuation.Compare(reference, rows, vocab);
                klSum[c] += mean * fed.Length; klMax[c] = Math.Max(klMax[c], max); top1[c] += t1 * fed.Length;
                ident[c] &= reference.AsSpan().SequenceEqual(rows);
            }
        }
        var result = new List<KvBenchRow>();
        for (int c = 0; c < n; c++)
            result.Add(new KvBenchRow(codecs[c].Name, codecs[c].Lossless, windows, prompt - 1, bytes[c] / (double)positions, f16 / (double)positions,
                zstd / (double)positions, f16 / (double)bytes[c], zstd / (double)bytes[c], klSum[c] / rowsTotal, klMax[c], top1[c] / rowsTotal, ident[c],
                f16 / save[c] / 1e6, f16 / load[c] / 1e6, 1000 * save[c] / windows, 1000 * load[c] / windows));
        return result;
    }
}
