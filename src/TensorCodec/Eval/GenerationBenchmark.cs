using System.Diagnostics;

using TensorCodec.Engine;

namespace TensorCodec.Eval;

public sealed record GenerationTiming(int PromptTokens, int GeneratedTokens, int Threads, double PromptSeconds, double GenerateSeconds, double GenerateCpuSeconds, int[] Tokens)
{
    /// <summary>Generated tokens per second of process CPU time: steadier than wall time on a shared machine.</summary>
    public double TokensPerCpuSecond => GeneratedTokens / Math.Max(1e-12, GenerateCpuSeconds);
    public double PromptTokensPerSecond => PromptTokens / Math.Max(1e-12, PromptSeconds);
    /// <summary>Generated tokens per second, excluding the prompt (llama2.c's run.c counts the same way).</summary>
    public double TokensPerSecond => GeneratedTokens / Math.Max(1e-12, GenerateSeconds);
}

/// <summary>Times greedy generation: the best of several runs, after a three-second warm-up (JIT tiers, page faults).</summary>
public static class GenerationBenchmark
{
    /// <param name="kv">KV cache type; null for the default F32 cache.</param>
    public static GenerationTiming Run(LlamaModel model, ReadOnlySpan<int> prompt, int tokens, int threads = 1, int runs = 10, KvSpec? kv = null)
    {
        if (prompt.IsEmpty) prompt = new[] { model.Config.BosId };
        tokens = Math.Min(tokens, model.Config.MaxSeqLen - prompt.Length);
        if (tokens <= 0) throw new ArgumentException($"no room to generate: the prompt fills the model's {model.Config.MaxSeqLen} positions");
        int capacity = prompt.Length + tokens;
        using var s = model.CreateSession(new LlamaSessionOptions { Threads = threads, Capacity = capacity, Kv = kv });
        var output = new int[tokens];
        GenerationTiming? best = null;
        // Warm up for a fixed time, not a fixed count: tiered JIT promotes hot methods in the
        // background, and on a busy machine that takes longer than one run.
        var warm = Stopwatch.StartNew();
        do
        {
            s.Reset();
            var l = s.Prefill(prompt);
            for (int i = 1; i < tokens; i++) l = s.Forward(Sampling.ArgMax(l));
        } while (warm.Elapsed.TotalSeconds < 3.0);
        for (int run = 1; run <= Math.Max(1, runs); run++)
        {
            s.Reset();
            long t0 = Stopwatch.GetTimestamp();
            var logits = s.Prefill(prompt);
            double promptSeconds = Stopwatch.GetElapsedTime(t0).TotalSeconds;
            t0 = Stopwatch.GetTimestamp();
            var cpu0 = Environment.CpuUsage.TotalTime;
            int n = 0;
            output[n++] = Sampling.ArgMax(logits);
            while (n < tokens) { var next = s.Forward(output[n - 1]); output[n++] = Sampling.ArgMax(next); }
            double genSeconds = Stopwatch.GetElapsedTime(t0).TotalSeconds;
            double cpuSeconds = (Environment.CpuUsage.TotalTime - cpu0).TotalSeconds;
            // The first generated token comes from the prompt's logits, so n−1 forward passes were timed.
            var timing = new GenerationTiming(prompt.Length, n - 1, threads, promptSeconds, genSeconds, cpuSeconds, output.ToArray());
            if (run > 0 && (best is null || timing.TokensPerSecond > best.TokensPerSecond)) best = timing;
        }
        return best!;
    }
}
