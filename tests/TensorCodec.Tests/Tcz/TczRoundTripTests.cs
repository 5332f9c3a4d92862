using System.Security.Cryptography;
using CsCheck;
using TensorCodec.Containers;
using TensorCodec.Containers.Tcz;

namespace TensorCodec.Tests.Tcz;

public class TczRoundTripTests
{
    static byte[] RoundTrip(string input, ScratchDir dir, int threads = 1, int chunkSize = TczConstants.DefaultChunkSize)
    {
        var tcz = dir.File(Path.GetFileName(input) + ".rt.tcz");
        var back = dir.File(Path.GetFileName(input) + ".rt.back");
        TczWriter.CompressFile(input, tcz, overwrite: false, new TczCompressOptions { Threads = threads, ChunkSize = chunkSize });
        using (var r = TczReader.Open(tcz)) r.DecompressToFile(back, overwrite: false, threads);
        return File.ReadAllBytes(back);
    }

    [Theory]
    [InlineData("stories260K.bin", 1)]
    [InlineData("stories260K.bin", 2)]
    [InlineData("bard-3m-bf16.safetensors", 1)]
    [InlineData("bard-3m-bf16.safetensors", 2)]
    public void RealModelsRoundTripByteExact(string sample, int threads)
    {
        using var dir = new ScratchDir();
        var path = TestFiles.Sample(sample);
        var before = SHA256.HashData(File.ReadAllBytes(path));
        var back = RoundTrip(path, dir, threads);
        Assert.Equal(before, SHA256.HashData(back));
        Assert.Equal(before, SHA256.HashData(File.ReadAllBytes(path))); // input untouched
    }

    [Fact]
    public void RealModelsAreRecognisedAndCompressed()
    {
        using var dir = new ScratchDir();
        var bf16 = TestFiles.Sample("bard-3m-bf16.safetensors");
        var result = TczWriter.CompressFile(bf16, dir.File("m.tcz"), false);
        Assert.Equal(TensorFileFormat.Safetensors, result.Format);
        // DFloat11/ZipNN: BF16 weights code to about 2/3 of their size; anything near 100% means the float path is broken.
        Assert.InRange(result.Ratio, 0.5, 0.75);
        var llama = TczWriter.CompressFile(TestFiles.Sample("stories260K.bin"), dir.File("s.tcz"), false);
        Assert.Equal(TensorFileFormat.Llama2c, llama.Format);
        Assert.True(llama.Ratio < 0.95, $"F32 ratio {llama.Ratio}");
    }

    [Fact]
    public void ReadTensorGivesTheOriginalBytesWithoutTheRest()
    {
        using var dir = new ScratchDir();
        var path = TestFiles.Sample("bard-3m-bf16.safetensors");
        var tcz = dir.File("m.tcz");
        TczWriter.CompressFile(path, tcz, false, new TczCompressOptions { ChunkSize = 64 * 1024 });
        var layout = TensorFileReader.Open(path);
        var original = File.ReadAllBytes(path);
        using var reader = TczReader.Open(tcz);
        foreach (var t in layout.Tensors)
        {
            var bytes = reader.ReadTensor(t.Name);
            Assert.True(original.AsSpan((int)t.Offset, (int)t.Length).SequenceEqual(bytes), t.Name);
        }
        Assert.Throws<KeyNotFoundException>(() => reader.ReadTensor("no.such.tensor"));
    }

    [Fact]
    public void ThreadCountDoesNotChangeTheBytes()
    {
        // Workers run on the thread pool, each with its own encoder: the output must not depend on which ran what.
        using var dir = new ScratchDir();
        var path = TestFiles.Sample("bard-3m-bf16.safetensors");
        byte[]? first = null;
        foreach (int threads in new[] { 1, 2, 3, 8 })
        {
            var tcz = dir.File($"t{threads}.tcz");
            TczWriter.CompressFile(path, tcz, false, new TczCompressOptions { Threads = threads, ChunkSize = 48 * 1024 });
            var bytes = File.ReadAllBytes(tcz);
            first ??= bytes;
            Assert.True(first.AsSpan().SequenceEqual(bytes), $"{threads} threads");
        }
    }

    [Fact]
    public void ReadTensorToAStreamMatchesTheArray()
    {
        using var dir = new ScratchDir();
        var tcz = dir.File("m.tcz");
        TczWriter.CompressFile(TestFiles.Sample("bard-3m-bf16.safetensors"), tcz, false, new TczCompressOptions { ChunkSize = 16 * 1024 });
        using var reader = TczReader.Open(tcz);
        foreach (var seg in reader.Index.Tensors)
        {
            using var ms = new MemoryStream();
            reader.ReadTensor(seg.Name, ms);
            Assert.Equal(reader.ReadTensor(seg.Name), ms.ToArray());
        }
    }

    [Fact]
    public void RandomOpaqueFilesRoundTripAndBarelyGrow()
    {
        using var dir = new ScratchDir();
        Gen.Byte.Array[0, 5000].Sample(bytes =>
        {
            // CsCheck samples on several threads at once: every sample gets its own files.
            var input = dir.File(Guid.NewGuid().ToString("N"));
            File.WriteAllBytes(input, bytes);
            var tcz = input + ".tcz";
            var result = TczWriter.CompressFile(input, tcz, false, new TczCompressOptions { ChunkSize = 1024 });
            int chunks = (bytes.Length + 1023) / 1024;
            // Fixed overhead (header, index, trailer) plus a bounded cost per chunk.
            Assert.True(result.CompressedBytes <= bytes.Length + 100 + 32 * chunks, $"{bytes.Length} → {result.CompressedBytes}");
            Assert.Equal(bytes, RoundTrip(input, dir, 1, 1024));
        }, iter: 60);
    }

    [Fact]
    public void EmptyFileRoundTrips()
    {
        using var dir = new ScratchDir();
        var input = dir.File("empty");
        File.WriteAllBytes(input, []);
        Assert.Empty(RoundTrip(input, dir));
    }

    [Fact]
    public void OutputIsNeverOverwrittenWithoutForce()
    {
        using var dir = new ScratchDir();
        var input = TestFiles.Sample("stories260K.bin");
        var tcz = dir.File("s.tcz");
        File.WriteAllText(tcz, "precious");
        Assert.Throws<IOException>(() => TczWriter.CompressFile(input, tcz, overwrite: false));
        Assert.Equal("precious", File.ReadAllText(tcz));
        TczWriter.CompressFile(input, tcz, overwrite: true);
        Assert.NotEqual("precious", File.ReadAllText(tcz));
        Assert.Single(Directory.GetFiles(dir.Path)); // no temp files left behind
    }

    [Fact]
    public void CancelledCompressLeavesNothingUnderTheFinalName()
    {
        using var dir = new ScratchDir();
        var tcz = dir.File("s.tcz");
        using var cts = new CancellationTokenSource();
        cts.Cancel();
        Assert.ThrowsAny<OperationCanceledException>(() =>
            TczWriter.CompressFile(TestFiles.Sample("stories260K.bin"), tcz, false, new TczCompressOptions { Cancellation = cts.Token }));
        Assert.Empty(Directory.GetFiles(dir.Path));
    }
}
