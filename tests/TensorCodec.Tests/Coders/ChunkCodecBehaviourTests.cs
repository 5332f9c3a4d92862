using System.Buffers;
using System.Buffers.Binary;
using TensorCodec.Coders;
using TensorCodec.Numerics;

namespace TensorCodec.Tests.Coders;

public class ChunkCodecBehaviourTests
{
    static (byte[] enc, ChunkStats stats) Encode(byte[] raw, DType t, ChunkCodecOptions? o = null)
    {
        var stats = new ChunkStats();
        var dst = new byte[ChunkCodec.MaxEncodedLength(raw.Length)];
        Assert.Equal(OperationStatus.Done, ChunkCodec.Encode(raw, t, dst, out int w, o, stats));
        var enc = dst.AsSpan(0, w).ToArray();
        ByteCoderChecks.ChunkDecodesTo(enc, raw);
        return (enc, stats);
    }

    [Fact]
    public void ConcurrentUseIsSafe()
    {
        var inputs = TestData.AllDTypes.Select((t, i) => (t, raw: TestData.Make(t, 50_001, 3 + i % 3, i))).ToArray();
        Parallel.For(0, 64, new ParallelOptions { MaxDegreeOfParallelism = 8 }, k =>
        {
            var (t, raw) = inputs[k % inputs.Length];
            var dst = new byte[ChunkCodec.MaxEncodedLength(raw.Length)];
            Assert.Equal(OperationStatus.Done, ChunkCodec.Encode(raw, t, dst, out int w, new ChunkCodecOptions { ZstdLevel = 1 + k % 5 }));
            ByteCoderChecks.ChunkDecodesTo(dst.AsSpan(0, w), raw);
        });
    }

    [Fact]
    public void SmallIntegersCompressWell()
    {
        var r = new Random(1);
        var raw = new byte[4 * 100_000];
        for (int i = 0; i < 100_000; i++) BinaryPrimitives.WriteInt32LittleEndian(raw.AsSpan(4 * i), r.Next(-100, 100));
        var (enc, stats) = Encode(raw, DType.I32);
        Assert.True(enc.Length < raw.Length * 0.27, $"{enc.Length}");
        Assert.NotEmpty(stats.Streams);
    }

    [Fact]
    public void TextLikeBytesUseZstd()
    {
        var text = string.Concat(Enumerable.Repeat("the quick brown fox jumps over the lazy dog; ", 3000));
        var raw = System.Text.Encoding.ASCII.GetBytes(text);
        foreach (int level in new[] { -1000, 1, 3, 12, 1000 })
        {
            var (enc, stats) = Encode(raw, DType.U8, new ChunkCodecOptions { ZstdLevel = level });
            Assert.True(enc.Length < raw.Length / 20);
            Assert.Equal("Zstd", Assert.Single(stats.Streams).Method);
        }
    }

    [Fact]
    public void RandomFloatsFallBackToStoredWithinOneByte()
    {
        foreach (var t in new[] { DType.F32, DType.BF16, DType.F16, DType.F64, DType.Packed })
        {
            var raw = TestData.Make(t, 100_000, 0, 3);
            var (enc, stats) = Encode(raw, t);
            Assert.Equal(raw.Length + 1, enc.Length);
            Assert.Equal("Stored", Assert.Single(stats.Streams).Method);
        }
    }

    [Fact]
    public void ConstantStreamsCostOneByte()
    {
        // BF16 1.0 everywhere: both streams constant.
        var raw = new byte[20_000];
        for (int i = 0; i < raw.Length; i += 2) { raw[i] = 0x80; raw[i + 1] = 0x3F; }
        var (enc, stats) = Encode(raw, DType.BF16);
        Assert.True(enc.Length < 16, $"{enc.Length}");
        Assert.All(stats.Streams, s => Assert.Equal("Constant", s.Method));
    }

    [Fact]
    public void StatsReportEntropiesInBits()
    {
        var raw = TestData.Make(DType.BF16, 200_000, 3, 9);
        var (_, stats) = Encode(raw, DType.BF16);
        var exp = stats.Streams.Single(s => s.Name == "BF16.exp");
        Assert.Equal(100_000, exp.RawBytes);
        Assert.InRange(exp.Order0EntropyBits / exp.RawBytes, 1.5, 4.0);
        Assert.True(exp.Order1EntropyBits <= exp.Order0EntropyBits + 1e-6);
        Assert.InRange(exp.EncodedBytes * 8.0, exp.Order0EntropyBits, exp.Order0EntropyBits * 1.02 + 400);
    }
}
