using System.Buffers;
using CsCheck;
using TensorCodec.Coders;
using TensorCodec.Containers;
using TensorCodec.Formats;
using ZstdSharp;

namespace TensorCodec.Tests.Coders;

/// <summary>Chunk mode 3: ggml block fields (GgmlBlockFields) and their coder (GgmlFieldCoder), alone and in the chunk codec.</summary>
public class GgmlFieldCoderTests
{
    static readonly int[] Mode3Types = [2, 3, 6, 7, 8, 9, 12, 13, 14];
    internal static readonly Gen<int> GenMode3Type = Gen.OneOfConst(Mode3Types);

    internal static byte[] EncodeChunk(ReadOnlySpan<byte> raw, int ggmlType, bool fields = true, bool tables = true)
    {
        using var enc = new ChunkEncoder(new ChunkCodecOptions { ZstdLevel = 19, GgmlFields = fields, GgmlTables = tables });
        var dst = new byte[ChunkCodec.MaxEncodedLength(raw.Length)];
        Assert.Equal(OperationStatus.Done, enc.Encode(raw, GgmlTypes.ToDType(ggmlType), ggmlType, dst, out int w));
        Assert.InRange(w, 1, raw.Length + 1);
        return dst.AsSpan(0, w).ToArray();
    }

    /// <summary>Gaussian weights quantized with our ggml quantizers (llama-quantize's bytes): what real tensors hold.</summary>
    internal static byte[] Quantized(int ggmlType, int blocks, int seed)
    {
        var f = BlockFormats.FromGgmlType(ggmlType)!;
        var rng = new Random(seed);
        var x = new float[blocks * f.BlockSize];
        for (int i = 0; i < x.Length; i++)
            x[i] = (float)(Math.Sqrt(-2 * Math.Log(1 - rng.NextDouble())) * Math.Cos(2 * Math.PI * rng.NextDouble()) * 0.02);
        var dst = new byte[blocks * f.BlockBytes];
        f.Quantize(x, dst, f.BlockSize);
        return dst;
    }

    [Fact]
    public void SplitThenJoinGivesEveryBlockBack() =>
        Gen.Select(GenMode3Type, Gen.Int).Sample((type, seed) =>
        {
            var b = new byte[GgmlBlockFields.BlockBytes(type)];
            new Random(seed).NextBytes(b);
            var f = new GgmlBlock();
            GgmlBlockFields.Split(type, b, f);
            var back = new byte[b.Length];
            GgmlBlockFields.Join(type, f, back);
            Assert.Equal(b, back);
            // Every quant fits its width, every 6-bit scale its 6 bits.
            int qb = GgmlBlockFields.QuantBits(type);
            Assert.All(f.Q.Take(GgmlBlockFields.BlockValues(type)), q => Assert.True(q < 1 << qb));
        }, iter: 2000);

    [Fact]
    public void FieldCoderRoundTripsRandomBlocks() =>
        Gen.Select(GenMode3Type, Gen.Int[1, 40], Gen.Int, Gen.Bool).Sample((type, blocks, seed, real) =>
        {
            int bb = GgmlBlockFields.BlockBytes(type);
            byte[] raw;
            if (real && BlockFormats.FromGgmlType(type) is not null) raw = Quantized(type, blocks, seed);
            else { raw = new byte[blocks * bb]; new Random(seed).NextBytes(raw); }
            var coder = new GgmlFieldCoder();
            var dst = new byte[raw.Length * 2 + 64];
            int n = coder.Encode(type, raw, dst);
            Assert.True(n > 0);
            var back = new byte[raw.Length];
            Assert.True(coder.Decode(type, dst.AsSpan(0, n), back));
            Assert.Equal(raw, back);
            // The decoder consumes exactly what was written: one byte less is refused.
            Assert.False(new GgmlFieldCoder().Decode(type, dst.AsSpan(0, n - 1), back));
        }, iter: 300);

    [Fact]
    public void EncoderReportsABufferThatIsTooSmall()
    {
        var raw = Quantized(GgmlBlockFields.Q4_K, 8, 1);
        Assert.Equal(-1, new GgmlFieldCoder().Encode(GgmlBlockFields.Q4_K, raw, new byte[100]));
    }

    /// <summary>Every ggml type the GGUF reader knows, as random bytes and (where we quantize it) as real blocks, with and
    /// without a torn tail: bit-exact through the chunk codec and never more than one byte over the raw size.</summary>
    [Fact]
    public void EveryGgmlTypeRoundTripsThroughTheChunkCodec()
    {
        foreach (var info in GgmlTypes.All)
        {
            var format = BlockFormats.FromGgmlType(info.Id);
            Gen.Select(Gen.Int[0, 70], Gen.Int[0, 3], Gen.Int, Gen.Bool).Sample((blocks, tail, seed, real) =>
            {
                byte[] raw;
                if (real && format is not null && info.BlockSize > 1 && blocks > 0 && !BlockFormats.RequiresImportance(format))
                    raw = Quantized(info.Id, blocks, seed);
                else { raw = new byte[blocks * info.TypeSize]; new Random(seed).NextBytes(raw); }
                raw = [.. raw, .. new byte[tail].Select((_, i) => (byte)(seed + i))];
                var enc = EncodeChunk(raw, info.Id);
                ByteCoderChecks.ChunkDecodesTo(enc, raw);
            }, iter: 25);
        }
    }

    [Theory]
    [InlineData(2)]
    [InlineData(3)]
    [InlineData(6)]
    [InlineData(7)]
    [InlineData(8)]
    [InlineData(12)]
    [InlineData(13)]
    [InlineData(14)]
    public void RealBlocksChooseMode3AndBeatZstd19(int type)
    {
        var raw = Quantized(type, 256 * 1024 / BlockFormats.FromGgmlType(type)!.BlockSize, type);
        var enc = EncodeChunk(raw, type, tables: false);
        Assert.Equal(ChunkCodec.ModeGgml, enc[0]);
        ByteCoderChecks.ChunkDecodesTo(enc, raw);
        using var z = new Compressor(19);
        int zstd = z.Wrap(raw).Length;
        Assert.True(enc.Length < zstd, $"type {type}: mode 3 {enc.Length} vs zstd -19 {zstd}");
        Assert.True(enc.Length < EncodeChunk(raw, type, fields: false, tables: false).Length);
    }

    /// <summary>llama.cpp's own blocks of stories260K (Fixtures/ggml) dequantized from our fields equal its dequantization:
    /// the fields mean what ggml means by them, and the chunk codec returns the blocks exactly.</summary>
    [Theory]
    [InlineData("q4_0")]
    [InlineData("q4_1")]
    [InlineData("q5_0")]
    [InlineData("q5_1")]
    [InlineData("q8_0")]
    [InlineData("q4_K")]
    [InlineData("q5_K")]
    [InlineData("q6_K")]
    public void FieldsOfLlamaCppBlocksDequantizeAsLlamaCpp(string name)
    {
        var raw = File.ReadAllBytes(TestFiles.Fixture($"ggml/stories260k.{name}.bin"));
        var golden = File.ReadAllBytes(TestFiles.Fixture($"ggml/stories260k.{name}.dequant.f32"));
        Assert.True(GgmlTypes.TryGetByName(name, out var info));
        int type = info.Id, bb = GgmlBlockFields.BlockBytes(type), nv = GgmlBlockFields.BlockValues(type);
        var f = new GgmlBlock();
        for (int blk = 0; blk < raw.Length / bb; blk++)
        {
            GgmlBlockFields.Split(type, raw.AsSpan(blk * bb, bb), f);
            for (int i = 0; i < nv; i++)
            {
                float want = BitConverter.ToSingle(golden, (blk * nv + i) * 4);
                float got = Dequant(type, f, i);
                Assert.True(Math.Abs(got - want) <= 1e-5f * Math.Max(1, Math.Abs(want)), $"{name} block {blk} value {i}: {got} vs {want}");
            }
        }
        ByteCoderChecks.ChunkDecodesTo(EncodeChunk(raw, type), raw);
    }

    static float Dequant(int type, GgmlBlock f, int i)
    {
        float d = (float)BitConverter.UInt16BitsToHalf(f.D), m = (float)BitConverter.UInt16BitsToHalf(f.M);
        int q = f.Q[i];
        return type switch
        {
            GgmlBlockFields.Q4_0 => (q - 8) * d,
            GgmlBlockFields.Q5_0 => (q - 16) * d,
            GgmlBlockFields.Q4_1 or GgmlBlockFields.Q5_1 => q * d + m,
            GgmlBlockFields.Q8_0 => (sbyte)f.Q[i] * d,
            GgmlBlockFields.Q4_K or GgmlBlockFields.Q5_K => d * f.Scale[i / 32] * q - m * f.Min[i / 32],
            GgmlBlockFields.Q6_K => d * (sbyte)f.Scale[i / 16] * (q - 32),
            _ => throw new ArgumentOutOfRangeException(nameof(type)),
        };
    }

    /// <summary>Mode 3 and mode 4 (GgmlTableCoder) chunks alike.</summary>
    [Theory]
    [InlineData(ChunkCodec.ModeGgml)]
    [InlineData(ChunkCodec.ModeGgmlTables)]
    public void CorruptMode3And4ChunksNeverThrowAndTruncationsAreRefused(byte mode)
    {
        var raw = Quantized(GgmlBlockFields.Q4_K, 64, 3);
        raw = [.. raw, 1, 2, 3];
        var enc = EncodeChunk(raw, GgmlBlockFields.Q4_K, fields: mode == ChunkCodec.ModeGgml, tables: mode == ChunkCodec.ModeGgmlTables);
        Assert.Equal(mode, enc[0]);
        using var dec = new ChunkDecoder();
        var dst = new byte[raw.Length + 16];
        for (int len = 0; len < enc.Length; len++)
            Assert.Equal(OperationStatus.InvalidData, dec.Decode(enc.AsSpan(0, len), dst, out _));
        var rng = new Random(5);
        int refused = 0;
        for (int i = 0; i < 2000; i++)
        {
            var bad = (byte[])enc.Clone();
            int flips = rng.Next(1, 4);
            for (int k = 0; k < flips; k++) bad[rng.Next(bad.Length)] ^= (byte)(1 << rng.Next(8));
            var st = dec.Decode(bad, dst, out _);
            Assert.True(st is OperationStatus.Done or OperationStatus.InvalidData or OperationStatus.DestinationTooSmall, st.ToString());
            if (st != OperationStatus.Done) refused++;
        }
        // Mode 4: flips in the stored tail decode silently (FORMAT.md: the container checksums chunks); the rest are
        // caught by the tables' checks, the word count or the final rANS states.
        if (mode == ChunkCodec.ModeGgmlTables) Assert.True(refused > 1900, $"{refused} of 2000 corruptions refused");
        // A type the modes do not code, and a destination too small, are refused.
        var wrongType = (byte[])enc.Clone();
        wrongType[1] = 10;
        Assert.Equal(OperationStatus.InvalidData, dec.Decode(wrongType, dst, out _));
        Assert.Equal(OperationStatus.DestinationTooSmall, dec.Decode(enc, dst.AsSpan(0, raw.Length - 1), out _));
        Assert.Equal(OperationStatus.Done, dec.Decode(enc, dst, out int w));
        Assert.Equal(raw, dst.AsSpan(0, w).ToArray());
    }

    [Theory]
    [InlineData(ChunkCodec.ModeGgml)]
    [InlineData(ChunkCodec.ModeGgmlTables)]
    public void FuzzedMode3And4BodiesNeverThrow(byte mode) =>
        Gen.Select(GenMode3Type, Gen.Int[0, 3000], Gen.Byte.Array[0, 600]).Sample((type, n, body) =>
        {
            var chunk = new byte[2 + Varint.MaxLength * 2 + body.Length];
            chunk[0] = mode;
            chunk[1] = (byte)type;
            int p = 2 + Varint.Write(chunk.AsSpan(2), (uint)n);
            p += Varint.Write(chunk.AsSpan(p), (uint)Math.Max(0, body.Length - n % GgmlBlockFields.BlockBytes(type)));
            body.CopyTo(chunk.AsSpan(p));
            using var dec = new ChunkDecoder();
            var st = dec.Decode(chunk.AsSpan(0, p + body.Length), new byte[4096], out _);
            Assert.True(st is OperationStatus.Done or OperationStatus.InvalidData or OperationStatus.DestinationTooSmall);
        }, iter: 2000);
}

/// <summary>Golden bytes of mode 3: llama.cpp's stories260K blocks (Fixtures/ggml) must encode to exactly these chunks
/// (the first 16 bytes of the SHA-256 of the encoded chunk), so a change of field order, context or model rate cannot pass silently: FORMAT.md
/// then has to change with it.</summary>
public class GgmlFieldGoldenTests
{
    [Theory]
    [InlineData("q4_0", "938C5329B8BBDB9B93D98D65E2CA9027")]
    [InlineData("q4_1", "70006D4002B088B2ACD90B3B1292B8DC")]
    [InlineData("q5_0", "6C49F1DC9732FC75B2D5EDAF9AAE16B5")]
    [InlineData("q5_1", "7D69A4B2337852354CB8FB1956C12014")]
    [InlineData("q8_0", "E71C168F268EB90E5D07D8CE9620A7E8")]
    [InlineData("q4_K", "00B3025984D62A0130A4166AE4BE16F0")]
    [InlineData("q5_K", "32574715AFC43E5AC1E353224F804624")]
    [InlineData("q6_K", "3D75E9A4AEB89FD7B1CAA9893418DAB3")]
    public void Mode3ChunksOfLlamaCppBlocksAreStable(string name, string sha256)
    {
        var raw = File.ReadAllBytes(TestFiles.Fixture($"ggml/stories260k.{name}.bin"));
        Assert.True(GgmlTypes.TryGetByName(name, out var info));
        var coder = new GgmlFieldCoder();
        var dst = new byte[raw.Length * 2];
        int n = coder.Encode(info.Id, raw, dst);
        Assert.True(n > 0 && n < raw.Length, $"{name}: {n} of {raw.Length}");
        Assert.Equal(sha256, Convert.ToHexString(System.Security.Cryptography.SHA256.HashData(dst.AsSpan(0, n)))[..32]);
    }
}
