using System.Buffers.Binary;
using System.Text.Json;
using TensorCodec.Coders;
using TensorCodec.Containers;
using TensorCodec.Containers.Tcz;
using TensorCodec.Numerics;
using TensorCodec.Tests.Cli;

namespace TensorCodec.Tests.Tcz;

/// <summary>Lossy fine-tune deltas (--delta-lossy): the per-chunk codings, their error bounds, the truncated SVD, the archive.</summary>
public class LossyDeltaTests
{
    static float[] RandomDelta(int n, int seed, float scale = 1e-3f)
    {
        var rng = new Random(seed);
        var d = new float[n];
        for (int i = 0; i < n; i++) d[i] = (float)((rng.NextDouble() * 2 - 1) * scale * (1 + i % 7));
        if (n > 10) { d[3] = 0; d[4] = -0f; }
        return d;
    }

    [Theory]
    [InlineData("bitdelta", LossyDeltaMethod.BitDelta, 1, 0)]
    [InlineData("bits:2", LossyDeltaMethod.Bits, 2, 0)]
    [InlineData("BITS:8", LossyDeltaMethod.Bits, 8, 0)]
    [InlineData("lowrank:16", LossyDeltaMethod.LowRank, 0, 16)]
    [InlineData("lowrank:64+bits:3", LossyDeltaMethod.LowRank, 3, 64)]
    public void SpecsParseAndPrintBack(string text, LossyDeltaMethod method, int bits, int rank)
    {
        var s = LossyDeltaSpec.Parse(text);
        Assert.Equal((method, bits, rank), (s.Method, s.Bits, s.Rank));
        Assert.Equal(s, LossyDeltaSpec.Parse(s.ToString()));
    }

    [Theory]
    [InlineData("bits:1")]
    [InlineData("bits:9")]
    [InlineData("bits:")]
    [InlineData("bits:-2")]
    [InlineData("lowrank:0")]
    [InlineData("lowrank:4097")]
    [InlineData("lowrank:x")]
    [InlineData("lowrank:8+bits:1")]
    [InlineData("lowrank:8+bitdelta")]
    [InlineData("lowrank:8+bits:2+bits:2")]
    [InlineData("bitdelta:2")]
    [InlineData("sparse")]
    public void MalformedSpecsAreRefusedWithTheirText(string text)
    {
        var e = Assert.Throws<ArgumentException>(() => LossyDeltaSpec.Parse(text));
        Assert.Contains(text, e.Message);
    }

    /// <summary>The documented per-element bounds (FORMAT.md "Lossy deltas"), over chunks that start mid-row.</summary>
    [Theory]
    [InlineData("bits:2")]
    [InlineData("bits:3")]
    [InlineData("bits:4")]
    [InlineData("bits:8")]
    [InlineData("bitdelta")]
    [InlineData("lowrank:3+bits:2")]
    [InlineData("lowrank:5+bits:4")]
    public void EachCodingStaysWithinItsDocumentedBound(string text)
    {
        var spec = LossyDeltaSpec.Parse(text);
        const int cols = 37, rows = 20;
        long first = 29; // starts in row 0, ends mid-row: pieces of every kind
        int n = cols * 12 + 5;
        var d = RandomDelta(n, 7);
        Half[] left = [], right = [];
        if (spec.Method == LossyDeltaMethod.LowRank)
        {
            var (l, r, _) = TruncatedSvd.Factor(RandomDelta(rows * cols, 8), rows, cols, spec.Rank);
            left = l.Select(v => (Half)v).ToArray();
            right = r.Select(v => (Half)v).ToArray();
        }
        int r0 = (int)(first / cols), r1 = (int)((first + n - 1) / cols);
        var payload = new byte[n * 4];
        Assert.True(LossyDelta.Fits(spec, cols, first, n, DType.F32));
        LossyDelta.Encode(spec, cols, first, d, left.AsSpan(r0 * spec.Rank, (r1 - r0 + 1) * spec.Rank), right, payload);
        var decoded = new float[n];
        Assert.True(LossyDelta.DecodeDelta(spec, cols, first, payload, decoded));
        // Recompute each piece's scale and check every value against the bound stated for its method.
        int scaleAt = spec.Method == LossyDeltaMethod.LowRank ? 2 * spec.Rank * (r1 - r0 + 1 + cols) : 0;
        var lowRank = new float[n];
        if (spec.Method == LossyDeltaMethod.LowRank)
        {
            var lrOnly = LossyDeltaSpec.Parse($"lowrank:{spec.Rank}");
            var p2 = payload.AsSpan(0, scaleAt).ToArray().Concat(new byte[n * 4]).ToArray();
            Assert.True(LossyDelta.DecodeDelta(lrOnly, cols, first, p2.AsSpan(0, n * 4), lowRank));
        }
        for (int i = 0; i < n; i++)
        {
            int piece = (int)((first + i) / cols) - r0;
            double s = (double)BinaryPrimitives.ReadHalfLittleEndian(payload.AsSpan(scaleAt + 2 * piece));
            double err = Math.Abs((double)decoded[i] - d[i]);
            if (spec.Method == LossyDeltaMethod.BitDelta)
            {
                Assert.Equal(Math.Abs(Math.Abs((double)d[i]) - s), err, 12);
                Assert.Equal(d[i] < 0 ? -s : s, decoded[i], 12);
            }
            else
            {
                // s/2 of the residual, plus the F32 roundings of the residual and of the sum when a factor is present.
                double slack = (spec.Method == LossyDeltaMethod.LowRank ? 4 * Math.Pow(2, -24) * (Math.Abs(d[i]) + Math.Abs(lowRank[i]) + s) : 0) + 1e-12 * s;
                Assert.True(err <= s / 2 + slack, $"value {i}: |error| {err} > s/2 = {s / 2}");
            }
        }
    }

    [Fact]
    public void ScalesAreRoundedUpSoNoCodeIsClamped()
    {
        foreach (float max in new[] { 1e-9f, 3.3e-5f, 0.001234f, 0.7f, 999f })
            foreach (int level in new[] { 1, 3, 7, 127 })
            {
                var s = LossyDelta.ScaleFor(max, level);
                Assert.True((double)s * level >= max, $"{max}/{level}");
                Assert.True(Half.IsFinite(s) && !Half.IsNegative(s));
            }
        Assert.Equal(Half.Zero, LossyDelta.ScaleFor(0, 3));
    }

    [Fact]
    public void TruncatedSvdFindsTheSingularValuesOfAKnownMatrix()
    {
        const int rows = 60, cols = 45;
        var rng = new Random(3);
        double[] Orthonormal(int n, int k)
        {
            var q = new double[n * k];
            for (int i = 0; i < q.Length; i++) q[i] = rng.NextDouble() - 0.5;
            for (int j = 0; j < k; j++)
            {
                for (int i = 0; i < j; i++)
                {
                    double dot = 0;
                    for (int r = 0; r < n; r++) dot += q[r * k + i] * q[r * k + j];
                    for (int r = 0; r < n; r++) q[r * k + j] -= dot * q[r * k + i];
                }
                double norm = Math.Sqrt(Enumerable.Range(0, n).Sum(r => q[r * k + j] * q[r * k + j]));
                for (int r = 0; r < n; r++) q[r * k + j] /= norm;
            }
            return q;
        }
        const int k = 12;
        var u = Orthonormal(rows, k);
        var v = Orthonormal(cols, k);
        var sigma = Enumerable.Range(0, k).Select(i => Math.Pow(0.6, i)).ToArray();
        var a = new float[rows * cols];
        for (int r = 0; r < rows; r++)
            for (int c = 0; c < cols; c++)
                a[r * cols + c] = (float)Enumerable.Range(0, k).Sum(i => sigma[i] * u[r * k + i] * v[c * k + i]);
        var (left, right, found) = TruncatedSvd.Factor(a, rows, cols, 6);
        for (int i = 0; i < 6; i++) Assert.Equal(sigma[i], found[i], 5);
        // The rank-6 error in Frobenius norm is the tail of the spectrum, sqrt(Σ_{i≥6} σ²).
        double err = 0;
        for (int r = 0; r < rows; r++)
            for (int c = 0; c < cols; c++)
            {
                double x = 0;
                for (int t = 0; t < 6; t++) x += left[r * 6 + t] * right[c * 6 + t];
                err += (x - a[r * cols + c]) * (x - a[r * cols + c]);
            }
        double tail = Math.Sqrt(sigma.Skip(6).Sum(s => s * s));
        Assert.True(Math.Sqrt(err) <= tail * 1.001 + 1e-5, $"{Math.Sqrt(err)} vs optimal {tail}");
        Assert.Throws<ArgumentOutOfRangeException>(() => TruncatedSvd.Factor(a, rows, cols, 46));
        Assert.Throws<ArgumentOutOfRangeException>(() => TruncatedSvd.Factor(a, rows, cols, 0));
    }

    [Fact]
    public void JacobiDiagonalizesASymmetricMatrix()
    {
        double[] g = [4, 1, 0.5, 1, 3, 0.2, 0.5, 0.2, 1];
        var (values, vectors) = TruncatedSvd.JacobiEigen(g, 3);
        for (int e = 0; e < 3; e++)
            for (int r = 0; r < 3; r++)
            {
                double gv = 0;
                for (int c = 0; c < 3; c++) gv += g[r * 3 + c] * vectors[c * 3 + e];
                Assert.Equal(values[e] * vectors[r * 3 + e], gv, 10);
            }
    }

    [Fact]
    public void MalformedPayloadsAreRefused()
    {
        var spec = LossyDeltaSpec.Parse("bits:2");
        const int cols = 16, n = 64;
        var payload = new byte[n * 4];
        LossyDelta.Encode(spec, cols, 0, RandomDelta(n, 1), default, default, payload);
        var output = new float[n];
        Assert.True(LossyDelta.DecodeDelta(spec, cols, 0, payload, output));
        var bad = (byte[])payload.Clone();
        bad[8] |= 0b11; // code 3 > 2L = 2 (the codes follow 4 F16 scales)
        Assert.False(LossyDelta.DecodeDelta(spec, cols, 0, bad, output));
        bad = (byte[])payload.Clone();
        bad[^1] = 1; // padding
        Assert.False(LossyDelta.DecodeDelta(spec, cols, 0, bad, output));
        bad = (byte[])payload.Clone();
        BinaryPrimitives.WriteHalfLittleEndian(bad, (Half)(-1)); // a negative scale
        Assert.False(LossyDelta.DecodeDelta(spec, cols, 0, bad, output));
        BinaryPrimitives.WriteHalfLittleEndian(bad, Half.NaN);
        Assert.False(LossyDelta.DecodeDelta(spec, cols, 0, bad, output));
        var lr = LossyDeltaSpec.Parse("lowrank:2");
        payload = new byte[n * 4];
        BinaryPrimitives.WriteHalfLittleEndian(payload, Half.PositiveInfinity);
        Assert.False(LossyDelta.DecodeDelta(lr, cols, 0, payload, output));
    }

    // ---- the archive ----

    static byte[] Tensor(DType dtype, float[] values)
    {
        var b = new byte[values.Length * dtype.ElementSize()];
        LossyDelta.FromFloat(values, dtype, b);
        return b;
    }

    /// <summary>A base and a fine-tune of it: F32, F16 and BF16 matrices (delta ≈ low rank + noise), a norm, a tensor the base lacks.</summary>
    static (byte[] Base, byte[] FineTune) Models()
    {
        var rng = new Random(11);
        var b = new List<SafetensorsTensor>();
        var f = new List<SafetensorsTensor>();
        void Matrix(string name, DType dtype, int rows, int cols)
        {
            var w = new float[rows * cols];
            for (int i = 0; i < w.Length; i++) w[i] = (float)(rng.NextDouble() * 2 - 1) * 0.05f;
            var ua = Enumerable.Range(0, rows).Select(_ => rng.NextDouble() - 0.5).ToArray();
            var va = Enumerable.Range(0, cols).Select(_ => rng.NextDouble() - 0.5).ToArray();
            var t = new float[w.Length];
            for (int r = 0; r < rows; r++)
                for (int c = 0; c < cols; c++)
                    t[r * cols + c] = w[r * cols + c] + (float)(4e-3 * ua[r] * va[c] + 2e-4 * (rng.NextDouble() - 0.5));
            // Rounded to the dtype first, so the base holds exactly its stored values.
            b.Add(new SafetensorsTensor(name, dtype, [rows, cols], TensorByteSource.FromMemory(Tensor(dtype, w))));
            f.Add(new SafetensorsTensor(name, dtype, [rows, cols], TensorByteSource.FromMemory(Tensor(dtype, t))));
        }
        Matrix("model.a.weight", DType.F32, 48, 40);
        Matrix("model.b.weight", DType.F16, 32, 24);
        Matrix("model.c.weight", DType.BF16, 32, 64);
        var norm = Enumerable.Range(0, 40).Select(i => 1 + i * 0.01f).ToArray();
        b.Add(new SafetensorsTensor("model.norm.weight", DType.F32, [40], TensorByteSource.FromMemory(Tensor(DType.F32, norm))));
        f.Add(new SafetensorsTensor("model.norm.weight", DType.F32, [40], TensorByteSource.FromMemory(Tensor(DType.F32, norm.Select(x => x * 1.01f).ToArray()))));
        f.Add(new SafetensorsTensor("model.head.weight", DType.F32, [8, 40], TensorByteSource.FromMemory(Tensor(DType.F32, RandomDelta(320, 5, 0.1f)))));
        return (SafetensorsWriter.ToBytes(b), SafetensorsWriter.ToBytes(f));
    }

    sealed class Pair : IDisposable
    {
        public readonly ScratchDir Dir = new();
        public readonly string Target, Reference;
        public Pair()
        {
            var (b, f) = Models();
            Target = Dir.File("finetune.safetensors");
            Reference = Dir.File("base.safetensors");
            File.WriteAllBytes(Target, f);
            File.WriteAllBytes(Reference, b);
        }
        public void Dispose() => Dir.Dispose();
    }

    static byte[] Decompress(string tcz, string reference)
    {
        using var r = TczReader.Open(tcz);
        r.AttachReference(reference);
        var ms = new MemoryStream();
        r.DecompressTo(ms);
        return ms.ToArray();
    }

    static byte[] Bytes(byte[] file, TensorInfo t) => file.AsSpan((int)t.Offset, (int)t.Length).ToArray();

    /// <summary>What a one-chunk lossy tensor must decompress to: base + decoded delta, computed directly.</summary>
    static byte[] Direct(LossyDeltaSpec spec, DType dtype, int rows, int cols, byte[] target, byte[] reference)
    {
        int n = rows * cols;
        if (!LossyDelta.Fits(spec, cols, 0, n, dtype)) return target;
        var t = new float[n];
        var b = new float[n];
        LossyDelta.ToFloat(target, dtype, t);
        LossyDelta.ToFloat(reference, dtype, b);
        var d = t.Select((x, i) => x - b[i]).ToArray();
        Half[] left = [], right = [];
        if (spec.Method == LossyDeltaMethod.LowRank)
        {
            var (l, r, _) = TruncatedSvd.Factor(d, rows, cols, spec.Rank);
            left = l.Select(v => (Half)v).ToArray();
            right = r.Select(v => (Half)v).ToArray();
        }
        var payload = new byte[target.Length];
        LossyDelta.Encode(spec, cols, 0, d, left, right, payload);
        var decoded = new float[n];
        Assert.True(LossyDelta.DecodeDelta(spec, cols, 0, payload, decoded));
        var x = b.Select((v, i) => v + decoded[i]).ToArray();
        return Tensor(dtype, x);
    }

    [Theory]
    [InlineData("bitdelta")]
    [InlineData("bits:2")]
    [InlineData("bits:4")]
    [InlineData("lowrank:4")]
    [InlineData("lowrank:4+bits:3")]
    [InlineData("lowrank:12+bits:4")] // the F16 matrix is verbatim: its factors leave no room for the codes
    public void ArchiveRebuildsBasePlusDecodedDeltaExactly(string text)
    {
        var spec = LossyDeltaSpec.Parse(text);
        using var p = new Pair();
        string tcz = p.Dir.File("ft.tcz"), lossless = p.Dir.File("lossless.tcz");
        var res = TczWriter.CompressFile(p.Target, tcz, false, new TczCompressOptions { Reference = p.Reference, DeltaLossy = spec });
        var plain = TczWriter.CompressFile(p.Target, lossless, false, new TczCompressOptions { Reference = p.Reference });
        Assert.Equal(3, res.Reference!.LossyDeltaSegments);
        Assert.Equal(3, res.Reference.LossySegments);
        Assert.Equal(spec.ToString(), res.Reference.LossyDelta);
        Assert.Equal(1, res.Reference.DeltaSegments); // the norm: lossless against the base
        // (Rank 12 factors of these small matrices outweigh their lossless delta; that case checks the fit rule only.)
        if (spec.Rank <= 4) Assert.True(res.CompressedBytes < plain.CompressedBytes, $"{res.CompressedBytes} vs lossless {plain.CompressedBytes}");
        var header = File.ReadAllBytes(tcz).AsSpan(12, 4).ToArray();
        Assert.Equal(TczFlags.Reference | TczFlags.Lossy, BinaryPrimitives.ReadUInt32LittleEndian(header));

        var rebuilt = Decompress(tcz, p.Reference);
        string outFile = p.Dir.File("rebuilt.safetensors");
        File.WriteAllBytes(outFile, rebuilt);
        var got = TensorFileReader.Open(outFile);
        var want = TensorFileReader.Open(p.Target);
        var refLayout = TensorFileReader.Open(p.Reference);
        var targetBytes = File.ReadAllBytes(p.Target);
        var refBytes = File.ReadAllBytes(p.Reference);
        // The same header: names, dtypes, shapes, offsets.
        Assert.Equal(want.Tensors.Select(t => (t.Name, t.DType, string.Join(",", t.Shape), t.Offset)), got.Tensors.Select(t => (t.Name, t.DType, string.Join(",", t.Shape), t.Offset)));
        Assert.Equal(targetBytes.AsSpan(0, (int)want.Tensors[0].Offset).ToArray(), rebuilt.AsSpan(0, (int)want.Tensors[0].Offset).ToArray());
        foreach (var t in want.Tensors)
        {
            var g = Bytes(rebuilt, got.Tensors.First(x => x.Name == t.Name));
            if (t.Shape.Length == 1 || t.Name == "model.head.weight") { Assert.Equal(Bytes(targetBytes, t), g); continue; }
            var expected = Direct(spec, t.DType, (int)t.Shape[0], (int)t.Shape[1], Bytes(targetBytes, t), Bytes(refBytes, refLayout.Tensors.First(x => x.Name == t.Name)));
            Assert.Equal(expected, g);
        }
        using var r = TczReader.Open(tcz);
        Assert.True(r.IsLossy);
    }

    [Fact]
    public void SmallChunksStillRoundTripWithinTheBoundAndTinyChunksAreVerbatim()
    {
        var spec = LossyDeltaSpec.Parse("lowrank:2+bits:4");
        using var p = new Pair();
        string tcz = p.Dir.File("ft.tcz");
        // 448-byte chunks of a 40-column F32 matrix: chunks start mid-row; the F16 and BF16 ones hold 224 values.
        TczWriter.CompressFile(p.Target, tcz, false, new TczCompressOptions { Reference = p.Reference, DeltaLossy = spec, ChunkSize = 448, Threads = 2 });
        var rebuilt = Decompress(tcz, p.Reference);
        var want = TensorFileReader.Open(p.Target);
        var targetBytes = File.ReadAllBytes(p.Target);
        foreach (var t in want.Tensors.Where(t => t.Shape.Length == 2 && t.Name != "model.head.weight"))
        {
            int n = (int)(t.Length / t.DType.ElementSize());
            var a = new float[n];
            var b = new float[n];
            LossyDelta.ToFloat(Bytes(targetBytes, t), t.DType, a);
            LossyDelta.ToFloat(Bytes(rebuilt, t), t.DType, b);
            double max = a.Max(Math.Abs);
            for (int i = 0; i < n; i++) Assert.True(Math.Abs(a[i] - b[i]) <= 0.01 * max, $"{t.Name}[{i}]: {a[i]} vs {b[i]}");
        }
        // With 64-byte chunks the factor cannot fit: every chunk holds its values verbatim, so the file comes back exactly.
        string tiny = p.Dir.File("tiny.tcz");
        TczWriter.CompressFile(p.Target, tiny, false, new TczCompressOptions { Reference = p.Reference, DeltaLossy = spec, ChunkSize = 64 });
        Assert.Equal(targetBytes, Decompress(tiny, p.Reference));
    }

    [Fact]
    public void ReferenceIsCheckedAndRanksAndOptionsRefused()
    {
        using var p = new Pair();
        string tcz = p.Dir.File("ft.tcz");
        TczWriter.CompressFile(p.Target, tcz, false, new TczCompressOptions { Reference = p.Reference, DeltaLossy = LossyDeltaSpec.Parse("bits:3") });
        using (var r = TczReader.Open(tcz))
        {
            var e = Assert.Throws<TensorFormatException>(() => r.DecompressTo(Stream.Null));
            Assert.Contains("base.safetensors", e.Message);
            // The fine-tune is not its own reference.
            e = Assert.Throws<TensorFormatException>(() => r.AttachReference(p.Target));
            Assert.Contains("model.a.weight", e.Message);
        }
        // Rank above min(rows, cols) of a matched tensor (model.b.weight is 32 × 24), named.
        var rank = Assert.Throws<ArgumentException>(() =>
            TczWriter.CompressFile(p.Target, p.Dir.File("r.tcz"), false, new TczCompressOptions { Reference = p.Reference, DeltaLossy = LossyDeltaSpec.Parse("lowrank:30") }));
        Assert.Contains("model.b.weight", rank.Message);
        Assert.False(File.Exists(p.Dir.File("r.tcz")));
        Assert.Throws<ArgumentException>(() =>
            TczWriter.CompressFile(p.Target, p.Dir.File("n.tcz"), false, new TczCompressOptions { DeltaLossy = LossyDeltaSpec.Parse("bits:2") }));
        Assert.Throws<ArgumentException>(() =>
            TczWriter.CompressStream(new MemoryStream(new byte[10]), "x", Stream.Null, new TczCompressOptions { DeltaLossy = LossyDeltaSpec.Parse("bits:2") }));
    }

    static void Rehash(byte[] file) => TczReferenceTests.Rehash(file);

    [Fact]
    public void DamagedSectionsAndChunksAreRefusedNeverMisread()
    {
        using var p = new Pair();
        string tcz = p.Dir.File("ft.tcz"), bad = p.Dir.File("bad.tcz");
        TczWriter.CompressFile(p.Target, tcz, false, new TczCompressOptions { Reference = p.Reference, DeltaLossy = LossyDeltaSpec.Parse("lowrank:3+bits:2") });
        var good = File.ReadAllBytes(tcz);
        var expected = Decompress(tcz, p.Reference);
        long indexOffset = BinaryPrimitives.ReadInt64LittleEndian(good.AsSpan(good.Length - 32));
        long indexLength = BinaryPrimitives.ReadInt64LittleEndian(good.AsSpan(good.Length - 24));
        int sectionLength;
        using (var r = TczReader.Open(tcz)) sectionLength = r.Index.Extension!.Length;
        int refused = 0;
        for (int k = 0; k < sectionLength; k++)
        {
            var b = (byte[])good.Clone();
            b[indexOffset + indexLength - sectionLength + k] ^= 0x41;
            Rehash(b);
            File.WriteAllBytes(bad, b);
            try { Assert.Equal(expected, Decompress(bad, p.Reference)); }
            catch (IOException) { refused++; }
        }
        Assert.True(refused >= sectionLength - "base.safetensors".Length, $"{refused} of {sectionLength}");
        // Without the lossy flag the section no longer matches the header.
        var noLossy = (byte[])good.Clone();
        noLossy[12] = (byte)TczFlags.Reference;
        Rehash(noLossy);
        File.WriteAllBytes(bad, noLossy);
        Assert.Contains("flags", Assert.ThrowsAny<IOException>(() => Decompress(bad, p.Reference)).Message);
        var chunk = (byte[])good.Clone();
        chunk[100] ^= 0x10;
        File.WriteAllBytes(bad, chunk);
        Assert.Contains("checksum", Assert.ThrowsAny<IOException>(() => Decompress(bad, p.Reference)).Message);
    }

    [Fact]
    public void CliRefusesBadOptionsAndReportsTheLossyArchive()
    {
        using var p = new Pair();
        string tcz = p.Dir.File("ft.tcz"), outFile = p.Dir.File("out.safetensors");
        var (code, _, err) = CliTests.Tcodec("compress", p.Target, "--delta-lossy", "bits:2", "-o", tcz);
        Assert.Equal(1, code);
        Assert.Contains("--ref", err);
        Assert.Single(err.Trim().Split('\n'));
        (code, _, err) = CliTests.Tcodec("compress", p.Target, "--ref", p.Reference, "--delta-lossy", "bits:12", "-o", tcz);
        Assert.Equal(1, code);
        Assert.Contains("bits:12", err);
        (code, _, err) = CliTests.Tcodec("compress", p.Target, "--ref", p.Reference, "--delta-lossy", "lowrank:25", "-o", tcz);
        Assert.Equal(1, code);
        Assert.Contains("model.b.weight", err);
        Assert.Single(err.Trim().Split('\n'));
        Assert.False(File.Exists(tcz));

        (code, var stdout, err) = CliTests.Tcodec("compress", p.Target, "--ref", p.Reference, "--delta-lossy", "lowrank:4+bits:2", "-o", tcz, "--json");
        Assert.True(code == 0, err);
        using (var doc = JsonSchema.Check(stdout, "compress"))
        {
            Assert.True(doc.RootElement.GetProperty("lossy").GetBoolean());
            Assert.Equal("lowrank:4+bits:2", doc.RootElement.GetProperty("lossy_delta").GetString());
            Assert.Equal(3, doc.RootElement.GetProperty("lossy_delta_tensors").GetInt32());
        }
        (code, _, err) = CliTests.Tcodec("verify", tcz);
        Assert.Equal(1, code);
        Assert.Contains("base.safetensors", err);
        (code, stdout, err) = CliTests.Tcodec("verify", tcz, "--ref", p.Reference);
        Assert.True(code == 0, err);
        Assert.Contains("lossy deltas", stdout + err);
        (code, _, err) = CliTests.Tcodec("decompress", tcz, "--ref", p.Reference, "-o", outFile);
        Assert.True(code == 0, err);
        Assert.Equal(Decompress(tcz, p.Reference), File.ReadAllBytes(outFile));
        (code, stdout, err) = CliTests.Tcodec("inspect", tcz, "--json");
        Assert.True(code == 0, err);
        Assert.Contains("lossy", stdout);
    }
}
