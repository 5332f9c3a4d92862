using TensorCodec.Containers.Tcz;

namespace TensorCodec.Tests.Tcz;

public class TczCorruptionTests
{
    /// <summary>A small but structured .tcz: a safetensors-like float file cut into several chunks.</summary>
    static byte[] SmallTcz(ScratchDir dir)
    {
        var input = dir.File("small.safetensors");
        var rng = new Random(7);
        var values = new float[600];
        for (int i = 0; i < values.Length; i++) values[i] = (float)(rng.NextDouble() * 2 - 1) * 0.05f;
        var data = new byte[values.Length * 4];
        Buffer.BlockCopy(values, 0, data, 0, data.Length);
        var header = System.Text.Encoding.UTF8.GetBytes("{\"__metadata__\":{\"k\":\"v\"},\"w\":{\"dtype\":\"F32\",\"shape\":[20,30],\"data_offsets\":[0,2400]}}");
        using (var fs = File.Create(input))
        {
            fs.Write(BitConverter.GetBytes((long)header.Length));
            fs.Write(header);
            fs.Write(data);
        }
        var tcz = dir.File("small.tcz");
        TczWriter.CompressFile(input, tcz, false, new TczCompressOptions { ChunkSize = 512 });
        return File.ReadAllBytes(tcz);
    }

    /// <summary>Writes <paramref name="good"/> with byte <paramref name="pos"/> XORed by <paramref name="mask"/> as <paramref name="name"/>; returns its path.</summary>
    static string WriteFlipped(ScratchDir dir, byte[] good, string name, int pos, int mask)
    {
        var bad = (byte[])good.Clone();
        bad[pos] ^= (byte)mask;
        var path = dir.File(name);
        File.WriteAllBytes(path, bad);
        return path;
    }

    /// <summary>Opening and decompressing <paramref name="path"/> must fail with an I/O-family error.</summary>
    static IOException DecompressFails(string path) => Assert.ThrowsAny<IOException>(() =>
    {
        using var r = TczReader.Open(path);
        r.DecompressTo(null);
    });

    [Fact]
    public void EveryFlippedByteIsDetected()
    {
        using var dir = new ScratchDir();
        var good = SmallTcz(dir);
        for (int pos = 0; pos < good.Length; pos++)
        {
            var path = WriteFlipped(dir, good, "bad.tcz", pos, 1 << (pos % 8));
            var ex = DecompressFails(path);
            Assert.Contains(path, ex.Message);
        }
    }

    [Fact]
    public void ChunkDamageNamesTheTensorAndChunk()
    {
        using var dir = new ScratchDir();
        var good = SmallTcz(dir);
        var path = WriteFlipped(dir, good, "bad.tcz", TczConstants.HeaderSize + 200, 0x10); // inside the first chunks' payload
        using var r = TczReader.Open(path);
        var ex = Assert.Throws<TensorFormatException>(() => r.DecompressTo(null));
        Assert.Contains("chunk", ex.Message);
        Assert.True(ex.Message.Contains("tensor 'w'") || ex.Message.Contains("opaque segment"), ex.Message);
    }

    [Fact]
    public void EveryTruncationIsRefused()
    {
        using var dir = new ScratchDir();
        var good = SmallTcz(dir);
        var path = dir.File("cut.tcz");
        for (int len = 0; len < good.Length; len++)
        {
            File.WriteAllBytes(path, good.AsSpan(0, len).ToArray());
            DecompressFails(path);
        }
    }

    [Fact]
    public void WrongMagicAndFutureVersionsAreRefusedClearly()
    {
        using var dir = new ScratchDir();
        var good = SmallTcz(dir);
        var path = dir.File("x.tcz");
        var bad = (byte[])good.Clone();
        bad[1] = (byte)'X';
        File.WriteAllBytes(path, bad);
        var ex = Assert.Throws<TensorFormatException>(() => TczReader.Open(path));
        Assert.Contains("magic", ex.Message);

        bad = (byte[])good.Clone();
        bad[8] = 2; // major version 2
        File.WriteAllBytes(path, bad);
        ex = Assert.Throws<TensorFormatException>(() => TczReader.Open(path));
        Assert.Contains("unsupported .tcz version 2", ex.Message);
    }

    [Theory]
    [InlineData(2)]
    [InlineData(4)]
    public void ChunkDamageIsReportedWithParallelWorkers(int threads)
    {
        // A chunk failing on a pool worker must surface on the caller, once, and not leave the pipeline waiting.
        using var dir = new ScratchDir();
        var good = SmallTcz(dir);
        var path = WriteFlipped(dir, good, "bad.tcz", TczConstants.HeaderSize + 200, 0x10);
        using var r = TczReader.Open(path);
        var ex = Assert.Throws<TensorFormatException>(() => r.DecompressTo(null, threads));
        Assert.Contains("chunk", ex.Message);
        using var ok = TczReader.Open(dir.File("small.tcz"));
        ok.DecompressTo(null, threads);
    }

    [Fact]
    public void DecompressOfDamagedFileLeavesNoOutput()
    {
        using var dir = new ScratchDir();
        var good = SmallTcz(dir);
        var path = WriteFlipped(dir, good, "bad.tcz", TczConstants.HeaderSize + 5, 1);
        var outPath = dir.File("restored");
        using (var r = TczReader.Open(path))
            Assert.ThrowsAny<IOException>(() => r.DecompressToFile(outPath, false));
        Assert.False(File.Exists(outPath));
        Assert.DoesNotContain(Directory.GetFiles(dir.Path), f => f.EndsWith(".tmp"));
    }
}
