using System.Diagnostics;
using System.Globalization;
using System.Runtime.InteropServices;
using System.Text;
using TensorCodec.Containers;
using TensorCodec.Engine;
using TensorCodec.Formats;
using TensorCodec.Numerics;
using TensorCodec.Quantization;
using TensorCodec.Models;

namespace TensorCodec.Eval;

/// <summary>Settings of <see cref="Sweep.Run"/>.</summary>
public sealed record SweepOptions
{
    /// <summary>llama.cpp mixes ("q4_K_M") or any <see cref="QuantFormats"/> name ("nf4", "ocp_mxfp4", "int4_g128").</summary>
    public required IReadOnlyList<string> Types { get; init; }
    /// <summary>Window length in tokens (see <see cref="EvalOptions.Ctx"/>).</summary>
    public int Ctx { get; init; } = 256;
    /// <summary>Evaluate at most this many windows (0 = all).</summary>
    public int MaxChunks { get; init; }
    /// <summary>Worker threads for quantizing and evaluating (1 = run on the caller only).</summary>
    public int Threads { get; init; } = 1;
    /// <summary>HF config.json for a safetensors model (default: beside it).</summary>
    public string? ConfigPath { get; init; }
    /// <summary>llama.cpp imatrix for the mixes (as <c>quantize --imatrix</c>; the IQ1/IQ2/IQ3_XXS mixes and q2_K_S need one); default: none.</summary>
    public string? ImatrixPath { get; init; }
}

/// <summary>One quantized variant: how it was made, its exact size, and its evaluation against the base.</summary>
/// <param name="Type">The type as given in <see cref="SweepOptions.Types"/>, or <c>base</c>.</param>
/// <param name="Method">How the variant was stored and run, for display.</param>
/// <param name="Bytes">Stored bytes of all tensors.</param>
/// <param name="Elements">Number of weights over all tensors.</param>
/// <param name="Result">Its evaluation (against the base for quantized variants).</param>
/// <param name="Notes">Remarks such as tensors kept at F32 because their rows did not fit the format.</param>
public sealed record SweepEntry(string Type, string Method, long Bytes, long Elements, EvalResult Result, IReadOnlyList<string> Notes)
{
    /// <summary>Stored bits over all tensors (norm vectors included, at their stored type), per weight.</summary>
    public double BitsPerWeight => Bytes * 8.0 / Elements;
}

/// <summary>The outcome of <see cref="Sweep.Run"/>.</summary>
/// <param name="Model">The model path as given.</param>
/// <param name="Tokens">Number of tokens given (not all may fall in whole windows).</param>
/// <param name="Base">The unquantized model, evaluated on its own (no KL statistics).</param>
/// <param name="Entries">One entry per type, in the order given.</param>
/// <param name="Seconds">Wall-clock time of the whole sweep.</param>
public sealed record SweepResult(string Model, int Tokens, SweepEntry Base, IReadOnlyList<SweepEntry> Entries, double Seconds);

/// <summary>Step is 0 for the base, 1… for the types; Window is 0 while a type is being quantized.</summary>
public readonly record struct SweepProgress(int Step, int Steps, string Label, int Window, int Windows, double RunningPpl);

/// <summary>
/// A rate–distortion sweep: for each type, quantize the model in memory, evaluate it with
/// <see cref="Perplexity"/> against the unquantized model (whose log-probabilities are computed
/// once and read back from a <see cref="BaseLogitsFile"/> cache), and record exact storage.
/// <list type="bullet">
/// <item>llama.cpp mixes use <see cref="ModelQuantizer"/>'s plan, so each tensor gets exactly the
///   type <c>tcodec quantize</c> would give it, and the weights stay packed (fused kernels).</item>
/// <item>Any other format quantizes every 2-D weight (embeddings and classifier included) and leaves
///   1-D norms at F32. ggml block types stay packed; formats the engine cannot run packed (nf4,
///   ocp_mxfp4, nvfp4_16, int4_g128 …) are encoded, their exact encoded size counted, and decoded
///   to F32 for evaluation: the same values, so the same damage.</item>
/// </list>
/// </summary>
public static class Sweep
{
    /// <summary>Evaluates the model at <paramref name="modelPath"/> and each of <see cref="SweepOptions.Types"/>
    /// on <paramref name="tokens"/>. Nothing is written except a temporary base-logits cache, deleted at the end.</summary>
    /// <param name="modelPath">A safetensors, GGUF or llama2.c model.</param>
    /// <param name="tokens">Evaluation token ids.</param>
    /// <param name="o">Types, window length and threads.</param>
    /// <param name="progress">Receives a <see cref="SweepProgress"/> as each type is quantized and after each window.</param>
    /// <param name="ct">Checked before each type and each window.</param>
    /// <exception cref="ArgumentException">No types were given, a type is neither a mix nor a format, or the evaluation
    /// settings are invalid (see <see cref="Perplexity.Run"/>).</exception>
    /// <exception cref="OperationCanceledException"><paramref name="ct"/> was signalled.</exception>
    public static SweepResult Run(string modelPath, ReadOnlyMemory<int> tokens, SweepOptions o,
        IProgress<SweepProgress>? progress = null, CancellationToken ct = default)
    {
        if (o.Types.Count == 0) throw new ArgumentException("no types to sweep");
        foreach (var t in o.Types)
            if (FindMix(t) is null && !QuantFormats.TryGet(t, out _))
                throw new ArgumentException($"unknown type '{t}': give a llama.cpp mix ({string.Join(", ", QuantMix.All.Select(m => m.Name))}) or a format ({QuantFormats.KnownNamesText})");

        var sw = Stopwatch.StartNew();
        int steps = o.Types.Count + 1;
        using var baseModel = LlamaModel.Load(modelPath, new LlamaLoadOptions { ConfigPath = o.ConfigPath });
        string cache = Path.Combine(Path.GetTempPath(), $"tcodec-sweep-{Environment.ProcessId}-{Guid.NewGuid():N}.logprobs");
        try
        {
            var eval = new EvalOptions { Ctx = o.Ctx, MaxChunks = o.MaxChunks, Threads = o.Threads };
            var baseResult = Perplexity.Run(baseModel, tokens.Span, eval with { SaveLogitsPath = cache }, Adapter(progress, 0, steps, "base"), ct);
            var stored = ModelFiles.Resolve(modelPath, o.ConfigPath).Tensors.Select(t => t.Info).ToList();
            var baseEntry = new SweepEntry("base", $"{DominantType(stored)} as stored", stored.Sum(t => t.Length),
                stored.Sum(t => t.ElementCount), baseResult, []);

            var entries = new List<SweepEntry>();
            for (int i = 0; i < o.Types.Count; i++)
            {
                ct.ThrowIfCancellationRequested();
                string type = o.Types[i];
                progress?.Report(new SweepProgress(i + 1, steps, $"quantizing {type}", 0, baseResult.Windows, double.NaN));
                var notes = new List<string>();
                using var q = Build(modelPath, type, o, baseModel.Config, notes, out long bytes, out long elements, out string method);
                var r = Perplexity.Run(q, tokens.Span, eval with { BaseLogitsPath = cache }, Adapter(progress, i + 1, steps, type), ct);
                entries.Add(new SweepEntry(type, method, bytes, elements, r, notes));
            }
            return new SweepResult(modelPath, tokens.Length, baseEntry, entries, sw.Elapsed.TotalSeconds);
        }
        finally { File.Delete(cache); }
    }

    static QuantMix? FindMix(string name) => QuantMix.All.FirstOrDefault(m => string.Equals(m.Name, name, StringComparison.OrdinalIgnoreCase));

    static string DominantType(IEnumerable<TensorInfo> tensors) =>
        tensors.GroupBy(t => t.GgmlType >= 0 && GgmlTypes.TryGet(t.GgmlType, out var g) ? g.Name : t.DType.ToString().ToLowerInvariant())
            .OrderByDescending(g => g.Sum(t => t.ElementCount)).First().Key;

    static IProgress<EvalProgress>? Adapter(IProgress<SweepProgress>? p, int step, int steps, string label) =>
        p is null ? null : new EvalAdapter(p, step, steps, label);

    sealed class EvalAdapter(IProgress<SweepProgress> p, int step, int steps, string label) : IProgress<EvalProgress>
    {
        public void Report(EvalProgress e) => p.Report(new SweepProgress(step, steps, label, e.Window, e.Windows, e.RunningPpl));
    }

    /// <summary>
    /// The model quantized to <paramref name="type"/>, in memory. Tensors come from the quantizer's
    /// plan, in GGUF names and row order (HF Q/K rows already permuted), hence adjacent-pair RoPE.
    /// </summary>
    internal static LlamaModel Build(string modelPath, string type, SweepOptions o, ModelConfig config, List<string> notes,
        out long bytes, out long elements, out string method)
    {
        var mix = FindMix(type);
        var format = mix is null ? QuantFormats.Get(type) : null;
        using var plan = ModelQuantizer.CreatePlan(modelPath, new ModelQuantizeOptions
        {
            Mix = mix ?? QuantMix.Get("f32"), ConfigPath = o.ConfigPath, ImatrixPath = mix is null ? null : o.ImatrixPath,
        });
        var matrices = new Dictionary<string, IWeightMatrix>(StringComparer.Ordinal);
        var vectors = new Dictionary<string, float[]>(StringComparer.Ordinal);
        bytes = 0; elements = 0;
        bool decoded = false;
        foreach (var t in plan.Tensors)
        {
            float[] v = t.Load();
            elements += t.Elements;
            if (t.Dims.Length != 2)
            {
                vectors[t.Name] = v;
                bytes += t.Bytes; // 1-D tensors stay F32 in every mix
                continue;
            }
            int cols = checked((int)t.Dims[0]), rows = checked((int)t.Dims[1]);
            if (mix is not null)
            {
                matrices[t.Name] = Ggml(t.Choice.Type, v, rows, cols, o.Threads, t.Importance);
                bytes += t.Bytes;
            }
            else if (cols % format!.RowMultiple != 0)
            {
                notes.Add($"{t.Name}: row length {cols} is not a multiple of {format.Name}'s {format.RowMultiple}; kept at F32");
                matrices[t.Name] = Ggml(GgmlTypes.F32, v, rows, cols, o.Threads);
                bytes += (long)v.Length * 4;
            }
            else if (format is BlockMatrixFormat { Format.GgmlTypeId: >= 0 and var id })
            {
                matrices[t.Name] = Ggml(id, v, rows, cols, o.Threads);
                bytes += GgmlTypes.Get(id).ByteSize(v.Length)!.Value;
            }
            else
            {
                var enc = new byte[format.GetEncodedLength(v, cols)];
                int n = format.Encode(v, cols, enc);
                var values = GC.AllocateUninitializedArray<float>(v.Length, pinned: true);
                format.Decode(enc.AsSpan(0, n), cols, values);
                matrices[t.Name] = Pinned(values, rows, cols);
                bytes += n;
                decoded = true;
            }
        }
        method = mix is not null ? "llama.cpp mix, packed"
            : decoded ? "every 2-D weight; encoded, decoded to F32 to run"
            : "every 2-D weight, packed";

        IWeightMatrix M(string name) => matrices.TryGetValue(name, out var m) ? m : throw new InvalidDataException($"{modelPath}: tensor '{name}' is missing");
        float[] V(string name) => vectors.TryGetValue(name, out var x) ? x : throw new InvalidDataException($"{modelPath}: tensor '{name}' is missing");
        IWeightMatrix Mat(TensorRole role, int layer = -1) => M(TensorNames.Name(TensorNaming.Gguf, role, layer));
        float[] Vec(TensorRole role, int layer = -1) => V(TensorNames.Name(TensorNaming.Gguf, role, layer));
        var layers = new LlamaLayer[config.Layers];
        for (int l = 0; l < config.Layers; l++)
            layers[l] = new LlamaLayer
            {
                AttnNorm = Vec(TensorRole.AttentionNorm, l), FfnNorm = Vec(TensorRole.FfnNorm, l),
                Wq = Mat(TensorRole.Query, l), Wk = Mat(TensorRole.Key, l), Wv = Mat(TensorRole.Value, l),
                Wo = Mat(TensorRole.AttentionOutput, l), Gate = Mat(TensorRole.FfnGate, l), Up = Mat(TensorRole.FfnUp, l),
                Down = Mat(TensorRole.FfnDown, l),
                Bq = config.QkvBias ? Vec(TensorRole.QueryBias, l) : null, Bk = config.QkvBias ? Vec(TensorRole.KeyBias, l) : null,
                Bv = config.QkvBias ? Vec(TensorRole.ValueBias, l) : null, Bo = config.OutputBias ? Vec(TensorRole.AttentionOutputBias, l) : null,
                QNorm = config.QkNorm ? Vec(TensorRole.QueryNorm, l) : null, KNorm = config.QkNorm ? Vec(TensorRole.KeyNorm, l) : null,
            };
        var embedding = Mat(TensorRole.TokenEmbedding);
        bool tied = !matrices.ContainsKey(TensorNames.Name(TensorNaming.Gguf, TensorRole.Output));
        var cfg = config with { Rope = TensorNames.Rope(TensorNaming.Gguf, config.Architecture), TiedEmbeddings = tied };
        return new LlamaModel(cfg, embedding, layers, Vec(TensorRole.OutputNorm), tied ? embedding : Mat(TensorRole.Output), $"{modelPath} as {type}");
    }

    static unsafe IWeightMatrix Pinned(float[] pinned, int rows, int cols)
    {
        fixed (float* p = pinned) return new F32Matrix(p, rows, cols, pinned); // pinned heap: the address stays valid
    }

    /// <summary>A matrix of ggml type <paramref name="type"/> over a pinned copy of the encoded rows.</summary>
    static unsafe IWeightMatrix Ggml(int type, float[] v, int rows, int cols, int threads, float[]? importance = null)
    {
        switch (type)
        {
            case GgmlTypes.F32:
                var f = GC.AllocateUninitializedArray<float>(v.Length, pinned: true);
                v.CopyTo(f, 0);
                return Pinned(f, rows, cols);
            case GgmlTypes.F16:
            case GgmlTypes.BF16:
                var h = GC.AllocateUninitializedArray<ushort>(v.Length, pinned: true);
                if (type == GgmlTypes.F16) Fp16.FromFloat(v, h); else BFloat16.FromFloat(v, h);
                fixed (ushort* p = h) return WeightMatrix.Create(type == GgmlTypes.F16 ? DType.F16 : DType.BF16, (byte*)p, rows, cols, h);
        }
        var fmt = BlockFormats.FromGgmlType(type) ?? throw new NotSupportedException($"no encoder for ggml type {type}");
        int rowBytes = cols / fmt.BlockSize * fmt.BlockBytes;
        var data = GC.AllocateUninitializedArray<byte>(checked(rows * rowBytes), pinned: true);
        int chunk = Math.Max(1, 65536 / cols);
        Parallel.For(0, (rows + chunk - 1) / chunk, new ParallelOptions { MaxDegreeOfParallelism = Math.Max(1, threads) }, c =>
        {
            int r0 = c * chunk, n = Math.Min(chunk, rows - r0);
            fmt.Quantize(v.AsSpan(r0 * cols, n * cols), data.AsSpan(r0 * rowBytes, n * rowBytes), cols, importance);
        });
        fixed (byte* p = data) return WeightMatrix.Create(DType.Packed, p, rows, cols, data, ggmlType: type);
    }
}
