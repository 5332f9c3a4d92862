using System.Buffers;
using TensorCodec.Coders;
using TensorCodec.Numerics;

namespace TensorCodec.Tests.Coders;

/// <summary>ChunkEncoder/ChunkDecoder as reusable contexts: nothing carries over between chunks, nothing is allocated once warm,
/// and a destination too small is a status, not an exception.</summary>
public class ChunkContextTests
{
    static readonly (DType T, byte[] Raw)[] Inputs = TestData.AllDTypes
        .SelectMany((t, i) => new[] { (t, TestData.Make(t, 40_000 + i, 3 + i % 3, i)), (t, TestData.Make(t, 999, i % 6, 100 + i)) })
        .ToArray();

    static byte[] OneShot(byte[] raw, DType t)
    {
        var dst = new byte[ChunkCodec.MaxEncodedLength(raw.Length)];
        Assert.Equal(OperationStatus.Done, ChunkCodec.Encode(raw, t, dst, out int w));
        return dst.AsSpan(0, w).ToArray();
    }

    [Fact]
    public void ReusedContextsGiveTheOneShotBytes()
    {
        using var encoder = new ChunkEncoder();
        using var decoder = new ChunkDecoder();
        var dst = new byte[ChunkCodec.MaxEncodedLength(Inputs.Max(x => x.Raw.Length))];
        var back = new byte[Inputs.Max(x => x.Raw.Length)];
        // Twice through, large and small chunks interleaved: stale scratch from a bigger chunk must not leak in.
        for (int pass = 0; pass < 2; pass++)
            foreach (var (t, raw) in Inputs)
            {
                Assert.Equal(OperationStatus.Done, encoder.Encode(raw, t, dst, out int w));
                Assert.Equal(OneShot(raw, t), dst.AsSpan(0, w).ToArray());
                Assert.Equal(OperationStatus.Done, decoder.Decode(dst.AsSpan(0, w), back, out int n));
                Assert.Equal(raw.Length, n);
                Assert.True(back.AsSpan(0, n).SequenceEqual(raw), $"{t}, {raw.Length} bytes");
            }
    }

    [Fact]
    public void NoAllocationAfterWarmUp()
    {
        using var encoder = new ChunkEncoder();
        using var decoder = new ChunkDecoder();
        foreach (var t in new[] { DType.BF16, DType.F16, DType.F32, DType.I32, DType.U8 })
        {
            var raw = TestData.Make(t, 1 << 18, 3, (int)t);
            var dst = new byte[ChunkCodec.MaxEncodedLength(raw.Length)];
            var back = new byte[raw.Length];
            encoder.Encode(raw, t, dst, out int w);
            decoder.Decode(dst.AsSpan(0, w), back, out _);
            long allocated = FewestBytesAllocated(() =>
            {
                encoder.Encode(raw, t, dst, out int w2);
                decoder.Decode(dst.AsSpan(0, w2), back, out _);
            });
            Assert.True(allocated == 0, $"{t}: {allocated} bytes allocated by a warm encode + decode");
        }
    }

    /// <summary>Bytes this thread allocates in <paramref name="work"/>: the fewest over up to 5 runs, stopping at
    /// the first that allocates nothing. Fresh-clone CI runs of the parallel suite have counted ~8 KB here once
    /// in a few runs (8,080–8,144 bytes, also on the base commit, never twice in a row, never when the test runs
    /// alone): something of the runtime's that the codec does not own. An allocation the warm codec makes
    /// shows in every run and still fails.</summary>
    static long FewestBytesAllocated(Action work)
    {
        long fewest = long.MaxValue;
        for (int attempt = 0; attempt < 5 && fewest != 0; attempt++)
        {
            long before = GC.GetAllocatedBytesForCurrentThread();
            work();
            fewest = Math.Min(fewest, GC.GetAllocatedBytesForCurrentThread() - before);
        }
        return fewest;
    }

    [Fact]
    public void EncodeReportsDestinationTooSmall()
    {
        using var encoder = new ChunkEncoder();
        foreach (var (t, raw) in Inputs)
        {
            var full = OneShot(raw, t);
            var dst = new byte[full.Length - 1];
            Assert.Equal(OperationStatus.DestinationTooSmall, encoder.Encode(raw, t, dst, out int w));
            Assert.Equal(0, w);
        }
        // Empty destination, stored path (random bytes do not shrink).
        var noise = new byte[100];
        new Random(7).NextBytes(noise);
        Assert.Equal(OperationStatus.DestinationTooSmall, encoder.Encode(noise, DType.U8, Span<byte>.Empty, out _));
    }

    [Fact]
    public void DecodeIntoALargerDestinationReportsTheRawLength()
    {
        using var decoder = new ChunkDecoder();
        foreach (var (t, raw) in Inputs)
        {
            var enc = OneShot(raw, t);
            var back = new byte[raw.Length + 17];
            Assert.Equal(OperationStatus.Done, decoder.Decode(enc, back, out int n));
            Assert.Equal(raw.Length, n);
            Assert.True(back.AsSpan(0, n).SequenceEqual(raw));
            Assert.Equal(OperationStatus.DestinationTooSmall, decoder.Decode(enc, back.AsSpan(0, Math.Max(0, raw.Length - 1)), out n));
            Assert.Equal(0, n);
        }
    }

    [Fact]
    public void DecoderRecoversAfterCorruptZstd()
    {
        using var decoder = new ChunkDecoder();
        var raw = TestData.Make(DType.U8, 20_000, 5, 3);
        var enc = OneShot(raw, DType.U8);
        Assert.Equal(ChunkCodec.ModeZstd, enc[0]);
        var bad = enc.ToArray();
        for (int i = 8; i < bad.Length; i += 7) bad[i] ^= 0x5A;
        var back = new byte[raw.Length];
        Assert.NotEqual(OperationStatus.Done, decoder.Decode(bad, back, out _));
        Assert.Equal(OperationStatus.Done, decoder.Decode(enc, back, out int n));
        Assert.Equal(raw, back.AsSpan(0, n).ToArray());
    }

    [Fact]
    public void DisposedContextsRefuseWork()
    {
        var encoder = new ChunkEncoder();
        var decoder = new ChunkDecoder();
        encoder.Dispose(); encoder.Dispose();
        decoder.Dispose();
        Assert.Throws<ObjectDisposedException>(() => encoder.Encode(new byte[4], DType.U8, new byte[8], out _));
        Assert.Throws<ObjectDisposedException>(() => decoder.Decode(new byte[] { 0, 1 }, new byte[1], out _));
    }
}
