using System.Security.Cryptography;
using TensorCodec.Containers;
using TensorCodec.Containers.Tcz;
using TensorCodec.Formats;
using TensorCodec.Numerics;

namespace TensorCodec.Tests.Tcz;

/// <summary>A GGUF we write ourselves — F32, F16, BF16 and block-quantized tensors — must come back byte for byte.</summary>
public class TczGgufRoundTripTests
{
    static byte[] MakeGguf()
    {
        var stories = File.ReadAllBytes(TestFiles.Sample("stories260K.bin"));
        var layout = TensorFileReader.Open(TestFiles.Sample("stories260K.bin"));
        var tensors = new List<GgufTensor>();
        foreach (var t in layout.Tensors.Where(t => t.Shape.Length >= 2 && t.Name != "freq_cis_real" && t.Name != "freq_cis_imag"))
        {
            var floats = new float[t.Length / 4];
            Buffer.BlockCopy(stories, (int)t.Offset, floats, 0, (int)t.Length);
            // w1 is regrouped into 256-wide rows (its size allows it) so a K-quant can hold it.
            long row = t.Name == "w1" ? 256 : t.Shape[^1];
            long[] dims = [row, floats.Length / row];
            // One tensor per storage kind the container must handle.
            var (type, bytes) = t.Name switch
            {
                "wq" => (GgmlTypes.Q8_0, Quantize("q8_0", floats, (int)row)),
                "w1" => (GgmlTypes.Q4_K, Quantize("q4_K", floats, (int)row)),
                "wo" => (GgmlTypes.F16, Convert(floats, f => BitConverter.HalfToUInt16Bits((Half)f))),
                "w2" => (GgmlTypes.BF16, Convert(floats, f => (ushort)(BitConverter.SingleToUInt32Bits(f) >> 16))),
                _ => (GgmlTypes.F32, stories.AsSpan((int)t.Offset, (int)t.Length).ToArray()),
            };
            Assert.Equal(0, floats.Length % row);
            tensors.Add(new GgufTensor(t.Name, type, dims, TensorByteSource.FromMemory(bytes)));
        }
        var meta = new List<KeyValuePair<string, GgufValue>>
        {
            new("general.architecture", GgufValue.String("llama")),
            new("general.alignment", GgufValue.UInt32(64)),
            new("test.nested", GgufValue.Array(GgufArray.Of(GgufArray.Of(1, 2, 3), GgufArray.Of(4)))),
        };
        return GgufWriter.ToBytes(meta, tensors);
    }

    static byte[] Quantize(string type, float[] values, int row)
    {
        var f = BlockFormats.Get(type);
        var dst = new byte[values.Length / f.BlockSize * f.BlockBytes];
        f.Quantize(values, dst, row);
        return dst;
    }

    static byte[] Convert(float[] values, Func<float, ushort> conv)
    {
        var dst = new byte[values.Length * 2];
        for (int i = 0; i < values.Length; i++) BitConverter.TryWriteBytes(dst.AsSpan(2 * i), conv(values[i]));
        return dst;
    }

    [Fact]
    public void WrittenGgufRoundTripsByteExact()
    {
        using var dir = new ScratchDir();
        var gguf = dir.File("model.gguf");
        File.WriteAllBytes(gguf, MakeGguf());
        var layout = TensorFileReader.Open(gguf);
        Assert.Equal(TensorFileFormat.Gguf, layout.Format);
        Assert.Contains(layout.Tensors, t => t.DType == DType.Packed);
        Assert.Contains(layout.Tensors, t => t.DType == DType.BF16);

        var result = TczWriter.CompressFile(gguf, dir.File("model.tcz"), false, new TczCompressOptions { Threads = 2, ChunkSize = 16 * 1024 });
        Assert.Equal(TensorFileFormat.Gguf, result.Format);
        Assert.True(result.CompressedBytes < result.OriginalBytes);
        using var reader = TczReader.Open(dir.File("model.tcz"));
        reader.DecompressToFile(dir.File("back.gguf"), false, threads: 2);
        Assert.Equal(SHA256.HashData(File.ReadAllBytes(gguf)), SHA256.HashData(File.ReadAllBytes(dir.File("back.gguf"))));

        // A block-quantized tensor still counts its weights (bits/value depends on it).
        var q8Segment = reader.FindTensor("wq");
        Assert.Equal(q8Segment.Shape.Aggregate(1L, (a, d) => a * d), q8Segment.ElementCount);
        Assert.Equal(8.5, q8Segment.Length * 8.0 / q8Segment.ElementCount, 3); // Q8_0: 34 bytes per 32 weights

        // Random access to a quantized tensor gives its exact blocks.
        var q8 = layout.Tensors.Single(t => t.Name == "wq");
        Assert.Equal(File.ReadAllBytes(gguf).AsSpan((int)q8.Offset, (int)q8.Length).ToArray(), reader.ReadTensor("wq"));
    }
}
