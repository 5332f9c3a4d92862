using System.Buffers;
using TensorCodec.Coders;

namespace TensorCodec.Tests.Coders;

/// <summary>The shape HuffmanCoder.Encode and RansCoder.Encode share.</summary>
internal delegate OperationStatus ByteEncode(ReadOnlySpan<byte> src, Span<byte> dst, out int written);

/// <summary>The shape HuffmanCoder.Decode and RansCoder.Decode share.</summary>
internal delegate OperationStatus ByteDecode(ReadOnlySpan<byte> src, Span<byte> dst);

/// <summary>Checks every entropy coder and the chunk codec must pass, written once for all of them.</summary>
internal static class ByteCoderChecks
{
    /// <summary>Encodes into a worst-case buffer, decodes, asserts the bytes come back; returns the encoded length.</summary>
    public static int RoundTrip(Func<int, int> maxEncodedLength, ByteEncode encode, ByteDecode decode, byte[] data)
    {
        var enc = new byte[maxEncodedLength(data.Length)];
        Assert.Equal(OperationStatus.Done, encode(data, enc, out int w));
        var dec = new byte[data.Length];
        Assert.Equal(OperationStatus.Done, decode(enc.AsSpan(0, w), dec));
        Assert.Equal(data, dec);
        return w;
    }

    /// <summary>Asserts <paramref name="data"/> encodes to exactly <paramref name="expected"/> and decodes back from it.</summary>
    public static void PayloadIs(ByteEncode encode, ByteDecode decode, byte[] data, byte[] expected, int dstLength)
    {
        var dst = new byte[dstLength];
        Assert.Equal(OperationStatus.Done, encode(data, dst, out int w));
        Assert.Equal(expected, dst.AsSpan(0, w).ToArray());
        var back = new byte[data.Length];
        Assert.Equal(OperationStatus.Done, decode(expected, back));
        Assert.Equal(data, back);
    }

    /// <summary>Flips 1–3 bits (and sometimes truncates) 2,000 times: decoding must report Done or InvalidData, never throw.</summary>
    public static void CorruptPayloadsNeverThrow(Func<int, int> maxEncodedLength, ByteEncode encode, ByteDecode decode, byte[] data, int seed)
    {
        var enc = new byte[maxEncodedLength(data.Length)];
        encode(data, enc, out int w);
        var r = new Random(seed);
        var dec = new byte[data.Length];
        for (int it = 0; it < 2000; it++)
        {
            var bad = enc.AsSpan(0, w).ToArray();
            int flips = r.Next(1, 4);
            for (int f = 0; f < flips; f++) bad[r.Next(bad.Length)] ^= (byte)(1 << r.Next(8));
            int len = r.Next(4) == 0 ? r.Next(bad.Length) : bad.Length;
            var st = decode(bad.AsSpan(0, len), dec);
            Assert.True(st is OperationStatus.Done or OperationStatus.InvalidData);
        }
    }

    /// <summary>Decodes a chunk and asserts it yields exactly <paramref name="raw"/>.</summary>
    public static void ChunkDecodesTo(ReadOnlySpan<byte> encoded, byte[] raw)
    {
        var back = new byte[raw.Length];
        Assert.Equal(OperationStatus.Done, ChunkCodec.Decode(encoded, back, out int written));
        Assert.Equal(raw.Length, written);
        Assert.Equal(raw, back);
    }
}
