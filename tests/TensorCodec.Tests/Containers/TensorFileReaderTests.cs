using System.Buffers.Binary;
using System.Text;
using TensorCodec.Containers;
using static TensorCodec.Tests.Containers.ContainerTestData;

namespace TensorCodec.Tests.Containers;

public class TensorFileReaderTests
{
    static TensorFileFormat Detect(byte[] b) => TensorFileReader.Detect(new MemoryStream(b));

    [Fact]
    public void DetectsEachFormat()
    {
        Assert.Equal(TensorFileFormat.Gguf, Detect(SmallGguf()));
        Assert.Equal(TensorFileFormat.Safetensors, Detect(SmallSafetensors()));
        Assert.Equal(TensorFileFormat.Llama2c, Detect(TinyLlama2c()));
        Assert.Equal(TensorFileFormat.Opaque, Detect([]));
        Assert.Equal(TensorFileFormat.Opaque, Detect(Encoding.UTF8.GetBytes("hello, world; not a model at all")));
        Assert.Equal(TensorFileFormat.Llama2c, TensorFileReader.Detect(Stories260K));
        Assert.Equal(TensorFileFormat.Safetensors, TensorFileReader.Detect(BardBf16));
    }

    [Fact]
    public void OpensRealFiles()
    {
        Assert.Equal(13, TensorFileReader.Open(Stories260K).Tensors.Count);
        var st = TensorFileReader.Open(BardBf16);
        Assert.Contains(st.Tensors, t => t.Name == "lm_head.weight");
    }

    [Fact]
    public void OpaqueFilesHaveNoTensors()
    {
        var junk = Bytes(1000, 4);
        junk[0] = 0; // keep it from looking like anything
        var f = TensorFileReader.Read(new MemoryStream(junk), "junk");
        Assert.Equal(TensorFileFormat.Opaque, f.Format);
        Assert.Equal(1000, f.FileLength);
        Assert.Empty(f.Tensors);
    }

    [Fact]
    public void GgufMagicWithBadHeaderIsAnError()
    {
        var b = SmallGguf();
        BinaryPrimitives.WriteUInt32LittleEndian(b.AsSpan(4), 99);
        Assert.Throws<TensorFormatException>(() => TensorFileReader.Read(new MemoryStream(b), "x.gguf"));
        Assert.Throws<TensorFormatException>(() => TensorFileReader.Read(new MemoryStream("GGUF"u8.ToArray()), "x.gguf"));
    }

    [Fact]
    public void PlausibleSafetensorsWithBadHeaderIsAnError()
    {
        var b = RawSafetensors("{\"a\": oops}", 4);
        Assert.Equal(TensorFileFormat.Safetensors, Detect(b));
        Assert.Throws<TensorFormatException>(() => TensorFileReader.Read(new MemoryStream(b), "x.safetensors"));
        // Header length that does not fit the file: not safetensors at all.
        var c = RawSafetensors("{}", 0);
        BinaryPrimitives.WriteUInt64LittleEndian(c, 1000);
        Assert.Equal(TensorFileFormat.Opaque, Detect(c));
    }

    [Fact]
    public void DetectRestoresPosition()
    {
        var ms = new MemoryStream(SmallGguf()) { Position = 17 };
        TensorFileReader.Detect(ms);
        Assert.Equal(17, ms.Position);
    }
}
