using System.Buffers;
using CsCheck;
using TensorCodec.Coders;
using TensorCodec.Numerics;

namespace TensorCodec.Tests.Coders;

public class ChunkCodecTests
{
    static byte[] Encode(byte[] raw, DType t, ChunkStats? stats = null)
    {
        var dst = new byte[ChunkCodec.MaxEncodedLength(raw.Length)];
        Assert.Equal(OperationStatus.Done, ChunkCodec.Encode(raw, t, dst, out int w, null, stats));
        Assert.InRange(w, 1, dst.Length);
        return dst.AsSpan(0, w).ToArray();
    }

    static void RoundTrip(byte[] raw, DType t)
    {
        var enc = Encode(raw, t);
        Assert.True(enc.Length <= raw.Length + 1, $"{t}: {enc.Length} > {raw.Length} + 1");
        ByteCoderChecks.ChunkDecodesTo(enc, raw);
    }

    static readonly Gen<DType> GenDType = Gen.OneOfConst(TestData.AllDTypes);

    [Fact]
    public void RoundTripsEveryDTypeAndPattern() =>
        Gen.Select(GenDType, Gen.Int[0, 3000], Gen.Int[0, 5], Gen.Int)
           .Sample((t, len, mode, seed) => RoundTrip(TestData.Make(t, len, mode, seed), t), iter: 400);

    [Fact]
    public void RoundTripsRandomBytesForEveryDType() =>
        Gen.Select(GenDType, Gen.Byte.Array[0, 2000]).Sample((t, b) => RoundTrip(b, t), iter: 300);

    [Fact]
    public void LargerChunksRoundTrip()
    {
        foreach (var t in TestData.AllDTypes)
            foreach (int mode in new[] { 3, 4, 5 })
                RoundTrip(TestData.Make(t, 200_003, mode, (int)t * 7 + mode), t);
    }

    [Fact]
    public void EmptyChunkIsOneByte()
    {
        foreach (var t in TestData.AllDTypes)
        {
            var enc = Encode([], t);
            Assert.Single(enc);
            Assert.Equal(OperationStatus.Done, ChunkCodec.Decode(enc, Span<byte>.Empty, out _));
        }
    }

    [Fact]
    public void NeverExpandsBeyondOneByte() =>
        Gen.Select(GenDType, Gen.Byte.Array[0, 5000]).Sample((t, b) =>
        {
            var enc = Encode(b, t);
            return enc.Length <= ChunkCodec.MaxEncodedLength(b.Length) && enc.Length <= b.Length + 1;
        }, iter: 300);

    [Fact]
    public void GaussianBf16IsSplitAndCompressed()
    {
        var raw = TestData.Make(DType.BF16, 1 << 18, 3, 1);
        var stats = new ChunkStats();
        var enc = Encode(raw, DType.BF16, stats);
        Assert.True(enc.Length < raw.Length * 0.75, $"{enc.Length} / {raw.Length}");
        Assert.Contains(stats.Streams, s => s.Name == "BF16.exp" && s.Method is "Rans" or "RansWide" or "Huffman");
        ByteCoderChecks.ChunkDecodesTo(enc, raw);
    }

    [Fact]
    public void StatsMergeByName()
    {
        var a = new ChunkStats();
        Encode(TestData.Make(DType.F32, 4000, 3, 1), DType.F32, a);
        Encode(TestData.Make(DType.F32, 4000, 3, 2), DType.F32, a);
        Assert.Equal(4, a.Streams.Count);
        Assert.All(a.Streams, s => Assert.Equal(2000, s.RawBytes));
    }

    [Fact]
    public void WrongSizeDestinationIsReported()
    {
        var raw = TestData.Make(DType.BF16, 1000, 3, 1);
        var enc = Encode(raw, DType.BF16);
        Assert.Equal(OperationStatus.DestinationTooSmall, ChunkCodec.Decode(enc, new byte[999], out _));
        var stored = Encode(TestData.Make(DType.U8, 100, 0, 1), DType.U8);
        Assert.Equal(OperationStatus.DestinationTooSmall, ChunkCodec.Decode(stored, new byte[50], out _));
    }

    [Fact]
    public void MutatedChunksNeverThrow()
    {
        var inputs = new (byte[] raw, DType t)[]
        {
            (TestData.Make(DType.BF16, 8192, 4, 1), DType.BF16),
            (TestData.Make(DType.F16, 6001, 3, 2), DType.F16),
            (TestData.Make(DType.F32, 8192, 4, 3), DType.F32),
            (TestData.Make(DType.F64, 8192, 3, 4), DType.F64),
            (TestData.Make(DType.I32, 8192, 3, 5), DType.I32),
            (TestData.Make(DType.U8, 8192, 5, 6), DType.U8),
            (TestData.Make(DType.F8E4M3, 4096, 4, 7), DType.F8E4M3),
        };
        var r = new Random(1234);
        foreach (var (raw, t) in inputs)
        {
            var enc = Encode(raw, t);
            // Decode into the middle of a larger buffer: the guard bytes prove nothing is written outside.
            var guarded = new byte[raw.Length + 128];
            var back = guarded.AsSpan(64, raw.Length);
            for (int it = 0; it < 2000; it++)
            {
                var bad = enc.ToArray();
                switch (r.Next(4))
                {
                    case 0: bad[r.Next(bad.Length)] ^= (byte)(1 << r.Next(8)); break;
                    case 1: for (int k = 0; k < 4; k++) bad[r.Next(bad.Length)] = (byte)r.Next(256); break;
                    case 2: bad = bad.AsSpan(0, r.Next(bad.Length)).ToArray(); break;
                    default: bad[r.Next(Math.Min(bad.Length, 24))] = (byte)r.Next(256); break; // headers
                }
                guarded.AsSpan(0, 64).Fill(0xA5);
                guarded.AsSpan(64 + raw.Length).Fill(0x5A);
                var st = ChunkCodec.Decode(bad, back, out _);
                Assert.True(st is OperationStatus.Done or OperationStatus.InvalidData or OperationStatus.DestinationTooSmall, st.ToString());
                Assert.True(guarded.AsSpan(0, 64).IndexOfAnyExcept((byte)0xA5) < 0 && guarded.AsSpan(64 + raw.Length).IndexOfAnyExcept((byte)0x5A) < 0);
            }
        }
    }

    [Fact]
    public void RandomGarbageNeverThrows() =>
        Gen.Select(Gen.Byte.Array[0, 300], Gen.Int[0, 2000], GenDType).Sample((b, n, t) =>
        {
            var st = ChunkCodec.Decode(b, new byte[n], out _);
            return st is OperationStatus.Done or OperationStatus.InvalidData or OperationStatus.DestinationTooSmall;
        }, iter: 2000);
}
