using System.Buffers;
using System.Buffers.Binary;
using BenchmarkDotNet.Attributes;
using BenchmarkDotNet.Configs;
using BenchmarkDotNet.Jobs;
using TensorCodec.Coders;
using TensorCodec.Numerics;
using ZstdSharp;

namespace TensorCodec.Bench;

/// <summary>A short job: a handful of iterations is enough to compare coders, and it keeps a run under two minutes.</summary>
public sealed class QuickConfig : ManualConfig
{
    public QuickConfig() => AddJob(Job.Default.WithLaunchCount(1).WithWarmupCount(2).WithIterationCount(5).WithId("quick"));
}

/// <summary>
/// ChunkCodec vs zstd-3 on 1 MiB of BF16 weights (bard-3m if present, else synthetic Gaussian BF16),
/// plus the exponent stream's entropy coders alone. Throughput = 1 MiB / reported mean time.
/// </summary>
[Config(typeof(QuickConfig))]
[MemoryDiagnoser]
public class CoderBenchmarks
{
    const int Size = 1 << 20;
    const string Weights = "/work/shared/data/models/bard-3m/model-bf16.safetensors";
    byte[] raw = [], encoded = [], zstd = [], output = [], dest = [], exp = [], streams = [], expRans = [], expHuff = [];
    readonly Compressor compressor = new(3);
    readonly Decompressor decompressor = new();
    // Held across iterations, as a pipeline worker holds them: their scratch is warm after the first call.
    readonly ChunkEncoder encoder = new();
    readonly ChunkDecoder decoder = new();

    [GlobalSetup]
    public void Setup()
    {
        raw = LoadWeights();
        dest = new byte[ChunkCodec.MaxEncodedLength(Size)];
        ChunkCodec.Encode(raw, DType.BF16, dest, out int written);
        encoded = dest.AsSpan(0, written).ToArray();
        zstd = compressor.Wrap(raw).ToArray();
        output = new byte[Size];
        streams = new byte[Size];
        FloatSplit.Split(SplitTransform.BF16, raw, streams);
        exp = streams.AsSpan(0, Size / 2).ToArray();
        var tmp = new byte[RansCoder.MaxEncodedLength(exp.Length)];
        RansCoder.Encode(exp, tmp, out int w);
        expRans = tmp.AsSpan(0, w).ToArray();
        tmp = new byte[HuffmanCoder.MaxEncodedLength(exp.Length)];
        HuffmanCoder.Encode(exp, tmp, out w);
        expHuff = tmp.AsSpan(0, w).ToArray();
        Console.WriteLine($"// source: {(File.Exists(Weights) ? Weights : "synthetic Gaussian BF16")}");
        Console.WriteLine($"// ChunkCodec {encoded.Length} B ({8.0 * encoded.Length / (Size / 2):F3} bits/value), zstd-3 {zstd.Length} B ({8.0 * zstd.Length / (Size / 2):F3} bits/value)");
        Console.WriteLine($"// exp stream: H0 {FrequencyTable.Order0Bits(exp) / exp.Length:F3} bits, rANS {8.0 * expRans.Length / exp.Length:F3}, Huffman {8.0 * expHuff.Length / exp.Length:F3}");
    }

    static byte[] LoadWeights()
    {
        if (File.Exists(Weights))
        {
            byte[] all = File.ReadAllBytes(Weights);
            long hdr = BinaryPrimitives.ReadInt64LittleEndian(all);
            if (all.Length - 8 - hdr >= Size) return all.AsSpan((int)(8 + hdr), Size).ToArray();
        }
        var r = new Random(42);
        var b = new byte[Size];
        for (int i = 0; i < Size / 2; i++)
        {
            double g = Math.Sqrt(-2 * Math.Log(1 - r.NextDouble())) * Math.Cos(2 * Math.PI * r.NextDouble()) * 0.02;
            BinaryPrimitives.WriteUInt16LittleEndian(b.AsSpan(2 * i), (ushort)(BitConverter.SingleToUInt32Bits((float)g) >> 16));
        }
        return b;
    }

    [Benchmark] public OperationStatus ChunkEncode() => encoder.Encode(raw, DType.BF16, dest, out _);
    [Benchmark] public OperationStatus ChunkDecode() => decoder.Decode(encoded, output, out _);
    [Benchmark] public int ZstdCompress() => compressor.Wrap(raw, dest);
    [Benchmark] public int ZstdDecompress() => decompressor.Unwrap(zstd, output);
    [Benchmark] public OperationStatus RansDecodeExp() => RansCoder.Decode(expRans, output.AsSpan(0, exp.Length));
    [Benchmark] public OperationStatus HuffmanDecodeExp() => HuffmanCoder.Decode(expHuff, output.AsSpan(0, exp.Length));
    [Benchmark] public void SplitBF16() => FloatSplit.Split(SplitTransform.BF16, raw, output);
    [Benchmark] public void MergeBF16() => FloatSplit.Merge(SplitTransform.BF16, streams, output);
}
