using System.Runtime.InteropServices;
using System.Text.Json;
using TensorCodec.Containers;
using TensorCodec.Containers.Tcz;
using TensorCodec.Engine;
using TensorCodec.Tokenizers;
using TensorCodec.Formats;
using TensorCodec.Models;
using TensorCodec.Numerics;
using TensorCodec.Quantization;
using TensorCodec.Tests.Cli;

namespace TensorCodec.Tests.Models;

/// <summary>
/// <c>tcodec convert</c> (<see cref="HfExport"/>) and <c>tcodec extract</c> (<see cref="TensorExtractor"/>):
/// HF → GGUF → HF is bit-exact, dequantized GGUFs equal their per-tensor dequantization, the engine
/// gives the same logits on the converted folder, shards and .tcz inputs give the same tensors.
/// </summary>
public class HfExportTests
{
    static readonly int[] Tokens = [1, 5, 17, 40, 95, 3, 60, 2];

    /// <summary>Every tensor of a model (folder, index or file) by name: dtype, shape and stored bytes.</summary>
    internal static Dictionary<string, (DType DType, long[] Shape, byte[] Bytes)> ReadAll(string path)
    {
        using var src = ModelSource.Open(path, withConfig: false);
        var result = new Dictionary<string, (DType, long[], byte[])>(StringComparer.Ordinal);
        foreach (var (t, shard) in src.Model.Tensors)
        {
            var bytes = new byte[t.Length];
            src.Read(shard, t.Offset, bytes);
            result.Add(t.Name, (t.DType, t.Shape, bytes));
        }
        return result;
    }

    static void AssertSameTensors(string expected, string actual)
    {
        var a = ReadAll(expected);
        var b = ReadAll(actual);
        Assert.Equal(a.Keys.Order(StringComparer.Ordinal), b.Keys.Order(StringComparer.Ordinal));
        foreach (var (name, (dtype, shape, bytes)) in a)
        {
            Assert.True(dtype == b[name].DType, $"{name}: {dtype} became {b[name].DType}");
            Assert.Equal(shape, b[name].Shape);
            Assert.True(bytes.AsSpan().SequenceEqual(b[name].Bytes), $"{name}: bytes differ");
        }
    }

    static HfExportResult Convert(string input, string output, DType? dtype = null, long maxShard = 5_000_000_000) =>
        HfExport.Convert(input, output, new HfExportOptions { DType = dtype, MaxShardBytes = maxShard });

    static void Quantize(string input, string output, string mix) =>
        ModelQuantizer.Quantize(input, output, new ModelQuantizeOptions { Mix = QuantMix.Get(mix), ModelName = "m" });

    static float[] Logits(string model)
    {
        using var m = LlamaModel.Load(model);
        return ModelDirectoryTests.Logits(m, Tokens.Where(t => t < m.Config.VocabSize).ToArray());
    }

    [Fact]
    public void Tiny_model_round_trips_through_an_f32_gguf_bit_exactly()
    {
        using var dir = new ScratchDir();
        string hf = TinyHfModel.Write(dir.File("hf"));
        Quantize(hf, dir.File("m.gguf"), "f32");
        var r = Convert(dir.File("m.gguf"), dir.File("back"), DType.F32);
        Assert.Equal(1, r.Shards);
        AssertSameTensors(hf, dir.File("back"));
        // config.json describes the same model, and transformers' required fields are there.
        Assert.Equal(ModelConfig.FromHfConfig(Path.Combine(hf, "config.json")) with { BosId = 1, EosId = 2 },
            ModelConfig.FromHfConfig(dir.File("back/config.json")));
        using var doc = JsonDocument.Parse(File.ReadAllText(dir.File("back/config.json")));
        Assert.Equal("LlamaForCausalLM", doc.RootElement.GetProperty("architectures")[0].GetString());
        Assert.Equal("float32", doc.RootElement.GetProperty("torch_dtype").GetString());
        Assert.False(doc.RootElement.GetProperty("tie_word_embeddings").GetBoolean());
        Assert.Equal(Logits(hf), Logits(dir.File("back")));
    }

    [Fact]
    public void Tiny_bf16_model_round_trips_through_a_bf16_gguf_bit_exactly()
    {
        using var dir = new ScratchDir();
        string hf = TinyHfModel.Write(dir.File("hf"));
        Convert(hf, dir.File("bf"), DType.BF16); // HF → HF: the dtype changes, nothing else
        Assert.All(ReadAll(dir.File("bf")).Values, t => Assert.Equal(DType.BF16, t.DType));
        Quantize(dir.File("bf"), dir.File("m.gguf"), "bf16"); // norms stay f32 in the GGUF, holding bf16 values
        Convert(dir.File("m.gguf"), dir.File("back"), DType.BF16);
        AssertSameTensors(dir.File("bf"), dir.File("back"));
        Quantize(dir.File("bf"), dir.File("f.gguf"), "f32");
        Convert(dir.File("f.gguf"), dir.File("back32.safetensors"), DType.BF16);
        AssertSameTensors(dir.File("bf"), dir.File("back32.safetensors"));
    }

    [SkippableFact]
    public void Bard_round_trips_through_gguf_bit_exactly_in_f32_and_bf16()
    {
        string bard = TestFiles.SharedOrSkip("data/models/bard-3m");
        using var dir = new ScratchDir();
        Quantize(bard, dir.File("f32.gguf"), "f32");
        Convert(dir.File("f32.gguf"), dir.File("f32"), DType.F32);
        AssertSameTensors(Path.Combine(bard, "model.safetensors"), dir.File("f32"));

        Directory.CreateDirectory(dir.File("bf16"));
        File.Copy(Path.Combine(bard, "config.json"), dir.File("bf16/config.json"));
        File.Copy(Path.Combine(bard, "model-bf16.safetensors"), dir.File("bf16/model.safetensors"));
        Quantize(dir.File("bf16"), dir.File("bf16.gguf"), "bf16");
        var r = Convert(dir.File("bf16.gguf"), dir.File("back"));
        Assert.Equal(DType.BF16, r.DType); // default: the input's one float type
        AssertSameTensors(dir.File("bf16/model.safetensors"), dir.File("back"));
    }

    /// <summary>The expected HF tensor of a GGUF tensor: its own dequantization, Q/K rows back in rotate_half order.</summary>
    static float[] Dequantized(GgufFile g, string file, GgufTensorInfo t, ModelConfig config)
    {
        var bytes = new byte[t.ByteSize];
        using (var s = File.OpenRead(file)) { s.Position = t.Offset; s.ReadExactly(bytes); }
        var values = new float[t.ElementCount];
        if (t.GgmlType == GgmlTypes.F32) MemoryMarshal.Cast<byte, float>(bytes).CopyTo(values);
        else BlockFormats.FromGgmlType(t.GgmlType)!.Dequantize(bytes, values);
        Assert.True(TensorNames.TryParse(TensorNaming.Gguf, t.Name, out var role, out _));
        int heads = TensorNames.RopeHeads(role, config);
        return heads > 0 ? RopePermutation.FromGguf(values, (int)t.Dims[1], (int)t.Dims[0], heads) : values;
    }

    [Fact]
    public void A_q8_0_gguf_converts_to_each_tensors_dequantization_and_the_same_logits()
    {
        using var dir = new ScratchDir();
        string hf = TinyHfModel.Write(dir.File("hf"));
        string gguf = dir.File("q8.gguf");
        Quantize(hf, gguf, "q8_0");
        var r = Convert(gguf, dir.File("out"), DType.F32);
        Assert.Equal(DType.F32, r.DType);

        GgufFile g;
        using (var s = File.OpenRead(gguf)) g = GgufFile.Parse(s, gguf);
        var config = ModelConfig.FromGguf(g, gguf);
        Assert.Contains(g.Tensors, t => t.GgmlType == GgmlTypes.Q8_0);
        var converted = ReadAll(dir.File("out"));
        Assert.Equal(g.Tensors.Count, converted.Count);
        foreach (var t in g.Tensors)
        {
            Assert.True(TensorNames.TryParse(TensorNaming.Gguf, t.Name, out var role, out int layer));
            var (dtype, shape, bytes) = converted[TensorNames.Name(TensorNaming.HuggingFace, role, layer)];
            Assert.Equal(DType.F32, dtype);
            Assert.Equal(t.Dims.Reverse(), shape);
            Assert.Equal(Dequantized(g, gguf, t, config), MemoryMarshal.Cast<byte, float>(bytes).ToArray());
        }

        // Two loaders of the same weights: the engine on the GGUF (adjacent-pair RoPE) and on the folder (rotate_half).
        var a = Logits(gguf);
        var b = Logits(dir.File("out"));
        Assert.Equal(a.Length, b.Length);
        for (int i = 0; i < a.Length; i++) Assert.True(Math.Abs(a[i] - b[i]) <= 1e-5f, $"logit {i}: {a[i]} vs {b[i]}");
        // Default dtype for a quantized input: bf16.
        Assert.Equal(DType.BF16, Convert(gguf, dir.File("bf")).DType);
        // An F16 GGUF (norms in F32, as llama.cpp keeps them) stays F16.
        Quantize(hf, dir.File("f16.gguf"), "f16");
        Assert.Equal(DType.F16, Convert(dir.File("f16.gguf"), dir.File("f16")).DType);
    }

    [SkippableFact]
    public void Bard_q8_0_gguf_gives_the_same_logits_converted()
    {
        string bard = TestFiles.SharedOrSkip("data/models/bard-3m");
        using var dir = new ScratchDir();
        Quantize(bard, dir.File("q8.gguf"), "q8_0");
        Convert(dir.File("q8.gguf"), dir.File("out"), DType.F32);
        var a = Logits(dir.File("q8.gguf"));
        var b = Logits(dir.File("out"));
        for (int i = 0; i < a.Length; i++) Assert.True(Math.Abs(a[i] - b[i]) <= 1e-5f, $"logit {i}: {a[i]} vs {b[i]}");
    }

    [Fact]
    public void Sharded_output_has_transformers_names_an_index_and_loads()
    {
        using var dir = new ScratchDir();
        string hf = TinyHfModel.Write(dir.File("hf"));
        Quantize(hf, dir.File("m.gguf"), "f32");
        var r = Convert(dir.File("m.gguf"), dir.File("out"), DType.F32, maxShard: 100_000);
        Assert.True(r.Shards >= 3, $"{r.Shards} shards");
        var files = Directory.GetFiles(dir.File("out")).Select(Path.GetFileName).Order(StringComparer.Ordinal).ToList();
        var shardNames = Enumerable.Range(1, r.Shards).Select(i => $"model-{i:D5}-of-{r.Shards:D5}.safetensors").ToList();
        Assert.Equal(shardNames.Append("config.json").Append(ShardedSafetensors.IndexFileName).Order(StringComparer.Ordinal), files);
        foreach (var s in shardNames) Assert.True(new FileInfo(Path.Combine(dir.File("out"), s)).Length <= 100_000 + 4096, s);

        using var index = JsonDocument.Parse(File.ReadAllText(Path.Combine(dir.File("out"), ShardedSafetensors.IndexFileName)));
        Assert.Equal(r.TensorBytes, index.RootElement.GetProperty("metadata").GetProperty("total_size").GetInt64());
        var map = index.RootElement.GetProperty("weight_map").EnumerateObject().ToList();
        Assert.Equal(map.Select(p => p.Name).Order(StringComparer.Ordinal), map.Select(p => p.Name)); // sorted, as transformers writes it
        AssertSameTensors(hf, dir.File("out")); // ShardedSafetensors checked index against shards
        Assert.Equal(Logits(hf), Logits(dir.File("out")));

        // One file over a sharded output: the old index would mislead loaders, so it is refused, and removed with -f.
        Assert.Contains("index.json: already exists", Assert.Throws<IOException>(() => Convert(dir.File("m.gguf"), dir.File("out"), DType.F32)).Message);
        HfExport.Convert(dir.File("m.gguf"), dir.File("out"), new HfExportOptions { DType = DType.F32, Overwrite = true });
        Assert.False(File.Exists(Path.Combine(dir.File("out"), ShardedSafetensors.IndexFileName)));
        AssertSameTensors(hf, dir.File("out"));

        // NAME.safetensors with shards: NAME-0000k-of-0000N.safetensors and NAME.safetensors.index.json beside it.
        Directory.CreateDirectory(dir.File("named"));
        var r2 = Convert(dir.File("m.gguf"), dir.File("named/tiny.safetensors"), DType.F32, maxShard: 100_000);
        Assert.True(File.Exists(dir.File($"named/tiny-00001-of-{r2.Shards:D5}.safetensors")));
        AssertSameTensors(hf, dir.File("named/tiny.safetensors.index.json"));
    }

    [Fact]
    public void A_tcz_of_a_gguf_converts_like_the_gguf_and_extract_decodes_only_its_tensor()
    {
        using var dir = new ScratchDir();
        string hf = TinyHfModel.Write(dir.File("hf"));
        string gguf = dir.File("q8.gguf");
        Quantize(hf, gguf, "q8_0");
        TczWriter.CompressFile(gguf, dir.File("q8.tcz"), overwrite: false, new TczCompressOptions { ChunkSize = 4096 });
        Convert(gguf, dir.File("a"), DType.F32);
        Convert(dir.File("q8.tcz"), dir.File("b"), DType.F32);
        AssertSameTensors(dir.File("a"), dir.File("b"));

        const string name = "blk.1.attn_q.weight";
        using (var src = ModelSource.Open(dir.File("q8.tcz"), withConfig: false, tczHeader: false))
        {
            var t = src.Find(name)!.Value.Info;
            src.Read(0, t.Offset, new byte[t.Length]);
            using var reader = TczReader.Open(dir.File("q8.tcz"));
            int own = reader.FindTensor(name).Chunks.Count, all = reader.Index.Segments.Sum(s => s.Chunks.Count);
            Assert.True(own > 1 && own < all / 4, $"{own} of {all} chunks");
            Assert.Equal(own, src.TczStream!.ChunksDecoded);
        }
        TensorExtractor.Extract(dir.File("q8.tcz"), name, dir.File("t.bin"), decodeToF32: false, overwrite: false);
        TensorExtractor.Extract(gguf, name, dir.File("g.bin"), decodeToF32: false, overwrite: false);
        Assert.Equal(File.ReadAllBytes(dir.File("g.bin")), File.ReadAllBytes(dir.File("t.bin")));
        var r = TensorExtractor.Extract(dir.File("q8.tcz"), name, dir.File("t32.bin"), decodeToF32: true, overwrite: false);
        Assert.Equal("q8_0", r.StoredType);
        Assert.Equal([64L, 64L], r.Shape);
        GgufFile g;
        using (var s = File.OpenRead(gguf)) g = GgufFile.Parse(s, gguf);
        var info = g.Tensors.Single(t => t.Name == name);
        var expected = new float[info.ElementCount];
        BlockFormats.FromGgmlType(info.GgmlType)!.Dequantize(File.ReadAllBytes(dir.File("g.bin")), expected);
        Assert.Equal(expected, MemoryMarshal.Cast<byte, float>(File.ReadAllBytes(dir.File("t32.bin"))).ToArray());
    }

    [Fact]
    public void A_folder_compressed_shard_by_shard_converts_and_extracts_like_the_folder()
    {
        using var dir = new ScratchDir();
        string hf = TinyHfModel.Write(dir.File("hf"), shards: 3);
        TczFolder.Compress(hf, dir.File("tcz"), overwrite: false);
        Assert.False(File.Exists(dir.File("tcz/model-00001-of-00003.safetensors")));
        Convert(hf, dir.File("a"), DType.BF16);
        Convert(dir.File("tcz"), dir.File("b"), DType.BF16);
        AssertSameTensors(dir.File("a"), dir.File("b"));
        AssertSameTensors(hf, dir.File("tcz"));
        TensorExtractor.Extract(dir.File("tcz"), "lm_head.weight", dir.File("x.bin"), decodeToF32: false, overwrite: false);
        Assert.Equal(ReadAll(hf)["lm_head.weight"].Bytes, File.ReadAllBytes(dir.File("x.bin")));

        string one = TinyHfModel.Write(dir.File("one"));
        TczFolder.Compress(one, null, overwrite: false);
        File.Delete(Path.Combine(one, "model.safetensors"));
        Convert(one, dir.File("c"), DType.BF16);
        AssertSameTensors(dir.File("a"), dir.File("c"));
    }

    [Fact]
    public void Extract_reads_sharded_folders_and_names_close_tensors_when_asked_for_a_missing_one()
    {
        using var dir = new ScratchDir();
        string hf = TinyHfModel.Write(dir.File("hf"), shards: 3);
        var original = TinyHfModel.Tensors(7).Single(t => t.Name == "model.layers.1.mlp.down_proj.weight");
        var r = TensorExtractor.Extract(hf, original.Name, dir.File("d.bin"), decodeToF32: false, overwrite: false);
        Assert.Equal("f32", r.StoredType);
        Assert.Equal(original.Values, MemoryMarshal.Cast<byte, float>(File.ReadAllBytes(dir.File("d.bin"))).ToArray());

        Quantize(hf, dir.File("m.gguf"), "q8_0");
        var e = Assert.Throws<KeyNotFoundException>(() =>
            TensorExtractor.Extract(dir.File("m.gguf"), "model.layers.1.self_attn.q_proj.weight", dir.File("x.bin"), false, false));
        Assert.StartsWith(dir.File("m.gguf") + ": no tensor named 'model.layers.1.self_attn.q_proj.weight'", e.Message);
        Assert.Contains("close names: blk.1.attn_q.weight", e.Message); // the same tensor under GGUF's names first
        e = Assert.Throws<KeyNotFoundException>(() => TensorExtractor.Extract(hf, "lm_head", dir.File("x.bin"), false, false));
        Assert.Contains("lm_head.weight", e.Message);
        Assert.False(File.Exists(dir.File("x.bin")));
    }

    [SkippableFact]
    public void A_llama2c_checkpoint_converts_with_tied_embeddings_and_the_same_logits()
    {
        string bin = TestFiles.SharedOrSkip("data/models/stories260K/stories260K.bin");
        using var dir = new ScratchDir();
        var r = Convert(bin, dir.File("out"));
        Assert.Equal(DType.F32, r.DType);
        var t = ReadAll(dir.File("out"));
        Assert.DoesNotContain("lm_head.weight", t.Keys);
        Assert.Contains("model.layers.4.self_attn.k_proj.weight", t.Keys);
        Assert.True(ModelConfig.FromHfConfig(dir.File("out/config.json")).TiedEmbeddings);
        var a = Logits(bin);
        var b = Logits(dir.File("out"));
        float max = a.Max(MathF.Abs);
        // Same weights; only the order of the q·k sums differs between the two RoPE layouts.
        for (int i = 0; i < a.Length; i++) Assert.True(Math.Abs(a[i] - b[i]) <= 2e-6f * max, $"logit {i}: {a[i]} vs {b[i]}");
    }

    [Fact]
    public void A_refused_or_cancelled_conversion_leaves_nothing_behind()
    {
        using var dir = new ScratchDir();
        string hf = TinyHfModel.Write(dir.File("hf"));
        Quantize(hf, dir.File("m.gguf"), "f32");
        Directory.CreateDirectory(dir.File("out"));
        File.WriteAllText(dir.File("out/config.json"), "{}");
        var e = Assert.Throws<IOException>(() => Convert(dir.File("m.gguf"), dir.File("out"), maxShard: 100_000));
        Assert.Contains("config.json: already exists", e.Message);
        Assert.Equal(["config.json"], Directory.GetFiles(dir.File("out")).Select(Path.GetFileName));

        using var cts = new CancellationTokenSource();
        cts.Cancel();
        Assert.ThrowsAny<OperationCanceledException>(() => HfExport.Convert(dir.File("m.gguf"), dir.File("new"),
            new HfExportOptions { MaxShardBytes = 100_000, Cancellation = cts.Token }));
        Assert.False(Directory.Exists(dir.File("new")), "the folder the run created is removed again");

        Assert.Throws<IOException>(() => Convert(hf, hf)); // would overwrite the input's config.json

        // Tokenizer files beside the input are copied, except onto themselves when converting into the input's folder.
        File.WriteAllText(dir.File("tokenizer.json"), "{\"model\": {}}");
        File.WriteAllBytes(dir.File("tokenizer.bin"), [1, 2, 3]);
        Convert(dir.File("m.gguf"), dir.File("tok"));
        Assert.Equal(File.ReadAllBytes(dir.File("tokenizer.json")), File.ReadAllBytes(dir.File("tok/tokenizer.json")));
        Assert.Equal([1, 2, 3], File.ReadAllBytes(dir.File("tok/tokenizer.bin")));
        var r = Convert(dir.File("m.gguf"), dir.Path);
        Assert.DoesNotContain(r.Files, f => Path.GetFileName(f).StartsWith("tokenizer", StringComparison.Ordinal));
        Assert.True(File.Exists(dir.File("model.safetensors")));
        Assert.Throws<ArgumentException>(() => Convert(hf, dir.File("x.gguf")));
    }

    [Fact]
    public void Shard_sizes_parse_as_transformers_spells_them()
    {
        Assert.Equal(5_000_000_000, HfExport.ParseSize("5GB"));
        Assert.Equal(200L << 20, HfExport.ParseSize("200MiB"));
        Assert.Equal(1500, HfExport.ParseSize("1.5KB"));
        Assert.Equal(4096, HfExport.ParseSize("4096"));
        Assert.Throws<ArgumentException>(() => HfExport.ParseSize("5 parsecs"));
        Assert.Throws<ArgumentException>(() => HfExport.ParseSize("0GB"));
    }

    [Fact]
    public void The_cli_refuses_output_names_of_another_format_and_reports_json()
    {
        using var dir = new ScratchDir();
        string hf = TinyHfModel.Write(dir.File("hf"));
        var (code, _, err) = CliTests.Tcodec("quantize", hf, "-t", "q8_0", "-o", dir.File("x.safetensors"));
        Assert.Equal(1, code);
        Assert.Contains("x.safetensors: quantize writes .gguf files", err);
        Assert.False(File.Exists(dir.File("x.safetensors")));
        (code, _, err) = CliTests.Tcodec("quantize", hf, "-t", "q8_0", "-o", "/dev/null");
        Assert.True(code == 0, err);

        Quantize(hf, dir.File("m.gguf"), "q8_0");
        (code, _, err) = CliTests.Tcodec("convert", dir.File("m.gguf"), "-o", dir.File("m2.gguf"));
        Assert.Equal(1, code);
        Assert.Contains("convert writes .safetensors files", err);
        (code, var stdout, err) = CliTests.Tcodec("convert", dir.File("m.gguf"), "-o", dir.File("out"), "--dtype", "f16", "--max-shard-size", "100KB", "--json");
        Assert.True(code == 0, err);
        using (var doc = JsonDocument.Parse(stdout))
        {
            Assert.Equal("command", doc.RootElement.EnumerateObject().First().Name);
            Assert.Equal("convert", doc.RootElement.GetProperty("command").GetString());
            TensorCodec.Tests.Cli.JsonSchema.CheckObject(doc.RootElement, "convert");
            Assert.Equal("f16", doc.RootElement.GetProperty("dtype").GetString());
            Assert.True(doc.RootElement.GetProperty("shards").GetInt32() > 1);
        }
        Assert.All(ReadAll(dir.File("out")).Values, t => Assert.Equal(DType.F16, t.DType));

        (code, stdout, err) = CliTests.Tcodec("extract", dir.File("m.gguf"), "--tensor", "blk.0.attn_k.weight", "-o", dir.File("k.bin"), "--dtype", "f32", "--json");
        Assert.True(code == 0, err);
        using (var doc = JsonDocument.Parse(stdout))
        {
            Assert.Equal("extract", doc.RootElement.GetProperty("command").GetString());
            TensorCodec.Tests.Cli.JsonSchema.CheckObject(doc.RootElement, "extract");
            Assert.Equal("q8_0", doc.RootElement.GetProperty("stored_dtype").GetString());
            Assert.Equal(new[] { 32L, 64L }, doc.RootElement.GetProperty("shape").EnumerateArray().Select(x => x.GetInt64()));
            Assert.Equal(32 * 64 * 4, doc.RootElement.GetProperty("output_bytes").GetInt64());
        }
        (code, _, err) = CliTests.Tcodec("extract", dir.File("m.gguf"), "--tensor", "blk.0.attn_kk.weight", "-o", dir.File("kk.bin"));
        Assert.Equal(1, code);
        Assert.Contains("no tensor named 'blk.0.attn_kk.weight'", err);
        Assert.Contains("blk.0.attn_k.weight", err);
        Assert.Single(err.Trim().Split('\n'));
    }

    [Theory]
    [MemberData(nameof(ArchitectureTests.VariantNames), MemberType = typeof(ArchitectureTests))]
    public void Every_architecture_round_trips_hf_to_f32_gguf_to_hf_bit_exactly(string variant)
    {
        var o = ArchitectureTests.Variants[variant];
        using var dir = new ScratchDir();
        string hf = TinyHfModel.Write(dir.File("hf"), o);
        Quantize(hf, dir.File("m.gguf"), "f32");
        HfExport.Convert(dir.File("m.gguf"), dir.File("back"), new HfExportOptions { DType = DType.F32 });
        var original = ReadAll(hf);
        var back = ReadAll(dir.File("back"));
        Assert.Equal(original.Keys.Order(StringComparer.Ordinal), back.Keys.Order(StringComparer.Ordinal));
        foreach (var (name, t) in original)
        {
            Assert.Equal(t.Shape, back[name].Shape);
            Assert.True(t.Bytes.AsSpan().SequenceEqual(back[name].Bytes), $"{variant}: {name} differs after the round trip");
        }
        // The written config.json describes the same model: our engine reads the same configuration from it.
        var cfgA = ModelConfig.FromHfConfig(Path.Combine(hf, "config.json"));
        var cfgB = ModelConfig.FromHfConfig(Path.Combine(dir.File("back"), "config.json"));
        Assert.Equal(cfgA.Architecture, cfgB.Architecture);
        Assert.Equal((cfgA.HeadDim, cfgA.QkvBias, cfgA.OutputBias, cfgA.QkNorm, cfgA.TiedEmbeddings), (cfgB.HeadDim, cfgB.QkvBias, cfgB.OutputBias, cfgB.QkNorm, cfgB.TiedEmbeddings));
        Assert.Equal(cfgA.RopeScaling, cfgB.RopeScaling);
    }
}
