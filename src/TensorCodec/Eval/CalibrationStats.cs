using TensorCodec.Engine;
using TensorCodec.Quantization;

namespace TensorCodec.Eval;

/// <summary>
/// Calibration for <c>tcodec quantize --method imatrix|gptq</c>: the mean squared input activations (llama-imatrix's)
/// of every linear weight, and H = XᵀX of each layer input for GPTQ. When every H fits in
/// <see cref="HessianBudgetBytes"/> they are collected in the same pass; otherwise one layer's are kept at a time and
/// the calibration tokens are run again for each layer (the quantizer asks for the layers in order), so memory holds
/// one layer's H, not the model's.
/// </summary>
public sealed class CalibrationStats : ICalibration
{
    /// <summary>Above this many bytes of H for the whole model, H is collected layer by layer.</summary>
    public const long HessianBudgetBytes = 1L << 30;

    readonly LlamaModel _model;
    readonly int[] _tokens;
    readonly ImatrixOptions _options;
    readonly Dictionary<string, float[]> _means = new(StringComparer.Ordinal);
    readonly Dictionary<(int, LinearInput), float[]> _h = [];
    readonly bool _perLayer;
    int? _layer; // the layer whose H is held, in per-layer mode

    /// <summary>Runs the calibration (all H at once when they fit, else only the mean squares; see the class remarks).
    /// <paramref name="model"/> must stay loaded while the quantizer asks for H.</summary>
    /// <exception cref="ArgumentException">Ctx is out of range or the tokens are fewer than one chunk.</exception>
    public CalibrationStats(LlamaModel model, ReadOnlySpan<int> tokens, ImatrixOptions options, string dataset, bool hessian, CancellationToken ct = default)
    {
        _model = model; _tokens = tokens.ToArray(); _options = options with { ProcessOutput = true }; Dataset = dataset;
        var c = model.Config;
        long perLayer = 4L * (2L * c.Dim * c.Dim + (long)c.QDim * c.QDim + (long)c.HiddenDim * c.HiddenDim);
        _perLayer = hessian && perLayer * c.Layers + 4L * c.Dim * c.Dim > HessianBudgetBytes;
        var acc = new ImatrixCollector.Accumulator(true, hessianLayer: null, squares: true, hessian: hessian && !_perLayer, threads: options.Threads);
        Chunks = ImatrixCollector.Run(model, _tokens, _options, acc, null, ct);
        foreach (var e in acc.Entries()) _means[e.Name] = e.SumSquares.Select(v => e.Count > 0 ? v / e.Count : 1f).ToArray();
        if (hessian && !_perLayer) Keep(acc);
        HessianEnabled = hessian;
        _ct = ct;
    }

    readonly CancellationToken _ct;

    /// <summary>Whether H was requested.</summary>
    public bool HessianEnabled { get; }

    /// <inheritdoc/>
    public string Dataset { get; }

    /// <inheritdoc/>
    public int Chunks { get; }

    /// <inheritdoc/>
    public float[]? MeanSquares(string tensor) => _means.TryGetValue(tensor, out var m) ? m : null;

    /// <inheritdoc/>
    public float[]? Hessian(string tensor)
    {
        if (!HessianEnabled || ImatrixCollector.InputOf(tensor) is not { } key) return null;
        if (_perLayer && _layer != key.Layer)
        {
            _h.Clear();
            var acc = new ImatrixCollector.Accumulator(true, hessianLayer: key.Layer, squares: false, hessian: true, threads: _options.Threads);
            ImatrixCollector.Run(_model, _tokens, _options, acc, null, _ct);
            Keep(acc);
            _layer = key.Layer;
        }
        return _h.TryGetValue(key, out var h) ? h : null;
    }

    void Keep(ImatrixCollector.Accumulator acc)
    {
        foreach (var (key, s) in acc.Stats)
        {
            int n = s.Sum2.Length;
            ImatrixCollector.Mirror(s.H!, n);
            _h[key] = s.H!;
        }
    }
}
