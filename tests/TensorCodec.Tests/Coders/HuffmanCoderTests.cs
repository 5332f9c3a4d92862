using System.Buffers;
using TensorCodec.Coders;

namespace TensorCodec.Tests.Coders;

public class HuffmanCoderTests
{
    public static TheoryData<string> Cases => new() { "empty", "one", "two", "all256", "skewed", "random", "short", "odd" };

    public static byte[] Make(string name)
    {
        var r = new Random(Seeds.Of(name));
        switch (name)
        {
            case "empty": return [];
            case "one": return Enumerable.Repeat((byte)42, 1000).ToArray();
            case "two": return Enumerable.Range(0, 5000).Select(_ => (byte)(r.Next(2) == 0 ? 7 : 200)).ToArray();
            case "all256": return Enumerable.Range(0, 256 * 40).Select(i => (byte)i).ToArray();
            case "skewed": return Enumerable.Range(0, 100_000).Select(_ => (byte)Math.Min(255, (int)(-Math.Log(1 - r.NextDouble()) * 0.7))).ToArray();
            case "short": return [1, 2, 3];
            case "odd": return Enumerable.Range(0, 1001).Select(_ => (byte)r.Next(0, 17)).ToArray();
            default: { var b = new byte[70_001]; r.NextBytes(b); return b; }
        }
    }

    [Theory, MemberData(nameof(Cases))]
    public void RoundTrips(string name) => ByteCoderChecks.RoundTrip(HuffmanCoder.MaxEncodedLength, HuffmanCoder.Encode, HuffmanCoder.Decode, Make(name));

    [Fact]
    public void LengthLimitIsRespectedOnFibonacciWeights()
    {
        // Fibonacci weights give an unlimited Huffman tree of depth n-1: the worst case for the limit.
        var hist = new uint[256];
        uint a = 1, b = 1;
        for (int s = 0; s < 30; s++) { hist[s] = a; (a, b) = (b, a + b); }
        var lengths = new byte[256];
        HuffmanCoder.BuildCodeLengths(hist, lengths);
        Assert.All(lengths, l => Assert.InRange(l, 0, HuffmanCoder.MaxCodeLength));
        Assert.Equal(HuffmanCoder.MaxCodeLength, lengths.Max());
        // Complete code: Kraft sum exactly 1.
        double kraft = lengths.Where(l => l > 0).Sum(l => Math.Pow(2, -l));
        Assert.Equal(1.0, kraft, 12);

        // And data drawn from it round-trips.
        var data = new List<byte>();
        for (int s = 0; s < 30; s++) data.AddRange(Enumerable.Repeat((byte)s, (int)Math.Min(hist[s], 20_000)));
        ByteCoderChecks.RoundTrip(HuffmanCoder.MaxEncodedLength, HuffmanCoder.Encode, HuffmanCoder.Decode, data.ToArray());
    }

    [Fact]
    public void UnlimitedLengthsAreOptimal()
    {
        // With a generous limit package-merge must equal plain Huffman cost: for weights 1,1,2,3,5 → 4,4,3,2,1.
        var hist = new uint[256];
        uint[] w = [1, 1, 2, 3, 5];
        for (int i = 0; i < w.Length; i++) hist[i] = w[i];
        var lengths = new byte[256];
        HuffmanCoder.BuildCodeLengths(hist, lengths, 15);
        long cost = 0;
        for (int i = 0; i < w.Length; i++) cost += w[i] * lengths[i];
        Assert.Equal(1 * 4 + 1 * 4 + 2 * 3 + 3 * 2 + 5 * 1, cost);
    }

    [Fact]
    public void EstimateMatchesActualClosely()
    {
        var data = Make("skewed");
        var hist = new uint[256];
        FrequencyTable.Histogram(data, hist);
        var lengths = new byte[256];
        HuffmanCoder.BuildCodeLengths(hist, lengths);
        var enc = new byte[HuffmanCoder.MaxEncodedLength(data.Length)];
        Assert.Equal(OperationStatus.Done, HuffmanCoder.Encode(data, lengths, enc, out int w));
        long est = HuffmanCoder.EstimateSize(hist, lengths);
        Assert.InRange(w, est - 8, est);
    }

    [Fact]
    public void TooSmallDestinationIsReported()
    {
        var data = Make("random");
        var enc = new byte[100];
        Assert.Equal(OperationStatus.DestinationTooSmall, HuffmanCoder.Encode(data, enc, out _));
    }

    [Fact]
    public void CorruptPayloadsNeverThrow() =>
        ByteCoderChecks.CorruptPayloadsNeverThrow(HuffmanCoder.MaxEncodedLength, HuffmanCoder.Encode, HuffmanCoder.Decode,
            Make("skewed").AsSpan(0, 3000).ToArray(), seed: 5);
}
