using TensorCodec.Coders;
using TensorCodec.Numerics;

namespace TensorCodec.Tests.Coders;

/// <summary>Split and merge at every instruction-set level against the scalar reference, at lengths around the
/// vector loops' 16- and 64-element steps.</summary>
[Collection(SimdCollection.Name)]
public class FloatSplitSimdTests
{
    public static TheoryData<string> Levels() => SimdLevels.All();

    [SkippableTheory]
    [MemberData(nameof(Levels))]
    public void Split_and_merge_give_the_scalar_bytes_at_every_level(string level)
    {
        var r = new Random(17);
        foreach (var t in new[] { SplitTransform.BF16, SplitTransform.F16, SplitTransform.F32 })
        {
            int e = FloatSplit.ElementSize(t), sc = FloatSplit.StreamCount(t);
            foreach (int n in new[] { 0, 1, 15, 16, 63, 64, 65, 127, 128, 129, 1000, 4099 })
            {
                var raw = new byte[n * e + 1];
                r.NextBytes(raw);
                raw = raw[..(n * e)];
                var expected = new byte[sc * n];
                using (Simd.Force(SimdLevel.Scalar)) FloatSplit.Split(t, raw, expected);
                var actual = new byte[sc * n];
                var back = new byte[raw.Length];
                using (SimdLevels.Force(level))
                {
                    FloatSplit.Split(t, raw, actual);
                    FloatSplit.Merge(t, expected, back);
                }
                Assert.True(expected.AsSpan().SequenceEqual(actual), $"{t} n={n}: split differs at {level}");
                Assert.True(raw.AsSpan().SequenceEqual(back), $"{t} n={n}: merge differs at {level}");
            }
        }
    }
}

/// <summary>The AVX-512 candidate histogram against the scalar count, on streams it takes (skewed, shifting after the
/// prefix, every byte value) and ones it hands back (near-uniform).</summary>
[Collection(SimdCollection.Name)]
public class HistogramSimdTests
{
    static IEnumerable<byte[]> Streams()
    {
        var r = new Random(23);
        foreach (int n in new[] { 16 << 10, (16 << 10) + 63, 100_003, 1 << 20 })
        {
            var e = new byte[n]; // exponent-like: a few values, rare outliers anywhere
            for (int i = 0; i < n; i++) e[i] = (byte)(r.Next(300) == 0 ? r.Next(256) : 118 + (int)Math.Min(11, -Math.Log(1 - r.NextDouble()) * 1.7));
            yield return e;
            var shift = (byte[])e.Clone(); // the values after the 4 KiB prefix are not the prefix's candidates
            for (int i = 4096; i < n; i++) shift[i] = (byte)(shift[i] ^ 0x55);
            yield return shift;
            yield return new byte[n];
            var u = new byte[n]; r.NextBytes(u);
            yield return u;
        }
    }

    [SkippableTheory]
    [MemberData(nameof(FloatSplitSimdTests.Levels), MemberType = typeof(FloatSplitSimdTests))]
    public void Histogram_equals_the_scalar_count_at_every_level(string level)
    {
        foreach (var s in Streams())
        {
            var expected = new uint[256];
            FrequencyTable.HistogramScalar(s, expected);
            var actual = new uint[256];
            using (SimdLevels.Force(level)) FrequencyTable.Histogram(s, actual);
            Assert.Equal(expected, actual);
        }
    }

    [SkippableFact]
    public void Vector_count_takes_skewed_streams_and_refuses_uniform_ones()
    {
        Skip.IfNot(Simd.Hardware >= SimdLevel.Avx512, SimdLevels.Lacks("AVX-512BW"));
        var h = new uint[256];
        Assert.True(FrequencyTable.HistogramAvx512(new byte[20_000], h));
        Assert.Equal(20_000u, h[0]);
        var u = new byte[20_000];
        new Random(1).NextBytes(u);
        Assert.False(FrequencyTable.HistogramAvx512(u, h));
    }
}
