using TensorCodec.Containers;
using TensorCodec.Containers.Tcz;
using TensorCodec.Numerics;
using static TensorCodec.Tests.Containers.ContainerTestData;

namespace TensorCodec.Tests.Tcz;

/// <summary>The writer and the reader share one set of limits: the largest value the writer accepts
/// reads back, and the first value the reader would refuse is refused by the writer, at compress time.</summary>
public class TczLimitsTests
{
    static string Safetensors(ScratchDir dir, string name, long[] shape)
    {
        var path = dir.File("limits.safetensors");
        File.Delete(path);
        File.WriteAllBytes(path, SafetensorsWriter.ToBytes([new(name, DType.F32, shape, TensorByteSource.FromMemory(Bytes(8, 5)))], []));
        return path;
    }

    static void RoundTrips(string input, ScratchDir dir, int chunkSize = TczConstants.DefaultChunkSize)
    {
        var tcz = dir.File("limits.tcz");
        var back = dir.File("limits.back");
        File.Delete(tcz); File.Delete(back);
        TczWriter.CompressFile(input, tcz, overwrite: false, new TczCompressOptions { ChunkSize = chunkSize });
        using (var r = TczReader.Open(tcz)) r.DecompressToFile(back, overwrite: false);
        Assert.Equal(File.ReadAllBytes(input), File.ReadAllBytes(back));
    }

    static void WriterRefuses(string input, ScratchDir dir, params string[] words)
    {
        var tcz = dir.File("refused.tcz");
        var e = Assert.Throws<TensorFormatException>(() => TczWriter.CompressFile(input, tcz, overwrite: false));
        foreach (var w in words) Assert.Contains(w, e.Message);
        Assert.DoesNotContain('\n', e.Message);
        Assert.True(e.Message.Length < 600, $"message of {e.Message.Length} chars");
        Assert.False(File.Exists(tcz));
    }

    static long[] Rank(int rank) => [.. Enumerable.Repeat(1L, rank - 1), 2];

    [Fact]
    public void RankAtTheLimitRoundTripsAndOneMoreIsRefusedByTheWriter()
    {
        using var dir = new ScratchDir();
        RoundTrips(Safetensors(dir, "t", Rank(TczConstants.MaxRank)), dir);
        WriterRefuses(Safetensors(dir, "deep", Rank(TczConstants.MaxRank + 1)), dir, "'deep'", $"rank {TczConstants.MaxRank + 1}", $"{TczConstants.MaxRank}");
        WriterRefuses(Safetensors(dir, "fuzzed", Rank(10_001)), dir, "'fuzzed'", "rank 10001");
    }

    [Fact]
    public void NameAtTheLimitRoundTripsAndOneByteMoreIsRefusedByTheWriter()
    {
        using var dir = new ScratchDir();
        // Multi-byte characters: the limit counts UTF-8 bytes, not chars.
        RoundTrips(Safetensors(dir, new string('é', TczConstants.MaxNameBytes / 2), [2]), dir);
        WriterRefuses(Safetensors(dir, new string('é', TczConstants.MaxNameBytes / 2) + "x", [2]), dir,
            $"name length {TczConstants.MaxNameBytes + 1}", $"{TczConstants.MaxNameBytes}");
        WriterRefuses(Safetensors(dir, new string('n', 70_000), [2]), dir, "name length 70000");
    }

    [Fact]
    public void ChunkSizeAtTheLimitRoundTripsAndOneMoreIsRefusedByTheWriter()
    {
        using var dir = new ScratchDir();
        var input = dir.File("chunk.bin");
        File.WriteAllBytes(input, Bytes(3000, 9));
        RoundTrips(input, dir, TczConstants.MaxChunkSize);
        Assert.Throws<ArgumentOutOfRangeException>(() => TczWriter.CompressFile(input, dir.File("c.tcz"), false,
            new TczCompressOptions { ChunkSize = TczConstants.MaxChunkSize + 1 }));
    }

    static TczSegment Segment(int ggml = -1, long[]? shape = null, DType dtype = DType.F32) => new()
    { Kind = TczSegmentKind.Tensor, Name = "w", DType = dtype, GgmlType = ggml, Shape = shape ?? [2], Length = 8 };

    [Fact]
    public void FieldsNoSourceReaderProducesAreCheckedAgainstTheReadersLimitsToo()
    {
        // No container reader yields these today; the writer still refuses what TczIndex.Parse would.
        TczIndex.CheckWritable(Segment(ggml: TczConstants.MaxGgmlType), "x");
        TczIndex.CheckWritable(Segment(ggml: -1), "x");
        Assert.Contains("ggml type 1024", Assert.Throws<TensorFormatException>(() => TczIndex.CheckWritable(Segment(ggml: TczConstants.MaxGgmlType + 1), "x")).Message);
        Assert.Contains("negative", Assert.Throws<TensorFormatException>(() => TczIndex.CheckWritable(Segment(shape: [2, -1]), "x")).Message);
        Assert.Contains("unknown dtype", Assert.Throws<TensorFormatException>(() => TczIndex.CheckWritable(Segment(dtype: (DType)200), "x")).Message);
    }

    [Fact]
    public void AnIndexLargerThanTheReaderAcceptsIsRefusedBeforeAnythingIsRead()
    {
        using var dir = new ScratchDir();
        var input = dir.File("huge.bin");
        // Sparse where the file system allows: 200 GiB at 64-byte chunks is ~3.4e9 chunks, an index of ~80 GiB.
        using (var f = new FileStream(input, FileMode.CreateNew)) f.SetLength(200L << 30);
        var e = Assert.Throws<TensorFormatException>(() => TczWriter.CompressFile(input, dir.File("h.tcz"), false, new TczCompressOptions { ChunkSize = 64 }));
        Assert.Contains("use a larger chunk size", e.Message);
        Assert.False(File.Exists(dir.File("h.tcz")));
    }

    [Fact]
    public void A_shape_whose_value_count_cannot_be_real_is_refused_by_writer_and_reader()
    {
        // Regression: a crafted index with huge dimensions made inspect throw OverflowException in FileReport.TotalValues.
        long[][] bad = [[long.MaxValue / 2, 4], [1L << 40, 1L << 40], [65]]; // overflow, overflow, 65 values in 8 bytes
        foreach (var shape in bad)
        {
            var seg = Segment(shape: shape);
            Assert.Contains("shape", Assert.Throws<TensorFormatException>(() => TczIndex.CheckWritable(seg, "x")).Message);
            var index = new TczIndex(TensorFileFormat.Safetensors, 0, 0, TczConstants.DefaultChunkSize, [seg]).Serialize();
            var e = Assert.Throws<TensorFormatException>(() => TczIndex.Parse(index, 100, 100, "crafted.tcz"));
            Assert.Contains("segment[0].shape", e.Message);
        }
        TczIndex.CheckWritable(Segment(shape: [64]), "x"); // 64 one-bit values fit in 8 bytes
        TczIndex.CheckWritable(Segment(shape: [0, 1L << 62]), "x"); // an empty tensor
    }
}
