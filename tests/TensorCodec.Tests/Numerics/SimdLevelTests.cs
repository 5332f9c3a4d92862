using System.Buffers;
using TensorCodec.Coders;
using TensorCodec.Engine;
using TensorCodec.Formats;
using TensorCodec.Numerics;
using TensorCodec.Tests.Coders;
using TensorCodec.Tests.Engine;
using Xunit.Abstractions;

namespace TensorCodec.Tests.Numerics;

/// <summary>
/// Every dispatcher gives the scalar reference's exact output at each instruction-set level this
/// machine has (levels it lacks are skipped, saying so), so the AVX2 branches are tested on an
/// AVX-512 machine and the scalar ones everywhere. The engine's float kernels sum in another order
/// per level, so they are held to the reference logits' tolerance instead.
/// </summary>
[Collection(SimdCollection.Name)]
public class SimdLevelTests(ITestOutputHelper output)
{
    public static TheoryData<string> Levels() => SimdLevels.All();

    /// <summary>Gaussian rows with zero, constant, tiny and large blocks mixed in.</summary>
    static float[] Weights(int n, int seed)
    {
        var rng = new Random(seed);
        var x = new float[n];
        for (int i = 0; i < n; i++)
            x[i] = (float)(Math.Sqrt(-2 * Math.Log(1 - rng.NextDouble())) * Math.Cos(2 * Math.PI * rng.NextDouble()) * 0.02);
        x.AsSpan(0, 256).Clear();
        x.AsSpan(256, 256).Fill(-0.3f);
        for (int i = 512; i < 768; i++) x[i] *= 1e-20f;
        for (int i = 768; i < 1024; i++) x[i] *= 5000;
        return x;
    }

    static (byte[] Bytes, float[] Values) RoundTrip(IBlockFormat f, float[] x, int cols, float[]? importance)
    {
        var q = new byte[x.Length / f.BlockSize * f.BlockBytes];
        f.Quantize(x, q, cols, importance);
        var y = new float[x.Length];
        f.Dequantize(q, y);
        return (q, y);
    }

    [SkippableTheory]
    [MemberData(nameof(Levels))]
    public void Every_block_format_gives_the_reference_bytes_and_bits(string level)
    {
        const int cols = 1024, rows = 6;
        var x = Weights(rows * cols, 11);
        var importance = new float[cols];
        var rng = new Random(12);
        for (int i = 0; i < cols; i++) importance[i] = (float)(rng.NextDouble() * rng.NextDouble());
        foreach (var f in BlockFormats.All)
            foreach (var imp in BlockFormats.RequiresImportance(f) ? new[] { importance } : new[] { null, importance })
            {
                (byte[] Bytes, float[] Values) expected;
                using (Simd.Force(SimdLevel.Scalar)) expected = RoundTrip(f, x, cols, imp);
                (byte[] Bytes, float[] Values) actual;
                using (SimdLevels.Force(level)) actual = RoundTrip(f, x, cols, imp);
                string what = $"{f.Name}{(imp is null ? "" : "+imatrix")} at {level}";
                Assert.True(expected.Bytes.AsSpan().SequenceEqual(actual.Bytes), $"{what}: bytes differ from the scalar reference");
                for (int i = 0; i < x.Length; i++)
                    if (BitConverter.SingleToInt32Bits(expected.Values[i]) != BitConverter.SingleToInt32Bits(actual.Values[i]))
                        Assert.Fail($"{what}: value {i} is {actual.Values[i]:R}, the scalar reference {expected.Values[i]:R}");
            }
    }

    [SkippableTheory]
    [MemberData(nameof(Levels))]
    public void Bf16_bulk_conversions_match_the_scalar_rule(string level)
    {
        using var _ = SimdLevels.Force(level);
        var rng = new Random(5);
        var f = new float[4099];
        for (int i = 0; i < f.Length; i++) f[i] = BitConverter.Int32BitsToSingle(rng.Next()) * (i % 2 == 0 ? 1 : -1);
        f[0] = float.NaN; f[1] = float.PositiveInfinity; f[2] = -0f; f[3] = 1.00390625f; // a tie
        var h = new ushort[f.Length];
        BFloat16.FromFloat(f, h);
        for (int i = 0; i < f.Length; i++) Assert.Equal(BFloat16.FromFloat(f[i]), h[i]);
        var back = new float[f.Length];
        BFloat16.ToFloat(h, back);
        for (int i = 0; i < f.Length; i++) Assert.Equal(BitConverter.SingleToInt32Bits(BFloat16.ToFloat(h[i])), BitConverter.SingleToInt32Bits(back[i]));
    }

    [SkippableTheory]
    [MemberData(nameof(Levels))]
    public void Chunk_codec_output_is_the_same_at_every_level(string level)
    {
        // FloatSplit's Vector128 split/merge and rANS' AVX2 decoder against the scalar ones.
        foreach (var t in TestData.AllDTypes)
            foreach (int mode in new[] { 3, 4 })
            {
                var raw = TestData.Make(t, 100_003, mode, (int)t * 13 + mode);
                var dst = new byte[ChunkCodec.MaxEncodedLength(raw.Length)];
                byte[] expected;
                int encodedLength;
                using (Simd.Force(SimdLevel.Scalar))
                {
                    Assert.Equal(OperationStatus.Done, ChunkCodec.Encode(raw, t, dst, out encodedLength));
                    expected = dst.AsSpan(0, encodedLength).ToArray();
                }
                using var _ = SimdLevels.Force(level);
                Assert.Equal(OperationStatus.Done, ChunkCodec.Encode(raw, t, dst, out encodedLength));
                var actual = dst.AsSpan(0, encodedLength).ToArray();
                Assert.True(expected.AsSpan().SequenceEqual(actual), $"{t} mode {mode}: encoding differs at {level}");
                var back = new byte[raw.Length];
                Assert.Equal(OperationStatus.Done, ChunkCodec.Decode(expected, back, out int decoded));
                Assert.Equal(raw.Length, decoded);
                Assert.True(raw.AsSpan().SequenceEqual(back), $"{t} mode {mode}: decode differs at {level}");
            }
        var skewed = new byte[200_000];
        var rng = new Random(3);
        for (int i = 0; i < skewed.Length; i++) skewed[i] = (byte)Math.Min(255, (int)(-Math.Log(1 - rng.NextDouble()) * 6));
        var enc = new byte[RansCoder.MaxEncodedLength(skewed.Length)];
        Assert.Equal(OperationStatus.Done, RansCoder.Encode(skewed, enc, out int written));
        var dec = new byte[skewed.Length];
        using (SimdLevels.Force(level)) Assert.Equal(OperationStatus.Done, RansCoder.Decode(enc.AsSpan(0, written), dec));
        Assert.True(skewed.AsSpan().SequenceEqual(dec), $"rANS decode differs at {level}");
    }

    [SkippableTheory]
    [MemberData(nameof(Levels))]
    public void Engine_matches_the_reference_logits_at_every_level(string level)
    {
        using var _ = SimdLevels.Force(level);
        // F32 (Gemm) against llama2.c's logits, with LogitsReferenceTests' tolerance.
        using (var m = LlamaModel.Load(TestFiles.Sample("stories260K.bin")))
        {
            var tokens = EngineFixtures.Tokens("greedy.tokens.csv");
            var (max, at) = EngineFixtures.MaxAbsDiff(Logits(m, tokens), EngineFixtures.Logits("greedy.logits.f32"));
            output.WriteLine($"stories260K at {level}: max |Δlogit| {max:E3}");
            Assert.True(max <= 1e-4, $"stories260K at {level}: logit {at} differs by {max:E3}");
        }
        // BF16 weights (WeightMatrix's fused BF16 dot) against the F32 PyTorch logits: rounding the weights moves logits by ≤ 0.037.
        using (var m = LlamaModel.Load(TestFiles.Sample("bard-3m-bf16.safetensors"), new LlamaLoadOptions { ConfigPath = EngineFixtures.Fixture("config.json") }))
        {
            var tokens = EngineFixtures.Tokens("val.first128.tokens.csv")[..32];
            var reference = EngineFixtures.Logits("val.first128.logits.f32").AsSpan(0, 32 * 1024).ToArray();
            var (max, at) = EngineFixtures.MaxAbsDiff(Logits(m, tokens), reference);
            output.WriteLine($"bard-3m bf16 at {level}: max |Δlogit| {max:E3}");
            Assert.True(max <= 0.1, $"bard-3m bf16 at {level}: logit {at} differs by {max:E3}");
        }
    }

    static float[] Logits(LlamaModel m, int[] tokens)
    {
        using var s = m.CreateSession(new LlamaSessionOptions { MaxBatch = 1 });
        var logits = new float[tokens.Length * m.Config.VocabSize];
        for (int i = 0; i < tokens.Length; i++) s.Forward(tokens[i]).CopyTo(logits.AsSpan(i * m.Config.VocabSize));
        return logits;
    }
}
