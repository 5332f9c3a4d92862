using System.Text.RegularExpressions;

namespace TensorCodec.Quantization;

/// <summary>Tensor-name maps from Hugging Face Llama and llama2.c checkpoints to GGUF (llama.cpp's names).</summary>
public static partial class LlamaNames
{
    static readonly Dictionary<string, string> HfLayer = new(StringComparer.Ordinal)
    {
        ["input_layernorm.weight"] = "attn_norm.weight",
        ["self_attn.q_proj.weight"] = "attn_q.weight",
        ["self_attn.k_proj.weight"] = "attn_k.weight",
        ["self_attn.v_proj.weight"] = "attn_v.weight",
        ["self_attn.o_proj.weight"] = "attn_output.weight",
        ["post_attention_layernorm.weight"] = "ffn_norm.weight",
        ["mlp.gate_proj.weight"] = "ffn_gate.weight",
        ["mlp.up_proj.weight"] = "ffn_up.weight",
        ["mlp.down_proj.weight"] = "ffn_down.weight",
    };

    [GeneratedRegex(@"^model\.layers\.(\d+)\.(.+)$", RegexOptions.CultureInvariant)]
    private static partial Regex HfLayerName();

    /// <summary>
    /// The GGUF name of a Hugging Face Llama tensor, or null for tensors llama.cpp does not load
    /// (e.g. <c>rotary_emb.inv_freq</c>, which it recomputes).
    /// </summary>
    public static string? FromHf(string name)
    {
        switch (name)
        {
            case "model.embed_tokens.weight": return "token_embd.weight";
            case "model.norm.weight": return "output_norm.weight";
            case "lm_head.weight": return "output.weight";
        }
        var m = HfLayerName().Match(name);
        if (m.Success && HfLayer.TryGetValue(m.Groups[2].Value, out var suffix))
            return $"blk.{int.Parse(m.Groups[1].Value, System.Globalization.CultureInfo.InvariantCulture)}.{suffix}";
        return null;
    }

    /// <summary>
    /// GGUF name for layer <paramref name="layer"/> of a llama2.c stacked array (wq, rms_att_weight …),
    /// or for a whole un-stacked array when <paramref name="layer"/> is -1. Null for the RoPE tables,
    /// which llama.cpp recomputes.
    /// </summary>
    public static string? FromLlama2c(string name, int layer) => name switch
    {
        "token_embedding_table" => "token_embd.weight",
        "rms_final_weight" => "output_norm.weight",
        "wcls" => "output.weight",
        "rms_att_weight" => $"blk.{layer}.attn_norm.weight",
        "wq" => $"blk.{layer}.attn_q.weight",
        "wk" => $"blk.{layer}.attn_k.weight",
        "wv" => $"blk.{layer}.attn_v.weight",
        "wo" => $"blk.{layer}.attn_output.weight",
        "rms_ffn_weight" => $"blk.{layer}.ffn_norm.weight",
        "w1" => $"blk.{layer}.ffn_gate.weight",
        "w2" => $"blk.{layer}.ffn_down.weight",
        "w3" => $"blk.{layer}.ffn_up.weight",
        _ => null,
    };

    /// <summary>llama2.c arrays that hold one slice per layer (outermost dimension = layer).</summary>
    public static bool IsLlama2cPerLayer(string name) =>
        name is "rms_att_weight" or "wq" or "wk" or "wv" or "wo" or "rms_ffn_weight" or "w1" or "w2" or "w3";

    /// <summary>
    /// Order llama.cpp's converter writes tensors in: token_embd, then each block, then
    /// output_norm and output. Readers do not care, but the mix rules count layers in this order.
    /// </summary>
    public static int SortKey(string ggufName)
    {
        if (ggufName == "token_embd.weight") return -1;
        int layer = TensorTypeRules.LayerOf(ggufName);
        return layer >= 0 ? layer : int.MaxValue;
    }
}

/// <summary>
/// The Q/K row permutation between Hugging Face's RoPE convention (rotate_half: dimension i
/// pairs with i + head_dim/2) and GGUF/llama.cpp's (adjacent pairs 2i, 2i+1). Within each head,
/// rows are viewed as [2, head_dim/2] and transposed to [head_dim/2, 2], exactly what
/// llama.cpp's converter does with reshape(n_head, 2, head_dim/2, in).swapaxes(1, 2).
/// </summary>
public static class RopePermutation
{
    /// <summary>Source row for destination row <paramref name="row"/> (HF → GGUF).</summary>
    public static int SourceRow(int row, int headDim)
    {
        int half = headDim / 2;
        int head = row / headDim, r = row % headDim;
        int i = r / 2, j = r % 2;           // destination: [head, i, j]
        return head * headDim + j * half + i; // source: [head, j, i]
    }

    /// <summary>HF → GGUF: permutes the rows of a [rows, cols] row-major matrix.</summary>
    public static float[] ToGguf(ReadOnlySpan<float> w, int rows, int cols, int headCount) =>
        Permute(w, rows, cols, headCount, inverse: false);

    /// <summary>GGUF → HF, the inverse of <see cref="ToGguf"/>.</summary>
    public static float[] FromGguf(ReadOnlySpan<float> w, int rows, int cols, int headCount) =>
        Permute(w, rows, cols, headCount, inverse: true);

    static float[] Permute(ReadOnlySpan<float> w, int rows, int cols, int headCount, bool inverse)
    {
        if (headCount <= 0 || rows % headCount != 0 || (rows / headCount) % 2 != 0)
            throw new ArgumentException($"cannot permute {rows} rows for RoPE: need {headCount} heads of an even head size");
        if (w.Length != (long)rows * cols) throw new ArgumentException($"expected {(long)rows * cols} values, got {w.Length}");
        int headDim = rows / headCount;
        var result = new float[w.Length];
        for (int row = 0; row < rows; row++)
        {
            int src = SourceRow(row, headDim);
            int from = inverse ? row : src, to = inverse ? src : row;
            w.Slice(from * cols, cols).CopyTo(result.AsSpan(to * cols, cols));
        }
        return result;
    }
}
