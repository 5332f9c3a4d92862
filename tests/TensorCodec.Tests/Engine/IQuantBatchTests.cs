using TensorCodec.Engine;
using TensorCodec.Formats;
using TensorCodec.Numerics;
using Xunit.Abstractions;

namespace TensorCodec.Tests.Engine;

/// <summary>
/// <c>--like-llama-cpp</c> batches of the i-quant and q1_0/q2_0 types (<see cref="IQuantMatrix.MatMulGgml"/> with
/// n ≥ <see cref="QuantizedMatrix.MinDecodedBatch"/>): the activation codes turned back into their F32 values
/// (<see cref="GgmlQ8Values"/>) times decoded weight tiles through the F32 GEMM, against the fused kernel per token.
/// Both compute Σ ŵ·x̂ (ŵ the dequantized weights, x̂ = d_x·q the codes' values) and differ in float rounding only:
/// <list type="bullet">
/// <item>the fused kernel: |Δ| ≤ (B + 12)·2⁻²⁴·Σ|ŵ|·|x̂| for B activation blocks (derived in <see cref="IQuantKernelTests"/>);</item>
/// <item>the F32 GEMM on the exact ŵ and x̂: each product enters a lane of L ≥ 4 floats (FMA, or one product
///   rounding) and meets at most Cols/L additions there and L − 1 in the reduction, so
///   |Δ| ≤ (Cols/4 + 16)·2⁻²⁴·Σ|ŵ|·|x̂| for any L in 4, 8, 16.</item>
/// </list>
/// So |batch − fused| is held to the sum, and the batch alone to Σŵx̂ within its own bound, which it could not meet
/// with the unrounded activations (checked: they move some output by more than that).
/// </summary>
[Collection(SimdCollection.Name)]
public unsafe class IQuantBatchTests(ITestOutputHelper output)
{
    static readonly string[] Types = ["iq2_xxs", "iq2_xs", "iq2_s", "iq3_xxs", "iq3_s", "iq1_s", "iq1_m", "iq4_xs", "iq4_nl", "q1_0", "q2_0"];

    public static TheoryData<string, string> Cases()
    {
        var d = new TheoryData<string, string>();
        foreach (var level in Enum.GetNames<SimdLevel>())
            foreach (var t in Types) d.Add(level, t);
        return d;
    }

    static float[] Gaussian(Random rng, int n, float scale)
    {
        var v = new float[n];
        for (int i = 0; i < n; i++)
        {
            double u1 = 1 - rng.NextDouble(), u2 = rng.NextDouble();
            v[i] = scale * (float)(Math.Sqrt(-2 * Math.Log(u1)) * Math.Cos(2 * Math.PI * u2));
            if (rng.Next(97) == 0) v[i] *= 12;
        }
        return v;
    }

    [SkippableTheory]
    [MemberData(nameof(Cases))]
    public void Decoded_tile_batch_equals_the_fused_kernel_per_token(string level, string type)
    {
        using var _ = SimdLevels.Force(level);
        var f = BlockFormats.Get(type);
        int cols = type switch { "iq4_nl" => 96, "q1_0" => 384, "q2_0" => 192, _ => 768 }; // three activation/weight blocks
        const int rows = 11;
        var rng = new Random(cols * 7 + type.Length * 131 + type[^1]);
        var w = Gaussian(rng, rows * cols, 0.05f);
        w.AsSpan(0, cols).Clear();                                 // a zero row
        for (int i = 0; i < cols; i++) w[cols + i] *= 3000;        // a large one
        var importance = new float[cols];
        for (int i = 0; i < cols; i++) importance[i] = (float)(0.01 + rng.NextDouble());
        int rowBytes = cols / f.BlockSize * f.BlockBytes;
        var packed = new byte[rows * rowBytes];
        f.Quantize(w, packed, cols, importance); // iq2_xxs, iq2_xs and iq1_s require importance
        var wHat = new float[rows * cols];
        f.Dequantize(packed, wHat);

        fixed (byte* pw = packed)
        {
            var m = IQuantMatrix.TryCreate(f.GgmlTypeId, pw, rows, cols, null)!;
            var kind = m.Activation;
            int stride = GgmlQ8.RowBytes(kind, cols), blocks = cols / GgmlActivations.BlockOf(kind);
            double u = Math.Pow(2, -24), relFused = (blocks + 12) * u, relGemm = (cols / 4 + 16) * u;
            foreach (int n in new[] { QuantizedMatrix.MinDecodedBatch + 1, 9, 33 })
            {
                var x = Gaussian(rng, n * cols, 1f);
                x.AsSpan(0, 32).Clear();                             // a zero activation block
                x.AsSpan(cols, 32).Fill(-0.25f);                     // a constant one
                var xq = new byte[n * stride];
                var xHat = new float[n * cols];
                var batch = new float[n * rows];
                var fused = new float[n * rows];
                fixed (float* px = x)
                fixed (byte* pq = xq)
                fixed (float* pb = batch, pf = fused)
                {
                    for (int t = 0; t < n; t++) GgmlQ8.Quantize(kind, px + t * cols, cols, pq + t * stride);
                    m.MatMulGgml(pq, stride, n, pb, 0, rows);
                    m.MatMulGgmlFused(pq, stride, n, pf, 0, rows);
                }
                for (int t = 0; t < n; t++) GgmlActivations.Round(kind, x.AsSpan(t * cols, cols), xHat.AsSpan(t * cols, cols));

                double worst = 0, worstBatch = 0, unroundedMoves = 0;
                var exact = new double[n * rows];
                var exactTol = new double[n * rows];
                for (int t = 0; t < n; t++)
                    for (int r = 0; r < rows; r++)
                    {
                        double same = 0, mag = 0, raw = 0;
                        for (int i = 0; i < cols; i++)
                        {
                            double wi = wHat[r * cols + i], xi = xHat[t * cols + i];
                            same += wi * xi;
                            mag += Math.Abs(wi) * Math.Abs(xi);
                            raw += wi * x[t * cols + i];
                        }
                        float b = batch[t * rows + r], k = fused[t * rows + r];
                        double tol = (relFused + relGemm) * mag + 1e-30, tolBatch = relGemm * mag + 1e-30;
                        exact[t * rows + r] = same;
                        exactTol[t * rows + r] = tolBatch;
                        Assert.True(Math.Abs(b - k) <= tol, $"{level} {type} n {n} token {t} row {r}: batch {b:R} vs fused {k:R}: |Δ| {Math.Abs(b - k):E3} > {tol:E3}");
                        Assert.True(Math.Abs(b - same) <= tolBatch, $"{level} {type} n {n} token {t} row {r}: batch {b:R} vs Σŵx̂ {same:R}: |Δ| {Math.Abs(b - same):E3} > {tolBatch:E3}");
                        worst = Math.Max(worst, Math.Abs(b - k) / tol);
                        worstBatch = Math.Max(worstBatch, Math.Abs(b - same) / tolBatch);
                        unroundedMoves = Math.Max(unroundedMoves, Math.Abs(raw - same) / tolBatch);
                    }
                Assert.True(unroundedMoves > 1, $"{type}: unrounded activations stay within the batch bound ({unroundedMoves:F2}×): the test could not tell them apart");
                output.WriteLine($"{level} {type} n {n}: batch vs fused {100 * worst:F1}% of the bound, vs Σŵx̂ {100 * worstBatch:F1}%; unrounded activations {unroundedMoves:F0}× it");

                // A row range writes only its rows (within the same bound: the GEMM may pair rows differently).
                var part = new float[n * rows];
                Array.Fill(part, float.NaN);
                fixed (byte* pq = xq) fixed (float* pp = part) m.MatMulGgml(pq, stride, n, pp, 3, 8);
                for (int t = 0; t < n; t++)
                    for (int r = 0; r < rows; r++)
                        if (r is >= 3 and < 8) Assert.True(Math.Abs(part[t * rows + r] - exact[t * rows + r]) <= exactTol[t * rows + r], $"{level} {type} n {n} rows 3..8: token {t} row {r}: {part[t * rows + r]:R} vs Σŵx̂ {exact[t * rows + r]:R}");
                        else Assert.True(float.IsNaN(part[t * rows + r]));
            }

            // Below the threshold MatMulGgml is the fused kernel, bit for bit.
            int small = QuantizedMatrix.MinDecodedBatch - 1;
            var xs = Gaussian(rng, small * cols, 1f);
            var xqs = new byte[small * stride];
            var a = new float[small * rows];
            var c = new float[small * rows];
            fixed (float* px = xs) fixed (byte* pq = xqs) fixed (float* pa = a, pc = c)
            {
                for (int t = 0; t < small; t++) GgmlQ8.Quantize(kind, px + t * cols, cols, pq + t * stride);
                m.MatMulGgml(pq, stride, small, pa, 0, rows);
                m.MatMulGgmlFused(pq, stride, small, pc, 0, rows);
            }
            Assert.Equal(c, a);
        }
    }

    [SkippableTheory]
    [MemberData(nameof(SimdLevels.All), MemberType = typeof(SimdLevels))]
    public void Activation_values_equal_ggml_rounding(string level)
    {
        using var _ = SimdLevels.Force(level);
        var rng = new Random(5);
        foreach (var kind in new[] { GgmlActivation.Q8_0, GgmlActivation.Q8_K })
            foreach (int cols in new[] { 256, 768 })
            {
                var x = Gaussian(rng, cols, 2f);
                x.AsSpan(0, 32).Clear();
                x.AsSpan(32, 32).Fill(1e-30f);                           // tiny, and below fp16's range for q8_0's scale
                for (int i = 300; i < Math.Min(cols, 340); i++) x[i] *= 1e5f;
                var xq = new byte[GgmlQ8.RowBytes(kind, cols)];
                var got = new float[cols];
                var expected = new float[cols];
                fixed (float* px = x, pg = got) fixed (byte* pq = xq)
                {
                    GgmlQ8.Quantize(kind, px, cols, pq);
                    GgmlQ8Values.Dequantize(kind, pq, cols, pg);
                }
                GgmlActivations.Round(kind, x, expected);
                for (int i = 0; i < cols; i++)
                    Assert.True(got[i] == expected[i], $"{level} {kind} cols {cols} [{i}]: {got[i]:R} vs ggml rounding {expected[i]:R}"); // ±0 alike
            }
        Assert.Throws<ArgumentException>(() =>
        {
            fixed (byte* p = new byte[64])
            fixed (float* d = new float[32])
                GgmlQ8Values.Dequantize(GgmlActivation.Q8_K, p, 32, d); // 32 values are no q8_K row
        });
    }
}
