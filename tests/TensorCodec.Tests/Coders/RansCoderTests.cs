using System.Buffers;
using TensorCodec.Coders;

namespace TensorCodec.Tests.Coders;

public class RansCoderTests
{
    static int RoundTrip(byte[] data) =>
        ByteCoderChecks.RoundTrip(RansCoder.MaxEncodedLength, RansCoder.Encode, RansCoder.Decode, data);

    [Theory, MemberData(nameof(HuffmanCoderTests.Cases), MemberType = typeof(HuffmanCoderTests))]
    public void RoundTrips(string name) => RoundTrip(HuffmanCoderTests.Make(name));

    [Theory]
    [InlineData(1)] [InlineData(2)] [InlineData(3)] [InlineData(4)] [InlineData(5)] [InlineData(7)] [InlineData(9)]
    public void ShortLengthsRoundTrip(int n)
    {
        var r = new Random(n);
        var b = new byte[n];
        r.NextBytes(b);
        RoundTrip(b);
    }

    [Fact]
    public void SkewedDataCompressesNearEntropy()
    {
        var data = HuffmanCoderTests.Make("skewed");
        int w = RoundTrip(data);
        double bound = FrequencyTable.Order0Bits(data) / 8;
        Assert.InRange(w, bound, bound * 1.01 + 64);
    }

    [Fact]
    public void NormalisedFrequenciesSumToScaleAndKeepEverySymbol()
    {
        var r = new Random(3);
        for (int it = 0; it < 200; it++)
        {
            var hist = new uint[256];
            int used = r.Next(1, 257);
            for (int i = 0; i < used; i++) hist[r.Next(256)] = (uint)(r.Next(3) == 0 ? r.Next(1, 3) : r.Next(1, 1_000_000));
            var f = new ushort[256];
            Assert.True(RansCoder.NormalizeFrequencies(hist, f));
            Assert.Equal(RansCoder.Scale, f.Sum(x => x));
            for (int s = 0; s < 256; s++) Assert.Equal(hist[s] != 0, f[s] != 0);
        }
    }

    [Fact]
    public void CorruptPayloadsNeverThrow() =>
        ByteCoderChecks.CorruptPayloadsNeverThrow(RansCoder.MaxEncodedLength, RansCoder.Encode, RansCoder.Decode,
            HuffmanCoderTests.Make("skewed").AsSpan(0, 3000).ToArray(), seed: 9);

    [Fact]
    public void ScalarAndSimdDecodersAgree()
    {
        var r = new Random(77);
        foreach (int n in new[] { 0, 1, 7, 8, 9, 63, 64, 65, 1000, 100_003 })
        {
            foreach (var data in new[] { HuffmanCoderTests.Make("skewed").AsSpan(0, Math.Min(n, 100_000)).ToArray(), RandomBytes(r, n) })
            {
                var enc = new byte[RansCoder.MaxEncodedLength(data.Length)];
                Assert.Equal(OperationStatus.Done, RansCoder.Encode(data, enc, out int w));
                var a = new byte[data.Length];
                var b = new byte[data.Length];
                Assert.Equal(OperationStatus.Done, RansCoder.Decode(enc.AsSpan(0, w), a, allowSimd: true));
                Assert.Equal(OperationStatus.Done, RansCoder.Decode(enc.AsSpan(0, w), b, allowSimd: false));
                Assert.Equal(data, a);
                Assert.Equal(data, b);
                // Corruptions must be judged identically by both paths.
                for (int it = 0; it < 50 && w > 0; it++)
                {
                    var bad = enc.AsSpan(0, w).ToArray();
                    bad[r.Next(bad.Length)] ^= (byte)(1 << r.Next(8));
                    Assert.Equal(RansCoder.Decode(bad, a, true), RansCoder.Decode(bad, b, false));
                    Assert.Equal(a, b);
                }
            }
        }
    }

    [Fact]
    public void ReciprocalDivisionIsExact()
    {
        var r = new Random(11);
        for (uint f = 1; f <= RansCoder.Scale; f++)
        {
            RansCoder.Reciprocal(f, out ulong m, out int sh);
            foreach (uint x in new[] { 0u, 1u, f - 1, f, f + 1, uint.MaxValue, uint.MaxValue - 1, uint.MaxValue / f * f, uint.MaxValue / f * f - 1 })
                Assert.Equal(x / f, RansCoder.Divide(x, m, sh));
            for (int i = 0; i < 200; i++)
            {
                uint x = (uint)r.NextInt64(0, 1L << 32);
                Assert.Equal(x / f, RansCoder.Divide(x, m, sh));
            }
        }
    }

    [Fact]
    public void EncodingASymbolWithoutFrequencyThrows()
    {
        var freqs = new ushort[256];
        freqs[1] = RansCoder.Scale;
        Assert.Throws<ArgumentException>(() => RansCoder.Encode(new byte[] { 1, 2, 1 }, freqs, new byte[1000], out _));
    }

    static byte[] RandomBytes(Random r, int n) { var b = new byte[n]; r.NextBytes(b); return b; }
}
