using TensorCodec.Engine;
using TensorCodec.Formats;
using TensorCodec.Numerics;
using Xunit.Abstractions;

namespace TensorCodec.Tests.Engine;

/// <summary>
/// The fused kernels against "dequantize to F32, then the F32 kernel". The kernels quantize the
/// activation to 8 bits per 32 values (like ggml), so two comparisons, each with a stated bound:
/// <list type="number">
/// <item>Same math: Σ dequant(w)·dequant(x) in double. The integer block sums are exact; what
///   remains is float rounding of the scale products (≤ 4 roundings per block), the eight-lane
///   accumulation (cols/256 + 3 additions per lane) and, in the reference, the dequantizer's own
///   roundings (affine formats compute d·sc·q − dmin·m, whose parts can be a few times the value).
///   All are relative to Σ|ŵ·x̂| — for the affine k-quants to the parts they are computed from,
///   Σ(|ŵ + c| + c)·|x̂| with c = dmin·m (see <see cref="MinOffsets"/>); with 16 blocks per row that is about ten roundings, so the bound
///   is 1e-6·Σ|ŵ·x̂| (≈ 17 float epsilons; measured ≤ 1.5e-7). Any wrong scale, nibble or sign is
///   off by the order of the value itself.</item>
/// <item>Against the F32 activation: the only extra difference is the activation's rounding,
///   |Σ ŵ(x − x̂)| ≤ Σ |ŵ|·|x − x̂|, computed exactly from the quantized x, plus the bound above.</item>
/// </list>
/// </summary>
public unsafe class QuantizedKernelTests(ITestOutputHelper output)
{
    const double Rel = 1e-6;

    static float[] Random(Random rng, int n, float scale, bool outliers)
    {
        var v = new float[n];
        for (int i = 0; i < n; i++)
        {
            double u1 = 1 - rng.NextDouble(), u2 = rng.NextDouble();
            v[i] = scale * (float)(Math.Sqrt(-2 * Math.Log(u1)) * Math.Cos(2 * Math.PI * u2));
            if (outliers && rng.Next(97) == 0) v[i] *= 12;
        }
        return v;
    }

    [SkippableTheory]
    [InlineData("q8_0")]
    [InlineData("q4_0")]
    [InlineData("q4_K")]
    [InlineData("q6_K")]
    [InlineData("q5_K")]
    [InlineData("q3_K")]
    [InlineData("q2_K")]
    public void Fused_kernel_matches_dequantize_then_f32(string type)
    {
        Skip.IfNot(QuantizedKernels.IsSupported, SimdLevels.Lacks("AVX2 and FMA"));
        var f = BlockFormats.Get(type);
        const int rows = 37, cols = 512;
        var rng = new Random(7919 * type.Length + type[1] * 31 + type[^1]); // fixed per type: string hashes are randomised per process
        var w = Random(rng, rows * cols, 0.05f, outliers: true);
        // Rows of x: ordinary, with outliers, tiny, and one all-zero block (scale 0).
        var x = Random(rng, cols, 1f, outliers: true);
        x.AsSpan(64, 32).Clear();
        CheckFused(type, f, w, rows, cols, x, default);
    }

    /// <summary>
    /// The k-quants added later (q5_K, q3_K, q2_K) over several row lengths, with and without
    /// importance, and with edge blocks in both operands: all zero (scale 0), constant (one code
    /// everywhere, min-only for the affine formats) and large magnitudes.
    /// </summary>
    [SkippableTheory]
    [InlineData("q5_K", 256)]
    [InlineData("q5_K", 768)]
    [InlineData("q5_K", 2048)]
    [InlineData("q3_K", 256)]
    [InlineData("q3_K", 768)]
    [InlineData("q3_K", 2048)]
    [InlineData("q2_K", 256)]
    [InlineData("q2_K", 768)]
    [InlineData("q2_K", 2048)]
    public void Fused_k_quant_kernels_match_on_edge_blocks(string type, int cols)
    {
        Skip.IfNot(QuantizedKernels.IsSupported, SimdLevels.Lacks("AVX2 and FMA"));
        var f = BlockFormats.Get(type);
        const int rows = 11;
        var rng = new Random(cols * 131 + type[1]);
        var w = Random(rng, rows * cols, 0.05f, outliers: true);
        Span<float> row(int r) => w.AsSpan(r * cols, cols);
        row(0).Clear();
        row(1).Fill(0.3f);
        row(2).Fill(-0.02f);
        for (int i = 0; i < cols; i++) w[3 * cols + i] *= 4000; // values up to ~2e3: fp16 scales stay finite
        for (int r = 4; r < rows; r++) // one edge super-block inside an otherwise ordinary row
        {
            var sb = row(r).Slice(256 * (r % (cols / 256)), 256);
            switch (r % 3)
            {
                case 0: sb.Clear(); break;
                case 1: sb.Fill(r % 2 == 0 ? 0.07f : -0.07f); break;
                default: for (int i = 0; i < 256; i++) sb[i] *= 1000; break;
            }
        }
        var x = Random(rng, cols, 1f, outliers: true);
        x.AsSpan(0, 32).Clear();
        x.AsSpan(32, 32).Fill(-0.5f);
        for (int i = 64; i < 96; i++) x[i] *= 1e4f;
        var importance = new float[cols];
        for (int i = 0; i < cols; i++) importance[i] = (float)(0.01 + rng.NextDouble() * rng.NextDouble());
        CheckFused(type, f, w, rows, cols, x, default);
        CheckFused(type + "+imatrix", f, w, rows, cols, x, importance);
    }

    void CheckFused(string type, IBlockFormat f, float[] w, int rows, int cols, float[] x, ReadOnlySpan<float> importance)
    {
        var packed = new byte[rows * cols / f.BlockSize * f.BlockBytes];
        f.Quantize(w, packed, cols, importance);
        var wHat = new float[rows * cols];
        f.Dequantize(packed, wHat);

        fixed (byte* pw = packed)
        fixed (float* px = x)
        {
            var fused = QuantizedMatrix.TryCreate(f.GgmlTypeId, pw, rows, cols, null);
            Assert.NotNull(fused);
            Assert.IsType<QuantizedMatrix>(WeightMatrix.Create(DType.Packed, pw, rows, cols, null, ggmlType: f.GgmlTypeId));
            var generic = new BlockMatrix(f, pw, rows, cols);

            var xq = new byte[Q8Activations.RowBytes(cols)];
            fixed (byte* pq = xq) Q8Activations.Quantize(px, cols, pq);
            var xHat = new float[cols];
            Q8Activations.Dequantize(xq, cols, xHat);

            var yFused = new float[rows];
            fused!.MatVec(x, yFused, 0, rows);
            var yF32 = new float[rows];
            generic.MatVec(x, yF32, 0, rows);

            var offsets = MinOffsets(f, packed, rows * cols);
            double worstSame = 0, worstF32 = 0;
            for (int r = 0; r < rows; r++)
            {
                double same = 0, mag = 0, actErr = 0;
                for (int i = 0; i < cols; i++)
                {
                    double wi = wHat[r * cols + i], c = offsets[r * cols + i];
                    same += wi * xHat[i];
                    // Affine formats round the two parts d·sc·q = ŵ + c and c = dmin·m separately.
                    mag += (Math.Abs(wi + c) + c) * Math.Abs(xHat[i]);
                    actErr += Math.Abs(wi) * Math.Abs((double)x[i] - xHat[i]);
                }
                double tolSame = Rel * mag;
                double dSame = Math.Abs(yFused[r] - same);
                Assert.True(dSame <= tolSame, $"{type} row {r}: fused {yFused[r]} vs same-math {same}: |Δ| {dSame:E3} > {tolSame:E3}");
                double tolF32 = actErr + Rel * mag;
                double dF32 = Math.Abs(yFused[r] - yF32[r]);
                Assert.True(dF32 <= tolF32, $"{type} row {r}: fused {yFused[r]} vs F32 path {yF32[r]}: |Δ| {dF32:E3} > {tolF32:E3}");
                worstSame = Math.Max(worstSame, dSame / Math.Max(mag, 1e-30));
                worstF32 = Math.Max(worstF32, dF32 / Math.Max(tolF32, 1e-30));
            }
            output.WriteLine($"{type}: same-math |Δ|/magnitude max {worstSame:E2} (bound {Rel:E0}); vs F32 path, |Δ| reaches {100 * worstF32:F1}% of its bound");

            // A row range writes only its rows; batched products equal the mat-vec bit for bit.
            var part = new float[rows];
            Array.Fill(part, float.NaN);
            fused.MatVec(x, part, 5, 9);
            for (int r = 0; r < rows; r++)
                if (r is >= 5 and < 9) Assert.Equal(yFused[r], part[r]); else Assert.True(float.IsNaN(part[r]));
            const int n = QuantizedMatrix.MinDecodedBatch - 1; // the fused batch path
            var xs = new float[n * cols];
            for (int t = 0; t < n; t++) x.CopyTo(xs.AsSpan(t * cols));
            xs.AsSpan(cols, cols).Reverse();
            var ys = new float[n * rows];
            fused.MatMul(xs, n, ys, 0, rows);
            for (int t = 0; t < n; t++)
            {
                var yt = new float[rows];
                fused.MatVec(xs.AsSpan(t * cols, cols), yt, 0, rows);
                Assert.Equal(yt, ys.AsSpan(t * rows, rows).ToArray());
            }
        }
    }

    /// <summary>
    /// The offset dmin·m that the affine k-quants subtract from each value (zero for the others).
    /// The kernels compute Σ d·sc·q·x and Σ dmin·m·x apart, so their float rounding scales with
    /// Σ(|ŵ + c| + c)·|x̂|, which for a near-constant sub-block can be far above Σ|ŵ·x̂|.
    /// </summary>
    static double[] MinOffsets(IBlockFormat f, byte[] packed, int n)
    {
        var c = new double[n];
        for (int b = 0; b < n / 256 && f.Name is "q4_K" or "q5_K" or "q2_K"; b++)
        {
            var blk = packed.AsSpan(b * f.BlockBytes, f.BlockBytes);
            if (f.Name == "q2_K")
            {
                double dmin = Fp16.Read(blk, 82);
                for (int i = 0; i < 256; i++) c[b * 256 + i] = dmin * (blk[i / 16] >> 4);
            }
            else
            {
                double dmin = Fp16.Read(blk, 2);
                for (int i = 0; i < 256; i++)
                {
                    QuantMath.GetScaleMinK4(i / 32, blk.Slice(4, 12), out _, out byte m);
                    c[b * 256 + i] = dmin * m;
                }
            }
        }
        return c;
    }

    [Fact]
    public void Activation_codes_are_within_half_a_step()
    {
        var rng = new Random(7);
        const int cols = 256;
        var x = Random(rng, cols, 3f, outliers: true);
        x.AsSpan(0, 32).Clear();
        var q = new byte[Q8Activations.RowBytes(cols)];
        fixed (float* px = x) fixed (byte* pq = q) Q8Activations.Quantize(px, cols, pq);
        var xHat = new float[cols];
        Q8Activations.Dequantize(q, cols, xHat);
        for (int b = 0; b < cols / 32; b++)
        {
            float amax = 0;
            for (int i = 0; i < 32; i++) amax = Math.Max(amax, Math.Abs(x[b * 32 + i]));
            float step = amax / 127;
            for (int i = 0; i < 32; i++)
            {
                int k = b * 32 + i;
                Assert.InRange((sbyte)q[k], -127, 127);
                Assert.True(Math.Abs(x[k] - xHat[k]) <= step * 0.5001 + 1e-12, $"value {k}: {x[k]} → {xHat[k]} (step {step})");
            }
        }
    }

    [Fact]
    public void Types_without_a_kernel_fall_back_to_the_generic_block_matrix()
    {
        var f = BlockFormats.Get("q5_1");
        var data = new byte[4 * 64 / f.BlockSize * f.BlockBytes];
        fixed (byte* p = data)
        {
            Assert.Null(QuantizedMatrix.TryCreate(f.GgmlTypeId, p, 4, 64, null));
            Assert.IsType<BlockMatrix>(WeightMatrix.Create(DType.Packed, p, 4, 64, null, ggmlType: f.GgmlTypeId));
        }
    }
}
