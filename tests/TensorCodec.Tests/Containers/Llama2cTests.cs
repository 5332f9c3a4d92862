using System.Buffers.Binary;
using System.Runtime.InteropServices;
using TensorCodec.Containers;
using TensorCodec.Numerics;
using static TensorCodec.Tests.Containers.ContainerTestData;

namespace TensorCodec.Tests.Containers;

public class Llama2cTests
{
    static TensorFormatException Fails(byte[] file) =>
        Assert.Throws<TensorFormatException>(() => Llama2cFile.Read(new MemoryStream(file), "t.bin"));

    [Fact]
    public void ReadsStories260K()
    {
        using var fs = File.OpenRead(Stories260K);
        Assert.True(Llama2cFile.TryDetect(fs, fs.Length));
        var f = Llama2cFile.Read(fs, Stories260K);
        Assert.Equal(TensorFileFormat.Llama2c, f.Format);
        Assert.Equal("64", f.Metadata["dim"]);
        Assert.Equal("172", f.Metadata["hidden_dim"]);
        Assert.Equal("5", f.Metadata["n_layers"]);
        Assert.Equal("8", f.Metadata["n_heads"]);
        Assert.Equal("4", f.Metadata["n_kv_heads"]);
        Assert.Equal("512", f.Metadata["vocab_size"]);
        Assert.Equal("512", f.Metadata["seq_len"]);
        Assert.Equal("true", f.Metadata["shared_classifier"]);

        var shapes = f.Tensors.ToDictionary(t => t.Name, t => t.Shape);
        Assert.Equal(
            ["token_embedding_table", "rms_att_weight", "wq", "wk", "wv", "wo", "rms_ffn_weight", "w1", "w2", "w3",
             "rms_final_weight", "freq_cis_real", "freq_cis_imag"],
            f.Tensors.Select(t => t.Name));
        Assert.Equal([512L, 64], shapes["token_embedding_table"]);
        Assert.Equal([5L, 64], shapes["rms_att_weight"]);
        Assert.Equal([5L, 64, 64], shapes["wq"]);
        Assert.Equal([5L, 32, 64], shapes["wk"]);
        Assert.Equal([5L, 32, 64], shapes["wv"]);
        Assert.Equal([5L, 172, 64], shapes["w1"]);
        Assert.Equal([5L, 64, 172], shapes["w2"]);
        Assert.Equal([64L], shapes["rms_final_weight"]);
        Assert.Equal([512L, 4], shapes["freq_cis_real"]);
        Assert.All(f.Tensors, t => Assert.Equal(DType.F32, t.DType));
        Assert.Equal(28, f.Tensors[0].Offset);
        Assert.Equal(f.FileLength, f.Tensors[^1].Offset + f.Tensors[^1].Length);

        // rms weights of a trained model are positive-ish around 1, not garbage.
        var bytes = File.ReadAllBytes(Stories260K);
        var rmsFinal = f.Tensors.Single(t => t.Name == "rms_final_weight");
        var values = MemoryMarshal.Cast<byte, float>(bytes.AsSpan((int)rmsFinal.Offset, (int)rmsFinal.Length)).ToArray();
        Assert.All(values, v => Assert.InRange(v, -10f, 10f));
    }

    [Fact]
    public void WriterReproducesStories260K()
    {
        var bytes = File.ReadAllBytes(Stories260K);
        var f = Llama2cFile.Read(new MemoryStream(bytes), null);
        var config = Llama2cFile.ReadConfig(new MemoryStream(bytes), null);
        Assert.Equal(new Llama2cConfig(64, 172, 5, 8, 4, 512, 512, true), config);
        var tensors = f.Tensors.ToDictionary(t => t.Name,
            t => (ReadOnlyMemory<float>)MemoryMarshal.Cast<byte, float>(bytes.AsSpan((int)t.Offset, (int)t.Length)).ToArray());
        Assert.Equal(bytes, Llama2cWriter.ToBytes(config, tensors));
    }

    [Fact]
    public void UnsharedClassifierRoundTrip()
    {
        var c = TinyLlamaConfig(shared: false);
        var w = TinyLlamaWeights(c, 7);
        var bytes = Llama2cWriter.ToBytes(c, w);
        Assert.Equal(-10, BinaryPrimitives.ReadInt32LittleEndian(bytes.AsSpan(20)));
        var f = Llama2cFile.Read(new MemoryStream(bytes), null);
        Assert.Equal("wcls", f.Tensors[^1].Name);
        Assert.Equal([10L, 8], f.Tensors[^1].Shape);
        Assert.Equal("false", f.Metadata["shared_classifier"]);
        foreach (var t in f.Tensors)
            Assert.Equal(w[t.Name].ToArray(), MemoryMarshal.Cast<byte, float>(bytes.AsSpan((int)t.Offset, (int)t.Length)).ToArray());
    }

    [Fact]
    public void WriterComputesRopeTablesWhenOmitted()
    {
        var c = TinyLlamaConfig();
        var w = TinyLlamaWeights(c, 3);
        w.Remove("freq_cis_real");
        w.Remove("freq_cis_imag");
        var bytes = Llama2cWriter.ToBytes(c, w);
        var f = Llama2cFile.Read(new MemoryStream(bytes), null);
        var cos = f.Tensors.Single(t => t.Name == "freq_cis_real");
        var values = MemoryMarshal.Cast<byte, float>(bytes.AsSpan((int)cos.Offset, (int)cos.Length));
        Assert.Equal(1f, values[0]); // position 0: cos(0)
        Assert.Throws<ArgumentException>(() => Llama2cWriter.ToBytes(c, new Dictionary<string, ReadOnlyMemory<float>>()));
    }

    [Fact]
    public void OddHeadSizeUsesRunCsFlatRopeSize()
    {
        var c = new Llama2cConfig(6, 4, 1, 2, 1, 5, 4); // head size 3: run.c skips 4*3/2 = 6 floats per table
        var w = TinyLlamaWeights(c, 9);
        w.Remove("freq_cis_real");
        w.Remove("freq_cis_imag");
        var bytes = Llama2cWriter.ToBytes(c, w);
        Assert.Equal(c.FileSize(), bytes.Length);
        var f = Llama2cFile.Read(new MemoryStream(bytes), null);
        Assert.Equal([6L], f.Tensors.Single(t => t.Name == "freq_cis_imag").Shape);
    }

    [Fact]
    public void SizeMismatchIsRefusedWithExpectedAndActual()
    {
        var bytes = TinyLlama2c();
        var longer = bytes.Concat(new byte[4]).ToArray();
        Assert.False(Llama2cFile.TryDetect(new MemoryStream(longer), longer.Length));
        var e = Fails(longer);
        Assert.Contains(bytes.Length.ToString(), e.Message);
        Assert.Contains(longer.Length.ToString(), e.Message);
        var shorter = bytes[..^4];
        Assert.False(Llama2cFile.TryDetect(new MemoryStream(shorter), shorter.Length));
        Fails(shorter);
    }

    [Theory]
    [InlineData(0, 0, "dim")]
    [InlineData(1, -3, "hidden_dim")]
    [InlineData(2, 0, "n_layers")]
    [InlineData(3, 3, "header")]          // dim 8 % 3 != 0
    [InlineData(4, 2, "header")]          // n_heads 2, n_kv_heads 2 fine but sizes change -> size mismatch
    [InlineData(4, 3, "header")]          // 2 % 3 != 0
    [InlineData(5, int.MinValue, "vocab_size")]
    [InlineData(6, -1, "seq_len")]
    public void BadHeaderFields(int field, int value, string expectedField)
    {
        var bytes = TinyLlama2c();
        BinaryPrimitives.WriteInt32LittleEndian(bytes.AsSpan(field * 4), value);
        Assert.False(Llama2cFile.TryDetect(new MemoryStream(bytes), bytes.Length));
        Assert.Equal(expectedField, Fails(bytes).Field);
    }

    [Fact]
    public void TryDetectNeverThrowsAndRestoresPosition()
    {
        var rng = new Random(1);
        for (int i = 0; i < 500; i++)
        {
            var b = new byte[rng.Next(0, 100)];
            rng.NextBytes(b);
            var ms = new MemoryStream(b) { Position = b.Length / 2 };
            Assert.False(Llama2cFile.TryDetect(ms, b.Length));
            Assert.Equal(b.Length / 2, ms.Position);
        }
        var huge = new byte[28];
        foreach (var i in Enumerable.Range(0, 7)) BinaryPrimitives.WriteInt32LittleEndian(huge.AsSpan(i * 4), int.MaxValue);
        BinaryPrimitives.WriteInt32LittleEndian(huge.AsSpan(12), 1);
        BinaryPrimitives.WriteInt32LittleEndian(huge.AsSpan(16), 1);
        Assert.False(Llama2cFile.TryDetect(new MemoryStream(huge), huge.Length)); // sizes overflow 64 bits
        Fails(huge);
    }
}
