using System.Text;
using System.Text.Json;
using TensorCodec.Containers;
using TensorCodec.Containers.Tcz;
using TensorCodec.Engine;
using TensorCodec.Models;
using TensorCodec.Quantization;
using TensorCodec.Tests.Engine;
using static TensorCodec.Tests.Cli.CliTests;

namespace TensorCodec.Tests.Models;

/// <summary>
/// Hugging Face model folders and sharded safetensors. The sharded models are built here by splitting
/// the committed samples/bard-3m-bf16.safetensors (or the shared F32 bard-3m) into shards with an index,
/// so the unsharded file is the reference every sharded result must equal bit for bit.
/// </summary>
public class ModelDirectoryTests
{
    static string Bard => TestFiles.Sample("bard-3m-bf16.safetensors");
    static string BardConfig => TestFiles.Sample("config.json");

    internal static float[] Logits(LlamaModel model, int[] tokens)
    {
        using var s = model.CreateSession();
        var logits = new float[tokens.Length * model.Config.VocabSize];
        s.Forward(tokens, logits);
        return logits;
    }

    /// <summary>
    /// Writes <paramref name="source"/>'s tensors, in file order, into <paramref name="shards"/> contiguous
    /// shard files named as transformers names them, plus model.safetensors.index.json and config.json.
    /// </summary>
    internal static string Shard(string source, string config, string dir, int shards)
    {
        Directory.CreateDirectory(dir);
        var layout = TensorFileReader.Open(source);
        var bytes = File.ReadAllBytes(source);
        var tensors = layout.Tensors.ToList();
        var map = new SortedDictionary<string, string>(StringComparer.Ordinal);
        int per = (tensors.Count + shards - 1) / shards;
        for (int s = 0; s < shards; s++)
        {
            string name = $"model-{s + 1:D5}-of-{shards:D5}.safetensors";
            var part = tensors.Skip(s * per).Take(per).ToList();
            using var f = File.Create(Path.Combine(dir, name));
            SafetensorsWriter.Write(f, part.Select(t => new SafetensorsTensor(t.Name, t.DType, t.Shape,
                TensorByteSource.FromMemory(bytes.AsMemory((int)t.Offset, (int)t.Length)))),
                [new("format", "pt")], new SafetensorsWriteOptions { Order = SafetensorsTensorOrder.AsGiven });
            foreach (var t in part) map[t.Name] = name;
        }
        WriteIndex(dir, map, tensors.Sum(t => t.Length));
        File.Copy(config, Path.Combine(dir, "config.json"));
        return dir;
    }

    static void WriteIndex(string dir, IEnumerable<KeyValuePair<string, string>> map, long totalSize)
    {
        var sb = new StringBuilder();
        sb.Append($"{{\n  \"metadata\": {{\n    \"total_size\": {totalSize}\n  }},\n  \"weight_map\": {{\n");
        sb.Append(string.Join(",\n", map.Select(kv => $"    \"{kv.Key}\": \"{kv.Value}\"")));
        sb.Append("\n  }\n}\n");
        File.WriteAllText(Path.Combine(dir, ShardedSafetensors.IndexFileName), sb.ToString());
    }

    static string IndexOf(string dir) => Path.Combine(dir, ShardedSafetensors.IndexFileName);

    static List<KeyValuePair<string, string>> ReadMap(string dir)
    {
        using var doc = JsonDocument.Parse(File.ReadAllText(IndexOf(dir)));
        return doc.RootElement.GetProperty("weight_map").EnumerateObject().Select(p => new KeyValuePair<string, string>(p.Name, p.Value.GetString()!)).ToList();
    }

    [Fact]
    public void Sharded_folder_and_its_index_give_the_unsharded_logits_bit_for_bit()
    {
        using var dir = new ScratchDir();
        string model = Shard(Bard, BardConfig, dir.File("bard"), 3);
        int[] tokens = [1, 300, 301, 302, 303, 304, 305, 306];
        using var plain = LlamaModel.Load(Bard, new LlamaLoadOptions { ConfigPath = BardConfig });
        var expected = Logits(plain, tokens);
        using (var m = LlamaModel.Load(model)) Assert.Equal(expected, Logits(m, tokens));
        using (var m = LlamaModel.Load(IndexOf(model))) Assert.Equal(expected, Logits(m, tokens));
        using (var m = LlamaModel.Load(model, new LlamaLoadOptions { WidenToF32 = true }))
        using (var w = LlamaModel.Load(Bard, new LlamaLoadOptions { ConfigPath = BardConfig, WidenToF32 = true }))
            Assert.Equal(Logits(w, tokens), Logits(m, tokens));
    }

    [SkippableFact]
    public void Sharded_f32_bard_gives_the_unsharded_logits_bit_for_bit()
    {
        string f32 = TestFiles.SharedOrSkip("data/models/bard-3m/model.safetensors");
        using var dir = new ScratchDir();
        string model = Shard(f32, Path.Combine(Path.GetDirectoryName(f32)!, "config.json"), dir.File("bard"), 2);
        int[] tokens = [1, 500, 501, 502, 503];
        using var plain = LlamaModel.Load(f32);
        using var sharded = LlamaModel.Load(model);
        Assert.Equal(Logits(plain, tokens), Logits(sharded, tokens));
    }

    [Fact]
    public void A_folder_with_one_model_safetensors_loads_like_the_file()
    {
        using var dir = new ScratchDir();
        File.Copy(Bard, dir.File("model.safetensors"));
        File.Copy(BardConfig, dir.File("config.json"));
        int[] tokens = [1, 300, 301];
        using var plain = LlamaModel.Load(Bard, new LlamaLoadOptions { ConfigPath = BardConfig });
        using var folder = LlamaModel.Load(dir.Path);
        Assert.Equal(Logits(plain, tokens), Logits(folder, tokens));
    }

    [Fact]
    public void Quantizing_a_sharded_folder_writes_the_bytes_of_the_unsharded_file()
    {
        using var dir = new ScratchDir();
        string model = Shard(Bard, BardConfig, dir.File("bard"), 3);
        var o = new ModelQuantizeOptions { Mix = QuantMix.Get("q8_0"), ModelName = "bard", TokenizerPath = EngineFixtures.Fixture("tok1024.bin") };
        ModelQuantizer.Quantize(Bard, dir.File("plain.gguf"), new ModelQuantizeOptions { Mix = o.Mix, ModelName = o.ModelName, TokenizerPath = o.TokenizerPath, ConfigPath = BardConfig });
        var r = ModelQuantizer.Quantize(model, dir.File("sharded.gguf"), o);
        ModelQuantizer.Quantize(IndexOf(model), dir.File("index.gguf"), o);
        Assert.Equal(File.ReadAllBytes(dir.File("plain.gguf")), File.ReadAllBytes(dir.File("sharded.gguf")));
        Assert.Equal(File.ReadAllBytes(dir.File("plain.gguf")), File.ReadAllBytes(dir.File("index.gguf")));
        Assert.Equal(2 + 9 * 4 + 1, r.Tensors.Count);
        // Without --name, the folder names the model.
        ModelQuantizer.Quantize(model, dir.File("named.gguf"), new ModelQuantizeOptions { Mix = o.Mix });
        using var s = File.OpenRead(dir.File("named.gguf"));
        Assert.Equal("bard", GgufFile.Parse(s, "named.gguf").Find("general.name")!.Value);
    }

    [Fact]
    public void Kv_model_identity_follows_the_weights_not_the_path()
    {
        using var dir = new ScratchDir();
        Directory.CreateDirectory(dir.File("one"));
        File.Copy(Bard, dir.File("one/model.safetensors"));
        File.Copy(BardConfig, dir.File("one/config.json"));
        string model = Shard(Bard, BardConfig, dir.File("bard"), 2);
        byte[] Id(string path, string? config = null)
        {
            using var m = LlamaModel.Load(path, new LlamaLoadOptions { ConfigPath = config });
            return KvContext.ModelIdentity(m);
        }
        Assert.Equal(Id(Bard, BardConfig), Id(dir.File("one")));
        Assert.Equal(Id(model), Id(IndexOf(model)));
        Assert.NotEqual(Id(Bard, BardConfig), Id(model));
    }

    [Fact]
    public void Inspect_lists_every_tensor_of_every_shard_with_its_shard()
    {
        using var dir = new ScratchDir();
        string model = Shard(Bard, BardConfig, dir.File("bard"), 3);
        var plain = TczInspector.Inspect(Bard);
        var sharded = TczInspector.Inspect(model);
        Assert.Equal(plain.Tensors.Select(t => t.Name), sharded.Tensors.Select(t => t.Name));
        Assert.Equal(plain.Tensors.Sum(t => t.Values), sharded.TotalValues);
        var map = ReadMap(model).ToDictionary(kv => kv.Key, kv => kv.Value);
        Assert.All(sharded.Tensors, t => Assert.Equal(map[t.Name], t.Shard));
        Assert.All(plain.Tensors, t => Assert.Null(t.Shard));
        Assert.Equal(3, sharded.Tensors.Select(t => t.Shard).Distinct().Count());
    }

    [Fact]
    public void Cli_commands_take_a_model_folder()
    {
        using var dir = new ScratchDir();
        string model = Shard(Bard, BardConfig, dir.File("bard"), 2);
        File.Copy(EngineFixtures.Fixture("tok1024.bin"), Path.Combine(model, "tok1024.bin"));

        var (code, stdout, err) = Tcodec("inspect", model, "--json");
        Assert.True(code == 0, err);
        using (var doc = JsonDocument.Parse(stdout))
        {
            var tensors = doc.RootElement.GetProperty("tensor_list").EnumerateArray().ToList();
            Assert.Equal(TensorFileReader.Open(Bard).Tensors.Count, tensors.Count);
            Assert.All(tensors, t => Assert.StartsWith("model-0000", t.GetProperty("shard").GetString()));
        }
        (code, stdout, _) = Tcodec("inspect", Bard, "--json");
        Assert.DoesNotContain("\"shard\"", stdout);

        (code, _, err) = Tcodec("quantize", model, "-t", "q8_0", "-o", dir.File("q.gguf"));
        Assert.True(code == 0, err);

        var tokens = dir.File("t.csv");
        File.WriteAllText(tokens, string.Join(",", Enumerable.Range(0, 130).Select(i => 3 + i * 7 % 1000)));
        (code, stdout, err) = Tcodec("eval", model, "--tokens", tokens, "--ctx", "64", "--json");
        Assert.True(code == 0, err);
        (code, string plainOut, err) = Tcodec("eval", Bard, "--config", BardConfig, "--tokens", tokens, "--ctx", "64", "--json");
        Assert.True(code == 0, err);
        using (var a = JsonDocument.Parse(stdout))
        using (var b = JsonDocument.Parse(plainOut))
            Assert.Equal(b.RootElement.GetProperty("ppl").GetDouble(), a.RootElement.GetProperty("ppl").GetDouble());

        (code, _, err) = Tcodec("sweep", model, "--types", "q8_0", "--tokens", tokens, "--ctx", "64", "-o", dir.File("sweep"));
        Assert.True(code == 0, err);
        Assert.True(File.Exists(dir.File("sweep/report.md")));

        // The tokenizer is found inside the folder.
        File.WriteAllText(dir.File("prompt.txt"), "To be, or not to be, that is the question.\n");
        (code, _, err) = Tcodec("kv", "save", model, "--text", dir.File("prompt.txt"), "-o", dir.File("c.tkv"));
        Assert.True(code == 0, err);
    }

    [Fact]
    public void An_index_naming_a_missing_shard_is_refused_naming_it()
    {
        using var dir = new ScratchDir();
        string model = Shard(Bard, BardConfig, dir.File("bard"), 3);
        File.Delete(Path.Combine(model, "model-00002-of-00003.safetensors"));
        var e = Assert.Throws<FileNotFoundException>(() => LlamaModel.Load(model));
        Assert.Contains(IndexOf(model), e.Message);
        Assert.Contains("'model-00002-of-00003.safetensors'", e.Message);
        Assert.Contains("for tensor '", e.Message);
        Assert.Equal(e.Message, Assert.Throws<FileNotFoundException>(() => ModelQuantizer.CreatePlan(model, new ModelQuantizeOptions { Mix = QuantMix.Get("q8_0") }).Dispose()).Message);
        Assert.Equal(e.Message, Assert.Throws<FileNotFoundException>(() => TczInspector.Inspect(model)).Message);
    }

    [Fact]
    public void A_tensor_listed_twice_in_the_index_is_refused()
    {
        using var dir = new ScratchDir();
        string model = Shard(Bard, BardConfig, dir.File("bard"), 2);
        var map = ReadMap(model);
        map.Add(new("model.norm.weight", "model-00001-of-00002.safetensors")); // JSON duplicate key
        WriteIndex(model, map, 0);
        var e = Assert.Throws<TensorFormatException>(() => LlamaModel.Load(model));
        Assert.Equal(IndexOf(model), e.FilePath);
        Assert.Contains("tensor 'model.norm.weight' is listed twice", e.Message);
    }

    [Fact]
    public void A_tensor_held_by_two_shards_is_refused()
    {
        using var dir = new ScratchDir();
        string model = Shard(Bard, BardConfig, dir.File("bard"), 2);
        // Rewrite shard 2 with one tensor of shard 1 added.
        var map = ReadMap(model);
        string one = Path.Combine(model, "model-00001-of-00002.safetensors"), two = Path.Combine(model, "model-00002-of-00002.safetensors");
        var extra = TensorFileReader.Open(one).Tensors[0];
        var bytes1 = File.ReadAllBytes(one);
        var layout2 = TensorFileReader.Open(two);
        var bytes2 = File.ReadAllBytes(two);
        var all = layout2.Tensors.Select(t => new SafetensorsTensor(t.Name, t.DType, t.Shape, TensorByteSource.FromMemory(bytes2.AsMemory((int)t.Offset, (int)t.Length))))
            .Append(new SafetensorsTensor(extra.Name, extra.DType, extra.Shape, TensorByteSource.FromMemory(bytes1.AsMemory((int)extra.Offset, (int)extra.Length))));
        File.WriteAllBytes(two, SafetensorsWriter.ToBytes(all));
        var e = Assert.Throws<TensorFormatException>(() => LlamaModel.Load(model));
        Assert.Equal(two, e.FilePath);
        Assert.Contains($"tensor '{extra.Name}' is also in shard {one}", e.Message);
    }

    [Fact]
    public void A_shard_that_disagrees_with_the_index_is_refused_naming_shard_and_tensor()
    {
        using var dir = new ScratchDir();
        string model = Shard(Bard, BardConfig, dir.File("bard"), 2);
        var map = ReadMap(model);
        string victim = map.First(kv => kv.Value.StartsWith("model-00002")).Key;

        // The index assigns a tensor to shard 1 but shard 2 holds it.
        WriteIndex(model, map.Select(kv => kv.Key == victim ? new KeyValuePair<string, string>(kv.Key, "model-00001-of-00002.safetensors") : kv), 0);
        var e = Assert.Throws<TensorFormatException>(() => LlamaModel.Load(model));
        Assert.Equal(Path.Combine(model, "model-00002-of-00002.safetensors"), e.FilePath);
        Assert.Contains($"tensor '{victim}' is in this shard but {IndexOf(model)} assigns it to 'model-00001-of-00002.safetensors'", e.Message);

        // A shard tensor the index does not list.
        WriteIndex(model, map.Where(kv => kv.Key != victim), 0);
        e = Assert.Throws<TensorFormatException>(() => ModelQuantizer.CreatePlan(model, new ModelQuantizeOptions { Mix = QuantMix.Get("q8_0") }).Dispose());
        Assert.Contains($"tensor '{victim}' is in this shard but missing from {IndexOf(model)}", e.Message);

        // The index lists a tensor no shard holds.
        WriteIndex(model, map.Append(new("model.layers.9.mlp.up_proj.weight", "model-00002-of-00002.safetensors")), 0);
        e = Assert.Throws<TensorFormatException>(() => LlamaModel.Load(model));
        Assert.Equal(Path.Combine(model, "model-00002-of-00002.safetensors"), e.FilePath);
        Assert.Contains("tensor 'model.layers.9.mlp.up_proj.weight' is assigned to this shard by", e.Message);
        Assert.Contains("but the shard does not hold it", e.Message);

        // A shard name that leaves the folder.
        WriteIndex(model, map.Select(kv => new KeyValuePair<string, string>(kv.Key, "../" + kv.Value)), 0);
        e = Assert.Throws<TensorFormatException>(() => LlamaModel.Load(model));
        Assert.Contains("must be a file name inside the model folder", e.Message);
    }

    [Fact]
    public void A_config_that_does_not_match_the_tensor_shapes_is_refused_by_engine_and_quantizer()
    {
        using var dir = new ScratchDir();
        string model = Shard(Bard, BardConfig, dir.File("bard"), 2);
        string config = Path.Combine(model, "config.json");
        File.WriteAllText(config, File.ReadAllText(config).Replace("\"intermediate_size\": 768", "\"intermediate_size\": 512"));
        var e = Assert.Throws<InvalidDataException>(() => LlamaModel.Load(model));
        var q = Assert.Throws<InvalidDataException>(() => ModelQuantizer.CreatePlan(model, new ModelQuantizeOptions { Mix = QuantMix.Get("q8_0") }).Dispose());
        Assert.Equal(e.Message, q.Message);
        Assert.Matches(@"model-0000[12]-of-00002\.safetensors: tensor 'model\.layers\.\d\.mlp\.(gate|up|down)_proj\.weight' has shape \[(768, 256|256, 768)\], but .*config\.json implies \[(512, 256|256, 512)\]", e.Message);
        Assert.Contains(config, e.Message);

        // The same check on a single file (hidden_size 128 against 256-wide weights).
        File.WriteAllText(config, File.ReadAllText(BardConfig).Replace("\"hidden_size\": 256", "\"hidden_size\": 128"));
        e = Assert.Throws<InvalidDataException>(() => LlamaModel.Load(Bard, new LlamaLoadOptions { ConfigPath = config }));
        Assert.StartsWith($"{Bard}: tensor '", e.Message);
        Assert.Contains("[1024, 256], but", e.Message);
        Assert.Contains("implies [1024, 128]", e.Message);
        Assert.Equal(e.Message, Assert.Throws<InvalidDataException>(() =>
            ModelQuantizer.CreatePlan(Bard, new ModelQuantizeOptions { Mix = QuantMix.Get("q8_0"), ConfigPath = config }).Dispose()).Message);
    }

    [Fact]
    public void A_folder_without_a_model_is_refused()
    {
        using var dir = new ScratchDir();
        File.Copy(BardConfig, dir.File("config.json"));
        var e = Assert.Throws<FileNotFoundException>(() => LlamaModel.Load(dir.Path));
        Assert.Equal($"{dir.Path} is not a regular file (directory), nor a model folder: a model folder needs model.safetensors.index.json or model.safetensors (with config.json)", e.Message);
        File.WriteAllText(dir.File("t.csv"), "1,2,3");
        var (code, _, err) = Tcodec("eval", dir.Path, "--tokens", dir.File("t.csv"));
        Assert.Equal(1, code);
        Assert.Contains("a model folder needs", err);
    }

    [Fact]
    public void Folder_compress_and_decompress_restore_every_file_byte_exact()
    {
        using var dir = new ScratchDir();
        string model = Shard(Bard, BardConfig, dir.File("bard"), 3);
        File.WriteAllText(Path.Combine(model, "generation_config.json"), "{\"bos_token_id\": 1}\n");
        Directory.CreateDirectory(Path.Combine(model, "original"));
        string packed = dir.File("packed"), restored = dir.File("restored");

        var c = TczFolder.Compress(model, packed, overwrite: false);
        Assert.Equal(3, c.Count(e => e.Action == TczFolderAction.Compressed));
        Assert.Equal(3, c.Count(e => e.Action == TczFolderAction.Copied)); // config, generation_config, index
        Assert.Equal(TczFolderAction.Skipped, c.Single(e => e.Source.EndsWith("original")).Action);
        Assert.True(File.Exists(Path.Combine(packed, "model-00002-of-00003.safetensors.tcz")));
        Assert.False(File.Exists(Path.Combine(packed, "model-00002-of-00003.safetensors")));
        Assert.All(c.Where(e => e.Action == TczFolderAction.Compressed), e => Assert.True(e.OutputBytes < e.SourceBytes));

        var d = TczFolder.Decompress(packed, restored, overwrite: false);
        Assert.Equal(3, d.Count(e => e.Action == TczFolderAction.Decompressed));
        var names = Directory.EnumerateFiles(model).Select(Path.GetFileName).Order().ToList();
        Assert.Equal(names, Directory.EnumerateFiles(restored).Select(Path.GetFileName).Order().ToList());
        foreach (var n in names)
            Assert.Equal(File.ReadAllBytes(Path.Combine(model, n!)), File.ReadAllBytes(Path.Combine(restored, n!)));
        using (var m = LlamaModel.Load(restored)) Assert.Equal(4, m.Config.Layers);

        // Existing outputs are refused without overwrite; with it they are replaced.
        Assert.Throws<IOException>(() => TczFolder.Decompress(packed, restored, overwrite: false));
        TczFolder.Decompress(packed, restored, overwrite: true);

        // In place: .tcz beside each shard, nothing else written; a damaged folder is refused before any work.
        var inPlace = TczFolder.Compress(model, null, overwrite: false);
        Assert.Equal(3, Directory.EnumerateFiles(model, "*.tcz").Count());
        Assert.Equal(3, inPlace.Count(e => e.Action == TczFolderAction.Skipped && File.Exists(e.Source)));
        File.Delete(Path.Combine(model, "model-00003-of-00003.safetensors"));
        Assert.Throws<FileNotFoundException>(() => TczFolder.Compress(model, dir.File("other"), overwrite: false));
        Assert.False(Directory.Exists(dir.File("other")));
    }
}
