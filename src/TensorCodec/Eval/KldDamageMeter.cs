using TensorCodec.Containers;
using TensorCodec.Engine;
using TensorCodec.Formats;
using TensorCodec.Models;
using TensorCodec.Numerics;
using TensorCodec.Quantization;

namespace TensorCodec.Eval;

/// <summary>
/// Measured damage for <c>quantize --bpw --damage measured</c>: the mean KL divergence, on calibration tokens, of the
/// model with only one tensor quantized, against the unquantized model. The unquantized model is built once from the
/// quantizer's own plan at F32 (GGUF names and row order, as <see cref="Sweep"/> builds it) and its log-probabilities
/// saved once to a temporary <see cref="BaseLogitsFile"/>; each measurement swaps one matrix and runs
/// <see cref="Perplexity"/> against that file. Also measures a whole written GGUF the same way (<see cref="MeasureFile"/>).
/// </summary>
public sealed class KldDamageMeter : IQuantDamageMeter, IDisposable
{
    readonly LlamaModel _base;
    readonly int[] _tokens;
    readonly EvalOptions _eval;
    readonly string _cache;

    /// <summary>Builds the unquantized model and its log-probabilities on the first <paramref name="windows"/> windows of
    /// <paramref name="ctx"/> tokens of <paramref name="tokens"/>.</summary>
    /// <exception cref="ArgumentException">The tokens are fewer than one window, or ctx is out of range.</exception>
    public KldDamageMeter(string modelPath, string? configPath, ReadOnlySpan<int> tokens, int ctx, int windows, int threads, CancellationToken ct = default)
    {
        var config = ModelFiles.Resolve(modelPath, configPath).ReadConfig();
        _base = Sweep.Build(modelPath, "f32", new SweepOptions { Types = ["f32"], ConfigPath = configPath, Threads = threads }, config, [], out _, out _, out _);
        _tokens = tokens.ToArray();
        _eval = new EvalOptions { Ctx = ctx, MaxChunks = windows, Threads = threads };
        _cache = Path.Combine(Path.GetTempPath(), $"tcodec-damage-{Environment.ProcessId}-{Guid.NewGuid():N}.logprobs");
        try { Windows = Perplexity.Run(_base, _tokens, _eval with { SaveLogitsPath = _cache }, null, ct).Windows; }
        catch { Dispose(); throw; }
        _ct = ct;
    }

    readonly CancellationToken _ct;

    /// <summary>Windows of calibration tokens each measurement runs.</summary>
    public int Windows { get; }

    /// <summary>Measurements made so far.</summary>
    public int Measurements { get; private set; }

    /// <inheritdoc/>
    public double Measure(string tensor, int ggmlType, int rows, int cols, ReadOnlySpan<byte> data)
    {
        var m = Matrix(ggmlType, rows, cols, data);
        var layers = _base.Layers.Select((l, i) => Replace(l, i, tensor, m)).ToArray();
        var embedding = tensor == TensorNames.Name(TensorNaming.Gguf, TensorRole.TokenEmbedding) ? m : _base.Embedding;
        bool tied = ReferenceEquals(_base.Output, _base.Embedding);
        var output = tied ? embedding : tensor == TensorNames.Name(TensorNaming.Gguf, TensorRole.Output) ? m : _base.Output;
        if (ReferenceEquals(embedding, _base.Embedding) && ReferenceEquals(output, _base.Output) && layers.SequenceEqual(_base.Layers))
            throw new ArgumentException($"tensor '{tensor}' is not a weight matrix of the model");
        using var q = new LlamaModel(_base.Config, embedding, layers, _base.FinalNorm, output, $"{_base.Source} with {tensor} as {GgmlTypes.Get(ggmlType).Name}");
        Measurements++;
        return Perplexity.Run(q, _tokens, _eval with { BaseLogitsPath = _cache }, null, _ct).Kl!.Mean;
    }

    /// <summary>The evaluation of the model at <paramref name="path"/> (e.g. the written GGUF) on the same calibration windows.</summary>
    public EvalResult MeasureFile(string path)
    {
        using var q = LlamaModel.Load(path);
        return Perplexity.Run(q, _tokens, _eval with { BaseLogitsPath = _cache }, null, _ct);
    }

    static LlamaLayer Replace(LlamaLayer l, int layer, string tensor, IWeightMatrix m)
    {
        string N(TensorRole r) => TensorNames.Name(TensorNaming.Gguf, r, layer);
        IWeightMatrix Pick(TensorRole r, IWeightMatrix old) => N(r) == tensor ? m : old;
        var wq = Pick(TensorRole.Query, l.Wq); var wk = Pick(TensorRole.Key, l.Wk); var wv = Pick(TensorRole.Value, l.Wv);
        var wo = Pick(TensorRole.AttentionOutput, l.Wo); var gate = Pick(TensorRole.FfnGate, l.Gate);
        var up = Pick(TensorRole.FfnUp, l.Up); var down = Pick(TensorRole.FfnDown, l.Down);
        if (wq == l.Wq && wk == l.Wk && wv == l.Wv && wo == l.Wo && gate == l.Gate && up == l.Up && down == l.Down) return l;
        return new LlamaLayer
        {
            AttnNorm = l.AttnNorm, FfnNorm = l.FfnNorm, Wq = wq, Wk = wk, Wv = wv, Wo = wo, Gate = gate, Up = up, Down = down,
            Bq = l.Bq, Bk = l.Bk, Bv = l.Bv, Bo = l.Bo, QNorm = l.QNorm, KNorm = l.KNorm,
        };
    }

    /// <summary>The engine's matrix over a pinned copy of <paramref name="data"/>.</summary>
    static unsafe IWeightMatrix Matrix(int type, int rows, int cols, ReadOnlySpan<byte> data)
    {
        var copy = GC.AllocateUninitializedArray<byte>(data.Length, pinned: true);
        data.CopyTo(copy);
        var dtype = type switch { GgmlTypes.F32 => DType.F32, GgmlTypes.F16 => DType.F16, GgmlTypes.BF16 => DType.BF16, _ => DType.Packed };
        fixed (byte* p = copy) return WeightMatrix.Create(dtype, p, rows, cols, copy, ggmlType: type); // pinned: the address stays valid
    }

    /// <summary>Deletes the temporary log-probabilities.</summary>
    public void Dispose()
    {
        _base.Dispose();
        try { File.Delete(_cache); } catch (IOException) { }
    }
}
