using System.Runtime.CompilerServices;
using TensorCodec.Engine;
using TensorCodec.Eval;
using TensorCodec.Formats;
using TensorCodec.Numerics;
using TensorCodec.Quantization;
using Xunit.Abstractions;

namespace TensorCodec.Tests.Engine;

/// <summary>
/// The integer GEMM of <see cref="LinearArithmetic.LikeLlamaCpp"/> against "round the activations
/// as ggml does (<see cref="GgmlActivations"/>), dequantize the weights, multiply in double". The
/// integer block sums are exact, so what differs is float rounding, bounded by
/// Rel·Σ(|ŵ| + c)·|x̂| with Rel = (B + 12)·2⁻²⁴: B = cols/32 (q8_0, q4_0) or cols/256 (k-quants) terms
/// accumulated per lane, each carrying one rounding of the scale product and one of the FMA, plus the
/// final eight-lane sum (3), the int→float conversion (1) and the dequantizer's own roundings of ŵ (a
/// few); c is each value's offset part that is summed separately (q4_0's 8·d, q4_K/q5_K/q2_K's
/// dmin·m, q6_K's 32·d·|sc|, q3_K's 4·d·|sc|), since the rounding scales with the parts.
/// </summary>
[Collection(SimdCollection.Name)]
public unsafe class QuantizedGemmTests(ITestOutputHelper output)
{
    static float[] Random(Random rng, int n, float scale)
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

    public static TheoryData<string, string, int> Cases()
    {
        var d = new TheoryData<string, string, int>();
        foreach (var level in new[] { "Avx2", "Avx512" })
        {
            foreach (var t in new[] { "q8_0", "q4_0" }) { d.Add(level, t, 96); d.Add(level, t, 800); }
            foreach (var t in new[] { "q4_K", "q6_K", "q5_K", "q3_K", "q2_K" }) { d.Add(level, t, 256); d.Add(level, t, 1280); }
        }
        return d;
    }

    [SkippableTheory]
    [MemberData(nameof(Cases))]
    public void Integer_gemm_matches_rounded_activations_times_dequantized_weights(string level, string type, int cols)
    {
        using var _ = SimdLevels.Force(level);
        Skip.IfNot(QuantizedGemm.IsSupported, SimdLevels.Lacks("AVX2 and FMA"));
        var f = BlockFormats.Get(type);
        const int rows = 13;
        var rng = new Random(cols * 7 + type[1] * 131 + type[^1]);
        var w = Random(rng, rows * cols, 0.05f);
        w.AsSpan(0, cols).Clear();                         // an all-zero row (scale 0)
        w.AsSpan(cols, Math.Min(cols, 256)).Fill(0.03f);   // a constant block
        var packed = new byte[rows * cols / f.BlockSize * f.BlockBytes];
        f.Quantize(w, packed, cols, default);
        var wHat = new float[rows * cols];
        f.Dequantize(packed, wHat);
        var offsets = Offsets(f, packed, rows * cols);

        foreach (int n in new[] { 1, 3, 4, 5, 8, 9 }) // whole and partial groups of four tokens
        {
            var x = Random(rng, n * cols, 1f);
            x.AsSpan(0, 32).Clear();                       // an all-zero activation block
            if (n > 1) x.AsSpan(cols, 32).Fill(-0.5f);
            fixed (byte* pw = packed)
            fixed (float* px = x)
            {
                var m = QuantizedMatrix.TryCreate(f.GgmlTypeId, pw, rows, cols, null)!;
                int stride = GgmlQ8.RowBytes(m.Activation, cols);
                var xq = new byte[n * stride];
                var y = new float[n * rows];
                Array.Fill(y, float.NaN);
                fixed (byte* pq = xq)
                fixed (float* py = y)
                {
                    for (int t = 0; t < n; t++) GgmlQ8.Quantize(m.Activation, px + t * cols, cols, pq + t * stride);
                    m.MatMulGgml(pq, stride, n, py, 0, rows);
                }
                double rel = ((type.EndsWith("_K") ? cols / 256 : cols / 32) + 12) * Math.Pow(2, -24), worst = 0;
                var xHat = new float[cols];
                for (int t = 0; t < n; t++)
                {
                    GgmlActivations.Round(m.Activation, x.AsSpan(t * cols, cols), xHat);
                    for (int r = 0; r < rows; r++)
                    {
                        double same = 0, mag = 0;
                        for (int i = 0; i < cols; i++)
                        {
                            same += (double)wHat[r * cols + i] * xHat[i];
                            mag += (Math.Abs(wHat[r * cols + i]) + 2 * offsets[r * cols + i]) * Math.Abs(xHat[i]);
                        }
                        double diff = Math.Abs(y[t * rows + r] - same), tol = rel * mag + 1e-30;
                        Assert.True(diff <= tol, $"{type} cols {cols} n {n} token {t} row {r}: {y[t * rows + r]} vs {same}: |Δ| {diff:E3} > {tol:E3}");
                        worst = Math.Max(worst, diff / tol);
                    }
                }
                output.WriteLine($"{level} {type} cols {cols} n {n}: |Δ| reaches {100 * worst:F1}% of the bound");
            }
        }
    }

    public static TheoryData<string, int> WideCases()
    {
        var d = new TheoryData<string, int>();
        // 1, 3 and 5 super-blocks; q3_K is the type with an AVX-512 kernel (QuantizedGemm512), the others
        // check that the AVX-512 level leaves them on their AVX2 kernels, bit for bit.
        foreach (var t in new[] { "q8_0", "q4_0" }) foreach (int c in new[] { 32, 96, 800 }) d.Add(t, c);
        foreach (var t in new[] { "q4_K", "q6_K", "q5_K", "q3_K", "q2_K" }) foreach (int c in new[] { 256, 768, 1280 }) d.Add(t, c);
        return d;
    }

    /// <summary>
    /// The AVX-512 level against the AVX2 level, bit for bit, for every type the integer GEMM runs, over odd
    /// shapes (rows, tokens, super-blocks): q3_K's AVX-512BW kernel (<see cref="QuantizedGemm512"/>) folds exact
    /// int32 sums and then takes the AVX2 kernel's float steps in the same order, so nothing may differ.
    /// Together with the bound test above at the AVX2 level this checks the wide kernels against the
    /// double-precision reference too.
    /// </summary>
    [SkippableTheory]
    [MemberData(nameof(WideCases))]
    public void Avx512_level_equals_the_avx2_kernels_bit_for_bit(string type, int cols)
    {
        Skip.IfNot(QuantizedGemm.IsSupported, SimdLevels.Lacks("AVX2 and FMA"));
        Skip.IfNot(Simd.Hardware >= SimdLevel.Avx512 && System.Runtime.Intrinsics.X86.Avx512BW.IsSupported, SimdLevels.Lacks("AVX-512BW"));
        var f = BlockFormats.Get(type);
        const int rows = 11;
        var rng = new Random(cols * 13 + type[1] * 7 + type[^1]);
        var w = Random(rng, rows * cols, 0.05f);
        w.AsSpan(0, cols).Clear();
        var packed = GC.AllocateArray<byte>(rows * cols / f.BlockSize * f.BlockBytes, pinned: true);
        f.Quantize(w, packed, cols, default);
        var m = QuantizedMatrix.TryCreate(f.GgmlTypeId, (byte*)Unsafe.AsPointer(ref packed[0]), rows, cols, null)!;
        int stride = GgmlQ8.RowBytes(m.Activation, cols);
        foreach (int n in new[] { 1, 2, 4, 7, 13 })
        {
            var x = Random(rng, n * cols, 1f);
            x.AsSpan(0, 32).Clear();
            var xq = GC.AllocateArray<byte>(n * stride, pinned: true);
            byte* pq = (byte*)Unsafe.AsPointer(ref xq[0]);
            fixed (float* px = x) for (int t = 0; t < n; t++) GgmlQ8.Quantize(m.Activation, px + t * cols, cols, pq + t * stride);
            float[] Run(SimdLevel level, params (int Start, int End)[] shares)
            {
                var y = new float[n * rows];
                using (Simd.Force(level))
                    fixed (float* py = y)
                        foreach (var (start, end) in shares) m.MatMulGgml(pq, stride, n, py, start, end);
                return y;
            }
            var narrow = Run(SimdLevel.Avx2, (0, rows));
            var wide = Run(SimdLevel.Avx512, (1, rows), (0, 1)); // a share that does not start at row 0
            using (Simd.Force(SimdLevel.Avx512)) Assert.True(QuantizedGemm512.IsSupported, "the AVX-512 level must select the q3_K kernel");
            for (int i = 0; i < narrow.Length; i++)
                Assert.True(BitConverter.SingleToInt32Bits(narrow[i]) == BitConverter.SingleToInt32Bits(wide[i]),
                    $"{type} cols {cols} n {n} token {i / rows} row {i % rows}: AVX2 {narrow[i]:R}, AVX-512 {wide[i]:R}");
        }
        GC.KeepAlive(packed);
    }

    /// <summary>Each value's offset part, summed apart from its code part by the kernels (see the class summary).</summary>
    static double[] Offsets(IBlockFormat f, byte[] packed, int n)
    {
        var c = new double[n];
        int blocks = n / f.BlockSize;
        sbyte* sc3 = stackalloc sbyte[16];
        for (int b = 0; b < blocks; b++)
        {
            var blk = packed.AsSpan(b * f.BlockBytes, f.BlockBytes);
            for (int i = 0; i < f.BlockSize; i++)
            {
                int at = b * f.BlockSize + i;
                c[at] = f.Name switch
                {
                    "q4_0" => 8 * Math.Abs(Fp16.Read(blk, 0)),
                    "q6_K" => 32 * Math.Abs(Fp16.Read(blk, 208) * (sbyte)blk[192 + i / 16]),
                    "q2_K" => Math.Abs(Fp16.Read(blk, 82)) * (blk[i / 16] >> 4),
                    "q4_K" or "q5_K" => Math.Abs(Fp16.Read(blk, 2)) * MinK4(blk, i / 32),
                    "q3_K" => 4 * Math.Abs(Fp16.Read(blk, 108)) * 32,
                    _ => 0,
                };
            }
        }
        return c;
    }

    static int MinK4(ReadOnlySpan<byte> blk, int j)
    {
        QuantMath.GetScaleMinK4(j, blk.Slice(4, 12), out _, out byte m);
        return m;
    }

    /// <summary>
    /// Whole model: q4_K_M bard-3m under <see cref="LinearArithmetic.LikeLlamaCpp"/> on the integer GEMM
    /// and on its fallback (round, then the exact decoded product) compute the same thing up to float
    /// summation order. The first token (BOS at position 0, nothing before it to attend to) must agree to
    /// float precision. Later, summation order flips an 8-bit code now and then (a value within ~1e-6 of a
    /// rounding boundary), and one flipped code moves a product by a whole code step, about a fifth of what
    /// rounding all 256 values of the row does; the flips then travel through attention. So past the first
    /// token the paths are compared on average, against the rounding effect itself (the unrounded default).
    /// </summary>
    [SkippableFact]
    public void Like_llama_cpp_logits_agree_between_integer_gemm_and_rounded_fallback()
    {
        Skip.IfNot(QuantizedGemm.IsSupported, SimdLevels.Lacks("AVX2 and FMA"));
        using var dir = new ScratchDir();
        string gguf = dir.File("bard-q4_K_M.gguf");
        ModelQuantizer.Quantize(TestFiles.Sample("bard-3m-bf16.safetensors"), gguf,
            new ModelQuantizeOptions { Mix = QuantMix.Get("q4_K_M"), ConfigPath = EngineFixtures.Fixture("config.json") });
        using var model = LlamaModel.Load(gguf);
        var tokens = EvalData.ReadU16(TestFiles.Sample("shakespeare-val-4k.tokens.u16"))[..64];
        int vocab = model.Config.VocabSize;
        float[] Run(LinearArithmetic a, int batch)
        {
            var logits = new float[tokens.Length * vocab];
            using var s = model.CreateSession(new LlamaSessionOptions { Arithmetic = a, MaxBatch = batch });
            s.Forward(tokens, logits);
            return logits;
        }
        var gemm = Run(LinearArithmetic.LikeLlamaCpp, 64);
        var single = Run(LinearArithmetic.LikeLlamaCpp, 1);
        var exact = Run(LinearArithmetic.Default, 64);
        float[] fallback;
        QuantizedGemm.Disabled = true;
        try { fallback = Run(LinearArithmetic.LikeLlamaCpp, 64); } finally { QuantizedGemm.Disabled = false; }
        static double MeanAbs(float[] a, float[] b) { double s = 0; for (int i = 0; i < a.Length; i++) s += Math.Abs(a[i] - b[i]); return s / a.Length; }
        double paths = MeanAbs(gemm, fallback), effect = MeanAbs(fallback, exact);
        for (int t = 0; t < tokens.Length; t += 8)
            output.WriteLine($"token {t}: gemm−fallback {MeanAbs(gemm.AsSpan(t * vocab, vocab).ToArray(), fallback.AsSpan(t * vocab, vocab).ToArray()):E2}, fallback−exact {MeanAbs(fallback.AsSpan(t * vocab, vocab).ToArray(), exact.AsSpan(t * vocab, vocab).ToArray()):E2}");
        output.WriteLine($"mean |Δlogit|: gemm vs fallback {paths:E3}, fallback vs unrounded {effect:E3}, gemm vs unrounded {MeanAbs(gemm, exact):E3}");
        Assert.True(MeanAbs(gemm, single) <= 0.5 * effect, $"single tokens differ from the batch by {MeanAbs(gemm, single):E3}");
        double first = MeanAbs(gemm[..vocab], fallback[..vocab]), firstEffect = MeanAbs(fallback[..vocab], exact[..vocab]);
        Assert.True(first <= 1e-3 * firstEffect, $"first token: gemm and fallback differ by {first:E3}, the rounding itself by {firstEffect:E3}");
        Assert.True(paths <= 0.5 * effect, $"gemm and fallback differ by {paths:E3}, the rounding itself by {effect:E3}");
    }
}
