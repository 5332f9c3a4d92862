using System.Numerics.Tensors;
using TensorCodec.Containers;
using TensorCodec.Engine;
using TensorCodec.Models;
using TensorCodec.Quantization;

namespace TensorCodec.Eval;

/// <summary>Settings of <see cref="ImatrixCollector.Collect"/>.</summary>
public sealed record ImatrixOptions
{
    /// <summary>Tokens per chunk; each chunk is run from an empty cache (llama-imatrix's -c).</summary>
    public int Ctx { get; init; } = 512;
    /// <summary>Most chunks to run; 0 = every whole chunk of the tokens.</summary>
    public int MaxChunks { get; init; }
    /// <summary>Engine threads.</summary>
    public int Threads { get; init; } = 1;
    /// <summary>Also collect the classifier's input (output.weight), as llama-imatrix's --process-output.</summary>
    public bool ProcessOutput { get; init; }
}

/// <summary>What <see cref="ImatrixCollector.Collect"/> measured: per linear weight, the sums of squared input activations and the rows seen.</summary>
public sealed class ImatrixResult
{
    internal ImatrixResult(IReadOnlyList<ImatrixEntry> entries, int chunks, int chunkSize, long tokens)
    {
        Entries = entries; Chunks = chunks; ChunkSize = chunkSize; Tokens = tokens;
    }

    internal IReadOnlyList<ImatrixEntry> Entries { get; }
    /// <summary>Chunks run.</summary>
    public int Chunks { get; }
    /// <summary>Tokens per chunk.</summary>
    public int ChunkSize { get; }
    /// <summary>Tokens fed.</summary>
    public long Tokens { get; }
    /// <summary>The GGUF tensor names with an entry, in ordinal order.</summary>
    public IReadOnlyList<string> Names => Entries.Select(e => e.Name).Order(StringComparer.Ordinal).ToList();

    /// <summary>The mean squared input activation per column of <paramref name="tensor"/>, or null when it has no entry.</summary>
    public float[]? MeanSquares(string tensor) =>
        Entries.FirstOrDefault(e => e.Name == tensor) is { } e ? e.SumSquares.Select(s => e.Count > 0 ? (float)(s / e.Count) : 1f).ToArray() : null;

    /// <summary>
    /// Writes the matrix as llama.cpp's GGUF imatrix (<paramref name="legacy"/> false) or legacy .dat, atomically.
    /// <paramref name="dataset"/> is recorded as the calibration data's name.
    /// </summary>
    /// <exception cref="IOException">The file exists and <paramref name="overwrite"/> is false.</exception>
    public void Save(string path, string dataset, bool legacy, bool overwrite)
    {
        using var w = new AtomicFileWriter(path, overwrite);
        if (legacy) ImportanceMatrix.WriteLegacy(w.Stream, Entries, dataset, Chunks, ChunkSize);
        else ImportanceMatrix.WriteGguf(w.Stream, Entries, [dataset], Chunks, ChunkSize);
        w.Commit();
    }
}

/// <summary>
/// Calibration like llama.cpp's <c>llama-imatrix</c>: runs the engine over chunks of tokens and accumulates, for each
/// linear layer's input, Σx² per column and the number of rows (tokens) seen, under the GGUF names of the weights
/// that read it (q/k/v share one input, gate/up another). Optionally accumulates H = XᵀX for GPTQ.
/// </summary>
public static class ImatrixCollector
{
    /// <summary>Runs <paramref name="model"/> over the first whole chunks of <paramref name="tokens"/>.</summary>
    /// <exception cref="ArgumentException">Ctx is below 1 or above the model's positions, or the tokens are fewer than one chunk.</exception>
    /// <exception cref="InvalidDataException">A token id is outside the vocabulary.</exception>
    /// <exception cref="OperationCanceledException"><paramref name="ct"/> was signalled.</exception>
    public static ImatrixResult Collect(LlamaModel model, ReadOnlySpan<int> tokens, ImatrixOptions o, IProgress<long>? progress = null, CancellationToken ct = default)
    {
        var acc = new Accumulator(o.ProcessOutput, hessianLayer: null, squares: true);
        int chunks = Run(model, tokens, o, acc, progress, ct);
        return new ImatrixResult(acc.Entries(), chunks, o.Ctx, (long)chunks * o.Ctx);
    }

    /// <summary>Feeds the chunks through a session observed by <paramref name="observer"/>; returns the chunk count.</summary>
    internal static int Run(LlamaModel model, ReadOnlySpan<int> tokens, ImatrixOptions o, IActivationObserver observer, IProgress<long>? progress, CancellationToken ct)
    {
        var c = model.Config;
        if (o.Ctx < 1) throw new ArgumentException($"--ctx {o.Ctx} must be at least 1");
        if (o.Ctx > c.MaxSeqLen) throw new ArgumentException($"--ctx {o.Ctx} exceeds the model's maximum positions {c.MaxSeqLen}");
        int chunks = tokens.Length / o.Ctx;
        if (o.MaxChunks > 0) chunks = Math.Min(chunks, o.MaxChunks);
        if (chunks == 0) throw new ArgumentException($"{tokens.Length} tokens are fewer than one chunk of {o.Ctx}");
        var used = tokens[..(chunks * o.Ctx)];
        EvalData.CheckRange(used, c.VocabSize, "tokens");
        using var session = model.CreateSession(new LlamaSessionOptions { Threads = o.Threads, Capacity = o.Ctx, MaxBatch = 64, Observer = observer });
        // Logits of every row, so the classifier's input is seen for every token as llama-imatrix sees it.
        var logits = new float[o.Ctx * c.VocabSize];
        for (int k = 0; k < chunks; k++)
        {
            ct.ThrowIfCancellationRequested();
            session.Reset();
            session.Forward(used.Slice(k * o.Ctx, o.Ctx), logits, 0);
            progress?.Report(k + 1);
        }
        return chunks;
    }

    /// <summary>The GGUF weight names that read <paramref name="input"/> of <paramref name="layer"/>.</summary>
    internal static IEnumerable<string> WeightsOf(int layer, LinearInput input) => input switch
    {
        LinearInput.Attention => [Name(TensorRole.Query, layer), Name(TensorRole.Key, layer), Name(TensorRole.Value, layer)],
        LinearInput.AttentionOutput => [Name(TensorRole.AttentionOutput, layer)],
        LinearInput.Ffn => [Name(TensorRole.FfnGate, layer), Name(TensorRole.FfnUp, layer)],
        LinearInput.FfnDown => [Name(TensorRole.FfnDown, layer)],
        _ => [Name(TensorRole.Output, -1)],
    };

    /// <summary>Which input a GGUF weight reads, or null for a tensor that is not a linear layer's weight.</summary>
    internal static (int Layer, LinearInput Input)? InputOf(string ggufName)
    {
        if (!TensorNames.TryParse(TensorNaming.Gguf, ggufName, out var role, out int layer)) return null;
        return role switch
        {
            TensorRole.Query or TensorRole.Key or TensorRole.Value => (layer, LinearInput.Attention),
            TensorRole.AttentionOutput => (layer, LinearInput.AttentionOutput),
            TensorRole.FfnGate or TensorRole.FfnUp => (layer, LinearInput.Ffn),
            TensorRole.FfnDown => (layer, LinearInput.FfnDown),
            TensorRole.Output => (-1, LinearInput.Output),
            _ => null,
        };
    }

    static string Name(TensorRole role, int layer) => TensorNames.Name(TensorNaming.Gguf, role, layer);

    /// <summary>Per observed input: Σx² per column (double, as the order of a long sum matters), rows, and optionally XᵀX.</summary>
    internal sealed class Accumulator(bool processOutput, int? hessianLayer, bool squares, bool hessian = false, int threads = 1) : IActivationObserver
    {
        internal sealed class Stat(int cols, bool withH)
        {
            public readonly double[] Sum2 = new double[cols];
            public readonly float[]? H = withH ? new float[(long)cols * cols] : null;
            public long Rows;
        }

        readonly Dictionary<(int, LinearInput), Stat> _stats = [];
        internal IReadOnlyDictionary<(int, LinearInput), Stat> Stats => _stats;

        public void Observe(int layer, LinearInput input, ReadOnlySpan<float> x, int rows, int cols)
        {
            if (input == LinearInput.Output && !processOutput) return;
            if (hessianLayer is int hl && layer != hl) return;
            if (!_stats.TryGetValue((layer, input), out var s)) _stats[(layer, input)] = s = new Stat(cols, hessian);
            s.Rows += rows;
            if (squares)
                for (int t = 0; t < rows; t++)
                {
                    var row = x.Slice(t * cols, cols);
                    for (int j = 0; j < cols; j++) s.Sum2[j] += (double)row[j] * row[j];
                }
            if (s.H is { } h) AddGram(h, x, rows, cols, threads);
        }

        public List<ImatrixEntry> Entries()
        {
            var list = new List<ImatrixEntry>();
            foreach (var ((layer, input), s) in _stats)
            {
                var sums = s.Sum2.Select(v => (float)v).ToArray();
                foreach (var name in WeightsOf(layer, input)) list.Add(new ImatrixEntry(name, sums, s.Rows));
            }
            return list.OrderBy(e => e.Name, StringComparer.Ordinal).ToList();
        }
    }

    /// <summary>H += XᵀX for the rows of <paramref name="x"/>: GPTQ's register-blocked product with E = −Xᵀ, 64 rows of H per task.</summary>
    static void AddGram(float[] h, ReadOnlySpan<float> x, int rows, int cols, int threads)
    {
        var xs = x[..(rows * cols)].ToArray();
        var negT = new float[cols * rows];
        for (int t = 0; t < rows; t++)
            for (int i = 0; i < cols; i++) negT[i * rows + t] = -xs[t * cols + i];
        int tiles = (cols + 63) / 64;
        Parallel.For(0, tiles, new ParallelOptions { MaxDegreeOfParallelism = Math.Max(1, threads) }, tile =>
        {
            int r0 = tile * 64, n = Math.Min(64, cols - r0);
            Gptq.SubtractProduct(h, r0, n, cols, xs, 0, rows, negT.AsSpan(r0 * rows).ToArray(), rows, 0);
        });
    }

    /// <summary>Copies the upper triangle of <paramref name="h"/> into the lower one (exact symmetry for the factorisation).</summary>
    internal static void Mirror(float[] h, int n)
    {
        for (int i = 0; i < n; i++)
            for (int j = 0; j < i; j++) h[i * n + j] = h[j * n + i];
    }
}
