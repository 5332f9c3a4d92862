using TensorCodec.Formats;

namespace TensorCodec.Quantization;

/// <summary>
/// The predicted damage of each candidate type of one tensor under <c>--bpw/--size</c>. Each candidate is quantized with
/// the writer's own code path (GPTQ when the run's method is gptq and the type and input allow it, else the type's
/// quantizer with the importance weights the writer would give it), so the bytes judged are the bytes that would be
/// written; then decoded, and the error e = w − ŵ scored:
/// <list type="bullet">
/// <item>with H = XᵀX of the input (from the calibration): Σ over output rows of e·H·eᵀ / N, the mean squared output
///   error per calibration token (N = H[j,j] / mean x_j², read off the calibration itself);</item>
/// <item>without H but with importance weights (mean x²): Σ over rows and columns of w_j·e², the same with H's diagonal;</item>
/// <item>for the token embedding (a lookup, no input activations): the mean over rows of ‖e_row‖², each token equally likely;</item>
/// <item>with nothing at all: Σ e² (unit activations).</item>
/// </list>
/// With <see cref="DamageMode.Measured"/> the meter also measures each candidate's KL divergence.
/// </summary>
internal sealed class MixedPrecisionDamage(ModelQuantizeOptions o)
{
    readonly GptqTensorEncoder? _gptq = o.Method == QuantMethod.Gptq && o.Calibration is not null ? new GptqTensorEncoder(o.Calibration, Math.Max(1, o.Threads)) : null;
    readonly ModelQuantizer.StreamBuffers _buffers = new();
    int Threads => Math.Max(1, o.Threads);

    /// <summary>Every candidate of <paramref name="t"/>, with its size in the file from <paramref name="size"/>.</summary>
    public MixedPrecisionOption[] Evaluate(ModelQuantizer.PlannedTensor t, IReadOnlyList<int> types, Func<int, long> size)
    {
        var w = t.Load();
        int cols = checked((int)t.RowLength), rows = checked((int)t.Rows);
        var h = o.Calibration?.Hessian(t.Name) is { } hh && hh.LongLength == (long)cols * cols ? hh : null;
        var diag = o.Calibration?.MeanSquares(t.Name) ?? t.ImportanceWeights;
        double perToken = h is not null && o.Calibration?.MeanSquares(t.Name) is { } sq ? TokensOf(h, sq, cols) : 1;
        bool embedding = TensorTypeRules.CategoryOf(t.Name) == TensorTypeRules.Category.TokenEmbd;
        var result = new MixedPrecisionOption[types.Count];
        var decoded = new float[w.Length];
        for (int k = 0; k < types.Count; k++)
        {
            o.Cancellation.ThrowIfCancellationRequested();
            int type = types[k];
            var fmt = BlockFormats.FromGgmlType(type) ?? throw new NotSupportedException($"no encoder for {ModelQuantizer.TypeName(type)}");
            var tt = t with { Choice = new TypeChoice(type, null), Importance = fmt.UsesImportance ? t.ImportanceWeights : null };
            using var ms = new MemoryStream(checked((int)tt.Bytes));
            if (_gptq?.Handles(tt) == true) _gptq.Encode(tt, ms, o.Cancellation);
            else ModelQuantizer.Encode(tt, ms, _buffers, Threads, o.Cancellation);
            var bytes = ms.GetBuffer().AsSpan(0, (int)ms.Length);
            fmt.Dequantize(bytes, decoded);
            double proxy = embedding ? SquaredError(w, decoded, null) / Math.Max(1, rows)
                : h is not null ? HError(w, decoded, h, rows, cols) / perToken
                : SquaredError(w, decoded, diag is { Length: var n } && n == cols ? diag : null);
            double? kld = o.Damage == DamageMode.Measured || (o.Damage == DamageMode.Scaled && k == 0)
                ? o.DamageMeter!.Measure(t.Name, type, rows, cols, bytes) : null;
            result[k] = new MixedPrecisionOption(ModelQuantizer.TypeName(type), size(type), proxy, kld, o.Damage == DamageMode.Measured ? kld!.Value : proxy);
        }
        if (o.Damage == DamageMode.Scaled)
        {
            // One measurement at the cheapest type (the largest, least noisy KL) calibrates the tensor's proxy.
            double scale = result[0].Proxy > 0 ? result[0].MeasuredKld!.Value / result[0].Proxy : 0;
            for (int k = 0; k < result.Length; k++) result[k] = result[k] with { Predicted = result[k].Proxy * scale };
        }
        return result;
    }

    /// <summary>Calibration rows behind H: H[j,j] = Σx_j² and the mean squares are Σx_j² / N, read at the strongest column.</summary>
    static double TokensOf(float[] h, float[] meanSquares, int n)
    {
        int best = -1;
        for (int j = 0; j < n && j < meanSquares.Length; j++)
            if (meanSquares[j] > 0 && (best < 0 || h[(long)j * n + j] > h[(long)best * n + best])) best = j;
        return best < 0 ? 1 : Math.Max(1, h[(long)best * n + best] / meanSquares[best]);
    }

    /// <summary>Σ over columns j of weight_j · e², summed over rows (weight 1 without weights).</summary>
    static double SquaredError(float[] w, float[] q, float[]? weights)
    {
        double s = 0;
        int n = weights?.Length ?? 1;
        for (int i = 0; i < w.Length; i++)
        {
            double e = w[i] - q[i];
            s += (weights is null ? 1 : weights[i % n]) * e * e;
        }
        return s;
    }

    /// <summary>Σ over rows of e·H·eᵀ, rows in parallel.</summary>
    double HError(float[] w, float[] q, float[] h, int rows, int cols)
    {
        var partial = new double[rows];
        Parallel.For(0, rows, new ParallelOptions { MaxDegreeOfParallelism = Threads, CancellationToken = o.Cancellation }, r =>
        {
            var e = new float[cols];
            for (int j = 0; j < cols; j++) e[j] = w[(long)r * cols + j] - q[(long)r * cols + j];
            double s = 0;
            for (int i = 0; i < cols; i++)
            {
                if (e[i] == 0) continue;
                var hi = h.AsSpan(i * cols, cols);
                s += e[i] * (double)System.Numerics.Tensors.TensorPrimitives.Dot(hi, e);
            }
            partial[r] = s;
        });
        return partial.Sum();
    }
}
