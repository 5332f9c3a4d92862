using System.Buffers.Binary;
using TensorCodec.Coders;
using TensorCodec.Containers;
using TensorCodec.Containers.Tcz;
using TensorCodec.Numerics;
using TensorCodec.Tests.Cli;

namespace TensorCodec.Tests.Tcz;

/// <summary>Delta coding against a reference (--ref), dedup, and the lossy optimizer-state mode (--optimizer-bits).</summary>
public class TczReferenceTests
{
    /// <summary>A small training checkpoint: weights, Adam moments, a BF16 tensor, special values, a tied pair, an I8 tensor.</summary>
    internal static byte[] Checkpoint(int step, bool reshaped = false)
    {
        var rng = new Random(1234); // the same base values at every step; the step moves them
        var moved = new Random(step);
        var tensors = new List<SafetensorsTensor>();
        byte[] F32(int n, Func<int, float> f)
        {
            var b = new byte[n * 4];
            for (int i = 0; i < n; i++) BinaryPrimitives.WriteSingleLittleEndian(b.AsSpan(4 * i), f(i));
            return b;
        }
        void Add(string name, DType dtype, long[] shape, byte[] data) => tensors.Add(new SafetensorsTensor(name, dtype, shape, TensorByteSource.FromMemory(data)));

        var w = new float[64 * 64];
        for (int i = 0; i < w.Length; i++) w[i] = (float)(rng.NextDouble() * 2 - 1) * 0.05f;
        var wd = F32(w.Length, i => w[i] * (1 + (float)(moved.NextDouble() - 0.5) * 0.02f));
        // Special values survive every transform bit for bit.
        BinaryPrimitives.WriteUInt32LittleEndian(wd.AsSpan(0), 0x7FC0_1234u); // NaN with payload
        BinaryPrimitives.WriteUInt32LittleEndian(wd.AsSpan(4), 0x8000_0000u); // −0
        BinaryPrimitives.WriteSingleLittleEndian(wd.AsSpan(8), float.NegativeInfinity);
        Add("model.a.weight", DType.F32, [64, 64], wd);
        Add("optimizer.model.a.weight.exp_avg", DType.F32, [64, 64], F32(w.Length, _ => (float)(moved.NextDouble() - 0.5) * 1e-3f));
        Add("optimizer.model.a.weight.exp_avg_sq", DType.F32, [64, 64], F32(w.Length, i => w[i] * w[i] * 1e-4f * (1 + step % 7 * 0.01f)));
        var bf = new byte[32 * 32 * 2];
        for (int i = 0; i < 32 * 32; i++)
            BinaryPrimitives.WriteUInt16LittleEndian(bf.AsSpan(2 * i), BFloat16.FromFloat(w[i] + (i % 17 == 0 ? step * 1e-4f : 0)));
        Add("model.b.weight", DType.BF16, reshaped ? [16, 64] : [32, 32], bf);
        // A tied pair that the reference (step 1) does not have: coded alone, the second as a duplicate.
        if (step != 1)
        {
            var tied = F32(300, i => (float)Math.Sin(i + step));
            Add("model.tied.first", DType.F32, [300], tied);
            Add("model.tied.second", DType.F32, [300], (byte[])tied.Clone());
        }
        var i8 = new byte[100];
        moved.NextBytes(i8);
        Add("model.codes", DType.I8, [100], i8);
        return SafetensorsWriter.ToBytes(tensors, [new("step", step.ToString())]);
    }

    sealed class Pair : IDisposable
    {
        public readonly ScratchDir Dir = new();
        public readonly string Target, Reference;
        public Pair(bool reshapedReference = false)
        {
            Target = Dir.File("ckpt-2.safetensors");
            Reference = Dir.File("ckpt-1.safetensors");
            File.WriteAllBytes(Target, Checkpoint(2));
            File.WriteAllBytes(Reference, Checkpoint(1, reshapedReference));
        }
        public void Dispose() => Dir.Dispose();
    }

    static byte[] Decompress(string tcz, string? reference, int threads = 1)
    {
        using var r = TczReader.Open(tcz);
        if (reference is not null) r.AttachReference(reference);
        var ms = new MemoryStream();
        r.DecompressTo(ms, threads);
        return ms.ToArray();
    }

    [Theory]
    [InlineData(1, 1 << 20)]
    [InlineData(2, 512)]
    public void RoundTripsByteForByteAndIsSmallerThanAlone(int threads, int chunkSize)
    {
        using var p = new Pair();
        string alone = p.Dir.File("alone.tcz"), delta = p.Dir.File("delta.tcz");
        var plain = TczWriter.CompressFile(p.Target, alone, false, new TczCompressOptions { ChunkSize = chunkSize, Threads = threads });
        var coded = TczWriter.CompressFile(p.Target, delta, false, new TczCompressOptions { ChunkSize = chunkSize, Threads = threads, Reference = p.Reference });
        Assert.Null(plain.Reference);
        Assert.NotNull(coded.Reference);
        Assert.True(coded.CompressedBytes < plain.CompressedBytes, $"{coded.CompressedBytes} vs {plain.CompressedBytes}");
        Assert.Equal(File.ReadAllBytes(p.Target), Decompress(delta, p.Reference, threads));

        using var r = TczReader.Open(delta);
        Assert.Equal("ckpt-1.safetensors", r.Reference!.Label);
        // weights (F32 with NaN/−0/−Inf), exp_avg_sq, the BF16 and the I8 tensor against the reference; exp_avg alone; the tie once.
        Assert.Equal(4, r.Reference.DeltaSegments);
        Assert.Equal(1, r.Reference.DuplicateSegments);
        Assert.False(r.IsLossy);
        r.AttachReference(p.Reference);
        Assert.Equal(File.ReadAllBytes(p.Target).AsSpan((int)TensorFileReader.Open(p.Target).Tensors.First(t => t.Name == "model.a.weight").Offset, 64 * 64 * 4).ToArray(),
            r.ReadTensor("model.a.weight"));
    }

    [Fact]
    public void WithoutReferenceNothingChanges()
    {
        using var p = new Pair();
        string a = p.Dir.File("a.tcz"), b = p.Dir.File("b.tcz");
        TczWriter.CompressFile(p.Target, a, false);
        TczWriter.CompressFile(p.Target, b, false, new TczCompressOptions { Reference = null, OptimizerBits = 0 });
        Assert.Equal(File.ReadAllBytes(a), File.ReadAllBytes(b));
        Assert.Equal(0u, BinaryPrimitives.ReadUInt32LittleEndian(File.ReadAllBytes(a).AsSpan(12)));
        using var r = TczReader.Open(a);
        Assert.Null(r.Reference);
        Assert.Throws<ArgumentException>(() => r.AttachReference(p.Reference));
    }

    [Fact]
    public void IdenticalTensorsCostAlmostNothing()
    {
        using var p = new Pair();
        string tcz = p.Dir.File("self.tcz");
        // Against itself every matched tensor is all-zero after the transform.
        var res = TczWriter.CompressFile(p.Target, tcz, false, new TczCompressOptions { Reference = p.Target });
        foreach (var s in res.Segments.Where(s => s.Segment.Kind == TczSegmentKind.Tensor && !s.Segment.Name.EndsWith(".exp_avg")))
            if (s.Segment.Name != "model.codes")
                Assert.True(s.Segment.EncodedLength <= 24 * s.Segment.Chunks.Count, $"{s.Segment.Name}: {s.Segment.EncodedLength} bytes");
        Assert.Equal(File.ReadAllBytes(p.Target), Decompress(tcz, p.Target));
    }

    [Fact]
    public void MissingReferenceIsRefusedNamingIt()
    {
        using var p = new Pair();
        string tcz = p.Dir.File("d.tcz");
        TczWriter.CompressFile(p.Target, tcz, false, new TczCompressOptions { Reference = p.Reference });
        using var r = TczReader.Open(tcz);
        var e = Assert.Throws<TensorFormatException>(() => r.DecompressTo(Stream.Null));
        Assert.Contains("ckpt-1.safetensors", e.Message);
        Assert.Contains("--ref", e.Message);
        Assert.Throws<TensorFormatException>(() => r.ReadTensor("model.a.weight"));
        // Tensors coded alone stay readable without it.
        Assert.Equal(1200, r.ReadTensor("model.tied.first").Length);
        Assert.Equal(r.ReadTensor("model.tied.first"), r.ReadTensor("model.tied.second"));
    }

    [Fact]
    public void WrongReferenceIsRefusedNamingTheFirstTensorThatDiffers()
    {
        using var p = new Pair();
        string tcz = p.Dir.File("d.tcz");
        TczWriter.CompressFile(p.Target, tcz, false, new TczCompressOptions { Reference = p.Reference });
        using var r = TczReader.Open(tcz);
        // Another step's checkpoint: same names and shapes, other bytes.
        var other = p.Dir.File("ckpt-3.safetensors");
        File.WriteAllBytes(other, Checkpoint(3));
        var e = Assert.Throws<TensorFormatException>(() => r.AttachReference(other));
        Assert.Contains("model.a.weight", e.Message);
        Assert.Contains("ckpt-1.safetensors", e.Message);
        // A reference whose tensor changed shape.
        var reshaped = p.Dir.File("reshaped.safetensors");
        File.WriteAllBytes(reshaped, Checkpoint(1, reshaped: true));
        e = Assert.Throws<TensorFormatException>(() => r.AttachReference(reshaped));
        Assert.Contains("model.b.weight", e.Message);
        // The target itself is not its reference either.
        Assert.Throws<TensorFormatException>(() => r.AttachReference(p.Target));
    }

    [Fact]
    public void UnmatchedTensorsAreCodedAlone()
    {
        using var p = new Pair(reshapedReference: true);
        string tcz = p.Dir.File("d.tcz");
        var res = TczWriter.CompressFile(p.Target, tcz, false, new TczCompressOptions { Reference = p.Reference });
        Assert.Equal(3, res.Reference!.DeltaSegments); // model.b.weight has another shape in the reference
        Assert.Equal(File.ReadAllBytes(p.Target), Decompress(tcz, p.Reference));
    }

    /// <summary>Rewrites the index hash after an edit of header or index, so the section's own checks are reached.</summary>
    internal static void Rehash(byte[] file)
    {
        long indexOffset = BinaryPrimitives.ReadInt64LittleEndian(file.AsSpan(file.Length - 32));
        long indexLength = BinaryPrimitives.ReadInt64LittleEndian(file.AsSpan(file.Length - 24));
        BinaryPrimitives.WriteUInt64LittleEndian(file.AsSpan(file.Length - 16),
            TczWriter.IndexHash(file.AsSpan(0, 16), file.AsSpan((int)indexOffset, (int)indexLength)));
    }

    [Fact]
    public void CorruptArchivesAreRefused()
    {
        using var p = new Pair();
        string tcz = p.Dir.File("d.tcz");
        TczWriter.CompressFile(p.Target, tcz, false, new TczCompressOptions { Reference = p.Reference, ChunkSize = 512 });
        var good = File.ReadAllBytes(tcz);
        Assert.Equal(TczFlags.Reference, BinaryPrimitives.ReadUInt32LittleEndian(good.AsSpan(12)));
        long indexOffset = BinaryPrimitives.ReadInt64LittleEndian(good.AsSpan(good.Length - 32));
        long indexLength = BinaryPrimitives.ReadInt64LittleEndian(good.AsSpan(good.Length - 24));
        string bad = p.Dir.File("bad.tcz");

        IOException Fails(byte[] bytes)
        {
            File.WriteAllBytes(bad, bytes);
            return Assert.ThrowsAny<IOException>(() => Decompress(bad, p.Reference));
        }

        // Flags cleared: a 1.0 reader would see stray bytes after the segments.
        var noFlags = (byte[])good.Clone();
        noFlags[12] = 0;
        Rehash(noFlags);
        Assert.Contains("after the last segment", Fails(noFlags).Message);
        // Lossy flag set on a lossless archive, or an unknown flag.
        var lossy = (byte[])good.Clone();
        lossy[12] = 3;
        Rehash(lossy);
        Assert.Contains("flags", Fails(lossy).Message);
        var unknown = (byte[])good.Clone();
        unknown[12] = 5;
        Rehash(unknown);
        Assert.Contains("unknown feature flags", Fails(unknown).Message);
        // Any flipped bit of the section (the index hash covers it), and every byte of the section re-hashed.
        var flipped = (byte[])good.Clone();
        flipped[indexOffset + indexLength - 3] ^= 1;
        Assert.Contains("checksum", Fails(flipped).Message);
        using (var r = TczReader.Open(tcz))
        {
            int sectionLength = r.Index.Extension!.Length, refused = 0;
            for (int k = 0; k < sectionLength; k++)
            {
                var b = (byte[])good.Clone();
                b[indexOffset + indexLength - sectionLength + k] ^= 0x41;
                Rehash(b);
                File.WriteAllBytes(bad, b);
                // Refused, or harmless (the label is only for messages); never a wrong output.
                try { Assert.Equal(File.ReadAllBytes(p.Target), Decompress(bad, p.Reference)); }
                catch (IOException) { refused++; }
            }
            Assert.True(refused >= sectionLength - "ckpt-1.safetensors".Length, $"{refused} of {sectionLength}");
        }
        // A damaged delta chunk is caught by its checksums.
        var chunk = (byte[])good.Clone();
        chunk[40] ^= 0x10;
        Assert.Contains("checksum", Fails(chunk).Message);
    }

    [Theory]
    [InlineData(0, 8)]
    [InlineData(1, 8)]
    [InlineData(0, 4)]
    [InlineData(2, 4)]
    public void BlockQuantizationStaysWithinItsDocumentedBound(int mapId, int bits)
    {
        var map = (QuantMap)mapId;
        var m = BlockQuantizer.Map(map, bits);
        Assert.Equal(1 << bits, m.Length);
        Assert.Equal(1f, m[^1]);
        double bound = BlockQuantizer.ErrorBound(map, bits);
        // The figures FORMAT.md states.
        double documented = (map, bits) switch
        {
            (QuantMap.SignedDynamic, 8) => 0.00703125,
            (QuantMap.UnsignedDynamic, 8) => 0.003515625,
            (QuantMap.SignedDynamic, 4) => 0.1125,
            _ => 0.0625,
        };
        Assert.Equal(documented, bound, 6);
        int block = bits == 8 ? 256 : 128;
        var rng = new Random(bits * 10 + (int)map);
        int n = 5000;
        var raw = new byte[4 * n];
        var x = new float[n];
        for (int i = 0; i < n; i++)
        {
            // Values over many decades, as Adam moments are.
            double v = Math.Pow(10, -rng.NextDouble() * 8) * (map == QuantMap.SignedDynamic && rng.Next(2) == 0 ? -1 : 1);
            x[i] = i % 997 == 0 ? 0 : (float)v;
            BinaryPrimitives.WriteSingleLittleEndian(raw.AsSpan(4 * i), x[i]);
        }
        var coded = new byte[raw.Length];
        BlockQuantizer.Encode(raw, coded, map, bits, block);
        Assert.True(BlockQuantizer.IsWellFormed(coded, bits, block));
        Assert.True(BlockQuantizer.CodedLength(n, bits, block) <= raw.Length);
        var back = new byte[raw.Length];
        BlockQuantizer.Decode(coded, back, map, bits, block);
        for (int b = 0; b * block < n; b++)
        {
            float absmax = 0;
            for (int i = b * block; i < Math.Min(n, (b + 1) * block); i++) absmax = Math.Max(absmax, Math.Abs(x[i]));
            for (int i = b * block; i < Math.Min(n, (b + 1) * block); i++)
            {
                float y = BinaryPrimitives.ReadSingleLittleEndian(back.AsSpan(4 * i));
                Assert.True(Math.Abs(y - x[i]) <= absmax * (bound + 1e-6), $"value {i}: {x[i]} → {y}, absmax {absmax}");
                if (x[i] == absmax) Assert.Equal(absmax, y); // the block maximum is exact
            }
        }
        if (map == QuantMap.UnsignedLinear) Assert.DoesNotContain(0f, m); // no second moment is rebuilt as 0
    }

    [Theory]
    [InlineData(8, false)]
    [InlineData(4, true)]
    public void OptimizerBitsRebuildsAValidCheckpoint(int bits, bool withReference)
    {
        using var p = new Pair();
        // Moments large enough to be quantized (at least one block).
        string tcz = p.Dir.File("q.tcz");
        var res = TczWriter.CompressFile(p.Target, tcz, false, new TczCompressOptions { OptimizerBits = bits, Reference = withReference ? p.Reference : null, ChunkSize = 4096 });
        Assert.Equal(2, res.Reference!.LossySegments);
        var lossless = TczWriter.CompressFile(p.Target, p.Dir.File("l.tcz"), false);
        Assert.True(res.CompressedBytes < lossless.CompressedBytes);
        using var r = TczReader.Open(tcz);
        Assert.True(r.IsLossy);
        Assert.Equal(TczFlags.Lossy | (withReference ? TczFlags.Reference : 0), BinaryPrimitives.ReadUInt32LittleEndian(File.ReadAllBytes(tcz).AsSpan(12)));
        if (withReference) r.AttachReference(p.Reference);
        var restoredPath = p.Dir.File("restored.safetensors");
        r.DecompressToFile(restoredPath, false);
        var restored = TensorFileReader.Open(restoredPath);
        var original = TensorFileReader.Open(p.Target);
        var rb = File.ReadAllBytes(restoredPath);
        var ob = File.ReadAllBytes(p.Target);
        Assert.Equal(ob.Length, rb.Length);
        foreach (var t in original.Tensors)
        {
            var u = restored.Tensors.Single(x => x.Name == t.Name);
            Assert.Equal(t.Shape, u.Shape);
            var a = ob.AsSpan((int)t.Offset, (int)t.Length);
            var b = rb.AsSpan((int)u.Offset, (int)u.Length);
            if (!t.Name.StartsWith("optimizer.")) { Assert.True(a.SequenceEqual(b), t.Name); continue; }
            var map = t.Name.EndsWith("_sq") ? (bits == 8 ? QuantMap.UnsignedDynamic : QuantMap.UnsignedLinear) : QuantMap.SignedDynamic;
            double bound = BlockQuantizer.ErrorBound(map, bits);
            int block = bits == 8 ? 256 : 128;
            int n = a.Length / 4;
            for (int k = 0; k * block < n; k++)
            {
                float absmax = 0;
                for (int i = k * block; i < Math.Min(n, (k + 1) * block); i++) absmax = Math.Max(absmax, Math.Abs(BinaryPrimitives.ReadSingleLittleEndian(a[(4 * i)..])));
                for (int i = k * block; i < Math.Min(n, (k + 1) * block); i++)
                    Assert.True(Math.Abs(BinaryPrimitives.ReadSingleLittleEndian(a[(4 * i)..]) - BinaryPrimitives.ReadSingleLittleEndian(b[(4 * i)..])) <= absmax * (bound + 1e-6));
            }
        }
        // Verify passes (the whole-file hash is the rebuilt file's).
        r.DecompressTo(null);
    }

    [Fact]
    public void OptimizerPatternSelectsTheTensors()
    {
        using var p = new Pair();
        var res = TczWriter.CompressFile(p.Target, p.Dir.File("q.tcz"), false,
            new TczCompressOptions { OptimizerBits = 8, OptimizerPatterns = ["*.exp_avg_sq"] });
        Assert.Equal(1, res.Reference!.LossySegments);
    }

    [Fact]
    public void DeltaTransformsRoundTripEveryBitPattern()
    {
        var rng = new Random(5);
        foreach (var kind in new[] { DeltaKind.Xor, DeltaKind.Sub })
            foreach (int e in new[] { 2, 4 })
            {
                var data = new byte[4096];
                var reference = new byte[4096];
                rng.NextBytes(data);
                rng.NextBytes(reference);
                // The edges of the sign-magnitude map: ±0, most negative, most positive.
                foreach (uint v in new uint[] { 0, 0x8000_0000, 0xFFFF_FFFF, 0x7FFF_FFFF })
                {
                    BinaryPrimitives.WriteUInt32LittleEndian(data.AsSpan(rng.Next(1000) * 4), v);
                    BinaryPrimitives.WriteUInt32LittleEndian(reference.AsSpan(rng.Next(1000) * 4), v);
                }
                var work = (byte[])data.Clone();
                DeltaTransform.Forward(kind, e, work, reference);
                DeltaTransform.Inverse(kind, e, work, reference);
                Assert.Equal(data, work);
            }
        // −0 and +0 stay distinct under Sub.
        var z = new byte[8];
        BinaryPrimitives.WriteUInt32LittleEndian(z.AsSpan(4), 0x8000_0000);
        var w = (byte[])z.Clone();
        DeltaTransform.Forward(DeltaKind.Sub, 4, w, new byte[8]);
        Assert.NotEqual(BinaryPrimitives.ReadUInt32LittleEndian(w), BinaryPrimitives.ReadUInt32LittleEndian(w.AsSpan(4)));
    }

    [Fact]
    public void CliRefusesAMissingOrWrongReferenceInOneLine()
    {
        using var p = new Pair();
        string tcz = p.Dir.File("d.tcz"), outFile = p.Dir.File("out.safetensors");
        var (code, _, err) = CliTests.Tcodec("compress", p.Target, "--ref", p.Reference, "-o", tcz);
        Assert.True(code == 0, err);
        (code, _, err) = CliTests.Tcodec("decompress", tcz, "-o", outFile);
        Assert.Equal(1, code);
        Assert.Single(err.Trim().Split('\n'));
        Assert.Contains("ckpt-1.safetensors", err);
        Assert.False(File.Exists(outFile));
        var other = p.Dir.File("ckpt-3.safetensors");
        File.WriteAllBytes(other, Checkpoint(3));
        (code, _, err) = CliTests.Tcodec("verify", tcz, "--ref", other);
        Assert.Equal(1, code);
        Assert.Single(err.Trim().Split('\n'));
        Assert.Contains("model.a.weight", err);
        (code, _, err) = CliTests.Tcodec("verify", tcz, "--ref", p.Reference);
        Assert.True(code == 0, err);
        (code, _, err) = CliTests.Tcodec("decompress", tcz, "--ref", p.Reference, "-o", outFile);
        Assert.True(code == 0, err);
        Assert.Equal(File.ReadAllBytes(p.Target), File.ReadAllBytes(outFile));
        (code, _, err) = CliTests.Tcodec("compress", p.Target, "--optimizer-bits", "8", "-o", p.Dir.File("q.tcz"));
        Assert.True(code == 0, err);
        (code, var stdout, err) = CliTests.Tcodec("verify", p.Dir.File("q.tcz"));
        Assert.True(code == 0, err);
        Assert.Contains("LOSSY", err + stdout);
        (code, _, err) = CliTests.Tcodec("compress", p.Target, "--optimizer-bits", "6", "-o", p.Dir.File("x.tcz"));
        Assert.Equal(1, code);

        // JSON (docs/JSON.md): the reference and lossy keys appear for such archives only.
        (code, stdout, err) = CliTests.Tcodec("verify", tcz, "--ref", p.Reference, "--json");
        Assert.True(code == 0, err);
        using (var doc = JsonSchema.Check(stdout, "verify"))
        {
            Assert.Equal("ckpt-1.safetensors", doc.RootElement.GetProperty("reference").GetString());
            Assert.False(doc.RootElement.GetProperty("lossy").GetBoolean());
        }
        (code, stdout, err) = CliTests.Tcodec("compress", p.Target, "--optimizer-bits", "4", "--ref", p.Reference, "-o", p.Dir.File("q4.tcz"), "--json");
        Assert.True(code == 0, err);
        using (var doc = JsonSchema.Check(stdout, "compress"))
            Assert.True(doc.RootElement.GetProperty("lossy").GetBoolean());
        (code, stdout, err) = CliTests.Tcodec("decompress", p.Dir.File("q4.tcz"), "--ref", p.Reference, "-o", p.Dir.File("q4.safetensors"), "--json");
        Assert.True(code == 0, err);
        using (var doc = JsonSchema.Check(stdout, "decompress"))
            Assert.Equal(32, doc.RootElement.GetProperty("reference_id").GetString()!.Length);
        (code, stdout, err) = CliTests.Tcodec("verify", p.Dir.File("alone.tcz") is var plain && TczWriter.CompressFile(p.Target, plain, false) is not null ? plain : "", "--json");
        Assert.True(code == 0, err);
        using (var doc = JsonSchema.Check(stdout, "verify"))
            Assert.False(doc.RootElement.TryGetProperty("lossy", out _));
    }
}
