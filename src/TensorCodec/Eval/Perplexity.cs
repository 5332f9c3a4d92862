using System.Diagnostics;
using TensorCodec.Engine;
using TensorCodec.Numerics;

namespace TensorCodec.Eval;

/// <summary>Settings of <see cref="Perplexity.Run"/>.</summary>
public sealed record EvalOptions
{
    /// <summary>Window length in tokens.</summary>
    public int Ctx { get; init; } = 256;
    /// <summary>First scored position in a window; default ctx/2 (llama.cpp).</summary>
    public int? ScoreFrom { get; init; }
    /// <summary>Evaluate at most this many windows (0 = all).</summary>
    public int MaxChunks { get; init; }
    /// <summary>Worker threads of each session (1 = run on the caller only).</summary>
    public int Threads { get; init; } = 1;
    /// <summary>Allow ctx beyond the model's maximum positions (the caller should warn).</summary>
    public bool AllowLongContext { get; init; }
    /// <summary>Base model for KL statistics (computed on the fly).</summary>
    public LlamaModel? Base { get; init; }
    /// <summary>Cached base log-probabilities (<see cref="BaseLogitsFile"/>) instead of running <see cref="Base"/>.</summary>
    public string? BaseLogitsPath { get; init; }
    /// <summary>Save the reference log-probabilities here: the base's if there is one, else the model's own.</summary>
    public string? SaveLogitsPath { get; init; }
    /// <summary>Replace an existing file at <see cref="SaveLogitsPath"/>.</summary>
    public bool Overwrite { get; init; }
    /// <summary>KV cache type of the model under test (the base always uses F32); default F32.</summary>
    public KvSpec? Kv { get; init; }
    /// <summary>
    /// Reproduce llama-perplexity --kl-divergence: both models' linear layers round their activations
    /// as llama.cpp's CPU matmuls do (<see cref="LinearArithmetic.LikeLlamaCpp"/>), the base
    /// log-probabilities are stored as llama.cpp's uint16 codes, and base log-probabilities at or
    /// below −16 are left out of the KL sum. Default off: the exact evaluation is the ruler.
    /// </summary>
    public bool LikeLlamaCpp { get; init; }
}

/// <summary>KL(base ‖ model) and related statistics over the scored positions (llama.cpp's --kl-divergence set).</summary>
/// <param name="Mean">Mean KL divergence per scored position, in nats.</param>
/// <param name="MeanStdErr">Standard error of <paramref name="Mean"/>.</param>
/// <param name="Median">Median KL divergence (linear interpolation between order statistics).</param>
/// <param name="P90">90th percentile of the KL divergence.</param>
/// <param name="P99">99th percentile of the KL divergence.</param>
/// <param name="Max">Largest KL divergence.</param>
/// <param name="Top1AgreementPercent">Percentage of positions where both models' most likely token is the same.</param>
/// <param name="Top1StdErrPercent">Standard error of <paramref name="Top1AgreementPercent"/>, in percentage points.</param>
/// <param name="MeanDeltaP">Mean of p_model(target) − p_base(target), as a probability (−1 … 1).</param>
/// <param name="RmsDeltaP">Root mean square of p_model(target) − p_base(target).</param>
/// <param name="BasePpl">Perplexity of the base model on the same positions.</param>
/// <param name="BasePplStdErr">Standard error of <paramref name="BasePpl"/>.</param>
public sealed record KlStats(
    double Mean, double MeanStdErr, double Median, double P90, double P99, double Max,
    double Top1AgreementPercent, double Top1StdErrPercent, double MeanDeltaP, double RmsDeltaP,
    double BasePpl, double BasePplStdErr);

/// <summary>The outcome of <see cref="Perplexity.Run"/>.</summary>
/// <param name="Ctx">Window length in tokens.</param>
/// <param name="ScoreFrom">First scored position in each window.</param>
/// <param name="Windows">Number of windows evaluated.</param>
/// <param name="Scored">Number of scored positions: Windows × (Ctx − 1 − ScoreFrom).</param>
/// <param name="MeanNll">Mean negative log-likelihood of the next token, in nats.</param>
/// <param name="Ppl">Perplexity: exp(<paramref name="MeanNll"/>).</param>
/// <param name="PplStdErr">Standard error of <paramref name="Ppl"/> (delta method, as llama.cpp reports it).</param>
/// <param name="Kl">Statistics against the base model, or null when no base was given.</param>
/// <param name="TokensEvaluated">Tokens fed to the model under test: Windows × (Ctx − 1).</param>
/// <param name="Seconds">Wall-clock seconds of the window loop, base model and logits-file I/O included.</param>
/// <param name="TokensPerSecond">Tokens fed per second of the model under test's forward passes alone.</param>
public sealed record EvalResult(
    int Ctx, int ScoreFrom, int Windows, long Scored, double MeanNll, double Ppl, double PplStdErr,
    KlStats? Kl, long TokensEvaluated, double Seconds, double TokensPerSecond)
{
    /// <summary>KV cache type of the model under test.</summary>
    public string KvType { get; init; } = "f32";
    /// <summary>Exact KV cache bytes once a window's ctx−1 fed positions are cached.</summary>
    public long KvBytes { get; init; }
}

/// <summary>Progress of <see cref="Perplexity.Run"/>, reported after each window.</summary>
/// <param name="Window">Windows done so far (1 … <paramref name="Windows"/>).</param>
/// <param name="Windows">Windows in the run.</param>
/// <param name="RunningPpl">Perplexity over the positions scored so far.</param>
public readonly record struct EvalProgress(int Window, int Windows, double RunningPpl);

/// <summary>
/// Perplexity under llama.cpp's protocol, optionally against a base model. The tokens are cut
/// into consecutive non-overlapping windows of ctx (a final partial window is dropped); each
/// window starts from an empty cache; the logits at positions scoreFrom … ctx−2 are scored
/// against the next token. See docs/EVAL.md.
/// </summary>
public static class Perplexity
{
    /// <summary>Evaluates <paramref name="model"/> on <paramref name="tokens"/>.</summary>
    /// <param name="model">The model under test.</param>
    /// <param name="tokens">Token ids; only the first whole windows are used.</param>
    /// <param name="o">Window length, scoring range, base model or cached base logits, and threads.</param>
    /// <param name="progress">Receives an <see cref="EvalProgress"/> after each window.</param>
    /// <param name="ct">Checked before each window.</param>
    /// <exception cref="ArgumentException">ctx is below 2, ScoreFrom is outside 0 … ctx − 2, ctx exceeds a model's
    /// maximum positions without <see cref="EvalOptions.AllowLongContext"/>, the tokens are fewer than one window,
    /// the base vocabulary differs, or both a base model and base logits are given.</exception>
    /// <exception cref="InvalidDataException">A token id is outside the vocabulary, or the base-logits file does not
    /// match this run (other tokens, vocabulary, ctx, ScoreFrom or window count).</exception>
    /// <exception cref="IOException"><see cref="EvalOptions.SaveLogitsPath"/> exists and
    /// <see cref="EvalOptions.Overwrite"/> is false.</exception>
    /// <exception cref="OperationCanceledException"><paramref name="ct"/> was signalled.</exception>
    public static EvalResult Run(LlamaModel model, ReadOnlySpan<int> tokens, EvalOptions o,
        IProgress<EvalProgress>? progress = null, CancellationToken ct = default)
    {
        var c = model.Config;
        int ctx = o.Ctx;
        int from = o.ScoreFrom ?? ctx / 2;
        if (ctx < 2) throw new ArgumentException($"--ctx {ctx} must be at least 2");
        if (from < 0 || from > ctx - 2) throw new ArgumentException($"--score-from {from} must lie in 0 … ctx−2 = {ctx - 2}");
        if (ctx > c.MaxSeqLen && !o.AllowLongContext)
            throw new ArgumentException($"--ctx {ctx} exceeds the model's maximum positions {c.MaxSeqLen} (force to override)");
        int windows = tokens.Length / ctx;
        if (o.MaxChunks > 0) windows = Math.Min(windows, o.MaxChunks);
        if (windows == 0) throw new ArgumentException($"{tokens.Length} tokens are fewer than one window of {ctx}");
        var used = tokens[..(windows * ctx)];
        EvalData.CheckRange(used, c.VocabSize, "tokens");
        if (o.Base is { } b)
        {
            if (b.Config.VocabSize != c.VocabSize)
                throw new ArgumentException($"base vocabulary {b.Config.VocabSize} differs from the model's {c.VocabSize}");
            if (ctx > b.Config.MaxSeqLen && !o.AllowLongContext)
                throw new ArgumentException($"--ctx {ctx} exceeds the base model's maximum positions {b.Config.MaxSeqLen}");
        }
        if (o.Base is not null && o.BaseLogitsPath is not null)
            throw new ArgumentException("give either a base model or base logits, not both");

        int vocab = c.VocabSize, rows = ctx - 1 - from;
        var header = new BaseLogitsFile.Header(vocab, ctx, from, windows, BaseLogitsFile.HashTokens(used));
        using var reader = o.BaseLogitsPath is null ? null : new BaseLogitsFile.Reader(o.BaseLogitsPath, header);
        using var writer = o.SaveLogitsPath is null ? null : new BaseLogitsFile.Writer(o.SaveLogitsPath, header, o.Overwrite);
        bool haveBase = o.Base is not null || reader is not null;

        var kv = o.Kv ?? KvSpec.F32;
        var arithmetic = o.LikeLlamaCpp ? LinearArithmetic.LikeLlamaCpp : LinearArithmetic.Default;
        // llama-perplexity decodes a chunk as one batch; the integer GEMM gives every token the same
        // result in any batch, so like llama.cpp the whole window (up to 512) goes at once. The default
        // keeps batches of 64, whose grouping its F32 GEMM's summation order (and so its figures) depends on.
        int batch = o.LikeLlamaCpp ? Math.Clamp(ctx - 1, 1, 512) : 64;
        using var session = model.CreateSession(new LlamaSessionOptions { Threads = o.Threads, Capacity = ctx, MaxBatch = batch, Kv = kv, Arithmetic = arithmetic });
        using var baseSession = o.Base?.CreateSession(new LlamaSessionOptions { Threads = o.Threads, Capacity = ctx, MaxBatch = batch, Arithmetic = arithmetic });
        var logProbs = new float[rows * vocab];
        var baseLogProbs = haveBase ? new float[rows * vocab] : null;

        var nll = new List<double>(windows * rows);
        var baseNll = new List<double>(haveBase ? windows * rows : 0);
        var kl = new List<double>(haveBase ? windows * rows : 0);
        var deltaP = new List<double>(haveBase ? windows * rows : 0);
        long sameTop = 0;
        double modelSeconds = 0;
        var total = Stopwatch.StartNew();

        for (int w = 0; w < windows; w++)
        {
            ct.ThrowIfCancellationRequested();
            var window = used.Slice(w * ctx, ctx);
            // The last token's logits predict past the window, so it is never fed.
            var input = window[..(ctx - 1)];

            long t0 = Stopwatch.GetTimestamp();
            session.Reset();
            session.Forward(input, logProbs, from);
            modelSeconds += Stopwatch.GetElapsedTime(t0).TotalSeconds;
            LogSoftmax.Rows(logProbs, vocab);

            if (baseSession is not null)
            {
                baseSession.Reset();
                baseSession.Forward(input, baseLogProbs!, from);
                LogSoftmax.Rows(baseLogProbs!, vocab);
            }
            else reader?.ReadWindow(baseLogProbs);
            writer?.WriteWindow(haveBase ? baseLogProbs : logProbs);

            for (int r = 0; r < rows; r++)
            {
                int target = window[from + r + 1];
                var lp = logProbs.AsSpan(r * vocab, vocab);
                nll.Add(-lp[target]);
                if (!haveBase) continue;
                var bp = baseLogProbs.AsSpan(r * vocab, vocab);
                if (o.LikeLlamaCpp) RoundLikeLlamaCpp(bp);
                baseNll.Add(-bp[target]);
                kl.Add(o.LikeLlamaCpp ? KlLikeLlamaCpp(bp, lp) : LogSoftmax.Kl<float>(bp, lp));
                deltaP.Add(Math.Exp(lp[target]) - Math.Exp(bp[target]));
                if (ArgMax(lp) == ArgMax(bp)) sameTop++;
            }
            progress?.Report(new EvalProgress(w + 1, windows, Math.Exp(Mean(nll))));
        }

        writer?.Commit();
        var (meanNll, pplErr) = PplWithError(nll);
        KlStats? klStats = null;
        if (haveBase)
        {
            var (baseMean, basePplErr) = PplWithError(baseNll);
            var sorted = kl.ToArray();
            Array.Sort(sorted);
            double n = kl.Count;
            double klMean = Mean(kl);
            double top = sameTop / n;
            klStats = new KlStats(
                klMean, StdErr(kl, klMean), Quantile(sorted, 0.5), Quantile(sorted, 0.9), Quantile(sorted, 0.99), sorted[^1],
                100 * top, 100 * Math.Sqrt(top * (1 - top) / Math.Max(1, n - 1)),
                Mean(deltaP), Math.Sqrt(deltaP.Sum(x => x * x) / n),
                Math.Exp(baseMean), basePplErr);
        }
        double seconds = total.Elapsed.TotalSeconds;
        long fed = (long)windows * (ctx - 1);
        return new EvalResult(ctx, from, windows, nll.Count, meanNll, Math.Exp(meanNll), pplErr, klStats, fed, seconds,
            modelSeconds > 0 ? fed / modelSeconds : 0) { KvType = kv.Name, KvBytes = kv.BytesFor(c, ctx - 1) };
    }

    /// <summary>llama-perplexity's lowest base log-probability that counts in the KL sum (exclusive).</summary>
    internal const float LlamaCppMinLogProb = -16f;

    /// <summary>
    /// Replaces a row of log-probabilities by the values llama-perplexity's uint16 codes stand for:
    /// the range [max(min, max − 16), max] in 65,535 steps, everything at or below its bottom coded 0
    /// (read back as the bottom, which the KL sum then skips).
    /// </summary>
    internal static void RoundLikeLlamaCpp(Span<float> logProbs)
    {
        float max = System.Numerics.Tensors.TensorPrimitives.Max(logProbs);
        float min = MathF.Max(System.Numerics.Tensors.TensorPrimitives.Min(logProbs), max - 16);
        float scale = (max - min) / 65535f;
        if (scale == 0) { logProbs.Fill(min); return; }
        float inv = 1 / scale;
        for (int i = 0; i < logProbs.Length; i++)
        {
            float q = logProbs[i] > min ? MathF.Round(inv * (logProbs[i] - min), MidpointRounding.ToEven) : 0;
            logProbs[i] = scale * q + min;
        }
    }

    /// <summary>KL(base ‖ model) as llama-perplexity sums it: only terms whose base log-probability exceeds −16, in float.</summary>
    internal static double KlLikeLlamaCpp(ReadOnlySpan<float> baseLogProbs, ReadOnlySpan<float> logProbs)
    {
        double sum = 0;
        for (int i = 0; i < baseLogProbs.Length; i++)
        {
            float b = baseLogProbs[i];
            if (b > LlamaCppMinLogProb) sum += MathF.Exp(b) * (b - logProbs[i]);
        }
        return sum;
    }

    static int ArgMax(ReadOnlySpan<float> x) => System.Numerics.Tensors.TensorPrimitives.IndexOfMax(x);

    static double Mean(List<double> x) => x.Count == 0 ? double.NaN : x.Sum() / x.Count;

    static double StdErr(List<double> x, double mean)
    {
        if (x.Count < 2) return 0;
        double ss = 0;
        foreach (var v in x) ss += (v - mean) * (v - mean);
        return Math.Sqrt(ss / (x.Count - 1) / x.Count);
    }

    /// <summary>Mean NLL and the standard error of exp(mean NLL) by the delta method, as llama.cpp reports it.</summary>
    static (double MeanNll, double PplStdErr) PplWithError(List<double> nll)
    {
        double mean = Mean(nll);
        return (mean, Math.Exp(mean) * StdErr(nll, mean));
    }

    static double Quantile(double[] sorted, double q)
    {
        double pos = q * (sorted.Length - 1);
        int lo = (int)Math.Floor(pos);
        int hi = Math.Min(lo + 1, sorted.Length - 1);
        return sorted[lo] + (sorted[hi] - sorted[lo]) * (pos - lo);
    }
}
