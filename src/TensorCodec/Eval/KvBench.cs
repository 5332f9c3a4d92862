using System.Diagnostics;
using TensorCodec.Containers.Tkv;
using TensorCodec.Engine;
using ZstdSharp;

namespace TensorCodec.Eval;

/// <summary>One codec's row of <see cref="KvBench"/>. Sizes are per cached position; KL is in nats.</summary>
/// <param name="Codec">The codec's canonical name (<see cref="KvCodecSpec.Name"/>).</param>
/// <param name="Lossless">Whether the codec is lossless.</param>
/// <param name="Windows">Windows measured.</param>
/// <param name="PositionsPerWindow">Cached positions saved per window (the prompt less its last token).</param>
/// <param name="BytesPerToken">Mean <c>.tkv</c> file bytes per cached position.</param>
/// <param name="F16BytesPerToken">Bytes per cached position of the raw F16 dump of keys and values.</param>
/// <param name="ZstdBytesPerToken">Bytes per cached position of that dump compressed by zstd level 19.</param>
/// <param name="RatioVsF16">F16 dump bytes / <c>.tkv</c> bytes.</param>
/// <param name="RatioVsZstd">zstd-19 bytes / <c>.tkv</c> bytes.</param>
/// <param name="KlMean">Mean KL(reference ‖ restored) over all continuation rows.</param>
/// <param name="KlMax">Largest KL of any row.</param>
/// <param name="Top1Percent">Rows whose arg-max token matches the reference, in %.</param>
/// <param name="BitIdentical">Whether every logit of every row equals the reference's.</param>
/// <param name="SaveMBps">F16-dump megabytes (10⁶ bytes) per second of writing the file.</param>
/// <param name="LoadMBps">F16-dump megabytes per second of reading the file and restoring a session.</param>
/// <param name="SaveMsPerContext">Milliseconds to write one window's context.</param>
/// <param name="LoadMsPerContext">Milliseconds to read and restore one window's context.</param>
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
    /// <summary>Runs every codec of <paramref name="codecs"/> over the same windows; one row per codec, in order.</summary>
    /// <param name="model">The model whose contexts are saved.</param>
    /// <param name="tokens">Token stream cut into consecutive windows of <paramref name="ctx"/>.</param>
    /// <param name="ctx">Tokens per window, at most the model's maximum positions.</param>
    /// <param name="prompt">Tokens saved per window, 2 … <paramref name="ctx"/> − 1; the rest of the window is scored.</param>
    /// <param name="windows">Windows to measure, capped at how many fit in <paramref name="tokens"/>.</param>
    /// <param name="codecs">The codecs to compare.</param>
    /// <param name="threads">Worker threads of each session.</param>
    /// <param name="ct">Checked between windows.</param>
    /// <exception cref="ArgumentException"><paramref name="prompt"/> or <paramref name="ctx"/> out of range, or fewer tokens than one window.</exception>
    /// <exception cref="OperationCanceledException"><paramref name="ct"/> was cancelled.</exception>
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
