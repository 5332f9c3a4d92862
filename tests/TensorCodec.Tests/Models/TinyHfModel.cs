using System.Runtime.InteropServices;
using System.Text.Json;
using TensorCodec.Containers;
using TensorCodec.Engine;
using TensorCodec.Numerics;

namespace TensorCodec.Tests.Models;

/// <summary>
/// A tiny random Llama in Hugging Face layout (config.json + safetensors, ~350 KB), generated so folder
/// tests need no data files: hidden 64, 2 layers, 4 heads of 16, 2 KV heads, FFN 128, vocabulary 96.
/// </summary>
/// <summary>Which architecture variant <see cref="TinyHfModel"/> generates; the defaults are the plain tiny Llama.</summary>
internal sealed record TinyHfOptions
{
    /// <summary>config.json model_type: llama, mistral, qwen2 or qwen3.</summary>
    public string ModelType { get; init; } = "llama";
    /// <summary>An explicit head_dim (null: hidden / heads, not written).</summary>
    public int? HeadDim { get; init; }
    public bool Tied { get; init; }
    /// <summary>Llama attention_bias (q, k, v and o biases).</summary>
    public bool AttentionBias { get; init; }
    public int? SlidingWindow { get; init; }
    /// <summary>config.json rope_scaling object, or null.</summary>
    public Dictionary<string, object>? RopeScaling { get; init; }
    public int Vocab { get; init; } = TinyHfModel.Vocab;
    public double RopeTheta { get; init; } = 10000.0;
    public int MaxPositions { get; init; } = 64;

    public static readonly TinyHfOptions Default = new();

    public string ClassName => ModelType switch
    {
        "mistral" => "MistralForCausalLM", "qwen2" => "Qwen2ForCausalLM", "qwen3" => "Qwen3ForCausalLM", _ => "LlamaForCausalLM",
    };
    public bool QkvBias => ModelType == "qwen2" || AttentionBias;
    public bool OutputBias => ModelType != "qwen2" && AttentionBias;
    public bool QkNorm => ModelType == "qwen3";
}

internal static class TinyHfModel
{
    public const int Hidden = 64, Ffn = 128, Layers = 2, Heads = 4, KvHeads = 2, Vocab = 96;

    /// <summary>The tensors with HF names and shapes, values from a seeded generator (weights ~N(0, 0.1), norms near 1).</summary>
    public static List<(string Name, long[] Shape, float[] Values)> Tensors(int seed) => Tensors(seed, TinyHfOptions.Default);

    /// <summary>The tensors of the variant <paramref name="o"/>; the default draws exactly the plain model's values.</summary>
    public static List<(string Name, long[] Shape, float[] Values)> Tensors(int seed, TinyHfOptions o)
    {
        var rng = new Random(seed);
        float[] Fill(long n, float scale, float offset) =>
            Enumerable.Range(0, (int)n).Select(_ => offset + scale * (float)(rng.NextDouble() * 2 - 1)).ToArray();
        var list = new List<(string, long[], float[])>();
        void Add(string name, long[] shape, float scale = 0.1f, float offset = 0)
            => list.Add((name, shape, Fill(shape.Aggregate(1L, (a, b) => a * b), scale, offset)));
        int hd = o.HeadDim ?? Hidden / Heads, q = hd * Heads, kv = hd * KvHeads;
        Add("model.embed_tokens.weight", [o.Vocab, Hidden], 1f);
        for (int l = 0; l < Layers; l++)
        {
            string p = $"model.layers.{l}.";
            Add(p + "input_layernorm.weight", [Hidden], 0.1f, 1);
            Add(p + "self_attn.q_proj.weight", [q, Hidden]);
            Add(p + "self_attn.k_proj.weight", [kv, Hidden]);
            Add(p + "self_attn.v_proj.weight", [kv, Hidden]);
            Add(p + "self_attn.o_proj.weight", [Hidden, q]);
            if (o.QkvBias)
            {
                Add(p + "self_attn.q_proj.bias", [q], 0.5f);
                Add(p + "self_attn.k_proj.bias", [kv], 0.5f);
                Add(p + "self_attn.v_proj.bias", [kv], 0.5f);
            }
            if (o.OutputBias) Add(p + "self_attn.o_proj.bias", [Hidden], 0.5f);
            if (o.QkNorm)
            {
                Add(p + "self_attn.q_norm.weight", [hd], 0.3f, 1);
                Add(p + "self_attn.k_norm.weight", [hd], 0.3f, 1);
            }
            Add(p + "post_attention_layernorm.weight", [Hidden], 0.1f, 1);
            Add(p + "mlp.gate_proj.weight", [Ffn, Hidden]);
            Add(p + "mlp.up_proj.weight", [Ffn, Hidden]);
            Add(p + "mlp.down_proj.weight", [Hidden, Ffn]);
        }
        Add("model.norm.weight", [Hidden], 0.1f, 1);
        if (!o.Tied) Add("lm_head.weight", [o.Vocab, Hidden]);
        return list;
    }

    public static string ConfigJson() => ConfigJson(TinyHfOptions.Default);

    public static string ConfigJson(TinyHfOptions o)
    {
        var c = new Dictionary<string, object>
        {
            ["architectures"] = new[] { o.ClassName }, ["model_type"] = o.ModelType,
            ["hidden_size"] = Hidden, ["intermediate_size"] = Ffn, ["num_hidden_layers"] = Layers,
            ["num_attention_heads"] = Heads, ["num_key_value_heads"] = KvHeads, ["vocab_size"] = o.Vocab,
            ["max_position_embeddings"] = o.MaxPositions, ["rms_norm_eps"] = 1e-5, ["rope_theta"] = o.RopeTheta,
            ["tie_word_embeddings"] = o.Tied, ["bos_token_id"] = 1, ["eos_token_id"] = 2,
        };
        if (o.HeadDim is int hd) c["head_dim"] = hd;
        if (o.AttentionBias) c["attention_bias"] = true;
        if (o.SlidingWindow is int w) c["sliding_window"] = w;
        if (o.RopeScaling is { } rs) c["rope_scaling"] = rs;
        return JsonSerializer.Serialize(c);
    }

    /// <summary>Writes the model into <paramref name="dir"/>: one model.safetensors, or <paramref name="shards"/> shards with an index.</summary>
    public static string Write(string dir, int shards = 1, int seed = 7) => Write(dir, TinyHfOptions.Default, shards, seed);

    /// <summary>Writes the variant <paramref name="o"/> into <paramref name="dir"/>.</summary>
    public static string Write(string dir, TinyHfOptions o, int shards = 1, int seed = 7)
    {
        Directory.CreateDirectory(dir);
        File.WriteAllText(Path.Combine(dir, "config.json"), ConfigJson(o));
        var tensors = Tensors(seed, o).Select(t => new SafetensorsTensor(t.Name, DType.F32, t.Shape,
            TensorByteSource.FromMemory(MemoryMarshal.AsBytes(t.Values.AsSpan()).ToArray()))).ToList();
        if (shards == 1)
        {
            File.WriteAllBytes(Path.Combine(dir, "model.safetensors"), SafetensorsWriter.ToBytes(tensors, [new("format", "pt")]));
            return dir;
        }
        // Split in the single file's (reference, by-name) order, so the shards concatenate to that file's tensor order.
        tensors = tensors.OrderBy(t => t.Name, StringComparer.Ordinal).ToList();
        var map = new SortedDictionary<string, string>(StringComparer.Ordinal);
        int per = (tensors.Count + shards - 1) / shards;
        for (int s = 0; s < shards; s++)
        {
            string name = $"model-{s + 1:D5}-of-{shards:D5}.safetensors";
            var part = tensors.Skip(s * per).Take(per).ToList();
            File.WriteAllBytes(Path.Combine(dir, name), SafetensorsWriter.ToBytes(part, [new("format", "pt")]));
            foreach (var t in part) map[t.Name] = name;
        }
        File.WriteAllText(Path.Combine(dir, ShardedSafetensors.IndexFileName), JsonSerializer.Serialize(new
        {
            metadata = new { total_size = tensors.Sum(t => t.Data.Length) },
            weight_map = map,
        }));
        return dir;
    }
}

public class TinyHfModelTests
{
    [Fact]
    public void A_generated_sharded_folder_matches_the_same_weights_in_one_file()
    {
        using var dir = new ScratchDir();
        string one = TinyHfModel.Write(dir.File("one"));
        string sharded = TinyHfModel.Write(dir.File("sharded"), shards: 3);
        Assert.True(new FileInfo(Path.Combine(one, "model.safetensors")).Length < 400_000);
        int[] tokens = [1, 5, 17, 40, 95, 3];
        using var a = LlamaModel.Load(one);
        using var b = LlamaModel.Load(sharded);
        var la = ModelDirectoryTests.Logits(a, tokens);
        Assert.Equal(la, ModelDirectoryTests.Logits(b, tokens));
        Assert.All(la, v => Assert.True(float.IsFinite(v)));
        Assert.True(la.Max() - la.Min() > 0.01, "random weights should give distinct logits");

        var o = new TensorCodec.Quantization.ModelQuantizeOptions { Mix = TensorCodec.Quantization.QuantMix.Get("q8_0"), ModelName = "tiny" };
        TensorCodec.Quantization.ModelQuantizer.Quantize(one, dir.File("a.gguf"), o);
        TensorCodec.Quantization.ModelQuantizer.Quantize(sharded, dir.File("b.gguf"), o);
        Assert.Equal(File.ReadAllBytes(dir.File("a.gguf")), File.ReadAllBytes(dir.File("b.gguf")));
    }
}
