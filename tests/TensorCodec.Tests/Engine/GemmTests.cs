using TensorCodec.Engine;
using TensorCodec.Numerics;

namespace TensorCodec.Tests.Engine;

/// <summary>
/// The cache-blocked F32 GEMM (<see cref="Gemm.RowsTimesTokens"/>) against a double-precision product, at
/// every instruction-set level, over shapes that exercise each tail: odd rows (the 1-row and 1-token
/// micro-kernels), token counts not a multiple of four, K not a multiple of the vector width, and K and
/// rows across several cache blocks. Float summation error is bounded by m·2⁻²⁴·Σ|w·x| where m is the
/// number of roundings one output accumulates: a lane sums cols/W products (one FMA rounding each), plus
/// the horizontal sum, the scalar tail (two per product) and one addition per K block; the scalar
/// reference rounds twice per product.
/// </summary>
[Collection(SimdCollection.Name)]
public unsafe class GemmTests
{
    public static TheoryData<string, int, int, int> Cases()
    {
        var d = new TheoryData<string, int, int, int>();
        foreach (var level in Enum.GetNames<SimdLevel>())
        {
            d.Add(level, 1, 1, 1);
            d.Add(level, 3, 7, 5);
            d.Add(level, 5, 9, 4);
            d.Add(level, 13, 33, 9);
            d.Add(level, 2, 16, 3);
            d.Add(level, 7, 515, 6);
            d.Add(level, 9, Gemm.KC * 2 + 40, 6);   // three K blocks, the last with a tail
            d.Add(level, 64, 256, 64);
        }
        return d;
    }

    [SkippableTheory]
    [MemberData(nameof(Cases))]
    public void Rows_times_tokens_matches_the_double_product(string level, int rows, int cols, int n)
    {
        using var _ = SimdLevels.Force(level);
        var rng = new Random(rows * 1000 + cols * 7 + n);
        var w = new float[rows * cols];
        var x = new float[n * cols];
        for (int i = 0; i < w.Length; i++) w[i] = (float)(rng.NextDouble() - 0.5);
        for (int i = 0; i < x.Length; i++) x[i] = (float)(rng.NextDouble() * 4 - 2);
        int ldy = rows + 3; // a gap after each token's outputs must stay untouched
        var y = new float[n * ldy];
        Array.Fill(y, float.NaN);
        fixed (float* pw = w, px = x, py = y)
            Gemm.RowsTimesTokens(pw, rows, cols, px, n, py, ldy);

        int width = level switch { "Avx512" => 16, "Avx2" => 8, _ => 1 };
        double m = width == 1 || cols < width ? 2.0 * cols + 2 : (double)cols / width + 2 * width + 8 + cols / Gemm.KC;
        double rel = m * Math.Pow(2, -24);
        for (int t = 0; t < n; t++)
        {
            for (int r = 0; r < rows; r++)
            {
                double exact = 0, mag = 0;
                for (int k = 0; k < cols; k++)
                {
                    exact += (double)w[r * cols + k] * x[t * cols + k];
                    mag += Math.Abs((double)w[r * cols + k] * x[t * cols + k]);
                }
                float got = y[t * ldy + r];
                Assert.True(Math.Abs(got - exact) <= rel * mag + 1e-30,
                    $"{level} {rows}x{cols}, {n} tokens: y[{t}][{r}] = {got}, exact {exact}, |Δ| {Math.Abs(got - exact):E3} > {rel * mag:E3}");
            }
            for (int r = rows; r < ldy; r++) Assert.True(float.IsNaN(y[t * ldy + r]), $"{level}: wrote past the row range at token {t}, column {r}");
        }
    }

    /// <summary>Every level agrees with the scalar reference on a shape that uses every micro-kernel.</summary>
    [SkippableTheory]
    [MemberData(nameof(Levels))]
    public void Vector_levels_agree_with_the_scalar_reference(string level)
    {
        using var _ = SimdLevels.Force(level);
        const int rows = 11, cols = 1037, n = 7;
        var rng = new Random(5);
        var w = new float[rows * cols];
        var x = new float[n * cols];
        for (int i = 0; i < w.Length; i++) w[i] = (float)(rng.NextDouble() - 0.5);
        for (int i = 0; i < x.Length; i++) x[i] = (float)(rng.NextDouble() - 0.5);
        var y = new float[n * rows];
        var yRef = new float[n * rows];
        fixed (float* pw = w, px = x, py = y, pr = yRef)
        {
            Gemm.RowsTimesTokens(pw, rows, cols, px, n, py, rows);
            Gemm.Reference(pw, rows, cols, px, n, pr, rows);
        }
        for (int i = 0; i < y.Length; i++)
            Assert.True(Math.Abs(y[i] - yRef[i]) <= 1e-4f, $"{level}: output {i}: {y[i]} vs reference {yRef[i]}");
    }

    public static TheoryData<string> Levels() => SimdLevels.All();
}
