using TensorCodec.Bench;
using TensorCodec.Numerics;
using TensorCodec.Quantization;
using Xunit.Abstractions;

namespace TensorCodec.Tests.Quantization;

/// <summary>
/// Allocation measurements need the process to themselves: xunit runs this collection alone, after the parallel ones.
/// </summary>
[CollectionDefinition(Name, DisableParallelization = true)]
public sealed class StreamingMemoryCollection
{
    public const string Name = "Streaming memory (not parallel)";
}

/// <summary>
/// The streaming commands (quantize, convert) must not hold the model, nor even its largest tensor: on a generated
/// ~90 MB BF16 model (largest tensor 32.8 MB, 65.5 MB as float32) the bytes they allocate in all — a bound on their
/// managed memory, whatever the GC does — stay below a quarter of the largest tensor plus a fixed amount. Before the quantizer
/// streamed rows it allocated about three times the model (stored bytes, float32 copy, encoded copy of every tensor).
/// </summary>
[Collection(StreamingMemoryCollection.Name)]
public sealed class StreamingMemoryTests(StreamingMemoryTests.Model model, ITestOutputHelper log) : IClassFixture<StreamingMemoryTests.Model>
{
    static readonly LlamaShapedModel Shape = new(Hidden: 512, Layers: 4, Ffn: 1536, Vocab: 32000, Heads: 8, KvHeads: 8);
    const long Fixed = 12 << 20;
    readonly string _dir = model.Dir;
    readonly string _model = model.Path;

    /// <summary>The generated model, written once for the class.</summary>
    public sealed class Model : IDisposable
    {
        public string Dir { get; } = System.IO.Path.Combine(System.IO.Path.GetTempPath(), "tcodec-streaming-" + Guid.NewGuid().ToString("N"));
        public string Path => System.IO.Path.Combine(Dir, "model");
        public Model() => Shape.Write(Path, shards: 2);
        public void Dispose() => Directory.Delete(Dir, recursive: true);
    }

    long Bound => Shape.LargestTensorBytes / 4 + Fixed;

    long Allocated(Action run)
    {
        long before = GC.GetTotalAllocatedBytes(precise: true);
        run();
        long allocated = GC.GetTotalAllocatedBytes(precise: true) - before;
        log.WriteLine($"allocated {allocated:N0} bytes; largest tensor {Shape.LargestTensorBytes:N0} bytes");
        return allocated;
    }

    [Theory]
    [InlineData("q8_0")]
    [InlineData("f32")]
    public void QuantizeAllocatesLessThanTheLargestTensor(string mix)
    {
        string output = Path.Combine(_dir, mix + ".gguf");
        long allocated = Allocated(() => ModelQuantizer.Quantize(_model, output, new ModelQuantizeOptions { Mix = QuantMix.Get(mix), Threads = 2 }));
        Assert.True(new FileInfo(output).Length > Shape.LargestTensorBytes, "the output holds the model");
        Assert.True(allocated < Bound, $"quantize -t {mix} allocated {allocated:N0} bytes; bound {Bound:N0} (largest tensor {Shape.LargestTensorBytes:N0} bytes)");
    }

    [Fact]
    public void ConvertAllocatesLessThanTheLargestTensor()
    {
        // BF16 in, F32 out: every row decoded and re-encoded, in shards.
        string output = Path.Combine(_dir, "f32");
        long allocated = Allocated(() => HfExport.Convert(_model, output, new HfExportOptions { DType = DType.F32, MaxShardBytes = 80_000_000 }));
        Assert.True(File.Exists(Path.Combine(output, "model.safetensors.index.json")), "written sharded");
        Assert.True(allocated < Bound, $"convert allocated {allocated:N0} bytes; bound {Bound:N0} (largest tensor {Shape.LargestTensorBytes:N0} bytes)");
    }
}
