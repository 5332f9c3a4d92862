using System.Security.Cryptography;
using TensorCodec.Coders;
using TensorCodec.Containers;
using TensorCodec.Containers.Tcz;
using TensorCodec.Formats;
using TensorCodec.Quantization;

namespace TensorCodec.Tests.Tcz;

/// <summary>A GGUF of every type chunk mode 3 codes, through the container: mode 3 is chosen, chunks are whole blocks,
/// the file comes back byte for byte, and a damaged mode-3 chunk is caught.</summary>
public class TczGgmlFieldsTests
{
    static readonly string[] Types = ["q4_0", "q4_1", "q5_0", "q5_1", "q8_0", "q4_K", "q5_K", "q6_K"];

    internal static byte[] MakeGguf()
    {
        var rng = new Random(11);
        var tensors = new List<GgufTensor>();
        foreach (var name in Types)
        {
            var f = BlockFormats.Get(name);
            var x = new float[256 * 96];
            for (int i = 0; i < x.Length; i++) x[i] = (float)((rng.NextDouble() + rng.NextDouble() + rng.NextDouble() - 1.5) * 0.05);
            var q = new byte[x.Length / f.BlockSize * f.BlockBytes];
            f.Quantize(x, q, 256);
            tensors.Add(new GgufTensor("t." + name, f.GgmlTypeId, [256, 96], TensorByteSource.FromMemory(q)));
        }
        var meta = new List<KeyValuePair<string, GgufValue>> { new("general.architecture", GgufValue.String("llama")) };
        return GgufWriter.ToBytes(meta, tensors);
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void QuantizedGgufUsesMode3Or4AndRoundTrips(bool tables)
    {
        // tables: mode 4 alone (the default options' choice); else mode 3 alone.
        var codec = tables ? new ChunkCodecOptions() : new ChunkCodecOptions { GgmlFields = true, GgmlTables = false };
        string method = tables ? "GgmlTables" : "GgmlFields";
        byte mode = tables ? ChunkCodec.ModeGgmlTables : ChunkCodec.ModeGgml;
        using var dir = new ScratchDir();
        var gguf = dir.File("q.gguf");
        File.WriteAllBytes(gguf, MakeGguf());
        // 5000- or 20001-byte chunks: no block size divides them, so the writer must cut on block boundaries. Mode 4 needs
        // the larger: its tables (a 256-symbol one for Q8_0) do not pay on 5000 or 9000 bytes of every type.
        var result = TczWriter.CompressFile(gguf, dir.File("q.tcz"), false,
            new TczCompressOptions { ChunkSize = tables ? 20001 : 5000, Threads = 2, CollectStatistics = true, Codec = codec });
        foreach (var seg in result.Segments.Where(s => s.Segment.Kind == TczSegmentKind.Tensor))
        {
            Assert.True(GgmlTypes.TryGet(seg.Segment.GgmlType, out var info));
            Assert.All(seg.Segment.Chunks.SkipLast(1), c => Assert.Equal(0, c.RawLength % info.TypeSize));
            Assert.True(seg.Stats.Streams.Any(s => s.Method == method), $"{seg.Segment.Name}: {string.Join(", ", seg.Stats.Streams.Select(s => s.Method))}");
        }
        using (var reader = TczReader.Open(dir.File("q.tcz")))
            reader.DecompressToFile(dir.File("back.gguf"), false, threads: 2);
        Assert.Equal(SHA256.HashData(File.ReadAllBytes(gguf)), SHA256.HashData(File.ReadAllBytes(dir.File("back.gguf"))));

        // Flip a bit in the middle of a mode-3/4 chunk: the chunk hash catches it, naming file and tensor.
        var tcz = File.ReadAllBytes(dir.File("q.tcz"));
        var chunk = result.Segments.First(s => s.Segment.Name == "t.q4_K").Segment.Chunks[0];
        Assert.Equal(mode, tcz[chunk.FileOffset]);
        tcz[chunk.FileOffset + chunk.EncodedLength / 2] ^= 0x20;
        var bad = dir.File("bad.tcz");
        File.WriteAllBytes(bad, tcz);
        using var r = TczReader.Open(bad);
        var ex = Assert.Throws<TensorFormatException>(() => r.DecompressTo(null));
        Assert.Contains("t.q4_K", ex.Message);
    }

    [SkippableFact]
    public void Bard3mQ4KmGgufRoundTripsSmallerThanZstd19()
    {
        var model = TestFiles.SharedOrSkip("data/models/bard-3m/model.safetensors");
        using var dir = new ScratchDir();
        var gguf = dir.File("bard.gguf");
        ModelQuantizer.Quantize(model, gguf, new ModelQuantizeOptions { Mix = QuantMix.Get("q4_K_M") });
        var tcz = dir.File("bard.tcz");
        var result = TczWriter.CompressFile(gguf, tcz, false, new TczCompressOptions { Codec = new ChunkCodecOptions { ZstdLevel = 19, GgmlFields = true } });
        using (var reader = TczReader.Open(tcz)) reader.DecompressToFile(dir.File("back.gguf"), false);
        Assert.Equal(SHA256.HashData(File.ReadAllBytes(gguf)), SHA256.HashData(File.ReadAllBytes(dir.File("back.gguf"))));
        using var z = new ZstdSharp.Compressor(19);
        long zstd = z.Wrap(File.ReadAllBytes(gguf)).Length;
        // Measured 0.961 × zstd -19 (BENCHMARKS.md, "Quantized GGUF"); 0.975 leaves room for quantizer changes.
        Assert.True(result.CompressedBytes < 0.975 * zstd, $"{result.CompressedBytes} vs zstd -19 {zstd}");
    }
}
