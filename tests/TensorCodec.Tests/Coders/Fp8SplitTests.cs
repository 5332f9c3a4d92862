using System.Buffers;
using TensorCodec.Coders;
using TensorCodec.Containers;
using TensorCodec.Containers.Tcz;
using TensorCodec.Numerics;

namespace TensorCodec.Tests.Coders;

/// <summary>Split transforms 10 (F8E4M3) and 11 (F8E5M2): fields, every bit pattern, the chunk codec's choice, bad input.</summary>
public class Fp8SplitTests
{
    internal static readonly int[] Lengths = [0, 1, 7, 8, 9, 15, 16, 17, 31, 32, 33, 63, 64, 65, 255, 256, 257, 1000, 4099];

    /// <summary>All 256 codes in order, reversed and shuffled, repeated up to <paramref name="n"/> bytes.</summary>
    internal static byte[] AllCodes(int n, int order)
    {
        var codes = Enumerable.Range(0, 256).Select(i => (byte)i).ToArray();
        if (order == 1) Array.Reverse(codes);
        if (order == 2) new Random(n).Shuffle(codes);
        return Enumerable.Range(0, n).Select(i => codes[i % 256]).ToArray();
    }

    internal static byte[] SplitOf(SplitTransform t, byte[] raw)
    {
        var streams = new byte[FloatSplit.StreamCount(t) * raw.Length];
        Assert.Equal(OperationStatus.Done, FloatSplit.Split(t, raw, streams));
        return streams;
    }

    [Fact]
    public void SpecialCodesAreWhatFormatMdSays()
    {
        // FORMAT.md §2, "FP8 transforms": the table of special codes, checked against our numerics.
        var e4 = MiniFloat.E4M3;
        var e5 = MiniFloat.E5M2;
        Assert.Equal([352f, 384f, 416f, 448f], new byte[] { 0x7B, 0x7C, 0x7D, 0x7E }.Select(e4.Decode));
        Assert.True(float.IsNaN(e4.Decode(0x7F)) && float.IsNaN(e4.Decode(0xFF)));
        Assert.Equal(448f, e4.MaxFinite);
        Assert.Equal(57344f, e5.Decode(0x7B));
        Assert.Equal(57344f, e5.MaxFinite);
        Assert.Equal(float.PositiveInfinity, e5.Decode(0x7C));
        Assert.Equal(float.NegativeInfinity, e5.Decode(0xFC));
        Assert.All(new byte[] { 0x7D, 0x7E, 0x7F, 0xFD, 0xFE, 0xFF }, c => Assert.True(float.IsNaN(e5.Decode(c))));
        Assert.Equal(MathF.ScaleB(7, -9), e4.Decode(0x07));
        Assert.Equal(MathF.ScaleB(3, -16), e5.Decode(0x03));
        Assert.Equal(MathF.ScaleB(1, -14), e5.Decode(0x04));
        Assert.True(float.IsNegative(e4.Decode(0x80)) && e4.Decode(0x80) == 0);
        Assert.True(float.IsNegative(e5.Decode(0x80)) && e5.Decode(0x80) == 0);
        // Each splits into mag = low 7 bits and its sign bit.
        foreach (byte c in new byte[] { 0x00, 0x80, 0x07, 0x7B, 0x7C, 0xFC, 0x7D, 0x7E, 0x7F, 0xFF })
        {
            var s = SplitOf(SplitTransform.F8E5M2, [c]);
            Assert.Equal(new[] { (byte)(c & 0x7F), (byte)(c >> 7) }, s);
        }
    }

    [Fact]
    public void FormatMdWorkedExampleDecodes()
    {
        // FORMAT.md §6, the transform-10 example.
        byte[] raw = [0x00, 0x80, 0x7F, 0xFF, 0x38, 0xB8, 0x01, 0x81, 0x7E, 0xFE, 0x40, 0xC0, 0x08, 0x88, 0x30, 0xB0];
        byte[] chunk = [0x02, 0x0A, 0x10, 0x00, 0x10, .. raw.Select(b => (byte)(b & 0x7F)), 0x00, 0x02, 0xAA, 0xAA];
        Assert.Equal("00-00-7F-7F-38-38-01-01-7E-7E-40-40-08-08-30-30", BitConverter.ToString(chunk, 5, 16));
        var back = new byte[16];
        Assert.Equal(OperationStatus.Done, ChunkCodec.Decode(chunk, back, out int w));
        Assert.Equal(16, w);
        Assert.Equal(raw, back);
        Assert.Equal([0f, 1f, 2f, 448f, 0.5f, MathF.ScaleB(1, -6), MathF.ScaleB(1, -9)],
            new byte[] { 0x00, 0x38, 0x40, 0x7E, 0x30, 0x08, 0x01 }.Select(MiniFloat.E4M3.Decode));
        Assert.Equal(SplitOf(SplitTransform.F8E4M3, raw)[..18], chunk[5..21].Concat(chunk[23..25]));
    }

    [Fact]
    public void FieldsLandInTheDocumentedStreams()
    {
        // Element 9 is 0xFF (sign 1, NaN in E4M3), element 0 is 0x80 (−0); the rest +1.0 in E4M3 (0x38).
        var raw = Enumerable.Repeat((byte)0x38, 12).ToArray();
        raw[0] = 0x80;
        raw[9] = 0xFF;
        var s = SplitOf(SplitTransform.F8E4M3, raw);
        Assert.Equal(raw.Select(b => (byte)(b & 0x7F)), s[..12]);
        Assert.Equal(0b0000_0001, s[12]);          // element 0's sign in bit 0 of sign byte 0
        Assert.Equal(0b0000_0010, s[13]);          // element 9 in bit 1 of byte 1; bits 4..7 (no element) are 0
        Assert.Equal(2, FloatSplit.StreamCount(SplitTransform.F8E5M2));
        Assert.Equal(2, FloatSplit.StreamLength(SplitTransform.F8E5M2, 1, 9));
        Assert.Equal(9, FloatSplit.StreamLength(SplitTransform.F8E5M2, 0, 9));
        Assert.Equal("F8E4M3.sign", $"{DType.F8E4M3}.{FloatSplit.StreamName(SplitTransform.F8E4M3, 1)}");
    }

    /// <summary>FP8 codes of a Gaussian tensor scaled so that its largest magnitude is the format's largest finite value.</summary>
    static byte[] Gaussian(MiniFloat f, int n, int seed, bool relu = false)
    {
        var r = new Random(seed);
        var x = new float[n];
        for (int i = 0; i < n; i++)
        {
            double g = Math.Sqrt(-2 * Math.Log(1 - r.NextDouble())) * Math.Cos(2 * Math.PI * r.NextDouble());
            x[i] = (float)(relu ? Math.Max(0, g) : g);
        }
        float amax = x.Max(Math.Abs);
        var q = new byte[n];
        for (int i = 0; i < n; i++) q[i] = f.Encode(x[i] / amax * f.MaxFinite);
        return q;
    }

    static (byte[] Chunk, int Length) Encode(byte[] raw, DType dtype, bool fp8Fields)
    {
        using var enc = new ChunkEncoder(new ChunkCodecOptions { Fp8Fields = fp8Fields });
        var dst = new byte[ChunkCodec.MaxEncodedLength(raw.Length)];
        Assert.Equal(OperationStatus.Done, enc.Encode(raw, dtype, dst, out int w));
        return (dst, w);
    }

    static void AssertDecodes(byte[] chunk, int length, byte[] raw)
    {
        var back = new byte[raw.Length];
        Assert.Equal(OperationStatus.Done, ChunkCodec.Decode(chunk.AsSpan(0, length), back, out int w));
        Assert.Equal(raw.Length, w);
        Assert.Equal(raw, back);
    }

    public static TheoryData<string, int> Tensors()
    {
        var d = new TheoryData<string, int>();
        foreach (var kind in new[] { "gaussian", "relu", "zeros", "random", "allcodes", "sparse" })
            foreach (int n in new[] { 100, 4099, 65536, 300_000 })
                d.Add(kind, n);
        return d;
    }

    static byte[] Tensor(string kind, MiniFloat f, int n) => kind switch
    {
        "gaussian" => Gaussian(f, n, n),
        "relu" => Gaussian(f, n, n + 1, relu: true),
        "zeros" => new byte[n],
        "random" => RandomBytes(n),
        "allcodes" => AllCodes(n, 2),
        _ => Gaussian(f, n, n + 2).Select((v, i) => i % 5 == 0 ? v : (byte)0).ToArray(),
    };

    static byte[] RandomBytes(int n)
    {
        var b = new byte[n];
        new Random(n).NextBytes(b);
        return b;
    }

    [Theory]
    [MemberData(nameof(Tensors))]
    public void ChunksRoundTripAndAreNeverLargerThanTransformZero(string kind, int n)
    {
        foreach (var (dtype, f) in new[] { (DType.F8E4M3, MiniFloat.E4M3), (DType.F8E5M2, MiniFloat.E5M2) })
        {
            var raw = Tensor(kind, f, n);
            var (fp8, lf) = Encode(raw, dtype, fp8Fields: true);
            var (bytes, lb) = Encode(raw, dtype, fp8Fields: false);
            AssertDecodes(fp8, lf, raw);
            AssertDecodes(bytes, lb, raw);
            Assert.True(lf <= lb, $"{kind} {dtype} n={n}: FP8 transform chunk {lf} bytes > transform 0's {lb}");
            Assert.True(lf <= raw.Length + 1);
            Assert.False(bytes[0] == ChunkCodec.ModeSplit && bytes[1] != 0, "Fp8Fields off must use transform 0");
        }
    }

    [Theory]
    [InlineData("F8E4M3", 10)]
    [InlineData("F8E5M2", 11)]
    public void GaussianWeightsPickTheFp8TransformAndGainOnTransformZero(string type, int id)
    {
        var dtype = Enum.Parse<DType>(type);
        var f = dtype == DType.F8E4M3 ? MiniFloat.E4M3 : MiniFloat.E5M2;
        var raw = Gaussian(f, 1 << 18, 7);
        var (fp8, lf) = Encode(raw, dtype, true);
        var (_, lb) = Encode(raw, dtype, false);
        Assert.Equal(ChunkCodec.ModeSplit, fp8[0]);
        Assert.Equal(id, fp8[1]);
        Assert.True(lf < lb, $"{lf} vs {lb}");
        // Well below the raw size: a Gaussian's FP8 codes have about 6.4 (E4M3) / 5.4 (E5M2) bits of order-0 entropy.
        Assert.InRange(lf, raw.Length * 0.6, raw.Length * (dtype == DType.F8E4M3 ? 0.85 : 0.75));
    }

    [Fact]
    public void PairedDecodeOfFp8ChunksMatchesSingleDecode()
    {
        var a = Gaussian(MiniFloat.E4M3, 70_000, 1);
        var b = Gaussian(MiniFloat.E5M2, 50_001, 2);
        var (ca, la) = Encode(a, DType.F8E4M3, true);
        var (cb, lb) = Encode(b, DType.F8E5M2, true);
        using var dec = new ChunkDecoder();
        var da = new byte[a.Length];
        var db = new byte[b.Length];
        dec.DecodePair(ca.AsSpan(0, la), da, out var sa, out int wa, cb.AsSpan(0, lb), db, out var sb, out int wb);
        Assert.Equal((OperationStatus.Done, OperationStatus.Done, a.Length, b.Length), (sa, sb, wa, wb));
        Assert.Equal(a, da);
        Assert.Equal(b, db);
    }

    [Fact]
    public void MalformedTransformIdsAndStreamLengthsAreRejected()
    {
        var raw = Gaussian(MiniFloat.E4M3, 4096, 3);
        var (chunk, len) = Encode(raw, DType.F8E4M3, true);
        Assert.Equal(10, chunk[1]);
        var back = new byte[raw.Length];
        foreach (byte id in new byte[] { 12, 13, 14, 15, 16, 100, 255 })
        {
            var bad = chunk.AsSpan(0, len).ToArray();
            bad[1] = id;
            Assert.Equal(OperationStatus.InvalidData, ChunkCodec.Decode(bad, back, out _));
        }
        // Transform 11 over transform 10's streams is the same layout: it decodes to the same bytes.
        var other = chunk.AsSpan(0, len).ToArray();
        other[1] = 11;
        Assert.Equal(OperationStatus.Done, ChunkCodec.Decode(other, back, out _));
        Assert.Equal(raw, back);

        // A hand-made chunk: 16 elements, mag Stored (16 bytes), sign Stored must be exactly 2 bytes.
        static byte[] Hand(int signLen) =>
            [ChunkCodec.ModeSplit, 10, 16, ChunkCodec.MethodStored, 16, .. new byte[16], ChunkCodec.MethodStored, (byte)signLen, .. new byte[signLen]];
        var ok = new byte[16];
        Assert.Equal(OperationStatus.Done, ChunkCodec.Decode(Hand(2), ok, out int w));
        Assert.Equal(16, w);
        Assert.Equal(OperationStatus.InvalidData, ChunkCodec.Decode(Hand(1), ok, out _));
        Assert.Equal(OperationStatus.InvalidData, ChunkCodec.Decode(Hand(3), ok, out _));
        Assert.Equal(OperationStatus.InvalidData, ChunkCodec.Decode(Hand(16), ok, out _));
    }

    [Fact]
    public void TruncatedAndCorruptedChunksFailCleanly()
    {
        var raw = Gaussian(MiniFloat.E5M2, 20_000, 4);
        var (chunk, len) = Encode(raw, DType.F8E5M2, true);
        Assert.Equal(11, chunk[1]);
        var back = new byte[raw.Length];
        using var dec = new ChunkDecoder();
        for (int cut = 0; cut < len; cut += Math.Max(1, cut / 8))
            Assert.Equal(OperationStatus.InvalidData, dec.Decode(chunk.AsSpan(0, cut), back, out _));
        var r = new Random(5);
        for (int trial = 0; trial < 2000; trial++)
        {
            var bad = chunk.AsSpan(0, len).ToArray();
            for (int k = r.Next(1, 4); k > 0; k--) bad[r.Next(bad.Length)] ^= (byte)(1 << r.Next(8));
            var st = dec.Decode(bad, back, out int w);
            // A flip in a stored stream (the sign plane) decodes silently: the container's checksum catches it.
            Assert.True(st is OperationStatus.Done or OperationStatus.InvalidData or OperationStatus.DestinationTooSmall, st.ToString());
            if (st == OperationStatus.Done) Assert.Equal(raw.Length, w);
        }
    }

    [Fact]
    public void Fp8SafetensorsFileRoundTripsThroughTcz()
    {
        using var dir = new ScratchDir();
        var path = dir.File("fp8.safetensors");
        var q = Gaussian(MiniFloat.E4M3, 256 * 384, 8);
        var e5 = Gaussian(MiniFloat.E5M2, 128 * 256 + 0, 9);
        var scales = new byte[2 * 3 * 4];
        new Random(10).NextBytes(scales);
        var norm = new byte[256 * 2];
        new Random(11).NextBytes(norm);
        File.WriteAllBytes(path, SafetensorsWriter.ToBytes(
        [
            new("layers.0.mlp.up_proj.weight", DType.F8E4M3, [256, 384], TensorByteSource.FromMemory(q)),
            new("layers.0.mlp.up_proj.weight_scale_inv", DType.F32, [2, 3], TensorByteSource.FromMemory(scales)),
            new("layers.0.mlp.down_proj.weight", DType.F8E5M2, [128, 256], TensorByteSource.FromMemory(e5)),
            new("layers.0.input_layernorm.weight", DType.BF16, [256], TensorByteSource.FromMemory(norm)),
            new("tiny", DType.F8E4M3, [3], TensorByteSource.FromMemory(new byte[] { 0x7F, 0x80, 0x01 })),
        ], []));
        var tcz = dir.File("fp8.tcz");
        var back = dir.File("fp8.back");
        var result = TczWriter.CompressFile(path, tcz, overwrite: false, new TczCompressOptions { ChunkSize = 64 * 1024, CollectStatistics = true });
        using (var r = TczReader.Open(tcz)) r.DecompressToFile(back, overwrite: false);
        Assert.Equal(File.ReadAllBytes(path), File.ReadAllBytes(back));
        var names = result.Total.Streams.Select(s => s.Name).ToList();
        Assert.Contains("F8E4M3.mag", names);
        Assert.Contains("F8E5M2.sign", names);
        Assert.True(result.CompressedBytes < 0.85 * new FileInfo(path).Length, $"{result.CompressedBytes} of {new FileInfo(path).Length}");
    }
}

/// <summary>The FP8 split's vector paths against the scalar reference at every instruction-set level this machine has.</summary>
[Collection(SimdCollection.Name)]
public class Fp8SplitSimdTests
{
    [SkippableTheory]
    [MemberData(nameof(SimdLevels.All), MemberType = typeof(SimdLevels))]
    public void EveryCodeRoundTripsAndVectorPathsMatchScalar(string level)
    {
        foreach (var t in new[] { SplitTransform.F8E4M3, SplitTransform.F8E5M2 })
        foreach (int n in Fp8SplitTests.Lengths)
        for (int order = 0; order < 3; order++)
        {
            var raw = Fp8SplitTests.AllCodes(n, order);
            byte[] scalar;
            using (SimdLevels.Force(nameof(SimdLevel.Scalar))) scalar = Fp8SplitTests.SplitOf(t, raw);
            byte[] streams, back = new byte[n];
            using (SimdLevels.Force(level))
            {
                streams = Fp8SplitTests.SplitOf(t, raw);
                Assert.Equal(OperationStatus.Done, FloatSplit.Merge(t, streams, back));
            }
            Assert.Equal(scalar, streams);
            Assert.Equal(raw, back);
            // The scalar merge of what the vector split wrote gives the same bytes too.
            using (SimdLevels.Force(nameof(SimdLevel.Scalar))) FloatSplit.Merge(t, streams, back);
            Assert.Equal(raw, back);
        }
    }

    [SkippableTheory]
    [MemberData(nameof(SimdLevels.All), MemberType = typeof(SimdLevels))]
    public void MergeIgnoresBitsTheSplitNeverWrites(string level)
    {
        using var _ = SimdLevels.Force(level);
        var raw = Fp8SplitTests.AllCodes(1003, 2);
        var streams = Fp8SplitTests.SplitOf(SplitTransform.F8E4M3, raw);
        for (int i = 0; i < 1003; i++) streams[i] |= 0x80;   // bit 7 of every mag byte
        streams[1003 + 125] |= 0xF8;                          // sign byte 125 holds elements 1000..1002 in bits 0..2
        var back = new byte[1003];
        FloatSplit.Merge(SplitTransform.F8E4M3, streams, back);
        Assert.Equal(raw, back);
    }
}
