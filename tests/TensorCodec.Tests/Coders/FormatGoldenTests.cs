using System.Buffers;
using TensorCodec.Coders;
using TensorCodec.Numerics;

namespace TensorCodec.Tests.Coders;

/// <summary>Byte-exact examples worked out by hand from FORMAT.md (chunk payload section), so the document and the code cannot drift apart.</summary>
public class FormatGoldenTests
{
    static readonly byte[] AAAB = "AAAB"u8.ToArray();

    [Fact]
    public void HuffmanPayloadMatchesTheDocument()
    {
        // A (3×) and B (1×) both get length 1 → A = 0, B = 1; each quarter holds one symbol = one padded byte.
        byte[] expected = [0x41, 0x01, 0x11, 0x01, 0x01, 0x01, 0x00, 0x00, 0x00, 0x80];
        ByteCoderChecks.PayloadIs(HuffmanCoder.Encode, HuffmanCoder.Decode, AAAB, expected, dstLength: 64);
    }

    [Fact]
    public void RansPayloadMatchesTheDocument()
    {
        // freq A = 3072, B = 1024 (cum 3072). Symbol i uses state i: A: x = (65536/3072 << 12) + 65536%3072 = 0x15400;
        // B: x = (64 << 12) + 0 + 3072 = 0x40C00; unused states stay 0x10000; no words are emitted.
        byte[] expected =
        [
            0x00, 0x41, 0x01, 0xFF, 0x17, 0xFF, 0x07,
            0x00, 0x54, 0x01, 0x00, 0x00, 0x54, 0x01, 0x00, 0x00, 0x54, 0x01, 0x00, 0x00, 0x0C, 0x04, 0x00,
            0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x01, 0x00,
            0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x01, 0x00,
            0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x01, 0x00,
        ];
        ByteCoderChecks.PayloadIs(RansCoder.Encode, RansCoder.Decode, AAAB, expected, dstLength: 128);
    }

    [Fact]
    public void WideRansPayloadMatchesTheDocument()
    {
        // Method 5: the method-3 example's table and states 0..3, then states 4..31 at 0x10000; no words.
        var expected = new List<byte> { 0x00, 0x41, 0x01, 0xFF, 0x17, 0xFF, 0x07 };
        for (int k = 0; k < 3; k++) expected.AddRange([0x00, 0x54, 0x01, 0x00]);
        expected.AddRange([0x00, 0x0C, 0x04, 0x00]);
        for (int k = 4; k < 32; k++) expected.AddRange([0x00, 0x00, 0x01, 0x00]);
        ByteCoderChecks.PayloadIs(RansWideCoderTests.EncodeWithHistogram, RansWideCoder.Decode, AAAB, [.. expected], dstLength: 256);
    }

    [Fact]
    public void ConstantBf16ChunkMatchesTheDocument()
    {
        // 100 × BF16 1.0 (0x3F80) + 1 trailing byte: split mode, transform 1, rawLength 201 (varint C9 01),
        // exp = 0x7F constant, sm = 0x00 constant, tail 0xEE.
        var raw = new byte[201];
        for (int i = 0; i < 200; i += 2) { raw[i] = 0x80; raw[i + 1] = 0x3F; }
        raw[200] = 0xEE;
        byte[] expected = [0x02, 0x01, 0xC9, 0x01, 0x01, 0x01, 0x7F, 0x01, 0x01, 0x00, 0xEE];
        var dst = new byte[ChunkCodec.MaxEncodedLength(raw.Length)];
        Assert.Equal(OperationStatus.Done, ChunkCodec.Encode(raw, DType.BF16, dst, out int w));
        Assert.Equal(expected, dst.AsSpan(0, w).ToArray());
        ByteCoderChecks.ChunkDecodesTo(expected, raw);
    }

    [Fact]
    public void StoredChunkIsModeZeroPlusRawBytes()
    {
        var dst = new byte[8];
        Assert.Equal(OperationStatus.Done, ChunkCodec.Encode(AAAB, DType.I8, dst, out int w));
        Assert.Equal(new byte[] { 0x00, 0x41, 0x41, 0x41, 0x42 }, dst.AsSpan(0, w).ToArray());
    }
}
