using TensorCodec.Formats;
using TensorCodec.Quantization;

namespace TensorCodec.Tests.Quantization;

/// <summary>GPTQ into ggml blocks: identity H is round-to-nearest, a correlated H lowers the H-weighted error, the bytes are valid blocks.</summary>
public class GptqTests
{
    public static TheoryData<string> Types => new(["q8_0", "q4_0", "q4_K", "q6_K", "q5_K", "q3_K", "q2_K", "q5_0", "q4_1", "q5_1", "iq4_nl", "iq4_xs"]);

    static float[] Weights(int rows, int cols, int seed)
    {
        var rng = new Random(seed);
        var w = new float[rows * cols];
        for (int i = 0; i < w.Length; i++)
        {
            // Gaussian-ish with a few outliers, like trained weights.
            double g = Math.Sqrt(-2 * Math.Log(1 - rng.NextDouble())) * Math.Cos(2 * Math.PI * rng.NextDouble());
            w[i] = (float)(0.05 * g * (rng.Next(50) == 0 ? 6 : 1));
        }
        return w;
    }

    static float[] Identity(int n)
    {
        var h = new float[n * n];
        for (int i = 0; i < n; i++) h[i * n + i] = 1;
        return h;
    }

    /// <summary>H = XᵀX of samples whose features are mixed (correlated neighbours) and of uneven scale.</summary>
    static float[] CorrelatedH(int n, int samples, int seed)
    {
        var rng = new Random(seed);
        var h = new double[n * n];
        var z = new double[n];
        var x = new double[n];
        for (int s = 0; s < samples; s++)
        {
            for (int i = 0; i < n; i++) z[i] = rng.NextDouble() * 2 - 1;
            for (int i = 0; i < n; i++)
                x[i] = (0.3 + (i % 7) * 0.4) * (z[i] + 0.8 * z[(i + 1) % n] + 0.5 * z[(i + 5) % n]);
            for (int i = 0; i < n; i++)
                for (int j = 0; j < n; j++) h[i * n + j] += x[i] * x[j];
        }
        return h.Select(v => (float)v).ToArray();
    }

    static double HError(float[] w, float[] q, float[] h, int rows, int n)
    {
        double total = 0;
        var d = new double[n];
        for (int r = 0; r < rows; r++)
        {
            for (int i = 0; i < n; i++) d[i] = (double)w[r * n + i] - q[r * n + i];
            for (int i = 0; i < n; i++)
            {
                double s = 0;
                for (int j = 0; j < n; j++) s += h[i * n + j] * d[j];
                total += d[i] * s;
            }
        }
        return total;
    }

    static float[] Rtn(IBlockFormat fmt, float[] w, int cols, float[]? imp)
    {
        var bytes = new byte[w.Length / fmt.BlockSize * fmt.BlockBytes];
        fmt.Quantize(w, bytes, cols, imp);
        var q = new float[w.Length];
        fmt.Dequantize(bytes, q);
        return q;
    }

    static (float[] Decoded, float[] Used) RunGptq(IBlockFormat fmt, float[] w, int rows, int cols, float[] h, float[]? imp)
    {
        var bytes = new byte[w.Length / fmt.BlockSize * fmt.BlockBytes];
        var used = new float[w.Length];
        Gptq.Quantize((float[])w.Clone(), rows, cols, Gptq.Factor(h, cols), fmt, imp, bytes, threads: 2, values: used);
        var q = new float[w.Length];
        fmt.Dequantize(bytes, q);
        return (q, used);
    }

    [Theory]
    [MemberData(nameof(Types))]
    public void IdentityHIsRoundToNearestOnTheTypesOwnScales(string type)
    {
        var fmt = BlockFormats.Get(type);
        int rows = 6, cols = 512;
        var w = Weights(rows, cols, Seeds.Of(type));
        var (q, used) = RunGptq(fmt, w, rows, cols, Identity(cols), null);
        Assert.Equal(used, q); // what GPTQ rounded to is what the standard decoder reads back
        var rtn = Rtn(fmt, w, cols, null);
        // No error is fed forward, so each block keeps the type's scales and every value is the nearest on them:
        // the codes agree with the type's own rounding except where it rounds with the unrounded scale.
        int same = 0;
        double eG = 0, eR = 0;
        for (int i = 0; i < w.Length; i++)
        {
            if (q[i] == rtn[i]) same++;
            eG += (w[i] - q[i]) * (double)(w[i] - q[i]);
            eR += (w[i] - rtn[i]) * (double)(w[i] - rtn[i]);
        }
        Assert.True(same >= 0.99 * w.Length, $"{type}: {same} of {w.Length} values equal the type's own");
        Assert.True(eG <= eR * (1 + 1e-6), $"{type}: squared error {eG} above round-to-nearest's {eR}");
    }

    [Theory]
    [MemberData(nameof(Types))]
    public void CorrelatedHLowersTheHWeightedErrorOnEveryLayer(string type)
    {
        var fmt = BlockFormats.Get(type);
        int rows = 8, cols = 256;
        for (int layer = 0; layer < 3; layer++)
        {
            int seed = Seeds.Of(type) + layer;
            var w = Weights(rows, cols, seed);
            var h = CorrelatedH(cols, 600, seed);
            var imp = Enumerable.Range(0, cols).Select(i => h[i * cols + i] / 600).ToArray();
            var (q, used) = RunGptq(fmt, w, rows, cols, h, imp);
            Assert.Equal(used, q);
            var rtn = Rtn(fmt, w, cols, imp);
            double eG = HError(w, q, h, rows, cols), eR = HError(w, rtn, h, rows, cols);
            Assert.True(eG < eR, $"{type} layer {layer}: GPTQ H-error {eG:G4} is not below RTN's {eR:G4}");
        }
    }

    [Fact]
    public void FactorIsTheUpperCholeskyOfTheInverse()
    {
        int n = 40;
        var h = CorrelatedH(n, 200, 1);
        var f = Gptq.Factor(h, n, damp: 0);
        // UᵀU·H = I (no dampening here).
        for (int i = 0; i < n; i++)
            for (int j = 0; j < n; j++)
            {
                double s = 0;
                for (int k = 0; k < n; k++)
                {
                    double hinv = 0; // (UᵀU)[i,k]
                    for (int m = 0; m <= Math.Min(i, k); m++) hinv += f.U[m * n + i] * (double)f.U[m * n + k];
                    s += hinv * h[k * n + j];
                }
                Assert.Equal(i == j ? 1 : 0, s, 1e-2);
            }
        for (int i = 0; i < n; i++)
            for (int j = 0; j < i; j++) Assert.Equal(0, f.U[i * n + j]);
    }

    [Fact]
    public void DeadColumnsAreZeroedAndNeverBreakTheFactor()
    {
        int n = 64;
        var h = CorrelatedH(n, 200, 2);
        for (int j = 0; j < n; j++) { h[5 * n + j] = 0; h[j * n + 5] = 0; }
        var f = Gptq.Factor(h, n);
        Assert.True(f.Dead[5]);
        var fmt = BlockFormats.Get("q8_0");
        var w = Weights(2, n, 3);
        var used = new float[w.Length];
        Gptq.Quantize((float[])w.Clone(), 2, n, f, fmt, default, new byte[2 * 2 * 34], values: used);
        Assert.Equal(0, used[5]);
        Assert.Equal(0, used[n + 5]);
    }
}
