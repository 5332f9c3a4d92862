using System.Security.Cryptography;
using TensorCodec.Containers;
using TensorCodec.Numerics;
using static TensorCodec.Tests.Containers.ContainerTestData;

namespace TensorCodec.Tests.Containers;

public class SafetensorsTests
{
    static TensorFormatException Fails(byte[] file) =>
        Assert.Throws<TensorFormatException>(() => SafetensorsFile.Read(new MemoryStream(file), "t.safetensors"));

    const string A4 = "\"a\":{\"dtype\":\"U8\",\"shape\":[4],\"data_offsets\":[0,4]}";

    /// <summary>The file of <paramref name="json"/> plus <paramref name="dataLength"/> bytes is refused naming <paramref name="field"/>, with every one of <paramref name="says"/> in the message.</summary>
    static void FailsAt(string json, int dataLength, string field, params string[] says)
    {
        var e = Fails(RawSafetensors(json, dataLength));
        Assert.Equal(field, e.Field);
        foreach (var text in says) Assert.Contains(text, e.Message);
    }

    [Fact]
    public void ReadsRealBf16Model()
    {
        using var fs = File.OpenRead(BardBf16);
        var f = SafetensorsFile.Read(fs, BardBf16);
        Assert.Equal(TensorFileFormat.Safetensors, f.Format);
        Assert.Equal(fs.Length, f.FileLength);
        var embed = f.Tensors.Single(t => t.Name == "model.embed_tokens.weight");
        Assert.Equal(DType.BF16, embed.DType);
        Assert.Equal([1024L, 256L], embed.Shape);
        Assert.Equal(1024 * 256 * 2, embed.Length);
        var head = f.Tensors.Single(t => t.Name == "lm_head.weight");
        Assert.Equal([1024L, 256L], head.Shape);
        Assert.All(f.Tensors, t => Assert.Equal(DType.BF16, t.DType));
        Assert.Equal(4 * 9 + 3, f.Tensors.Count);
        Assert.Equal("pt", f.Metadata["format"]);
        // Contiguous, ascending, ending at EOF.
        for (int i = 1; i < f.Tensors.Count; i++)
            Assert.Equal(f.Tensors[i - 1].Offset + f.Tensors[i - 1].Length, f.Tensors[i].Offset);
        Assert.Equal(f.FileLength, f.Tensors[^1].Offset + f.Tensors[^1].Length);
    }

    [Fact]
    public void RealFileRewritesByteExactlyInItsOwnOrder()
    {
        // bard-3m's header lists tensors in model order with __metadata__ last (not the Rust
        // reference's dtype/name order), so it round-trips with AsGiven + MetadataFirst=false.
        var original = File.ReadAllBytes(BardBf16);
        using var src = new MemoryStream(original);
        var f = SafetensorsFile.Read(src, BardBf16);
        var tensors = f.InFileOrder().Select(t =>
            new SafetensorsTensor(t.Name, t.DType, t.Shape, TensorByteSource.FromStream(src, t.Offset, t.Length)));
        var rewritten = SafetensorsWriter.ToBytes(tensors, f.Metadata,
            new SafetensorsWriteOptions { Order = SafetensorsTensorOrder.AsGiven, MetadataFirst = false });
        Assert.Equal(SHA256.HashData(original), SHA256.HashData(rewritten));

        // Reference order changes the header but not the tensors or metadata.
        var sorted = SafetensorsWriter.ToBytes(f.InFileOrder().Select(t =>
            new SafetensorsTensor(t.Name, t.DType, t.Shape, TensorByteSource.FromStream(src, t.Offset, t.Length))), f.Metadata);
        var g = SafetensorsFile.Read(new MemoryStream(sorted), null);
        Assert.Equal(f.Metadata, g.Metadata);
        Assert.Equal(f.Tensors.Select(t => t.Name).Order(StringComparer.Ordinal), g.Tensors.Select(t => t.Name));
        foreach (var t in f.Tensors)
        {
            var u = g.Tensors.Single(x => x.Name == t.Name);
            Assert.Equal(t.Shape, u.Shape);
            Assert.True(original.AsSpan((int)t.Offset, (int)t.Length).SequenceEqual(sorted.AsSpan((int)u.Offset, (int)u.Length)), t.Name);
        }
    }

    [Fact]
    public void AllDTypesRoundTrip()
    {
        DType[] all = [DType.F64, DType.F32, DType.F16, DType.BF16, DType.I64, DType.I32, DType.I16, DType.I8,
            DType.U8, DType.U16, DType.U32, DType.U64, DType.Bool, DType.F8E4M3, DType.F8E5M2];
        var data = all.ToDictionary(d => d, d => Bytes(6 * d.ElementSize(), (int)d));
        var tensors = all.Select(d => new SafetensorsTensor($"t.{d}", d, [2, 3], TensorByteSource.FromMemory(data[d])))
            .Append(new SafetensorsTensor("empty", DType.F32, [0, 5], TensorByteSource.FromMemory(Array.Empty<byte>())))
            .Append(new SafetensorsTensor("scalar", DType.F16, [], TensorByteSource.FromMemory(Bytes(2, 99))));
        var meta = new Dictionary<string, string> { ["format"] = "pt", ["quote\"\\\n\u0001é"] = "ünïcode ▁" };
        var bytes = SafetensorsWriter.ToBytes(tensors, meta);

        Assert.Equal(0, (BitConverter.ToInt64(bytes, 0) + 8) % 8);
        var f = SafetensorsFile.Read(new MemoryStream(bytes), null);
        Assert.Equal(meta, f.Metadata);
        foreach (var d in all)
        {
            var t = f.Tensors.Single(x => x.Name == $"t.{d}");
            Assert.Equal(d, t.DType);
            Assert.Equal([2L, 3L], t.Shape);
            Assert.Equal(data[d], bytes.AsSpan((int)t.Offset, (int)t.Length).ToArray());
            Assert.Equal(0, (t.Offset - f.Tensors[0].Offset) % d.ElementSize());
        }
        Assert.Equal(0, f.Tensors.Single(t => t.Name == "empty").Length);
        Assert.Empty(f.Tensors.Single(t => t.Name == "scalar").Shape);

        // Reference order: descending dtype (8-byte types first), then name.
        var header = System.Text.Encoding.UTF8.GetString(bytes, 8, (int)BitConverter.ToInt64(bytes, 0));
        Assert.StartsWith("{\"__metadata__\":{", header);
        Assert.True(header.IndexOf("\"t.U64\"") < header.IndexOf("\"t.F64\"") || header.IndexOf("\"t.I64\"") < header.IndexOf("\"t.F32\""));
        Assert.True(header.IndexOf("\"t.F64\"") < header.IndexOf("\"t.F32\""));
        Assert.True(header.IndexOf("\"t.F32\"") < header.IndexOf("\"t.BF16\""));
        Assert.True(header.IndexOf("\"t.U8\"") < header.IndexOf("\"t.Bool\""));

        // Writing what we read reproduces the file exactly.
        var again = SafetensorsWriter.ToBytes(f.Tensors.Select(t =>
            new SafetensorsTensor(t.Name, t.DType, t.Shape, TensorByteSource.FromMemory(bytes.AsMemory((int)t.Offset, (int)t.Length)))), f.Metadata);
        Assert.Equal(bytes, again);
    }

    [Fact]
    public void WriterRejectsSizeMismatch() =>
        Assert.Throws<ArgumentException>(() => SafetensorsWriter.ToBytes(
            [new("x", DType.F32, [3], TensorByteSource.FromMemory(new byte[8]))]));

    [Fact]
    public void WriterChecksCallbackLength() =>
        Assert.Throws<InvalidOperationException>(() => SafetensorsWriter.ToBytes(
            [new("x", DType.U8, [3], TensorByteSource.FromCallback(3, s => s.Write(new byte[2])))]));

    [Fact]
    public void Overlap() =>
        FailsAt("{" + A4 + ",\"b\":{\"dtype\":\"U8\",\"shape\":[4],\"data_offsets\":[2,6]}}", 6, "data_offsets", "'b'", "overlaps");

    [Fact]
    public void Hole() =>
        FailsAt("{" + A4 + ",\"b\":{\"dtype\":\"U8\",\"shape\":[4],\"data_offsets\":[6,10]}}", 10, "data_offsets", "'b'", "hole");

    [Fact]
    public void HoleAtStart() =>
        Assert.Contains("hole", Fails(RawSafetensors("{\"a\":{\"dtype\":\"U8\",\"shape\":[4],\"data_offsets\":[2,6]}}", 6)).Message);

    [Fact]
    public void TrailingBytes() =>
        Assert.Contains("trailing", Fails(RawSafetensors("{" + A4 + "}", 6)).Message);

    [Fact]
    public void OutOfBounds() =>
        FailsAt("{\"a\":{\"dtype\":\"U8\",\"shape\":[8],\"data_offsets\":[0,8]}}", 4, "data_offsets", "'a'");

    [Fact]
    public void BeginAfterEnd() =>
        Assert.Contains("after end", Fails(RawSafetensors("{\"a\":{\"dtype\":\"U8\",\"shape\":[0],\"data_offsets\":[4,0]}}", 4)).Message);

    [Fact]
    public void ShapeDtypeMismatch() =>
        FailsAt("{\"a\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,8]}}", 8, "shape", "'a'");

    [Fact]
    public void OverflowingShape() =>
        FailsAt("{\"a\":{\"dtype\":\"F32\",\"shape\":[4294967296,4294967296,4],\"data_offsets\":[0,8]}}", 8, "shape", "overflows");

    [Fact]
    public void UnknownDtype() =>
        FailsAt("{\"a\":{\"dtype\":\"F4\",\"shape\":[4],\"data_offsets\":[0,2]}}", 2, "dtype", "'a'", "F4");

    [Theory]
    [InlineData("{\"a\":{\"shape\":[4],\"data_offsets\":[0,4]}}", "dtype")]
    [InlineData("{\"a\":{\"dtype\":\"U8\",\"data_offsets\":[0,4]}}", "shape")]
    [InlineData("{\"a\":{\"dtype\":\"U8\",\"shape\":[4]}}", "data_offsets")]
    [InlineData("{\"a\":{\"dtype\":\"U8\",\"shape\":[4],\"data_offsets\":[0,4,5]}}", "data_offsets")]
    [InlineData("{\"a\":{\"dtype\":\"U8\",\"shape\":[-4],\"data_offsets\":[0,4]}}", "shape")]
    [InlineData("{\"a\":{\"dtype\":\"U8\",\"shape\":[4.0],\"data_offsets\":[0,4]}}", "shape")]
    [InlineData("{\"a\":{\"dtype\":\"U8\",\"shape\":[4],\"data_offsets\":[0,\"4\"]}}", "data_offsets")]
    [InlineData("{\"a\":{\"dtype\":8,\"shape\":[4],\"data_offsets\":[0,4]}}", "dtype")]
    [InlineData("{\"a\":{\"dtype\":\"U8\",\"dtype\":\"U8\",\"shape\":[4],\"data_offsets\":[0,4]}}", "dtype")]
    [InlineData("{\"a\":[1]}", "a")]
    [InlineData("{" + A4 + "," + A4 + "}", "a")]
    [InlineData("{\"__metadata__\":{\"k\":1}," + A4 + "}", "__metadata__.k")]
    [InlineData("{\"__metadata__\":[]," + A4 + "}", "__metadata__")]
    public void MissingOrMalformedFields(string json, string field)
    {
        var e = Fails(RawSafetensors(json, 4));
        Assert.Equal(field, e.Field);
    }

    [Theory]
    [InlineData("{\"a\":")]
    [InlineData("{" + A4 + "} x")]
    [InlineData("{" + A4 + ",}")]
    [InlineData("{" + A4 + "}{}")]
    [InlineData("{/*c*/" + A4 + "}")]
    [InlineData("{\"\\ud800\":{}}")]
    [InlineData("[]")]
    public void BadJson(string json)
    {
        var e = Fails(RawSafetensors(json, 4));
        Assert.Equal("header", e.Field);
        Assert.NotNull(e.Offset);
    }

    [Fact]
    public void InvalidUtf8()
    {
        var file = RawSafetensors("{\"a\":{\"dtype\":\"U8\",\"shape\":[4],\"data_offsets\":[0,4]}}", 4);
        file[10] = 0xFF;
        var e = Fails(file);
        Assert.Contains("UTF-8", e.Message);
        Assert.Equal(10, e.Offset);
    }

    [Fact]
    public void HeaderLengthLimits()
    {
        var file = RawSafetensors("{" + A4 + "}", 4);
        BitConverter.TryWriteBytes(file.AsSpan(0, 8), 100_000_001UL);
        Assert.Equal("header_length", Fails(file).Field);
        BitConverter.TryWriteBytes(file.AsSpan(0, 8), (ulong)file.Length - 7);
        Assert.Equal("header_length", Fails(file).Field);
        BitConverter.TryWriteBytes(file.AsSpan(0, 8), ulong.MaxValue);
        Assert.Equal("header_length", Fails(file).Field);
        Assert.Equal("header_length", Fails(new byte[5]).Field);
    }

    [Fact]
    public void UnknownEntryFieldsAreIgnoredLikeTheReference()
    {
        var f = SafetensorsFile.Read(new MemoryStream(RawSafetensors(
            "{\"a\":{\"dtype\":\"U8\",\"extra\":{\"x\":[1,2]},\"shape\":[4],\"data_offsets\":[0,4]}}   ", 4)), null);
        Assert.Single(f.Tensors);
    }

    [Fact]
    public void EmptyTensorListIsValid()
    {
        var f = SafetensorsFile.Read(new MemoryStream(RawSafetensors("{}      ", 0)), null);
        Assert.Empty(f.Tensors);
    }
}
