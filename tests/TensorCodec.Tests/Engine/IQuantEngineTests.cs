using TensorCodec.Engine;
using TensorCodec.Eval;
using TensorCodec.Quantization;
using TensorCodec.Tests.Models;
using Xunit.Abstractions;

namespace TensorCodec.Tests.Engine;

/// <summary>
/// Whole model: bard-3m with every block matrix in one i-quant (or q1_0/q2_0) type, its embeddings and output in
/// F32, run on the fused kernels (<see cref="IQuantMatrix"/>) and on the decode-a-row path (<see cref="BlockMatrix"/>,
/// <see cref="IQuantMatrix.Disabled"/>). Under <see cref="LinearArithmetic.LikeLlamaCpp"/> both compute "round the
/// activations to q8_K/q8_0, multiply by the dequantized weights" and differ only in float summation order, which
/// now and then flips an 8-bit code of a later layer; so, as for the k-quant GEMM
/// (QuantizedGemmTests), the first token must agree to float precision (≤ 1e-3 of what rounding the activations
/// changes) and all tokens on average within half of the rounding effect itself (the kernels against the
/// unrounded decode-row logits). The default arithmetic one token at a time (the generation path: mat-vec on
/// the kernels) must give the LikeLlamaCpp kernel logits, whose activation codes are the same.
/// </summary>
[Collection(SimdCollection.Name)]
public class IQuantEngineTests(ITestOutputHelper output)
{
    [Theory]
    [InlineData("iq2_xxs")]
    [InlineData("iq2_xs")]
    [InlineData("iq2_s")]
    [InlineData("iq3_xxs")]
    [InlineData("iq3_s")]
    [InlineData("iq1_s")]
    [InlineData("iq1_m")]
    [InlineData("iq4_xs")]
    [InlineData("iq4_nl")]
    [InlineData("q1_0")]
    [InlineData("q2_0")]
    public void Logits_on_the_fused_kernels_agree_with_the_decode_row_path(string type)
    {
        using var dir = new ScratchDir();
        string src = TestFiles.Sample("bard-3m-bf16.safetensors");
        string gguf = dir.File($"bard-{type}.gguf");
        ModelQuantizer.Quantize(src, gguf, new ModelQuantizeOptions
        {
            Mix = QuantMix.Get("q8_0"), ConfigPath = EngineFixtures.Fixture("config.json"), TensorTypes = [@"blk\.=" + type],
            TokenEmbeddingType = "f32", OutputTensorType = "f32",
            ImatrixPath = GgufRoundTripTests.UniformImatrixIfNeeded("iq2_xxs", src, dir), // all ones: iq2_xxs, iq2_xs and iq1_s require one
        });
        using var fused = LlamaModel.Load(gguf);
        LlamaModel decoded;
        IQuantMatrix.Disabled = true;
        try { decoded = LlamaModel.Load(gguf); } finally { IQuantMatrix.Disabled = false; }
        using var _ = decoded;
        foreach (var l in fused.Layers)
            foreach (var w in new[] { l.Wq, l.Wk, l.Wv, l.Wo, l.Gate, l.Up, l.Down })
            {
                Assert.IsType<IQuantMatrix>(w);
                Assert.Equal(type, w.TypeName);
            }
        Assert.IsType<BlockMatrix>(decoded.Layers[0].Wq);

        var tokens = EvalData.ReadU16(TestFiles.Sample("shakespeare-val-4k.tokens.u16"))[..48];
        int vocab = fused.Config.VocabSize;
        float[] Run(LlamaModel m, LinearArithmetic a, int batch)
        {
            var logits = new float[tokens.Length * vocab];
            using var s = m.CreateSession(new LlamaSessionOptions { Arithmetic = a, MaxBatch = batch });
            s.Forward(tokens, logits);
            return logits;
        }
        var kernels = Run(fused, LinearArithmetic.LikeLlamaCpp, 48);
        var kernelsSingle = Run(fused, LinearArithmetic.Default, 1);
        var likeSingle = Run(fused, LinearArithmetic.LikeLlamaCpp, 1);
        var fallback = Run(decoded, LinearArithmetic.LikeLlamaCpp, 48);
        var exact = Run(decoded, LinearArithmetic.Default, 48);
        static double MeanAbs(ReadOnlySpan<float> a, ReadOnlySpan<float> b) { double s = 0; for (int i = 0; i < a.Length; i++) s += Math.Abs(a[i] - b[i]); return s / a.Length; }
        double paths = MeanAbs(kernels, fallback), effect = MeanAbs(fallback, exact);
        double first = MeanAbs(kernels.AsSpan(0, vocab), fallback.AsSpan(0, vocab)), firstEffect = MeanAbs(fallback.AsSpan(0, vocab), exact.AsSpan(0, vocab));
        double single = MeanAbs(kernelsSingle, likeSingle), singleFirst = MeanAbs(kernelsSingle.AsSpan(0, vocab), kernels.AsSpan(0, vocab));
        output.WriteLine($"{type}: mean |Δlogit| kernels vs decode-row (both rounded) {paths:E3}, first token {first:E3}; rounding effect {effect:E3} (first token {firstEffect:E3}); default vs llama.cpp arithmetic, single tokens {single:E3}; default single-token vs batch, first token {singleFirst:E3}");
        for (int t = 0; t < tokens.Length; t++)
            output.WriteLine($"  token {t}: default single-token vs batch {MeanAbs(kernelsSingle.AsSpan(t * vocab, vocab), kernels.AsSpan(t * vocab, vocab)):E3}");
        Assert.True(effect > 0, "rounding the activations changed nothing: the comparison would be empty");
        Assert.True(first <= 1e-3 * firstEffect, $"{type} first token: kernels and decode-row differ by {first:E3}, the rounding itself by {firstEffect:E3}");
        Assert.True(paths <= 0.5 * effect, $"{type}: kernels and decode-row differ by {paths:E3}, the rounding itself by {effect:E3}");
        // The default single-token path is llama.cpp's arithmetic: the same activation codes through the same fused
        // kernels, so only the F32 output layer's summation may differ (it feeds nothing back).
        Assert.True(single <= 1e-3 * effect, $"{type}: single-token default path differs from llama.cpp's single-token arithmetic by {single:E3}");
        // Against the batch (decoded tiles, F32 GEMM) only the first token is bounded: the two sum in different
        // orders (~2e-7 here), which sooner or later moves one activation across a code's rounding boundary, and
        // from that token on the caches differ by about the rounding effect itself (seen on q1_0 with AVX-512:
        // tokens 0-7 agree to 2e-7, token 8 differs by 1.2e-2). Per matrix, IQuantBatchTests bounds the batch path.
        Assert.True(singleFirst <= 1e-3 * firstEffect, $"{type} first token: single-token default path differs from the kernel batch by {singleFirst:E3}");
    }
}
