using System.Numerics.Tensors;
using TensorCodec.Engine;
using TensorCodec.Formats;
using TensorCodec.Numerics;
using Xunit.Abstractions;

namespace TensorCodec.Tests.Engine;

/// <summary>
/// The i-quant and q1_0/q2_0 kernels (<see cref="IQuantKernels"/>, run by <see cref="IQuantMatrix"/>) at every
/// instruction-set level, three ways:
/// <list type="number">
/// <item>Against their scalar form, bit for bit: both compute the same exact integer per activation block
///   (256 values for q8_K, 32 for q8_0) and the same float expression d_w·d_x·isum summed in the same order.</item>
/// <item>Against Σ ŵ·x̂ in double, ŵ the dequantized weights and x̂ = d_x·q the activation codes' values. The
///   integer sums are exact, so what differs is float rounding: per block d_w·d_x (1), isum → float (1), the
///   product (1) and the running sum (one rounding of a partial sum, at most Σ|terms| each, over B blocks),
///   plus the dequantizer's own roundings of ŵ (≤ 3: d·scale, ·magnitude, ·constant). All relative to
///   Σ|ŵ|·|x̂|, so |Δ| ≤ (B + 12)·2⁻²⁴·Σ|ŵ|·|x̂|, the bound of the k-quant GEMM tests.</item>
/// <item>Against the engine's decode-a-row path (<see cref="BlockMatrix"/>, F32 activations): in addition the
///   activation's 8-bit rounding, |Σ ŵ(x − x̂)| ≤ Σ|ŵ|·|x − x̂| computed exactly, and the F32 dot's rounding,
///   at most cols/8 + 8 sequential float additions per lane: (cols/8 + 8)·2⁻²⁴·Σ|ŵ|·|x|.</item>
/// </list>
/// </summary>
[Collection(SimdCollection.Name)]
public unsafe class IQuantKernelTests(ITestOutputHelper output)
{
    static readonly string[] Types = ["iq2_xxs", "iq2_xs", "iq2_s", "iq3_xxs", "iq3_s", "iq1_s", "iq1_m", "iq4_xs", "iq4_nl", "q1_0", "q2_0"];

    /// <summary>Row lengths per type: one and several blocks of the activation and weight formats, odd counts.</summary>
    static int[] ColsFor(string type) => type switch
    {
        "iq4_nl" => [32, 96, 800],
        "q1_0" => [128, 384, 1152],
        "q2_0" => [64, 192, 832],
        _ => [256, 768, 2304],
    };

    public static TheoryData<string, string> Cases()
    {
        var d = new TheoryData<string, string>();
        foreach (var level in Enum.GetNames<SimdLevel>())
            foreach (var t in Types) d.Add(level, t);
        return d;
    }

    /// <summary>The dispatching kernel and its scalar form for a type.</summary>
    static (nint Dot, nint Scalar) Kernels(string type) => type switch
    {
        "iq2_xxs" => ((nint)(delegate*<byte*, byte*, int, float>)&IQuantKernels.DotIQ2_XXS, (nint)(delegate*<byte*, byte*, int, float>)&IQuantKernels.IQ2_XXSScalar),
        "iq2_xs" => ((nint)(delegate*<byte*, byte*, int, float>)&IQuantKernels.DotIQ2_XS, (nint)(delegate*<byte*, byte*, int, float>)&IQuantKernels.IQ2_XSScalar),
        "iq2_s" => ((nint)(delegate*<byte*, byte*, int, float>)&IQuantKernels.DotIQ2_S, (nint)(delegate*<byte*, byte*, int, float>)&IQuantKernels.IQ2_SScalar),
        "iq3_xxs" => ((nint)(delegate*<byte*, byte*, int, float>)&IQuantKernels.DotIQ3_XXS, (nint)(delegate*<byte*, byte*, int, float>)&IQuantKernels.IQ3_XXSScalar),
        "iq3_s" => ((nint)(delegate*<byte*, byte*, int, float>)&IQuantKernels.DotIQ3_S, (nint)(delegate*<byte*, byte*, int, float>)&IQuantKernels.IQ3_SScalar),
        "iq1_s" => ((nint)(delegate*<byte*, byte*, int, float>)&IQuantKernels.DotIQ1_S, (nint)(delegate*<byte*, byte*, int, float>)&IQuantKernels.IQ1_SScalar),
        "iq1_m" => ((nint)(delegate*<byte*, byte*, int, float>)&IQuantKernels.DotIQ1_M, (nint)(delegate*<byte*, byte*, int, float>)&IQuantKernels.IQ1_MScalar),
        "iq4_xs" => ((nint)(delegate*<byte*, byte*, int, float>)&IQuantKernels.DotIQ4_XS, (nint)(delegate*<byte*, byte*, int, float>)&IQuantKernels.IQ4_XSScalar),
        "iq4_nl" => ((nint)(delegate*<byte*, byte*, int, float>)&IQuantKernels.DotIQ4_NL, (nint)(delegate*<byte*, byte*, int, float>)&IQuantKernels.IQ4_NLScalar),
        "q1_0" => ((nint)(delegate*<byte*, byte*, int, float>)&IQuantKernels.DotQ1_0, (nint)(delegate*<byte*, byte*, int, float>)&IQuantKernels.Q1_0Scalar),
        "q2_0" => ((nint)(delegate*<byte*, byte*, int, float>)&IQuantKernels.DotQ2_0, (nint)(delegate*<byte*, byte*, int, float>)&IQuantKernels.Q2_0Scalar),
        _ => throw new ArgumentException(type),
    };

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

    /// <summary>Weights with edge rows: all zero (scale 0), constant, large magnitudes, and one edge block inside an ordinary row.</summary>
    static float[] Weights(Random rng, int rows, int cols, int block)
    {
        var w = Gaussian(rng, rows * cols, 0.05f);
        w.AsSpan(0, cols).Clear();
        w.AsSpan(cols, cols).Fill(0.03f);
        for (int i = 0; i < cols; i++) w[2 * cols + i] *= 4000;
        for (int r = 3; r < rows; r++)
        {
            var b = w.AsSpan(r * cols + block * (r % (cols / block)), block);
            switch (r % 3)
            {
                case 0: b.Clear(); break;
                case 1: b.Fill(r % 2 == 0 ? 0.07f : -0.07f); break;
                default: for (int i = 0; i < block; i++) b[i] *= 1000; break;
            }
        }
        return w;
    }

    /// <summary>The activation codes' values d·q from a <see cref="GgmlQ8"/> row.</summary>
    static double[] CodeValues(GgmlActivation kind, byte[] xq, int cols)
    {
        var v = new double[cols];
        int block = GgmlActivations.BlockOf(kind);
        fixed (byte* p = xq)
        {
            float* d = (float*)(p + cols);
            for (int i = 0; i < cols; i++) v[i] = (double)d[i / block] * (sbyte)p[i];
        }
        return v;
    }

    [SkippableTheory]
    [MemberData(nameof(Cases))]
    public void Kernel_matches_its_scalar_form_and_dequantize_then_dot(string level, string type)
    {
        using var _ = SimdLevels.Force(level);
        var f = BlockFormats.Get(type);
        var (dotFn, scalarFn) = Kernels(type);
        var dot = (delegate*<byte*, byte*, int, float>)dotFn;
        var scalar = (delegate*<byte*, byte*, int, float>)scalarFn;
        const int rows = 13;
        foreach (int cols in ColsFor(type))
        {
            var rng = new Random(cols * 31 + type.Length * 977 + type[^1]);
            var w = Weights(rng, rows, cols, f.BlockSize);
            var importance = new float[cols];
            for (int i = 0; i < cols; i++) importance[i] = (float)(0.01 + rng.NextDouble() * rng.NextDouble());
            int rowBytes = cols / f.BlockSize * f.BlockBytes;
            var packed = new byte[rows * rowBytes];
            f.Quantize(w, packed, cols, importance); // iq2_xxs, iq2_xs and iq1_s require it
            var wHat = new float[rows * cols];
            f.Dequantize(packed, wHat);

            var x = Gaussian(rng, cols, 1f);
            x.AsSpan(0, 32).Clear();                                // an all-zero activation block
            if (cols >= 96) x.AsSpan(32, 32).Fill(-0.5f);           // a constant one
            if (cols >= 256) for (int i = 64; i < 96; i++) x[i] *= 1e3f;

            fixed (byte* pw = packed)
            fixed (float* px = x)
            {
                var m = IQuantMatrix.TryCreate(f.GgmlTypeId, pw, rows, cols, null);
                Assert.NotNull(m);
                Assert.Equal(type, m!.TypeName);
                Assert.Equal(packed.Length, m.ByteSize);
                Assert.Equal(GgmlActivations.For(type), m.Activation);
                var kind = m.Activation;
                var xq = new byte[GgmlQ8.RowBytes(kind, cols)];
                fixed (byte* pq = xq) GgmlQ8.Quantize(kind, px, cols, pq);
                var xHat = CodeValues(kind, xq, cols);

                var y = new float[rows];
                m.MatVec(x, y, 0, rows);
                var yF32 = new float[rows];
                new BlockMatrix(f, pw, rows, cols).MatVec(x, yF32, 0, rows);

                int blocks = cols / GgmlActivations.BlockOf(kind);
                double rel = (blocks + 12) * Math.Pow(2, -24), relF32 = (cols / 8 + 8) * Math.Pow(2, -24), worst = 0, worstF32 = 0;
                for (int r = 0; r < rows; r++)
                {
                    float k, s;
                    fixed (byte* pq = xq)
                    {
                        k = dot(pw + r * rowBytes, pq, cols);
                        s = scalar(pw + r * rowBytes, pq, cols);
                    }
                    Assert.True(BitConverter.SingleToInt32Bits(k) == BitConverter.SingleToInt32Bits(s), $"{level} {type} cols {cols} row {r}: kernel {k:R} vs scalar form {s:R}");
                    Assert.Equal(k, y[r]);
                    double same = 0, mag = 0, act = 0, magX = 0;
                    for (int i = 0; i < cols; i++)
                    {
                        double wi = wHat[r * cols + i];
                        same += wi * xHat[i];
                        mag += Math.Abs(wi) * Math.Abs(xHat[i]);
                        act += Math.Abs(wi) * Math.Abs(x[i] - xHat[i]);
                        magX += Math.Abs(wi) * Math.Abs(x[i]);
                    }
                    double tol = rel * mag + 1e-30, diff = Math.Abs(k - same);
                    Assert.True(diff <= tol, $"{level} {type} cols {cols} row {r}: kernel {k} vs Σŵx̂ {same}: |Δ| {diff:E3} > {tol:E3}");
                    double tolF32 = act + tol + relF32 * magX, diffF32 = Math.Abs(k - yF32[r]);
                    Assert.True(diffF32 <= tolF32, $"{level} {type} cols {cols} row {r}: kernel {k} vs decode-row {yF32[r]}: |Δ| {diffF32:E3} > {tolF32:E3}");
                    worst = Math.Max(worst, diff / tol);
                    worstF32 = Math.Max(worstF32, diffF32 / tolF32);
                }
                output.WriteLine($"{level} {type} cols {cols}: |Δ| vs Σŵx̂ reaches {100 * worst:F1}% of its bound, vs the decode-row path {100 * worstF32:F1}%");

                // A row range writes only its rows; the fused batch (n < MinDecodedBatch) and the ggml-layout
                // product equal the mat-vec bit for bit; the decoded-tile batch agrees with the decode-row path.
                var part = new float[rows];
                Array.Fill(part, float.NaN);
                m.MatVec(x, part, 4, 9);
                for (int r = 0; r < rows; r++)
                    if (r is >= 4 and < 9) Assert.Equal(y[r], part[r]); else Assert.True(float.IsNaN(part[r]));
                foreach (int n in new[] { 2, QuantizedMatrix.MinDecodedBatch + 1 })
                {
                    var xs = new float[n * cols];
                    for (int t = 0; t < n; t++) x.CopyTo(xs.AsSpan(t * cols));
                    xs.AsSpan(cols, cols).Reverse();
                    var ys = new float[n * rows];
                    m.MatMul(xs, n, ys, 0, rows);
                    var yt = new float[rows];
                    for (int t = 0; t < n; t++)
                    {
                        var xt = xs.AsSpan(t * cols, cols);
                        if (n < QuantizedMatrix.MinDecodedBatch)
                        {
                            m.MatVec(xt, yt, 0, rows);
                            Assert.Equal(yt, ys.AsSpan(t * rows, rows).ToArray());
                        }
                        else
                            for (int r = 0; r < rows; r++)
                            {
                                var row = wHat.AsSpan(r * cols, cols);
                                float expected = TensorPrimitives.Dot(row, xt);
                                double absDot = 0;
                                for (int i = 0; i < cols; i++) absDot += Math.Abs(row[i]) * Math.Abs(xt[i]);
                                double tolT = 2 * relF32 * absDot + 1e-30; // two F32 dots, each within relF32
                                Assert.True(Math.Abs(expected - ys[t * rows + r]) <= tolT, $"{type} decoded-tile batch: token {t} row {r}: {ys[t * rows + r]} vs {expected}");
                            }
                    }
                }
                var xq2 = new byte[2 * xq.Length];
                xq.CopyTo(xq2, 0);
                xq.CopyTo(xq2, xq.Length);
                var yg = new float[2 * rows];
                fixed (byte* pq = xq2) fixed (float* py = yg) m.MatMulGgml(pq, xq.Length, 2, py, 0, rows);
                Assert.Equal(y, yg.AsSpan(0, rows).ToArray());
                Assert.Equal(y, yg.AsSpan(rows, rows).ToArray());
            }
        }
    }

    [Fact]
    public void Matrix_creation_picks_the_kernel_and_declines_rows_it_cannot_run()
    {
        foreach (var type in Types)
        {
            var f = BlockFormats.Get(type);
            Assert.True(IQuantMatrix.HasKernel(f.GgmlTypeId), type);
            Assert.False(QuantizedMatrix.HasKernel(f.GgmlTypeId), type);
            int cols = Math.Max(f.BlockSize, 32);
            var data = new byte[3 * cols / f.BlockSize * f.BlockBytes];
            fixed (byte* p = data)
            {
                Assert.IsType<IQuantMatrix>(WeightMatrix.Create(DType.Packed, p, 3, cols, null, ggmlType: f.GgmlTypeId));
                Assert.Null(IQuantMatrix.TryCreate(f.GgmlTypeId, p, 3, 0, null));
            }
        }
        // Formats with kernels elsewhere or none: not taken.
        Assert.False(IQuantMatrix.HasKernel(BlockFormats.Get("q4_K").GgmlTypeId));
        Assert.False(IQuantMatrix.HasKernel(BlockFormats.Get("q5_1").GgmlTypeId));
    }
}
