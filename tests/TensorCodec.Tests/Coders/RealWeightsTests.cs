using System.Buffers;
using TensorCodec.Coders;
using TensorCodec.Numerics;
using Xunit.Abstractions;

namespace TensorCodec.Tests.Coders;

public class RealWeightsTests(ITestOutputHelper output)
{
    [Fact]
    public void Bard3mBf16CompressesNearEntropy()
    {
        var data = TestData.LoadSafetensorsData(TestData.Bard3mBf16);
        Assert.NotNull(data); // bundled in samples/, so never skipped

        const int Chunk = 1 << 20;
        var stats = new ChunkStats();
        long total = 0;
        var dst = new byte[ChunkCodec.MaxEncodedLength(Chunk)];
        var back = new byte[Chunk];
        for (int off = 0; off < data.Length; off += Chunk)
        {
            var raw = data.AsSpan(off, Math.Min(Chunk, data.Length - off));
            Assert.Equal(OperationStatus.Done, ChunkCodec.Encode(raw, DType.BF16, dst, out int w, null, stats));
            total += w;
            Assert.Equal(OperationStatus.Done, ChunkCodec.Decode(dst.AsSpan(0, w), back.AsSpan(0, raw.Length), out int written));
            Assert.Equal(raw.Length, written);
            Assert.True(raw.SequenceEqual(back.AsSpan(0, raw.Length)));
        }
        foreach (var s in stats.Streams)
            output.WriteLine($"{s.Name}: raw {s.RawBytes} enc {s.EncodedBytes} ({8.0 * s.EncodedBytes / s.RawBytes:F3} b/sym) H0 {s.Order0EntropyBits / s.RawBytes:F3} H1 {s.Order1EntropyBits / s.RawBytes:F3} {s.Method}");
        output.WriteLine($"total {total} / {data.Length} = {(double)total / data.Length:P2}, {16.0 * total / data.Length:F3} bits/value");

        var exp = stats.Streams.Single(s => s.Name == "BF16.exp");
        Assert.True(exp.EncodedBytes <= exp.Order0EntropyBits / 8 * 1.01, $"exp {exp.EncodedBytes} vs H0 {exp.Order0EntropyBits / 8:F0}");
        Assert.True(total < data.Length * 0.72, $"{total} vs {data.Length}");
    }
}
