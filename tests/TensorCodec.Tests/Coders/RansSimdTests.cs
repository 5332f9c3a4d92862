using System.Buffers;
using TensorCodec.Coders;
using TensorCodec.Numerics;

namespace TensorCodec.Tests.Coders;

/// <summary>
/// rANS' vector encoder and decoders against the scalar ones at every instruction-set level this machine has:
/// the encoder must give the scalar loop's exact bytes, the decoders its exact output and verdicts.
/// </summary>
[Collection(SimdCollection.Name)]
public class RansSimdTests
{
    public static TheoryData<string> Levels() => SimdLevels.All();

    static IEnumerable<byte[]> Inputs()
    {
        var r = new Random(5);
        foreach (int n in new[] { 16, 17, 31, 32, 33, 100, 1000, 4097, 65_536, 100_003 })
        {
            yield return HuffmanCoderTests.Make("skewed").AsSpan(0, Math.Min(n, 100_000)).ToArray();
            var b = new byte[n]; r.NextBytes(b); yield return b;
            // An exponent-like stream: a few values, one dominant, rare outliers (frequencies 1 and near Scale).
            var e = new byte[n];
            for (int i = 0; i < n; i++) e[i] = (byte)(r.Next(1000) == 0 ? r.Next(256) : 120 + (int)Math.Min(9, -Math.Log(1 - r.NextDouble()) * 1.5));
            yield return e;
            yield return new byte[n]; // one symbol: frequency 4096
        }
    }

    [SkippableTheory]
    [MemberData(nameof(Levels))]
    public void Encoder_gives_the_scalar_bytes_and_decoders_agree(string level)
    {
        foreach (var data in Inputs())
        {
            var hist = new uint[256];
            FrequencyTable.Histogram(data, hist);
            var freqs = new ushort[256];
            Assert.True(RansCoder.NormalizeFrequencies(hist, freqs));
            var words = new ushort[RansCoder.WordScratchLength(data.Length)];
            var expected = new byte[RansCoder.MaxEncodedLength(data.Length)];
            Assert.Equal(OperationStatus.Done, RansCoder.Encode(data, freqs, expected, out int we, words, allowSimd: false));
            var actual = new byte[expected.Length];
            int wa;
            using (SimdLevels.Force(level))
                Assert.Equal(OperationStatus.Done, RansCoder.Encode(data, freqs, actual, out wa, words, allowSimd: true));
            Assert.Equal(we, wa);
            Assert.True(expected.AsSpan(0, we).SequenceEqual(actual.AsSpan(0, wa)), $"n={data.Length}: encoding differs at {level}");
            var back = new byte[data.Length];
            using (SimdLevels.Force(level)) Assert.Equal(OperationStatus.Done, RansCoder.Decode(expected.AsSpan(0, we), back));
            Assert.True(data.AsSpan().SequenceEqual(back), $"n={data.Length}: decoding differs at {level}");
            // A payload one byte short of what the encoder needs is refused by both paths alike.
            using (SimdLevels.Force(level))
                Assert.Equal(OperationStatus.DestinationTooSmall, RansCoder.Encode(data, freqs, actual.AsSpan(0, we - 1), out _, words, allowSimd: true));
        }
    }

    [SkippableTheory]
    [MemberData(nameof(Levels))]
    public void Encoding_a_symbol_without_frequency_throws_at_every_level(string level)
    {
        var freqs = new ushort[256];
        freqs[1] = RansCoder.Scale;
        var data = new byte[40];
        data.AsSpan().Fill(1);
        data[20] = 2;
        using var forced = SimdLevels.Force(level);
        var e = Assert.Throws<ArgumentException>(() => RansCoder.Encode(data, freqs, new byte[1000], out _));
        Assert.Contains("symbol 2 has frequency 0", e.Message);
    }
}
