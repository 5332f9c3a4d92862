using System.Buffers;
using CsCheck;
using TensorCodec.Coders;
using TensorCodec.Containers;
using TensorCodec.Formats;

namespace TensorCodec.Tests.Coders;

/// <summary>Chunk mode 4: ggml block fields with static per-context rANS tables (GgmlTableCoder), alone and in the chunk codec.</summary>
public class GgmlTableCoderTests
{
    static readonly Gen<int> GenType = GgmlFieldCoderTests.GenMode3Type;
    static readonly string[] Fixtures = ["q4_0", "q4_1", "q5_0", "q5_1", "q8_0", "q4_K", "q5_K", "q6_K"];

    static byte[] Blocks(int type, int blocks, int seed, bool real)
    {
        if (real && BlockFormats.FromGgmlType(type) is not null) return GgmlFieldCoderTests.Quantized(type, blocks, seed);
        var raw = new byte[blocks * GgmlBlockFields.BlockBytes(type)];
        new Random(seed).NextBytes(raw);
        return raw;
    }

    static byte[] Encode(int type, byte[] raw)
    {
        var dst = new byte[raw.Length * 2 + 4096];
        int n = new GgmlTableCoder().Encode(type, raw, dst);
        Assert.True(n > 0);
        return dst[..n];
    }

    [Fact]
    public void RoundTripsRandomAndRealBlocks() =>
        Gen.Select(GenType, Gen.Int[1, 60], Gen.Int, Gen.Bool).Sample((type, blocks, seed, real) =>
        {
            var raw = Blocks(type, blocks, seed, real);
            var enc = Encode(type, raw);
            var coder = new GgmlTableCoder();
            var back = new byte[raw.Length];
            Assert.True(coder.Decode(type, enc, back));
            Assert.Equal(raw, back);
            // Exactly the coded bytes: one byte less or one more is refused.
            Assert.False(coder.Decode(type, enc.AsSpan(0, enc.Length - 1), back));
            Assert.False(coder.Decode(type, [.. enc, 0], back));
        }, iter: 300);

    /// <summary>llama.cpp's own blocks of stories260K (Fixtures/ggml), mode 4 alone and through the chunk codec's default options.</summary>
    [Theory]
    [MemberData(nameof(FixtureNames))]
    public void LlamaCppBlocksRoundTrip(string name)
    {
        var raw = File.ReadAllBytes(TestFiles.Fixture($"ggml/stories260k.{name}.bin"));
        Assert.True(GgmlTypes.TryGetByName(name, out var info));
        // (16 to 128 blocks: too few for the tables to pay everywhere, so no size claim here; the chunk codec falls back.)
        var enc = Encode(info.Id, raw);
        var back = new byte[raw.Length];
        Assert.True(new GgmlTableCoder().Decode(info.Id, enc, back));
        Assert.Equal(raw, back);
        ByteCoderChecks.ChunkDecodesTo(GgmlFieldCoderTests.EncodeChunk(raw, info.Id, fields: false), raw);
    }

    /// <summary>The types mode 4 codes that our quantizers write (all but Q8_1).</summary>
    public static TheoryData<int> QuantizedTypes() => [2, 3, 6, 7, 8, 12, 13, 14];

    public static TheoryData<string> FixtureNames()
    {
        var d = new TheoryData<string>();
        foreach (var n in Fixtures) d.Add(n);
        return d;
    }

    /// <summary>The chunk codec's default options choose mode 4 for real blocks, and it beats zstd -19 and stays
    /// within 1 % of mode 3 on a 256 K-value chunk.</summary>
    [Theory]
    [MemberData(nameof(QuantizedTypes))]
    public void RealBlocksChooseMode4AndBeatZstd19(int type)
    {
        var raw = GgmlFieldCoderTests.Quantized(type, 256 * 1024 / BlockFormats.FromGgmlType(type)!.BlockSize, type);
        using var encoder = new ChunkEncoder(new ChunkCodecOptions { ZstdLevel = 19 });
        var dst = new byte[ChunkCodec.MaxEncodedLength(raw.Length)];
        Assert.Equal(OperationStatus.Done, encoder.Encode(raw, GgmlTypes.ToDType(type), type, dst, out int w));
        Assert.Equal(ChunkCodec.ModeGgmlTables, dst[0]);
        ByteCoderChecks.ChunkDecodesTo(dst[..w], raw);
        using var z = new ZstdSharp.Compressor(19);
        Assert.True(w < z.Wrap(raw).Length, $"type {type}: mode 4 {w} vs zstd -19");
        int mode3 = GgmlFieldCoderTests.EncodeChunk(raw, type, tables: false).Length;
        Assert.True(w < 1.01 * mode3, $"type {type}: mode 4 {w} vs mode 3 {mode3}");
    }

    /// <summary>Random bytes (no structure to find) never make a chunk bigger than Stored.</summary>
    [Fact]
    public void NeverExpands() =>
        Gen.Select(GenType, Gen.Int[1, 50], Gen.Int[0, 3], Gen.Int).Sample((type, blocks, tail, seed) =>
        {
            var raw = Blocks(type, blocks, seed, real: false);
            raw = [.. raw, .. new byte[tail]];
            var enc = GgmlFieldCoderTests.EncodeChunk(raw, type, fields: false);
            Assert.InRange(enc.Length, 1, raw.Length + 1);
            ByteCoderChecks.ChunkDecodesTo(enc, raw);
        }, iter: 200);

    [Fact]
    public void EncoderReportsABufferThatIsTooSmall()
    {
        var raw = GgmlFieldCoderTests.Quantized(GgmlBlockFields.Q4_K, 8, 1);
        Assert.Equal(-1, new GgmlTableCoder().Encode(GgmlBlockFields.Q4_K, raw, new byte[100]));
    }

    // Corrupt and fuzzed mode-4 chunks: GgmlFieldCoderTests' CorruptMode3And4… and FuzzedMode3And4… theories.

    /// <summary>Valid mode-4 tables followed by random states and words: the decoder must refuse or decode, never overrun.</summary>
    [Fact]
    public void RandomStreamsBehindRealTablesNeverThrow() =>
        Gen.Select(GenType, Gen.Int[1, 20], Gen.Int, Gen.Int[0, 400]).Sample((type, blocks, seed, extra) =>
        {
            var raw = Blocks(type, blocks, seed, real: true);
            var enc = Encode(type, raw);
            var rng = new Random(seed);
            int keep = rng.Next(enc.Length);
            var bad = new byte[keep + extra];
            enc.AsSpan(0, keep).CopyTo(bad);
            rng.NextBytes(bad.AsSpan(keep));
            new GgmlTableCoder().Decode(type, bad, new byte[raw.Length]);
        }, iter: 500);
}

/// <summary>Mode 4's fast paths (AVX-512/AVX2 steps, vector split and join) against the scalar ones at every SIMD level.</summary>
[Collection(SimdCollection.Name)]
public class GgmlTableCoderSimdTests
{
    [SkippableTheory]
    [MemberData(nameof(SimdLevels.All), MemberType = typeof(SimdLevels))]
    public void FastDecodeEqualsScalar(string level)
    {
        using var _ = SimdLevels.Force(level);
        Gen.Select(Gen.OneOfConst(2, 3, 6, 7, 8, 9, 12, 13, 14), Gen.Int[1, 80], Gen.Int).Sample((type, blocks, seed) =>
        {
            var raw = BlockFormats.FromGgmlType(type) is not null ? GgmlFieldCoderTests.Quantized(type, blocks, seed) : RandomBlocks(type, blocks, seed);
            var dst = new byte[raw.Length * 2 + 4096];
            var coder = new GgmlTableCoder();
            int n = coder.Encode(type, raw, dst);
            var fast = new byte[raw.Length];
            var scalar = new byte[raw.Length];
            Assert.True(coder.Decode(type, dst.AsSpan(0, n), fast, allowFast: true));
            Assert.True(coder.Decode(type, dst.AsSpan(0, n), scalar, allowFast: false));
            Assert.Equal(raw, fast);
            Assert.Equal(raw, scalar);
            // Damaged words: both paths agree on the verdict and, when they accept, on the bytes.
            dst[n - 1 - (int)((uint)seed % (uint)Math.Min(n, 40))] ^= 0x10;
            bool a = coder.Decode(type, dst.AsSpan(0, n), fast, allowFast: true);
            bool b = coder.Decode(type, dst.AsSpan(0, n), scalar, allowFast: false);
            Assert.Equal(b, a);
            if (a) Assert.Equal(scalar, fast);
        }, iter: 100);
    }

    [SkippableTheory]
    [MemberData(nameof(SimdLevels.All), MemberType = typeof(SimdLevels))]
    public void VectorSplitAndJoinEqualScalar(string level)
    {
        using var _ = SimdLevels.Force(level);
        Gen.Select(Gen.OneOfConst(GgmlBlockFields.Q4_K, GgmlBlockFields.Q5_K, GgmlBlockFields.Q6_K), Gen.Int).Sample((type, seed) =>
        {
            var b = RandomBlocks(type, 1, seed);
            GgmlBlock fv = new(), fs = new();
            GgmlBlockFields.Split(type, b, fv, allowVector: true);
            GgmlBlockFields.Split(type, b, fs, allowVector: false);
            Assert.Equal(fs.D, fv.D);
            Assert.Equal(fs.M, fv.M);
            Assert.Equal(fs.Scale, fv.Scale);
            Assert.Equal(fs.Min, fv.Min);
            Assert.Equal(fs.Q, fv.Q);
            var jv = new byte[b.Length];
            var js = new byte[b.Length];
            GgmlBlockFields.Join(type, fs, jv, allowVector: true);
            GgmlBlockFields.Join(type, fs, js, allowVector: false);
            Assert.Equal(b, js);
            Assert.Equal(b, jv);
        }, iter: 500);
    }

    static byte[] RandomBlocks(int type, int blocks, int seed)
    {
        var raw = new byte[blocks * GgmlBlockFields.BlockBytes(type)];
        new Random(seed).NextBytes(raw);
        return raw;
    }
}
