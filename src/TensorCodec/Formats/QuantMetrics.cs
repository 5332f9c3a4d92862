namespace TensorCodec.Formats;

/// <summary>How much a quantize → dequantize round trip damaged a tensor.</summary>
/// <param name="Type">The format's name.</param>
/// <param name="Count">Number of values compared.</param>
/// <param name="EncodedBytes">Size of the encoded data in bytes.</param>
/// <param name="BitsPerWeight">Encoded bits per value, scales, headers and outliers included.</param>
/// <param name="Mse">Mean squared error, mean (x − y)².</param>
/// <param name="SqnrDb">Signal-to-quantization-noise ratio in dB, 10·log10(Σx² / Σ(x − y)²); +∞ when exact.</param>
/// <param name="MaxAbsError">Largest |x − y| (NaN if any difference is NaN).</param>
/// <param name="Cosine">Cosine similarity of original and reconstruction (1 when both are zero).</param>
public sealed record QuantStats(string Type, long Count, long EncodedBytes, double BitsPerWeight,
    double Mse, double SqnrDb, double MaxAbsError, double Cosine);

/// <summary>Per-tensor error metrics, accumulated in double.</summary>
public static class QuantMetrics
{
    /// <summary>
    /// MSE = mean (x − y)²; SQNR = 10·log10(Σx² / Σ(x − y)²) (+∞ when exact); cosine of x and y
    /// (1 when both are zero); bits per weight = 8·encodedBytes / count.
    /// </summary>
    public static QuantStats Compare(string type, ReadOnlySpan<float> x, ReadOnlySpan<float> y, long encodedBytes)
    {
        if (x.Length != y.Length) throw new ArgumentException("original and reconstruction differ in length");
        double se = 0, sx = 0, sy = 0, sxy = 0, maxErr = 0;
        for (int i = 0; i < x.Length; i++)
        {
            double a = x[i], b = y[i], e = a - b;
            se += e * e; sx += a * a; sy += b * b; sxy += a * b;
            double ae = Math.Abs(e);
            if (ae > maxErr || double.IsNaN(ae)) maxErr = ae;
        }
        long n = x.Length;
        double mse = n > 0 ? se / n : 0;
        double sqnr = se == 0 ? double.PositiveInfinity : 10 * Math.Log10(sx / se);
        double cos = sx == 0 && sy == 0 ? 1 : sxy / Math.Sqrt(sx * sy);
        double bpw = n > 0 ? 8.0 * encodedBytes / n : 0;
        return new QuantStats(type, n, encodedBytes, bpw, mse, sqnr, maxErr, cos);
    }

    /// <summary>Quantizes, dequantizes and compares.</summary>
    public static QuantStats Measure(IMatrixFormat format, ReadOnlySpan<float> x, int nPerRow, ReadOnlySpan<float> importance = default)
    {
        var bytes = new byte[format.GetEncodedLength(x, nPerRow)];
        int written = format.Encode(x, nPerRow, bytes, importance);
        var y = new float[x.Length];
        format.Decode(bytes.AsSpan(0, written), nPerRow, y);
        return Compare(format.Name, x, y, written);
    }
}
