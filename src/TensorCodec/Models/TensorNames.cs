using System.Globalization;
using TensorCodec.Containers;

namespace TensorCodec.Models;

/// <summary>What a Llama tensor is, independent of how a file format spells it.</summary>
internal enum TensorRole : byte
{
    /// <summary>Token embedding, [vocab, dim].</summary>
    TokenEmbedding,
    /// <summary>RMSNorm weight before attention, [dim].</summary>
    AttentionNorm,
    /// <summary>Query projection, [heads·head_dim, dim]; its rows are RoPE-permuted between conventions.</summary>
    Query,
    /// <summary>Key projection, [kv_heads·head_dim, dim]; its rows are RoPE-permuted between conventions.</summary>
    Key,
    /// <summary>Value projection, [kv_heads·head_dim, dim].</summary>
    Value,
    /// <summary>Attention output projection, [dim, dim].</summary>
    AttentionOutput,
    /// <summary>RMSNorm weight before the feed-forward block, [dim].</summary>
    FfnNorm,
    /// <summary>Feed-forward gate (llama2.c w1, HF gate_proj), [hidden, dim].</summary>
    FfnGate,
    /// <summary>Feed-forward up projection (llama2.c w3, HF up_proj), [hidden, dim].</summary>
    FfnUp,
    /// <summary>Feed-forward down projection (llama2.c w2, HF down_proj), [dim, hidden].</summary>
    FfnDown,
    /// <summary>Final RMSNorm weight, [dim].</summary>
    OutputNorm,
    /// <summary>Classifier, [vocab, dim]; absent when tied to the embedding.</summary>
    Output,
    /// <summary>Query bias, [heads·head_dim] (Qwen2, Llama attention_bias); RoPE-permuted like the query rows.</summary>
    QueryBias,
    /// <summary>Key bias, [kv_heads·head_dim]; RoPE-permuted like the key rows.</summary>
    KeyBias,
    /// <summary>Value bias, [kv_heads·head_dim].</summary>
    ValueBias,
    /// <summary>Attention output bias, [dim] (Llama attention_bias).</summary>
    AttentionOutputBias,
    /// <summary>RMSNorm weight over each query head, [head_dim] (Qwen3).</summary>
    QueryNorm,
    /// <summary>RMSNorm weight over each key head, [head_dim] (Qwen3).</summary>
    KeyNorm,
}

/// <summary>A tensor-naming convention.</summary>
internal enum TensorNaming : byte
{
    /// <summary>Hugging Face <c>LlamaForCausalLM</c> state dict (<c>model.layers.N.self_attn.q_proj.weight</c>).</summary>
    HuggingFace,
    /// <summary>llama.cpp's GGUF names (<c>blk.N.attn_q.weight</c>).</summary>
    Gguf,
    /// <summary>llama2.c checkpoint arrays (<c>wq</c>), each per-layer array stacking every layer.</summary>
    Llama2c,
}

/// <summary>
/// The one table of Llama tensor names across Hugging Face, GGUF and llama2.c, and the RoPE
/// convention each stores Q/K rows in. Hugging Face rows pair dimension i with i + head_dim/2
/// (rotate_half); GGUF and llama2.c rows pair 2i with 2i+1, after the row permutation in
/// <see cref="RopePermutation"/> applied to <see cref="TensorRole.Query"/> (over the attention heads)
/// and <see cref="TensorRole.Key"/> (over the KV heads).
/// </summary>
internal static class TensorNames
{
    // Per role: HF, GGUF, llama2.c (null: llama2.c has no such tensor). {0} is the layer.
    static readonly string?[][] Table =
    [
        ["model.embed_tokens.weight", "token_embd.weight", "token_embedding_table"],
        ["model.layers.{0}.input_layernorm.weight", "blk.{0}.attn_norm.weight", "rms_att_weight"],
        ["model.layers.{0}.self_attn.q_proj.weight", "blk.{0}.attn_q.weight", "wq"],
        ["model.layers.{0}.self_attn.k_proj.weight", "blk.{0}.attn_k.weight", "wk"],
        ["model.layers.{0}.self_attn.v_proj.weight", "blk.{0}.attn_v.weight", "wv"],
        ["model.layers.{0}.self_attn.o_proj.weight", "blk.{0}.attn_output.weight", "wo"],
        ["model.layers.{0}.post_attention_layernorm.weight", "blk.{0}.ffn_norm.weight", "rms_ffn_weight"],
        ["model.layers.{0}.mlp.gate_proj.weight", "blk.{0}.ffn_gate.weight", "w1"],
        ["model.layers.{0}.mlp.up_proj.weight", "blk.{0}.ffn_up.weight", "w3"],
        ["model.layers.{0}.mlp.down_proj.weight", "blk.{0}.ffn_down.weight", "w2"],
        ["model.norm.weight", "output_norm.weight", "rms_final_weight"],
        ["lm_head.weight", "output.weight", "wcls"],
        ["model.layers.{0}.self_attn.q_proj.bias", "blk.{0}.attn_q.bias", null],
        ["model.layers.{0}.self_attn.k_proj.bias", "blk.{0}.attn_k.bias", null],
        ["model.layers.{0}.self_attn.v_proj.bias", "blk.{0}.attn_v.bias", null],
        ["model.layers.{0}.self_attn.o_proj.bias", "blk.{0}.attn_output.bias", null],
        ["model.layers.{0}.self_attn.q_norm.weight", "blk.{0}.attn_q_norm.weight", null],
        ["model.layers.{0}.self_attn.k_norm.weight", "blk.{0}.attn_k_norm.weight", null],
    ];

    /// <summary>The nine tensors of each transformer block, in the order llama.cpp's converter writes them.</summary>
    public static IReadOnlyList<TensorRole> LayerRoles { get; } =
    [
        TensorRole.AttentionNorm, TensorRole.Query, TensorRole.Key, TensorRole.Value, TensorRole.AttentionOutput,
        TensorRole.FfnNorm, TensorRole.FfnGate, TensorRole.FfnUp, TensorRole.FfnDown,
    ];

    /// <summary>
    /// Every tensor of one block of <paramref name="config"/>: <see cref="LayerRoles"/> plus the biases and q/k norms
    /// its architecture has.
    /// </summary>
    public static IReadOnlyList<TensorRole> LayerRolesOf(ModelConfig config)
    {
        var roles = new List<TensorRole>(LayerRoles);
        if (config.QkvBias) roles.AddRange([TensorRole.QueryBias, TensorRole.KeyBias, TensorRole.ValueBias]);
        if (config.OutputBias) roles.Add(TensorRole.AttentionOutputBias);
        if (config.QkNorm) roles.AddRange([TensorRole.QueryNorm, TensorRole.KeyNorm]);
        return roles;
    }

    /// <summary>The naming convention of a model file format (safetensors models are Hugging Face's).</summary>
    public static TensorNaming NamingOf(TensorFileFormat format) => format switch
    {
        TensorFileFormat.Llama2c => TensorNaming.Llama2c,
        TensorFileFormat.Gguf => TensorNaming.Gguf,
        TensorFileFormat.Safetensors => TensorNaming.HuggingFace,
        _ => throw new NotSupportedException($"{format} files do not hold a model's tensors"),
    };

    /// <summary>True for the tensors each transformer block has one of.</summary>
    public static bool IsPerLayer(TensorRole role) => role is not (TensorRole.TokenEmbedding or TensorRole.OutputNorm or TensorRole.Output);

    /// <summary>True when one tensor holds every layer's slice, the layer outermost (llama2.c).</summary>
    public static bool IsStacked(TensorNaming naming) => naming == TensorNaming.Llama2c;

    /// <summary>The RoPE pairing Llama Q/K rows are stored in under <paramref name="naming"/>.</summary>
    public static RopeStyle Rope(TensorNaming naming) => naming == TensorNaming.HuggingFace ? RopeStyle.HalfSplit : RopeStyle.AdjacentPairs;

    /// <summary>
    /// The RoPE pairing of <paramref name="arch"/>'s Q/K rows under <paramref name="naming"/>: llama.cpp permutes
    /// only Llama's rows; Qwen GGUFs keep Hugging Face's order and rotate NEOX-style (pairs i, i + head_dim/2).
    /// </summary>
    public static RopeStyle Rope(TensorNaming naming, ModelArchitecture arch) =>
        arch == ModelArchitecture.Llama ? Rope(naming) : RopeStyle.HalfSplit;

    /// <summary>
    /// The heads whose rows <see cref="RopePermutation"/> reorders when converting <paramref name="role"/>
    /// between RoPE conventions: attention heads for Q, KV heads for K, 0 for every other tensor.
    /// </summary>
    public static int RopeHeads(TensorRole role, ModelConfig config) => config.Architecture != ModelArchitecture.Llama ? 0 : role switch
    {
        TensorRole.Query or TensorRole.QueryBias => config.Heads,
        TensorRole.Key or TensorRole.KeyBias => config.KvHeads,
        _ => 0,
    };

    /// <summary>The shape (outermost first, one layer's slice) that <paramref name="config"/> implies for <paramref name="role"/>.</summary>
    public static long[] ExpectedShape(TensorRole role, ModelConfig config) => role switch
    {
        TensorRole.TokenEmbedding or TensorRole.Output => [config.VocabSize, config.Dim],
        TensorRole.AttentionNorm or TensorRole.FfnNorm or TensorRole.OutputNorm => [config.Dim],
        TensorRole.Query => [config.QDim, config.Dim],
        TensorRole.AttentionOutput => [config.Dim, config.QDim],
        TensorRole.Key or TensorRole.Value => [config.KvDim, config.Dim],
        TensorRole.QueryBias => [config.QDim],
        TensorRole.KeyBias or TensorRole.ValueBias => [config.KvDim],
        TensorRole.AttentionOutputBias => [config.Dim],
        TensorRole.QueryNorm or TensorRole.KeyNorm => [config.HeadDim],
        TensorRole.FfnGate or TensorRole.FfnUp => [config.HiddenDim, config.Dim],
        TensorRole.FfnDown => [config.Dim, config.HiddenDim],
        _ => throw new ArgumentOutOfRangeException(nameof(role)),
    };

    /// <summary>
    /// The name of <paramref name="role"/> under <paramref name="naming"/>. <paramref name="layer"/>
    /// is required for per-layer roles, except for stacked llama2.c arrays, which have one name.
    /// </summary>
    public static string Name(TensorNaming naming, TensorRole role, int layer = -1)
    {
        string pattern = Table[(int)role][(int)naming]
            ?? throw new ArgumentException($"{naming} files have no {role} tensor", nameof(role));
        if (!IsPerLayer(role) || IsStacked(naming)) return pattern;
        if (layer < 0) throw new ArgumentOutOfRangeException(nameof(layer), $"{role} is per layer: give the layer");
        return string.Format(CultureInfo.InvariantCulture, pattern, layer);
    }

    /// <summary>
    /// Which tensor <paramref name="name"/> is under <paramref name="naming"/>; <paramref name="layer"/>
    /// is −1 for whole-model tensors and stacked llama2.c arrays. False for names outside the table
    /// (e.g. <c>rotary_emb.inv_freq</c> and llama2.c's RoPE tables, which are recomputed).
    /// </summary>
    public static bool TryParse(TensorNaming naming, string name, out TensorRole role, out int layer)
    {
        layer = -1;
        for (int r = 0; r < Table.Length; r++)
        {
            role = (TensorRole)r;
            if (Table[r][(int)naming] is not string pattern) continue;
            if (!IsPerLayer(role) || IsStacked(naming))
            {
                if (name == pattern) return true;
                continue;
            }
            int at = pattern.IndexOf("{0}", StringComparison.Ordinal);
            string prefix = pattern[..at], suffix = pattern[(at + 3)..];
            if (name.Length > prefix.Length + suffix.Length && name.StartsWith(prefix, StringComparison.Ordinal) && name.EndsWith(suffix, StringComparison.Ordinal))
            {
                var digits = name.AsSpan(prefix.Length, name.Length - prefix.Length - suffix.Length);
                if (AllDigits(digits) && int.TryParse(digits, NumberStyles.None, CultureInfo.InvariantCulture, out layer)) return true;
                layer = -1;
            }
        }
        role = default;
        return false;
    }

    static bool AllDigits(ReadOnlySpan<char> s)
    {
        foreach (char c in s) if (c is < '0' or > '9') return false;
        return true;
    }

    /// <summary>
    /// The GGUF name of a tensor named <paramref name="name"/> under <paramref name="from"/>, or null
    /// if it is not in the table. For a stacked llama2.c array, <paramref name="layer"/> picks the slice.
    /// </summary>
    public static string? ToGguf(TensorNaming from, string name, int layer = -1)
    {
        if (!TryParse(from, name, out var role, out int parsed)) return null;
        if (IsPerLayer(role) && IsStacked(from)) parsed = layer;
        return Name(TensorNaming.Gguf, role, parsed);
    }
}
