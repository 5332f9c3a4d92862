using System.Buffers.Binary;
using System.Runtime.InteropServices;
using System.Text;
using TensorCodec.Containers;
using TensorCodec.Quantization;

namespace TensorCodec.Tests.Quantization;

/// <summary>The quantize.imatrix.* keys, written as llama-quantize writes them (tools/quantize/quantize.cpp).</summary>
public class ImatrixMetadataTests
{
    const string Tensor = "blk.0.attn_q.weight";

    static float[] Weights() => Enumerable.Range(0, 256).Select(i => 1f + i % 7).ToArray();

    static void WriteDat(string path, int? chunks, string? dataset)
    {
        using var s = File.Create(path);
        ImportanceMatrix.WriteDat(s, [new(Tensor, Weights()), new("blk.1.attn_q.weight", Weights())]);
        Span<byte> b4 = stackalloc byte[4];
        if (chunks is int c) { BinaryPrimitives.WriteInt32LittleEndian(b4, c); s.Write(b4); }
        if (dataset is not null)
        {
            var d = Encoding.UTF8.GetBytes(dataset);
            BinaryPrimitives.WriteInt32LittleEndian(b4, d.Length);
            s.Write(b4);
            s.Write(d);
        }
    }

    static List<KeyValuePair<string, GgufValue>> Metadata(string path)
    {
        using var s = File.OpenRead(path);
        return GgufFile.Parse(s, path).Metadata.ToList();
    }

    static List<KeyValuePair<string, GgufValue>> ImatrixKeys(string path) =>
        Metadata(path).Where(kv => kv.Key.StartsWith("quantize.imatrix.", StringComparison.Ordinal)).ToList();

    [Fact]
    public void LegacyDatTrailerGivesDatasetAndChunkCount()
    {
        using var dir = new ScratchDir();
        var im = dir.File("imatrix.dat");
        WriteDat(im, 10, "wiki.train.raw");
        var m = ImportanceMatrix.Load(im);
        Assert.Equal(["wiki.train.raw"], m.Datasets);
        Assert.Equal(10, m.ChunkCount);

        var outPath = dir.File("im.gguf");
        ModelQuantizerTests.QuantizeBard(outPath, "q4_K_M", imatrix: im);
        var meta = Metadata(outPath);
        // Written last, in llama-quantize's order, integers as UInt32.
        Assert.Equal(["quantize.imatrix.file", "quantize.imatrix.dataset", "quantize.imatrix.entries_count", "quantize.imatrix.chunks_count"],
            meta.TakeLast(4).Select(kv => kv.Key));
        var keys = meta.ToDictionary(kv => kv.Key, kv => kv.Value);
        Assert.Equal(im, keys["quantize.imatrix.file"].AsString());
        Assert.Equal("wiki.train.raw", keys["quantize.imatrix.dataset"].AsString());
        Assert.Equal(GgufValueType.UInt32, keys["quantize.imatrix.entries_count"].Type);
        Assert.Equal(2u, keys["quantize.imatrix.entries_count"].As<uint>());
        Assert.Equal(10u, keys["quantize.imatrix.chunks_count"].As<uint>());
    }

    [Fact]
    public void LegacyDatWithoutTrailerWritesFileAndEntriesOnly()
    {
        using var dir = new ScratchDir();
        var im = dir.File("imatrix.dat");
        WriteDat(im, null, null);
        Assert.Empty(ImportanceMatrix.Load(im).Datasets);
        Assert.Equal(0, ImportanceMatrix.Load(im).ChunkCount);
        var outPath = dir.File("im.gguf");
        ModelQuantizerTests.QuantizeBard(outPath, "q4_K_M", imatrix: im);
        Assert.Equal(["quantize.imatrix.file", "quantize.imatrix.entries_count"], ImatrixKeys(outPath).Select(kv => kv.Key));

        // A zero chunk count and an empty name are "unknown" too; a name ends at a NUL.
        WriteDat(im, 0, "");
        Assert.Empty(ImportanceMatrix.Load(im).Datasets);
        WriteDat(im, 3, "calib\0junk");
        Assert.Equal(["calib"], ImportanceMatrix.Load(im).Datasets);
    }

    [Fact]
    public void GgufImatrixMetadataIsCarriedOver()
    {
        using var dir = new ScratchDir();
        var im = dir.File("imatrix.gguf");
        var sums = Weights();
        var tensors = new[]
        {
            new GgufTensor(Tensor + ".in_sum2", GgmlTypes.F32, [256, 1], TensorByteSource.FromMemory(MemoryMarshal.AsBytes(sums.AsSpan()).ToArray())),
            new GgufTensor(Tensor + ".counts", GgmlTypes.F32, [1, 1], TensorByteSource.FromMemory(MemoryMarshal.AsBytes(new float[] { 2 }.AsSpan()).ToArray())),
        };
        using (var s = File.Create(im))
            GgufWriter.Write(s, [
                new("general.type", GgufValue.String("imatrix")),
                new("imatrix.datasets", GgufValue.Array(GgufArray.Of("first.txt", "second.txt"))),
                new("imatrix.chunk_count", GgufValue.UInt32(7)),
                new("imatrix.chunk_size", GgufValue.UInt32(512)),
            ], tensors);

        var outPath = dir.File("im.gguf");
        ModelQuantizerTests.QuantizeBard(outPath, "q4_K_M", imatrix: im);
        var keys = ImatrixKeys(outPath).ToDictionary(kv => kv.Key, kv => kv.Value);
        Assert.Equal("first.txt", keys["quantize.imatrix.dataset"].AsString()); // llama-quantize writes the first only
        Assert.Equal(1u, keys["quantize.imatrix.entries_count"].As<uint>());
        Assert.Equal(7u, keys["quantize.imatrix.chunks_count"].As<uint>());

        // Requantizing with another imatrix replaces the keys it sets and keeps the others, as gguf_set_val does.
        var dat = dir.File("other.dat");
        WriteDat(dat, null, null);
        var again = dir.File("again.gguf");
        ModelQuantizer.Quantize(outPath, again, new ModelQuantizeOptions { Mix = QuantMix.Get("q4_K_M"), ImatrixPath = dat });
        var meta = ImatrixKeys(again);
        Assert.Equal(["quantize.imatrix.dataset", "quantize.imatrix.chunks_count", "quantize.imatrix.file", "quantize.imatrix.entries_count"],
            meta.Select(kv => kv.Key));
        Assert.Equal(dat, meta[2].Value.AsString());
        Assert.Equal(2u, meta[3].Value.As<uint>());
    }

    [Fact]
    public void NoImatrixNoKeysAndLongPathsAreCut()
    {
        using var dir = new ScratchDir();
        var outPath = dir.File("plain.gguf");
        ModelQuantizerTests.QuantizeBard(outPath, "q8_0");
        Assert.Empty(ImatrixKeys(outPath));

        var m = new ImportanceMatrix(new() { [Tensor] = Weights() }, ["d"], 0);
        var meta = new List<KeyValuePair<string, GgufValue>>();
        ModelQuantizer.SetImatrixMetadata(meta, m, new string('a', 126) + "é");
        Assert.Equal(new string('a', 126), meta[0].Value.AsString()); // 128 bytes: the 2-byte é does not fit in 127
        ModelQuantizer.SetImatrixMetadata(meta, new ImportanceMatrix([]), "x");
        Assert.Equal(3, meta.Count); // an empty matrix writes nothing
    }
}
