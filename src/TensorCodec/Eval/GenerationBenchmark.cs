using System.Diagnostics;

using TensorCodec.Engine;

namespace TensorCodec.Eval;

/// <summary>What <see cref="GenerationBenchmark.Run"/> measured: median times of greedy generation.</summary>
/// <param name="PromptTokens">Tokens of the prompt (BOS alone when none was given).</param>
/// <param name="GeneratedTokens">Forward passes timed: one less than the length of <c>Tokens</c>, since the first
/// generated token comes from the prompt's logits.</param>
/// <param name="Threads">Worker threads of the session.</param>
/// <param name="PromptSeconds">Median wall-clock seconds to prefill the prompt.</param>
/// <param name="GenerateSeconds">Median wall-clock seconds of the generation passes.</param>
/// <param name="GenerateCpuSeconds">Median process CPU seconds (all threads) of the generation passes.</param>
/// <param name="Tokens">The greedily generated ids of the last timed run.</param>
public sealed record GenerationTiming(int PromptTokens, int GeneratedTokens, int Threads, double PromptSeconds, double GenerateSeconds, double GenerateCpuSeconds, int[] Tokens)
{
    /// <summary>Generated tokens per second of process CPU time: steadier than wall time on a shared machine.</summary>
    public double TokensPerCpuSecond => GeneratedTokens / Math.Max(1e-12, GenerateCpuSeconds);
    /// <summary>Prompt tokens per second of prefill wall time.</summary>
    public double PromptTokensPerSecond => PromptTokens / Math.Max(1e-12, PromptSeconds);
    /// <summary>Generated tokens per second, excluding the prompt (llama2.c's run.c counts the same way).</summary>
    public double TokensPerSecond => GeneratedTokens / Math.Max(1e-12, GenerateSeconds);
    /// <summary>How many timed runs the seconds above are the median of.</summary>
    public int Runs { get; init; } = 1;
    /// <summary>Generated tokens per second of the slowest timed run.</summary>
    public double MinTokensPerSecond { get; init; }
    /// <summary>Generated tokens per second of the fastest timed run.</summary>
    public double MaxTokensPerSecond { get; init; }
}

/// <summary>Times greedy generation: the median of several runs, after a three-second warm-up (JIT tiers, page faults).</summary>
public static class GenerationBenchmark
{
    /// <summary>Generates <paramref name="tokens"/> greedy tokens after <paramref name="prompt"/>, <paramref name="runs"/> times.</summary>
    /// <param name="model">The model to run.</param>
    /// <param name="prompt">Prompt ids; empty means BOS alone.</param>
    /// <param name="tokens">Tokens to generate, capped at the positions left after the prompt.</param>
    /// <param name="threads">Worker threads of the session.</param>
    /// <param name="runs">Timed runs; the result holds the median of each time and the min/max rate.</param>
    /// <param name="kv">KV cache type; null for the default F32 cache.</param>
    /// <exception cref="ArgumentException">The prompt leaves no position to generate into.</exception>
    public static GenerationTiming Run(LlamaModel model, ReadOnlySpan<int> prompt, int tokens, int threads = 1, int runs = 10, KvSpec? kv = null)
    {
        if (prompt.IsEmpty) prompt = new[] { model.Config.BosId };
        tokens = Math.Min(tokens, model.Config.MaxSeqLen - prompt.Length);
        if (tokens <= 0) throw new ArgumentException($"no room to generate: the prompt fills the model's {model.Config.MaxSeqLen} positions");
        int capacity = prompt.Length + tokens;
        using var s = model.CreateSession(new LlamaSessionOptions { Threads = threads, Capacity = capacity, Kv = kv });
        var output = new int[tokens];
        runs = Math.Max(1, runs);
        // The median, not the best: on a shared machine the best run is luck, the median is repeatable.
        var promptSec = new double[runs];
        var genSec = new double[runs];
        var cpuSec = new double[runs];
        // Warm up for a fixed time, not a fixed count: tiered JIT promotes hot methods in the
        // background, and on a busy machine that takes longer than one run.
        var warm = Stopwatch.StartNew();
        do
        {
            s.Reset();
            var l = s.Prefill(prompt);
            for (int i = 1; i < tokens; i++) l = s.Forward(Sampling.ArgMax(l));
        } while (warm.Elapsed.TotalSeconds < 3.0);
        for (int run = 0; run < runs; run++)
        {
            s.Reset();
            long t0 = Stopwatch.GetTimestamp();
            var logits = s.Prefill(prompt);
            promptSec[run] = Stopwatch.GetElapsedTime(t0).TotalSeconds;
            t0 = Stopwatch.GetTimestamp();
            var cpu0 = Environment.CpuUsage.TotalTime;
            int n = 0;
            output[n++] = Sampling.ArgMax(logits);
            while (n < tokens) { var next = s.Forward(output[n - 1]); output[n++] = Sampling.ArgMax(next); }
            genSec[run] = Stopwatch.GetElapsedTime(t0).TotalSeconds;
            cpuSec[run] = (Environment.CpuUsage.TotalTime - cpu0).TotalSeconds;
        }
        // The first generated token comes from the prompt's logits, so tokens−1 forward passes were timed.
        int timed = tokens - 1;
        return new GenerationTiming(prompt.Length, timed, threads, Median(promptSec), Median(genSec), Median(cpuSec), output)
        {
            Runs = runs,
            MinTokensPerSecond = timed / Math.Max(1e-12, genSec.Max()),
            MaxTokensPerSecond = timed / Math.Max(1e-12, genSec.Min()),
        };
    }

    static double Median(double[] values)
    {
        Array.Sort(values);
        int mid = values.Length / 2;
        return values.Length % 2 == 1 ? values[mid] : 0.5 * (values[mid - 1] + values[mid]);
    }
}
