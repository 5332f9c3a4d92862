using System.Numerics;
using System.Numerics.Tensors;

namespace TensorCodec.Numerics;

/// <summary>
/// The one log-softmax and KL divergence used by evaluation and the KV benchmarks. The max shift is
/// in float, the exponentials and their sum in double, so every caller gets the same bits.
/// </summary>
internal static class LogSoftmax
{
    /// <summary>log Σ exp(x): max-shifted, summed in double.</summary>
    public static double LogSumExp(ReadOnlySpan<float> x)
    {
        float max = TensorPrimitives.Max(x);
        double sum = 0;
        foreach (float v in x) sum += Math.Exp(v - max);
        return max + Math.Log(sum);
    }

    /// <summary>Rows of logits → log-probabilities in place; the normaliser is rounded to float once per row.</summary>
    public static void Rows(Span<float> rows, int vocab)
    {
        for (int r = 0; r < rows.Length / vocab; r++)
        {
            var row = rows.Slice(r * vocab, vocab);
            TensorPrimitives.Subtract(row, (float)LogSumExp(row), row);
        }
    }

    /// <summary>Log-probabilities of <paramref name="x"/> in double (the normaliser is not rounded to float).</summary>
    public static void ToDouble(ReadOnlySpan<float> x, Span<double> y)
    {
        double z = LogSumExp(x);
        for (int i = 0; i < x.Length; i++) y[i] = x[i] - z;
    }

    /// <summary>KL(p ‖ q) = Σ p·(log p − log q) from log-probabilities, in double, clamped at 0 (tiny negatives are rounding).</summary>
    public static double Kl<T>(ReadOnlySpan<T> logP, ReadOnlySpan<T> logQ) where T : IBinaryFloatingPointIeee754<T>
    {
        double d = 0;
        for (int i = 0; i < logP.Length; i++)
        {
            double lp = double.CreateTruncating(logP[i]);
            d += Math.Exp(lp) * (lp - double.CreateTruncating(logQ[i]));
        }
        return Math.Max(0, d);
    }
}
