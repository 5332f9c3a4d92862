using System.Text.Json.Nodes;
using CsCheck;
using TensorCodec.Containers;
using TensorCodec.Engine;
using TensorCodec.Models;
using TensorCodec.Quantization;

namespace TensorCodec.Tests.Models;

/// <summary>
/// config.json and GGUF metadata go through one reader: every bad field is a
/// <see cref="TensorFormatException"/> naming the file and the field, every unimplemented feature a
/// <see cref="NotSupportedException"/> naming both, and the engine and the quantizer agree.
/// </summary>
public class ModelConfigTests
{
    static string BardConfig => TestFiles.Fixture(Path.Combine("engine", "config.json"));
    static string BardModel => TestFiles.Sample("bard-3m-bf16.safetensors");

    /// <summary>bard-3m's config.json with <paramref name="field"/> replaced by the JSON <paramref name="value"/> (null removes it).</summary>
    static string Mutated(ScratchDir dir, string field, string? value)
    {
        var root = JsonNode.Parse(File.ReadAllText(BardConfig))!.AsObject();
        if (value is null) root.Remove(field);
        else root[field] = JsonNode.Parse(value);
        var path = dir.File("config.json");
        File.WriteAllText(path, root.ToJsonString());
        return path;
    }

    [Fact]
    public void Reads_the_bard_config()
    {
        var c = ModelConfig.FromHfConfig(BardConfig);
        Assert.Equal(new ModelConfig
        {
            Dim = 256, HiddenDim = 768, Layers = 4, Heads = 8, KvHeads = 4, VocabSize = 1024, MaxSeqLen = 256,
            NormEps = 1e-5f, RopeTheta = 10000f, Rope = RopeStyle.HalfSplit, TiedEmbeddings = false, BosId = 1, EosId = 2,
        }, c);
        Assert.Equal(32, c.HeadDim);
        Assert.Equal(128, c.KvDim);
    }

    [Theory]
    [InlineData("hidden_size", "\"256\"")]
    [InlineData("hidden_size", "[256]")]
    [InlineData("hidden_size", "256.5")]
    [InlineData("hidden_size", "1e12")]
    [InlineData("hidden_size", "-256")]
    [InlineData("hidden_size", "0")]
    [InlineData("hidden_size", "true")]
    [InlineData("hidden_size", null)]
    [InlineData("head_dim", "1.5")]
    [InlineData("head_dim", "\"32\"")]
    [InlineData("intermediate_size", "{}")]
    [InlineData("num_hidden_layers", "0")]
    [InlineData("num_attention_heads", "7")]          // 256 is not a multiple of 7
    [InlineData("num_attention_heads", "256")]        // head size 1: RoPE needs pairs
    [InlineData("num_key_value_heads", "3")]          // 8 heads are not a multiple of 3
    [InlineData("num_key_value_heads", "\"4\"")]
    [InlineData("vocab_size", null)]
    [InlineData("vocab_size", "-1024")]
    [InlineData("max_position_embeddings", "0")]
    [InlineData("rms_norm_eps", "\"1e-5\"")]
    [InlineData("rms_norm_eps", "-1e-5")]
    [InlineData("rope_theta", "0")]
    [InlineData("rope_theta", "[10000]")]
    [InlineData("tie_word_embeddings", "\"false\"")]
    [InlineData("tie_word_embeddings", "0")]
    [InlineData("bos_token_id", "5000")]
    [InlineData("eos_token_id", "[]")]
    [InlineData("eos_token_id", "[\"2\"]")]
    [InlineData("model_type", "5")]
    [InlineData("architectures", "\"LlamaForCausalLM\"")]
    [InlineData("hidden_act", "[\"silu\"]")]
    public void A_bad_config_field_is_named_by_engine_and_quantizer_alike(string field, string? value)
    {
        using var dir = new ScratchDir();
        var path = Mutated(dir, field, value);
        var e = Assert.Throws<TensorFormatException>(() => ModelConfig.FromHfConfig(path));
        Assert.Equal(path, e.FilePath);
        Assert.StartsWith(field, e.Field);
        var engine = Assert.Throws<TensorFormatException>(() => LlamaModel.Load(BardModel, new LlamaLoadOptions { ConfigPath = path }));
        var quantizer = Assert.Throws<TensorFormatException>(() =>
            ModelQuantizer.CreatePlan(BardModel, new ModelQuantizeOptions { Mix = QuantMix.Get("q8_0"), ConfigPath = path }).Dispose());
        Assert.Equal(e.Message, engine.Message);
        Assert.Equal(e.Message, quantizer.Message);
    }

    [Theory]
    [InlineData("model_type", "\"gemma\"")]
    [InlineData("architectures", "[\"MistralForCausalLM\"]")]
    [InlineData("rope_scaling", "{\"type\": \"dynamic\", \"factor\": 2.0}")]
    [InlineData("rope_scaling", "{\"rope_type\": \"yarn\", \"factor\": 4.0}")]
    [InlineData("hidden_act", "\"gelu\"")]
    [InlineData("mlp_bias", "true")]
    [InlineData("partial_rotary_factor", "0.5")]
    [InlineData("num_local_experts", "8")]
    public void An_unimplemented_feature_is_refused_by_engine_and_quantizer_alike(string field, string value)
    {
        using var dir = new ScratchDir();
        var path = Mutated(dir, field, value);
        var e = Assert.Throws<NotSupportedException>(() => ModelConfig.FromHfConfig(path));
        Assert.StartsWith($"{path}, field '{field}': ", e.Message);
        Assert.Contains(ModelConfig.Refusals.Values, r => e.Message.EndsWith(r, StringComparison.Ordinal));
        Assert.Equal(e.Message, Assert.Throws<NotSupportedException>(() => LlamaModel.Load(BardModel, new LlamaLoadOptions { ConfigPath = path })).Message);
        Assert.Equal(e.Message, Assert.Throws<NotSupportedException>(() =>
            ModelQuantizer.CreatePlan(BardModel, new ModelQuantizeOptions { Mix = QuantMix.Get("q8_0"), ConfigPath = path }).Dispose()).Message);
    }

    [Theory]
    [InlineData("rope_scaling", "null")]
    [InlineData("rope_scaling", "{\"rope_type\": \"default\"}")]
    [InlineData("head_dim", "32")]
    [InlineData("head_dim", "null")]
    [InlineData("eos_token_id", "[2, 3]")]
    [InlineData("hidden_act", "\"silu\"")]
    [InlineData("attention_bias", "false")]
    [InlineData("model_type", null)]
    [InlineData("architectures", null)]
    [InlineData("model_type", "\"mistral\"")]
    [InlineData("rope_scaling", "{\"type\": \"linear\", \"factor\": 2.0}")]
    [InlineData("rope_scaling", "{\"rope_type\": \"llama3\", \"factor\": 8.0, \"low_freq_factor\": 1.0, \"high_freq_factor\": 4.0, \"original_max_position_embeddings\": 64}")]
    public void What_the_engine_accepts_from_config_json_the_quantizer_accepts(string field, string? value)
    {
        using var dir = new ScratchDir();
        var path = Mutated(dir, field, value);
        if (value == "\"mistral\"") File.WriteAllText(path, File.ReadAllText(path).Replace("LlamaForCausalLM", "MistralForCausalLM"));
        var c = ModelConfig.FromHfConfig(path);
        using (var m = LlamaModel.Load(BardModel, new LlamaLoadOptions { ConfigPath = path })) Assert.Equal(c, m.Config);
        using var plan = ModelQuantizer.CreatePlan(BardModel, new ModelQuantizeOptions { Mix = QuantMix.Get("q8_0"), ConfigPath = path });
        Assert.Equal(2 + 9 * c.Layers + (c.TiedEmbeddings ? 0 : 1) + (c.RopeScaling?.Type == RopeScalingType.Llama3 ? 1 : 0), plan.Tensors.Count);
        if (field == "eos_token_id") Assert.Equal(2, c.EosId);
    }

    /// <summary>A config asking for tensors or shapes bard's weights do not have: a missing or misshapen tensor, named.</summary>
    [Theory]
    [InlineData("attention_bias", "true", "q_proj.bias", "attn_q.bias")]
    [InlineData("head_dim", "64", "self_attn.q_proj.weight", "self_attn.q_proj.weight")]
    [InlineData("model_type", "\"qwen3\"", "self_attn.q_proj.weight", "self_attn.q_proj.weight")]
    public void A_config_whose_architecture_the_weights_lack_names_the_tensor(string field, string value, string tensor, string ggufTensor)
    {
        using var dir = new ScratchDir();
        var path = Mutated(dir, field, value);
        if (field == "model_type") File.WriteAllText(path, File.ReadAllText(path).Replace("LlamaForCausalLM", "Qwen3ForCausalLM"));
        ModelConfig.FromHfConfig(path);
        Assert.Contains(tensor, Assert.Throws<InvalidDataException>(() => LlamaModel.Load(BardModel, new LlamaLoadOptions { ConfigPath = path })).Message);
        Assert.Contains(ggufTensor, Assert.Throws<InvalidDataException>(() =>
            ModelQuantizer.CreatePlan(BardModel, new ModelQuantizeOptions { Mix = QuantMix.Get("q8_0"), ConfigPath = path }).Dispose()).Message);
    }

    [Fact]
    public void Malformed_json_names_the_file_and_where()
    {
        using var dir = new ScratchDir();
        var path = dir.File("config.json");
        File.WriteAllText(path, "{\n  \"hidden_size\": 256,\n  oops\n}");
        var e = Assert.Throws<TensorFormatException>(() => ModelConfig.FromHfConfig(path));
        Assert.Equal(path, e.FilePath);
        Assert.Contains("line 3", e.Message);
        File.WriteAllText(path, "[1, 2]");
        Assert.Contains("not an object", Assert.Throws<TensorFormatException>(() => ModelConfig.FromHfConfig(path)).Message);
        File.WriteAllText(path, "");
        Assert.Equal(path, Assert.Throws<TensorFormatException>(() => ModelConfig.FromHfConfig(path)).FilePath);
    }

    static readonly string[] JsonFieldsToBreak =
    [
        "hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads", "num_key_value_heads", "vocab_size",
        "max_position_embeddings", "rms_norm_eps", "rope_theta", "tie_word_embeddings", "bos_token_id", "eos_token_id",
        "head_dim", "model_type", "architectures", "rope_scaling", "hidden_act", "attention_bias",
    ];

    static readonly Gen<string> AnyJsonValue = Gen.OneOf(
        Gen.Int.Select(i => i.ToString(System.Globalization.CultureInfo.InvariantCulture)),
        Gen.Int[-4, 600].Select(i => i.ToString(System.Globalization.CultureInfo.InvariantCulture)),
        Gen.Double.Select(d => double.IsFinite(d) ? d.ToString("R", System.Globalization.CultureInfo.InvariantCulture) : "1.5"),
        Gen.Long.Select(l => l.ToString(System.Globalization.CultureInfo.InvariantCulture)),
        Gen.String[0, 6].Select(s => System.Text.Json.JsonSerializer.Serialize(s)),
        Gen.Int[0, 300].Array[0, 3].Select(a => "[" + string.Join(",", a) + "]"),
        Gen.Const("true"), Gen.Const("false"), Gen.Const("null"), Gen.Const("{}"), Gen.Const("\"llama\""), Gen.Const("[\"LlamaForCausalLM\"]"));

    /// <summary>Regression (found by the fuzz test below, seed 8soHVmujLAB3): zero heads with an explicit head_dim divided by zero.</summary>
    [Fact]
    public void Zero_heads_with_an_explicit_head_dim_is_a_named_error()
    {
        using var dir = new ScratchDir();
        var root = JsonNode.Parse(File.ReadAllText(BardConfig))!.AsObject();
        root["num_attention_heads"] = 0;
        root["head_dim"] = 32;
        var path = dir.File("config.json");
        File.WriteAllText(path, root.ToJsonString());
        var e = Assert.Throws<TensorFormatException>(() => ModelConfig.FromHfConfig(path));
        Assert.Contains("head", e.Message);
    }

    [Fact]
    public void Random_field_values_give_a_config_or_a_named_error_never_a_crash()
    {
        using var dir = new ScratchDir();
        Gen.Select(Gen.Int[0, JsonFieldsToBreak.Length - 1], AnyJsonValue, Gen.Int[0, JsonFieldsToBreak.Length - 1], AnyJsonValue).Sample((f1, v1, f2, v2) =>
        {
            var root = JsonNode.Parse(File.ReadAllText(BardConfig))!.AsObject();
            root[JsonFieldsToBreak[f1]] = JsonNode.Parse(v1);
            root[JsonFieldsToBreak[f2]] = JsonNode.Parse(v2);
            var path = dir.File($"config-{Guid.NewGuid():N}.json"); // samples run on several threads
            File.WriteAllText(path, root.ToJsonString());
            try
            {
                var c = ModelConfig.FromHfConfig(path);
                Assert.True(c.Dim > 0 && (c.HeadDimGiven || c.Dim % c.Heads == 0) && c.Heads % c.KvHeads == 0 && c.HeadDim % 2 == 0 && c.NormEps > 0 && c.RopeTheta > 0);
            }
            catch (TensorFormatException e)
            {
                Assert.Equal(path, e.FilePath);
                Assert.True(e.Field is not null, e.Message);
            }
            catch (NotSupportedException e)
            {
                Assert.StartsWith($"{path}, field '", e.Message);
            }
        }, iter: 2000, seed: "0N0XIzNsQ0O2");
    }

    /// <summary>A complete llama GGUF header for bard-3m's shape, with no tensors.</summary>
    static List<KeyValuePair<string, GgufValue>> BardGgufMetadata() =>
    [
        new("general.architecture", GgufValue.String("llama")),
        .. ModelConfig.FromHfConfig(BardConfig).ToGgufMetadata(),
    ];

    static ModelConfig FromGgufBytes(List<KeyValuePair<string, GgufValue>> meta, string path) =>
        ModelConfig.FromGguf(GgufFile.Parse(new MemoryStream(GgufWriter.ToBytes(meta, [])), path), path);

    static List<KeyValuePair<string, GgufValue>> Replace(string key, GgufValue? value)
    {
        var meta = BardGgufMetadata().Where(kv => kv.Key != key).ToList();
        if (value is not null) meta.Add(new(key, value));
        return meta;
    }

    public static TheoryData<string, GgufValue?> BadGgufValues => new()
    {
        { "general.architecture", null },
        { "general.architecture", GgufValue.UInt32(1) },
        { "llama.embedding_length", GgufValue.String("256") },
        { "llama.embedding_length", GgufValue.Float32(256) },
        { "llama.embedding_length", GgufValue.Array(GgufArray.Of(256u)) },
        { "llama.embedding_length", GgufValue.UInt64(1UL << 40) },
        { "llama.embedding_length", GgufValue.Int32(-256) },
        { "llama.embedding_length", null },
        { "llama.feed_forward_length", GgufValue.UInt32(0) },
        { "llama.block_count", GgufValue.Bool(true) },
        { "llama.attention.head_count", GgufValue.UInt32(7) },
        { "llama.attention.head_count_kv", GgufValue.UInt32(3) },
        { "llama.attention.layer_norm_rms_epsilon", GgufValue.UInt32(1) },
        { "llama.attention.layer_norm_rms_epsilon", GgufValue.Float32(-1e-5f) },
        { "llama.rope.freq_base", GgufValue.String("10000") },
        { "llama.rope.freq_base", GgufValue.Float32(float.NaN) },
        { "llama.context_length", GgufValue.Int64(-1) },
        { "llama.vocab_size", GgufValue.Float64(1024) },
        { "tokenizer.ggml.bos_token_id", GgufValue.String("1") },
        { "tokenizer.ggml.eos_token_id", GgufValue.UInt32(4096) },
    };

    [Theory]
    [MemberData(nameof(BadGgufValues))]
    public void A_bad_gguf_key_is_named_by_engine_and_quantizer_alike(string key, GgufValue? value)
    {
        using var dir = new ScratchDir();
        var path = dir.File("bad.gguf");
        var meta = Replace(key, value);
        var e = Assert.Throws<TensorFormatException>(() => FromGgufBytes(meta, path));
        Assert.Equal(path, e.FilePath);
        Assert.Equal(key, e.Field);
        File.WriteAllBytes(path, GgufWriter.ToBytes(meta, []));
        Assert.Equal(e.Message, Assert.Throws<TensorFormatException>(() => LlamaModel.Load(path)).Message);
        Assert.Equal(e.Message, Assert.Throws<TensorFormatException>(() =>
            ModelQuantizer.CreatePlan(path, new ModelQuantizeOptions { Mix = QuantMix.Get("q8_0") }).Dispose()).Message);
    }

    public static TheoryData<string, GgufValue> UnimplementedGgufValues => new()
    {
        { "general.architecture", GgufValue.String("gpt2") },
        { "llama.expert_count", GgufValue.UInt32(8) },
        { "general.architecture", GgufValue.String("gemma3") },
        { "llama.rope.scaling.type", GgufValue.String("yarn") },
        { "llama.attention.value_length", GgufValue.UInt32(16) },
        { "llama.rope.dimension_count", GgufValue.UInt32(16) },
    };

    [Theory]
    [MemberData(nameof(UnimplementedGgufValues))]
    public void An_unimplemented_gguf_feature_is_refused_by_engine_and_quantizer_alike(string key, GgufValue value)
    {
        using var dir = new ScratchDir();
        var path = dir.File("odd.gguf");
        var meta = Replace(key, value);
        var e = Assert.Throws<NotSupportedException>(() => FromGgufBytes(meta, path));
        Assert.StartsWith($"{path}, field '{key}': ", e.Message);
        File.WriteAllBytes(path, GgufWriter.ToBytes(meta, []));
        Assert.Equal(e.Message, Assert.Throws<NotSupportedException>(() => LlamaModel.Load(path)).Message);
        Assert.Equal(e.Message, Assert.Throws<NotSupportedException>(() =>
            ModelQuantizer.CreatePlan(path, new ModelQuantizeOptions { Mix = QuantMix.Get("q8_0") }).Dispose()).Message);
    }

    [Fact]
    public void Gguf_metadata_written_for_a_config_reads_back_as_that_config()
    {
        var hf = ModelConfig.FromHfConfig(BardConfig);
        Assert.Equal(hf with { Rope = RopeStyle.AdjacentPairs, TiedEmbeddings = true }, FromGgufBytes(BardGgufMetadata(), "m.gguf"));
        // Neutral values of the refused keys are accepted.
        var neutral = BardGgufMetadata();
        neutral.Add(new("llama.rope.scaling.type", GgufValue.String("none")));
        neutral.Add(new("llama.expert_count", GgufValue.UInt32(0)));
        neutral.Add(new("llama.attention.key_length", GgufValue.UInt32(32)));
        Assert.Equal(hf.Dim, FromGgufBytes(neutral, "m.gguf").Dim);
    }

    [Fact]
    public void A_llama2c_header_gives_run_c_defaults()
    {
        var c = ModelConfig.FromLlama2c(new Llama2cConfig(64, 172, 5, 8, 4, 512, 512, SharedClassifier: false), "s.bin");
        Assert.Equal(new ModelConfig
        {
            Dim = 64, HiddenDim = 172, Layers = 5, Heads = 8, KvHeads = 4, VocabSize = 512, MaxSeqLen = 512,
            NormEps = 1e-5f, RopeTheta = 10000f, Rope = RopeStyle.AdjacentPairs, TiedEmbeddings = false,
        }, c);
        var e = Assert.Throws<TensorFormatException>(() => ModelConfig.FromLlama2c(new Llama2cConfig(40, 172, 5, 8, 4, 512, 512), "s.bin"));
        Assert.Equal("n_heads", e.Field); // head size 5: RoPE rotates pairs
        Assert.Equal("s.bin", e.FilePath);
    }

    [Fact]
    public void The_text_hashed_into_tkv_model_identities_is_unchanged()
    {
        // What the record printed as Engine.LlamaConfig; .tkv files saved before the rename carry its hash.
        Assert.Equal("LlamaConfig { Dim = 256, HiddenDim = 768, Layers = 4, Heads = 8, KvHeads = 4, VocabSize = 1024, MaxSeqLen = 256, " +
            "NormEps = 1E-05, RopeTheta = 10000, Rope = HalfSplit, TiedEmbeddings = False, BosId = 1, EosId = 2, HeadDim = 32, KvDim = 128 }",
            ModelConfig.FromHfConfig(BardConfig).ToString());
    }
}
