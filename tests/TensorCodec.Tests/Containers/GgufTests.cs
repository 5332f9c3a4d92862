using System.Buffers.Binary;
using System.Text;
using TensorCodec.Containers;
using TensorCodec.Numerics;
using static TensorCodec.Tests.Containers.ContainerTestData;

namespace TensorCodec.Tests.Containers;

public class GgufTests
{
    static TensorFormatException Fails(byte[] file) =>
        Assert.Throws<TensorFormatException>(() => GgufFile.Parse(new MemoryStream(file), "t.gguf"));

    /// <summary>Hand-assembles GGUF bytes for cases the writer refuses to produce.</summary>
    sealed class Raw
    {
        readonly MemoryStream _ms = new();
        public Raw Bytes(ReadOnlySpan<byte> b) { _ms.Write(b); return this; }
        public Raw U32(uint v) { Span<byte> b = stackalloc byte[4]; BinaryPrimitives.WriteUInt32LittleEndian(b, v); return Bytes(b); }
        public Raw U64(ulong v) { Span<byte> b = stackalloc byte[8]; BinaryPrimitives.WriteUInt64LittleEndian(b, v); return Bytes(b); }
        public Raw Str(string s) { var b = Encoding.UTF8.GetBytes(s); U64((ulong)b.Length); return Bytes(b); }
        public Raw Header(ulong tensors, ulong kvs, uint version = 3) => Bytes("GGUF"u8).U32(version).U64(tensors).U64(kvs);
        public Raw Zeros(int n) => Bytes(new byte[n]);
        public byte[] ToArray() => _ms.ToArray();
    }

    static int IndexOf(byte[] haystack, string needle) => haystack.AsSpan().IndexOf(Encoding.UTF8.GetBytes(needle));

    [Fact]
    public void WriteReadAllValueTypesAndTensors()
    {
        var bytes = SmallGguf();
        var g = GgufFile.Parse(new MemoryStream(bytes), null);
        Assert.Equal(3u, g.Version);
        Assert.Equal(32u, g.Alignment);
        Assert.Equal(0, g.DataOffset % 32);

        var expected = AllValueTypes();
        Assert.Equal(expected.Select(kv => kv.Key), g.Metadata.Select(kv => kv.Key));
        for (int i = 0; i < expected.Count; i++)
        {
            Assert.Equal(expected[i].Value.Type, g.Metadata[i].Value.Type);
            Assert.Equal(expected[i].Value.ToString(), g.Metadata[i].Value.ToString());
        }
        Assert.Equal(ulong.MaxValue, g.Find("t.u64")!.As<ulong>());
        Assert.Equal(0x7FC0_1234, BitConverter.SingleToInt32Bits(g.Find("t.nan")!.As<float>()));
        Assert.Equal(["<unk>", "<s>", "</s>", "▁the"], g.Find("t.arr.str")!.AsArray().Get<string>());
        var nested = g.Find("t.arr.nested")!.AsArray();
        Assert.Equal(GgufValueType.Array, nested.ElementType);
        Assert.Equal([1, 2], nested.Get<GgufArray>()[0].Get<int>());
        Assert.Equal([1.5, 2.5], nested.Get<GgufArray>()[2].Get<GgufArray>()[0].Get<double>());
        Assert.Equal(GgufValueType.Bool, nested.Get<GgufArray>()[2].Get<GgufArray>()[1].ElementType);

        var src = SmallGgufTensors();
        Assert.Equal(src.Select(t => t.Name), g.Tensors.Select(t => t.Name));
        Assert.Equal([72L, 210, 32, 64], g.Tensors.Select(t => t.ByteSize));
        Assert.All(g.Tensors, t => Assert.Equal(0, t.RelativeOffset % 32));

        var f = g.ToTensorFile();
        Assert.Equal(TensorFileFormat.Gguf, f.Format);
        var q = f.Tensors.Single(t => t.Name == "blk.0.attn_q.weight");
        Assert.Equal(DType.Packed, q.DType);
        Assert.Equal(GgmlTypes.Q4_0, q.GgmlType);
        Assert.Equal([2L, 64L], q.Shape); // reversed: outermost first
        var n = f.Tensors.Single(t => t.Name == "output_norm.weight");
        Assert.Equal(DType.F32, n.DType);
        Assert.Equal([2L, 8L], n.Shape);
        Assert.Equal(DType.F16, f.Tensors.Single(t => t.Name == "token_embd.weight").DType);
        Assert.Equal(f.FileLength, n.Offset + n.Length);
        Assert.Equal("llama", f.Metadata["general.architecture"]);
        Assert.Contains("(4 × string)", f.Metadata["t.arr.str"]);
        Assert.Equal("3", f.Metadata["GGUF.version"]);
        foreach (var t in src)
        {
            var info = f.Tensors.Single(x => x.Name == t.Name);
            var ms = new MemoryStream();
            t.Data.CopyTo(ms);
            Assert.Equal(ms.ToArray(), bytes.AsSpan((int)info.Offset, (int)info.Length).ToArray());
        }
    }

    [Fact]
    public void RewriteIsByteIdentical()
    {
        var bytes = SmallGguf();
        var src = new MemoryStream(bytes);
        var g = GgufFile.Parse(src, null);
        var output = new MemoryStream();
        GgufWriter.Rewrite(g, src, output);
        Assert.Equal(bytes, output.ToArray());
    }

    [Fact]
    public void EveryGgmlTypeRoundTrips()
    {
        var tensors = GgmlTypes.All.Select(t => new GgufTensor($"t.{t.Name}", t.Id, [t.BlockSize * 2, 3],
            TensorByteSource.FromMemory(Bytes(6 * t.TypeSize, t.Id)))).ToList();
        var bytes = GgufWriter.ToBytes([new("general.alignment", GgufValue.UInt32(16))], tensors);
        var src = new MemoryStream(bytes);
        var g = GgufFile.Parse(src, null);
        var f = g.ToTensorFile();
        foreach (var t in GgmlTypes.All)
        {
            var info = f.Tensors.Single(x => x.Name == $"t.{t.Name}");
            Assert.Equal(t.Id, info.GgmlType);
            Assert.Equal(6 * t.TypeSize, info.Length);
            Assert.Equal([3L, t.BlockSize * 2], info.Shape);
            Assert.Equal(t.BlockSize == 1 ? GgmlTypes.ToDType(t.Id) : DType.Packed, info.DType);
            Assert.NotEqual(DType.Packed, t.BlockSize == 1 ? info.DType : DType.F32);
            Assert.Equal(Bytes(6 * t.TypeSize, t.Id), bytes.AsSpan((int)info.Offset, (int)info.Length).ToArray());
        }
        var output = new MemoryStream();
        GgufWriter.Rewrite(g, src, output);
        Assert.Equal(bytes, output.ToArray());
    }

    [Fact]
    public void CustomAlignmentIsHonoured()
    {
        var kv = new List<KeyValuePair<string, GgufValue>> { new(GgufFile.AlignmentKey, GgufValue.UInt32(64)) };
        var bytes = GgufWriter.ToBytes(kv, SmallGgufTensors());
        var g = GgufFile.Parse(new MemoryStream(bytes), null);
        Assert.Equal(64u, g.Alignment);
        Assert.Equal(0, g.DataOffset % 64);
        Assert.All(g.Tensors, t => Assert.Equal(0, t.RelativeOffset % 64));
        var output = new MemoryStream();
        GgufWriter.Rewrite(g, new MemoryStream(bytes), output);
        Assert.Equal(bytes, output.ToArray());
    }

    [Fact]
    public void EveryTruncationIsAFormatError()
    {
        var bytes = SmallGguf();
        var g = GgufFile.Parse(new MemoryStream(bytes), null);
        long end = g.Tensors.Max(t => t.Offset + t.ByteSize);
        Assert.Equal(bytes.Length, end);
        for (int n = 0; n < end; n++)
        {
            var prefix = bytes.AsSpan(0, n).ToArray();
            Assert.Throws<TensorFormatException>(() => GgufFile.Parse(new MemoryStream(prefix), "cut.gguf"));
        }
    }

    [Fact]
    public void AbsurdCounts()
    {
        var bytes = SmallGguf();
        var p = (byte[])bytes.Clone();
        BinaryPrimitives.WriteUInt64LittleEndian(p.AsSpan(8), ulong.MaxValue);
        Assert.Equal("tensor_count", Fails(p).Field);
        p = (byte[])bytes.Clone();
        BinaryPrimitives.WriteUInt64LittleEndian(p.AsSpan(16), 1UL << 40);
        Assert.Equal("metadata_kv_count", Fails(p).Field);
        p = (byte[])bytes.Clone();
        BinaryPrimitives.WriteUInt64LittleEndian(p.AsSpan(24), 1UL << 60); // first key's length
        Assert.Contains("string length", Fails(p).Message);

        // Array element count: the 8 bytes after the element type of "t.arr.f32".
        p = (byte[])bytes.Clone();
        int at = IndexOf(p, "t.arr.f32") + "t.arr.f32".Length + 4 + 4;
        BinaryPrimitives.WriteUInt64LittleEndian(p.AsSpan(at), 1UL << 62);
        Assert.Contains("cannot fit", Fails(p).Message);

        // A string inside an array claiming more bytes than the file has.
        p = (byte[])bytes.Clone();
        at = IndexOf(p, "t.arr.str") + "t.arr.str".Length + 4 + 4 + 8;
        BinaryPrimitives.WriteUInt64LittleEndian(p.AsSpan(at), (ulong)p.Length);
        Assert.Contains("t.arr.str[0]", Fails(p).Field);
    }

    [Fact]
    public void UnknownAndRemovedGgmlTypesNameTheTensor()
    {
        foreach (uint bad in new uint[] { 4, 5, 31, 36, 43, 1000, uint.MaxValue })
        {
            var p = SmallGguf();
            // The type id follows the dims of the first tensor: name, n_dims (4), 2 dims (16).
            int at = IndexOf(p, "blk.0.attn_q.weight") + "blk.0.attn_q.weight".Length + 4 + 16;
            BinaryPrimitives.WriteUInt32LittleEndian(p.AsSpan(at), bad);
            var e = Fails(p);
            Assert.Equal("type", e.Field);
            Assert.Contains("blk.0.attn_q.weight", e.Message);
            Assert.Contains(bad.ToString(), e.Message);
        }
    }

    [Fact]
    public void BadAlignment()
    {
        var kv = new List<KeyValuePair<string, GgufValue>> { new(GgufFile.AlignmentKey, GgufValue.UInt32(32)) };
        var bytes = GgufWriter.ToBytes(kv, []);
        int valueAt = IndexOf(bytes, GgufFile.AlignmentKey) + GgufFile.AlignmentKey.Length + 4;
        foreach (uint bad in new uint[] { 0, 3, 48, 0x80000001 })
        {
            var p = (byte[])bytes.Clone();
            BinaryPrimitives.WriteUInt32LittleEndian(p.AsSpan(valueAt), bad);
            Assert.Equal(GgufFile.AlignmentKey, Fails(p).Field);
        }
        var wrongType = (byte[])bytes.Clone();
        BinaryPrimitives.WriteUInt32LittleEndian(wrongType.AsSpan(valueAt - 4), (uint)GgufValueType.Int32);
        Assert.Contains("uint32", Fails(wrongType).Message);
        Assert.Throws<ArgumentException>(() => GgufWriter.ToBytes([new(GgufFile.AlignmentKey, GgufValue.UInt32(48))], []));
    }

    [Fact]
    public void MisalignedOrOutOfBoundsOffsets()
    {
        var bytes = SmallGguf();
        var g = GgufFile.Parse(new MemoryStream(bytes), null);
        int offsetAt = IndexOf(bytes, "output_norm.weight") + "output_norm.weight".Length + 4 + 16 + 4;
        Assert.Equal((ulong)g.Tensors[3].RelativeOffset, BinaryPrimitives.ReadUInt64LittleEndian(bytes.AsSpan(offsetAt)));

        var p = (byte[])bytes.Clone();
        BinaryPrimitives.WriteUInt64LittleEndian(p.AsSpan(offsetAt), (ulong)g.Tensors[3].RelativeOffset + 4);
        var e = Fails(p);
        Assert.Equal("offset", e.Field);
        Assert.Contains("output_norm.weight", e.Message);

        BinaryPrimitives.WriteUInt64LittleEndian(p.AsSpan(offsetAt), (ulong)g.Tensors[3].RelativeOffset + 32);
        Assert.Contains("beyond", Fails(p).Message);
        BinaryPrimitives.WriteUInt64LittleEndian(p.AsSpan(offsetAt), ulong.MaxValue - 31);
        Assert.Contains("beyond", Fails(p).Message);
        BinaryPrimitives.WriteUInt64LittleEndian(p.AsSpan(offsetAt), 0); // on top of the Q4_0 tensor
        Assert.Contains("overlaps", Fails(p).Message);
    }

    [Fact]
    public void VersionsAndMagic()
    {
        Assert.Contains("v1", Fails(new Raw().Header(0, 0, version: 1).ToArray()).Message);
        Assert.Contains("big-endian", Fails(new Raw().Header(0, 0, version: 0x03000000).ToArray()).Message);
        Assert.Equal("version", Fails(new Raw().Header(0, 0, version: 4).ToArray()).Field);
        Assert.Equal("magic", Fails(new Raw().Bytes("GGUG"u8).U32(3).U64(0).U64(0).ToArray()).Field);
        var v2 = GgufFile.Parse(new MemoryStream(new Raw().Header(0, 1, version: 2).Str("k").U32(8).Str("v").ToArray()), null);
        Assert.Equal(2u, v2.Version);
        Assert.Equal("v", v2.Find("k")!.AsString());
    }

    [Fact]
    public void DeepNestingIsRefused()
    {
        var raw = new Raw().Header(0, 1).Str("deep").U32(9);
        for (int i = 0; i < 20; i++) raw.U32(9).U64(1);
        raw.U32(0).U64(0);
        Assert.Contains("nested", Fails(raw.ToArray()).Message);

        var ok = new Raw().Header(0, 1).Str("ok").U32(9);
        for (int i = 0; i < 3; i++) ok.U32(9).U64(1);
        ok.U32(0).U64(0);
        Assert.Single(GgufFile.Parse(new MemoryStream(ok.ToArray()), null).Metadata);
    }

    [Fact]
    public void MalformedValuesAndTensorInfos()
    {
        Assert.Contains("unknown value type", Fails(new Raw().Header(0, 1).Str("k").U32(13).Zeros(8).ToArray()).Message);
        Assert.Contains("neither 0 nor 1", Fails(new Raw().Header(0, 1).Str("k").U32(7).Bytes([2]).ToArray()).Message);
        Assert.Contains("UTF-8", Fails(new Raw().Header(0, 1).U64(1).Bytes([0xC3]).U32(0).Bytes([0]).ToArray()).Message);
        Assert.Contains("duplicate", Fails(new Raw().Header(0, 2).Str("k").U32(0).Bytes([0]).Str("k").U32(0).Bytes([0]).ToArray()).Message);

        var t = new Raw().Header(1, 0).Str("t").U32(5).U64(1).U64(1).U64(1).U64(1).U64(1).U32(0).U64(0).Zeros(64).ToArray();
        Assert.Equal("n_dims", Fails(t).Field);
        var rowNotBlocks = new Raw().Header(1, 0).Str("q").U32(1).U64(33).U32(GgmlTypes.Q4_0).U64(0).Zeros(128).ToArray();
        Assert.Contains("block size", Fails(rowNotBlocks).Message);
        var overflow = new Raw().Header(1, 0).Str("o").U32(3).U64(1UL << 40).U64(1UL << 40).U64(1UL << 40).U32(0).U64(0).Zeros(64).ToArray();
        Assert.Contains("overflow", Fails(overflow).Message);
        var dupName = new Raw().Header(2, 0).Str("d").U32(1).U64(1).U32(0).U64(0).Str("d").U32(1).U64(1).U32(0).U64(32).Zeros(96).ToArray();
        Assert.Contains("duplicate tensor", Fails(dupName).Message);
    }

    [Fact]
    public void TypeTableMatchesGgml()
    {
        (int Id, string Name, int Block, int Size)[] expected =
        [
            (0, "F32", 1, 4), (1, "F16", 1, 2), (2, "Q4_0", 32, 18), (3, "Q4_1", 32, 20), (6, "Q5_0", 32, 22),
            (7, "Q5_1", 32, 24), (8, "Q8_0", 32, 34), (9, "Q8_1", 32, 36), (10, "Q2_K", 256, 84), (11, "Q3_K", 256, 110),
            (12, "Q4_K", 256, 144), (13, "Q5_K", 256, 176), (14, "Q6_K", 256, 210), (15, "Q8_K", 256, 292),
            (16, "IQ2_XXS", 256, 66), (17, "IQ2_XS", 256, 74), (18, "IQ3_XXS", 256, 98), (19, "IQ1_S", 256, 50),
            (20, "IQ4_NL", 32, 18), (21, "IQ3_S", 256, 110), (22, "IQ2_S", 256, 82), (23, "IQ4_XS", 256, 136),
            (24, "I8", 1, 1), (25, "I16", 1, 2), (26, "I32", 1, 4), (27, "I64", 1, 8), (28, "F64", 1, 8),
            (29, "IQ1_M", 256, 56), (30, "BF16", 1, 2), (34, "TQ1_0", 256, 54), (35, "TQ2_0", 256, 66),
            (39, "MXFP4", 32, 17), (40, "NVFP4", 64, 36), (41, "Q1_0", 128, 18), (42, "Q2_0", 64, 18),
        ];
        Assert.Equal(expected, GgmlTypes.All.Select(t => (t.Id, t.Name, t.BlockSize, t.TypeSize)));
        foreach (int removed in new[] { 4, 5, 31, 32, 33, 36, 37, 38 }) Assert.False(GgmlTypes.TryGet(removed, out _));
    }

    /// <summary>Cross-checks block sizes against the ggml golden quantizer outputs when the shared data folder exists.</summary>
    [SkippableFact]
    public void TypeTableMatchesGoldenDataWhenAvailable()
    {
        var dir = TestFiles.SharedOrSkip("golden/ggml");
        foreach (var file in Directory.GetFiles(dir, "*.json"))
        {
            using var doc = System.Text.Json.JsonDocument.Parse(File.ReadAllBytes(file));
            foreach (var c in doc.RootElement.EnumerateArray())
            {
                int id = c.GetProperty("ggml_type").GetInt32();
                Assert.True(GgmlTypes.TryGet(id, out var info), $"type {id}");
                Assert.Equal(c.GetProperty("block_size").GetInt32(), info.BlockSize);
                Assert.Equal(c.GetProperty("type_size").GetInt32(), info.TypeSize);
                Assert.Equal(c.GetProperty("type").GetString(), info.Name, ignoreCase: true);
            }
        }
    }
}
