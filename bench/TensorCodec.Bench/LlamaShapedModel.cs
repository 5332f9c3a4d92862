using System.Buffers.Binary;
using System.Text.Json;
using TensorCodec.Containers;
using TensorCodec.Numerics;

namespace TensorCodec.Bench;

/// <summary>
/// A random Llama-shaped model in Hugging Face layout (config.json, BF16 safetensors, sharded with an
/// index when asked), generated straight to disk a tensor at a time, so a multi-gigabyte model costs no
/// memory and no data files. Used by bench/bigmodel.sh and, linked into the test project, by the
/// memory regression test. Weights are uniform in ±0.04 (a trained model's scale), norms near 1.
/// </summary>
internal sealed record LlamaShapedModel(int Hidden, int Layers, int Ffn, int Vocab, int Heads, int KvHeads)
{
    /// <summary>Every tensor's HF name and shape, in the order they are written.</summary>
    public List<(string Name, long[] Shape)> Tensors()
    {
        int hd = Hidden / Heads;
        var list = new List<(string, long[])> { ("model.embed_tokens.weight", [Vocab, Hidden]) };
        for (int l = 0; l < Layers; l++)
        {
            string p = $"model.layers.{l}.";
            list.Add((p + "input_layernorm.weight", [Hidden]));
            list.Add((p + "self_attn.q_proj.weight", [Heads * hd, Hidden]));
            list.Add((p + "self_attn.k_proj.weight", [KvHeads * hd, Hidden]));
            list.Add((p + "self_attn.v_proj.weight", [KvHeads * hd, Hidden]));
            list.Add((p + "self_attn.o_proj.weight", [Hidden, Heads * hd]));
            list.Add((p + "post_attention_layernorm.weight", [Hidden]));
            list.Add((p + "mlp.gate_proj.weight", [Ffn, Hidden]));
            list.Add((p + "mlp.up_proj.weight", [Ffn, Hidden]));
            list.Add((p + "mlp.down_proj.weight", [Hidden, Ffn]));
        }
        list.Add(("model.norm.weight", [Hidden]));
        list.Add(("lm_head.weight", [Vocab, Hidden]));
        return list;
    }

    /// <summary>Bytes of the largest tensor as stored (BF16).</summary>
    public long LargestTensorBytes => Tensors().Max(t => t.Shape.Aggregate(1L, (a, b) => a * b)) * 2;

    /// <summary>Writes config.json and the shards (model.safetensors when <paramref name="shards"/> is 1) into
    /// <paramref name="dir"/>; tensors are split into shards of about equal size in name order.</summary>
    public long Write(string dir, int shards, ulong seed = 1)
    {
        Directory.CreateDirectory(dir);
        File.WriteAllText(Path.Combine(dir, "config.json"), JsonSerializer.Serialize(new Dictionary<string, object>
        {
            ["architectures"] = new[] { "LlamaForCausalLM" }, ["model_type"] = "llama",
            ["hidden_size"] = Hidden, ["intermediate_size"] = Ffn, ["num_hidden_layers"] = Layers,
            ["num_attention_heads"] = Heads, ["num_key_value_heads"] = KvHeads, ["vocab_size"] = Vocab,
            ["max_position_embeddings"] = 2048, ["rms_norm_eps"] = 1e-5, ["rope_theta"] = 10000.0,
            ["tie_word_embeddings"] = false, ["bos_token_id"] = 1, ["eos_token_id"] = 2, ["torch_dtype"] = "bfloat16",
        }));
        ulong state = seed * 0x9E3779B97F4A7C15UL + 1;
        var tensors = Tensors().OrderBy(t => t.Name, StringComparer.Ordinal).Select(t =>
        {
            long n = t.Shape.Aggregate(1L, (a, b) => a * b);
            bool norm = t.Shape.Length == 1;
            return new SafetensorsTensor(t.Name, DType.BF16, t.Shape, TensorByteSource.FromCallback(n * 2, s => Fill(s, n, norm, ref state)));
        }).ToList();
        long total = tensors.Sum(t => t.Data.Length);
        if (shards <= 1)
        {
            using var f = File.Create(Path.Combine(dir, "model.safetensors"));
            SafetensorsWriter.Write(f, tensors, [new("format", "pt")]);
            return total;
        }
        var map = new SortedDictionary<string, string>(StringComparer.Ordinal);
        int first = 0;
        for (int s = 0; s < shards; s++)
        {
            // Greedy: fill each shard to its share of the bytes left, keeping at least one tensor for each shard after it.
            long left = tensors.Skip(first).Sum(t => t.Data.Length), share = left / (shards - s), size = 0;
            int end = first;
            while (end < tensors.Count - (shards - s - 1) && (end == first || size + tensors[end].Data.Length / 2 <= share || s == shards - 1))
                size += tensors[end++].Data.Length;
            string name = $"model-{s + 1:D5}-of-{shards:D5}.safetensors";
            using (var f = File.Create(Path.Combine(dir, name)))
                SafetensorsWriter.Write(f, tensors.Skip(first).Take(end - first), [new("format", "pt")]);
            foreach (var t in tensors.Skip(first).Take(end - first)) map[t.Name] = name;
            first = end;
        }
        File.WriteAllText(Path.Combine(dir, ShardedSafetensors.IndexFileName), JsonSerializer.Serialize(new
        {
            metadata = new { total_size = total },
            weight_map = map,
        }));
        return total;
    }

    /// <summary>Writes <paramref name="count"/> BF16 values from a xorshift generator (fast enough for gigabytes).</summary>
    static void Fill(Stream s, long count, bool norm, ref ulong state)
    {
        var buffer = new byte[1 << 20];
        long left = count;
        while (left > 0)
        {
            int n = (int)Math.Min(buffer.Length / 2, left);
            for (int i = 0; i < n; i++)
            {
                state ^= state << 13; state ^= state >> 7; state ^= state << 17;
                float u = (state >> 40) * (1f / (1 << 24)) * 2 - 1;  // uniform in [-1, 1)
                float v = norm ? 1 + 0.1f * u : 0.04f * u;
                BinaryPrimitives.WriteUInt16LittleEndian(buffer.AsSpan(2 * i), (ushort)(BitConverter.SingleToUInt32Bits(v) >> 16));
            }
            s.Write(buffer, 0, 2 * n);
            left -= n;
        }
    }
}
