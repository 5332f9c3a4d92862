using System.Diagnostics;
using TensorCodec.Containers;
using TensorCodec.Containers.Tcz;
using TensorCodec.Containers.Tkv;
using TensorCodec.Engine;
using TensorCodec.Tokenizers;
using TensorCodec.Eval;
using TensorCodec.Models;
using TensorCodec.Tests.Kv;
using static TensorCodec.Tests.Containers.ContainerTestData;

namespace TensorCodec.Tests.Containers;

/// <summary>
/// Seeded mutation fuzzing of the parsers <see cref="ContainerFuzzTests"/> (safetensors, GGUF, llama2.c) and
/// <see cref="TczIndexFuzzTests"/> (.tcz index) do not cover: whole .tcz files, .tkv, config.json,
/// GGUF model metadata, tokenizer.bin and token files. Each mutant of a valid file either parses or throws the parser's documented
/// error type, never another exception, a hang (one input may take at most <see cref="MaxPerInput"/>) or a huge
/// allocation (at most <see cref="MaxAllocation"/> per input on the parsing thread). Iterations: 1000 per
/// parser, or TCODEC_FUZZ_ITERATIONS (see README "Fuzzing"); TCODEC_FUZZ_SEED changes the seed.
/// </summary>
public class ParserFuzzTests
{
    static readonly TimeSpan MaxPerInput = TimeSpan.FromSeconds(10);
    const long MaxAllocation = 256L << 20;

    static int Iterations => Environment.GetEnvironmentVariable("TCODEC_FUZZ_ITERATIONS") is { Length: > 0 } ? ContainerFuzzTests.Iterations : 1000;

    /// <summary>Runs <paramref name="parse"/> on mutants of <paramref name="seedFile"/>; <paramref name="allowed"/> says which exceptions are refusals.</summary>
    static void Fuzz(string name, byte[] seedFile, Action<byte[], int> parse, Func<Exception, bool> allowed, bool checksummed = false)
    {
        int seed = ContainerFuzzTests.Seed + name.Length * 7919;
        var rng = new Random(seed);
        int accepted = 0;
        parse(seedFile, -1); // the unmutated file parses
        for (int i = 0; i < Iterations; i++)
        {
            var input = ContainerFuzzTests.Mutate(seedFile, rng);
            var sw = Stopwatch.StartNew();
            long before = GC.GetAllocatedBytesForCurrentThread();
            try { parse(input, i); accepted++; }
            catch (Exception e) when (allowed(e)) { }
            catch (Exception e)
            {
                Assert.Fail($"{name} seed {seed} iteration {i}: {e.GetType().Name}: {e.Message}\n{e.StackTrace}\ninput: {Convert.ToHexString(input.AsSpan(0, Math.Min(input.Length, 256)))}");
            }
            long allocated = GC.GetAllocatedBytesForCurrentThread() - before;
            Assert.True(sw.Elapsed < MaxPerInput, $"{name} seed {seed} iteration {i}: took {sw.Elapsed.TotalSeconds:0.0} s");
            Assert.True(allocated < MaxAllocation, $"{name} seed {seed} iteration {i}: allocated {allocated >> 20} MiB for a {input.Length}-byte input");
        }
        // A checksummed format refuses (nearly) every mutant; the others must reach their success path too.
        if (!checksummed) Assert.True(accepted > 0, $"{name}: no mutant was accepted, so the fuzzer never reaches the success path");
    }

    static bool FormatError(Exception e) => e is TensorFormatException;

    [Fact]
    public void MutatedTczFilesAreRefusedCleanly()
    {
        using var dir = new ScratchDir();
        var seedFile = File.ReadAllBytes(Fixture("hostile", "declares-64mib-chunks.tcz"));
        var path = dir.File("m.tcz");
        Fuzz("tcz", seedFile, (bytes, _) =>
        {
            File.WriteAllBytes(path, bytes);
            using (var reader = TczReader.Open(path)) reader.DecompressTo(null, threads: 2);
            TczInspector.InspectTcz(path);
        }, e => e is TensorFormatException t && t.FilePath == path, checksummed: true);
    }

    [Fact]
    public void MutatedTkvFilesAreRefusedCleanly()
    {
        var (tokens, id, keys, values) = TkvGoldenTests.Synthetic();
        var ms = new MemoryStream();
        TkvWriter.Write(ms, new TkvHeader(id, TkvGoldenTests.Layers, TkvGoldenTests.KvHeads, TkvGoldenTests.HeadDim, TkvGoldenTests.Vocab, tokens,
            KvCodecSpec.Parse("q4", TkvGoldenTests.Layers)), keys, values);
        Fuzz("tkv", ms.ToArray(), (bytes, _) => new TkvReader(new MemoryStream(bytes), "fuzz.tkv").ReadSections(),
            e => e is TensorFormatException t && t.FilePath == "fuzz.tkv", checksummed: true);
    }

    [Fact]
    public void MutatedConfigJsonIsRefusedCleanly()
    {
        using var dir = new ScratchDir();
        var path = dir.File("config.json");
        Fuzz("config.json", File.ReadAllBytes(Fixture("bard-3m", "config.json")), (bytes, _) =>
        {
            File.WriteAllBytes(path, bytes);
            var c = ModelConfig.FromHfConfig(path);
            Assert.True(c.Dim > 0 && c.Heads > 0 && c.Dim % c.Heads == 0);
        },
        // An architecture the engine does not run is refused as NotSupported, naming the file and field (ModelConfig.Refusals).
        e => e is TensorFormatException t && t.FilePath == path || e is NotSupportedException n && n.Message.StartsWith(path));
    }

    /// <summary>GGUF metadata as a model config (the container itself is fuzzed by <see cref="ContainerFuzzTests"/>).</summary>
    [Fact]
    public void MutatedGgufModelMetadataIsRefusedCleanly()
    {
        List<KeyValuePair<string, GgufValue>> meta =
            [new("general.architecture", GgufValue.String("llama")), .. ModelConfig.FromHfConfig(Fixture("engine", "config.json")).ToGgufMetadata()];
        Fuzz("gguf config", GgufWriter.ToBytes(meta, []), (bytes, _) =>
        {
            var c = ModelConfig.FromGguf(GgufFile.Parse(new MemoryStream(bytes), "fuzz.gguf"), "fuzz.gguf");
            Assert.True(c.Dim > 0 && c.Heads > 0 && c.Dim % c.Heads == 0);
        }, e => e is TensorFormatException t && t.FilePath == "fuzz.gguf" || e is NotSupportedException n && n.Message.StartsWith("fuzz.gguf"));
    }

    [Fact]
    public void MutatedTokenizersAreRefusedCleanly()
    {
        using var dir = new ScratchDir();
        var path = dir.File("tokenizer.bin");
        Fuzz("tokenizer.bin", File.ReadAllBytes(Fixture("engine", "tok1024.bin")), (bytes, _) =>
        {
            File.WriteAllBytes(path, bytes);
            var tok = Tokenizer.LoadLlama2c(path);
            tok.EncodeParagraphs("First Citizen:\nBefore we proceed any further, hear me speak.\n");
        }, e => e is TensorFormatException t && t.FilePath == path);
    }

    /// <summary>Token files report damage as <see cref="InvalidDataException"/> (EvalData's documented error), naming the file.</summary>
    [Theory]
    [InlineData("tokens.u16")]
    [InlineData("tokens.csv")]
    public void MutatedTokenFilesAreRefusedCleanly(string name)
    {
        using var dir = new ScratchDir();
        var path = dir.File(name);
        var seedFile = name.EndsWith(".u16") ? File.ReadAllBytes(TestFiles.Sample("shakespeare-val-4k.tokens.u16")) : File.ReadAllBytes(Fixture("engine", "greedy.tokens.csv"));
        Fuzz(name, seedFile, (bytes, _) =>
        {
            File.WriteAllBytes(path, bytes);
            var ids = EvalData.ReadTokens(path);
            EvalData.CheckRange(ids, 32000, path);
        }, e => e is InvalidDataException && e.Message.StartsWith(path));
    }
}
