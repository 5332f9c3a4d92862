using TensorCodec.Containers;

namespace TensorCodec.Quantization;

/// <summary>
/// One of llama.cpp's named whole-model quantization mixes ("q4_K_M" …): the base ggml type
/// every 2-D weight starts from and the <c>llama_ftype</c> id written to <c>general.file_type</c>.
/// </summary>
/// <param name="Name">The mix's name as llama.cpp spells it (e.g. <c>q4_K_M</c>).</param>
/// <param name="FileType">The <c>llama_ftype</c> id written to <c>general.file_type</c>.</param>
/// <param name="BaseType">The ggml type id every quantizable 2-D weight starts from.</param>
public sealed record QuantMix(string Name, int FileType, int BaseType)
{
    /// <summary>Mixes whose base type is a float type: llama.cpp applies no per-tensor rules to them.</summary>
    public bool IsFloat => BaseType is GgmlTypes.F32 or GgmlTypes.F16 or GgmlTypes.BF16;

    // llama_ftype ids (llama.h): they are what llama.cpp prints as "file type" and must match.
    static readonly QuantMix[] Known =
    [
        new("f32", 0, GgmlTypes.F32),
        new("f16", 1, GgmlTypes.F16),
        new("bf16", 32, GgmlTypes.BF16),
        new("q8_0", 7, GgmlTypes.Q8_0),
        new("q4_0", 2, GgmlTypes.Q4_0),
        new("q4_1", 3, GgmlTypes.Q4_1),
        new("q5_0", 8, GgmlTypes.Q5_0),
        new("q5_1", 9, GgmlTypes.Q5_1),
        new("q2_K", 10, GgmlTypes.Q2_K),
        new("q3_K_S", 11, GgmlTypes.Q3_K),
        new("q3_K_M", 12, GgmlTypes.Q3_K),
        new("q3_K_L", 13, GgmlTypes.Q3_K),
        new("q4_K_S", 14, GgmlTypes.Q4_K),
        new("q4_K_M", 15, GgmlTypes.Q4_K),
        new("q5_K_S", 16, GgmlTypes.Q5_K),
        new("q5_K_M", 17, GgmlTypes.Q5_K),
        new("q6_K", 18, GgmlTypes.Q6_K),
        new("iq4_nl", 25, GgmlTypes.IQ4_NL),
        new("iq4_xs", 30, GgmlTypes.IQ4_XS),
    ];

    /// <summary>Every supported mix: f32, f16, bf16, the legacy, k-quant and iq4 mixes.</summary>
    public static IReadOnlyList<QuantMix> All => Known;

    /// <summary>Case-insensitive lookup; unknown names get an error listing the known ones.</summary>
    /// <exception cref="ArgumentException"><paramref name="name"/> is not a known mix.</exception>
    public static QuantMix Get(string name) =>
        Known.FirstOrDefault(m => string.Equals(m.Name, name, StringComparison.OrdinalIgnoreCase))
        ?? throw new ArgumentException($"unknown quantization type '{name}'; known: {string.Join(", ", Known.Select(m => m.Name))}");

    /// <summary>The mix's <see cref="Name"/>.</summary>
    public override string ToString() => Name;
}

/// <summary>What the model looks like, as far as the per-tensor rules care.</summary>
internal sealed record MixContext(int LayerCount, int HeadCount, int HeadCountKv, bool HasOutput, bool HasImatrix)
{
    public int Gqa => HeadCountKv <= 0 ? 1 : HeadCount / HeadCountKv;
}

/// <summary>The type a tensor gets, and (when the row length forced it) what was wanted first.</summary>
internal readonly record struct TypeChoice(int Type, int? FallbackFrom);

/// <summary>
/// llama.cpp's per-tensor type choice for dense llama-architecture models (the behaviour of
/// <c>llama_tensor_get_type</c> in llama-quant.cpp, re-expressed; MoE, Falcon and 70B special
/// cases and the IQ1/IQ2/IQ3 mixes are not implemented because no supported input needs them).
///
/// Rules, in order:
/// <list type="bullet">
/// <item>Only 2-D (or higher) tensors whose name ends in "weight" are quantized; 1-D tensors (norms) stay F32.</item>
/// <item>Float mixes (f32/f16/bf16) use their type for every quantized tensor, with no rules.</item>
/// <item><c>output.weight</c> (or <c>token_embd.weight</c> when there is no separate output, i.e. tied
///   embeddings): Q8_0 if its row length is not a multiple of the base block size; otherwise Q6_K unless the
///   base is Q8_0 (then Q8_0).</item>
/// <item><c>token_embd.weight</c> (untied): the base type.</item>
/// <item><c>attn_v</c>: q2_K → Q4_K if GQA ≥ 4 else Q3_K; q3_K_M → Q5_K for the first two layers, Q4_K after;
///   q3_K_L → Q5_K; iq4_nl/iq4_xs with GQA ≥ 4 → Q5_K; q4_K_M/q5_K_M → Q6_K where use_more_bits(layer);
///   q4_K_S → Q5_K for layers 0–3.</item>
/// <item><c>ffn_down</c>: q2_K → Q3_K; q3_K_M → Q5_K for layers &lt; n/16, else Q4_K; q3_K_L → Q5_K;
///   q4_K_M/q5_K_M → Q6_K where use_more_bits(layer); iq4_nl/iq4_xs without imatrix → Q5_K for layers &lt; n/8;
///   q4_K_S → Q5_K for layers &lt; n/8; q4_0/q5_0 with an imatrix → Q4_1/Q5_1 for layers &lt; n/8.</item>
/// <item><c>attn_output</c>: q2_K → Q3_K; q3_K_M → Q4_K; q3_K_L → Q5_K.</item>
/// <item>use_more_bits(i, n) = i &lt; n/8 || i ≥ 7n/8 || (i − n/8) mod 3 == 2 (integer division).</item>
/// <item>Fallback when the row length is not a multiple of the chosen block size: IQ1_S/IQ1_M/IQ2_*/IQ3_*/IQ4_XS
///   → IQ4_NL, Q2_0/Q2_K/Q3_K/TQ1_0/TQ2_0 → Q4_0, Q4_K → Q5_0, Q5_K → Q5_1, Q6_K → Q8_0; if that still does
///   not fit, F16. llama.cpp refuses a
///   non-fitting Q4_0…Q8_0/IQ4_NL tensor outright; we use F16 for those too and report it.</item>
/// </list>
/// </summary>
internal static class TensorTypeRules
{
    /// <summary>Whether llama.cpp would quantize this tensor at all (else it is written as F32).</summary>
    public static bool IsQuantizable(string ggufName, long[] dims) =>
        dims.Length >= 2 && ggufName.EndsWith("weight", StringComparison.Ordinal);

    public static bool UseMoreBits(int layer, int layers) =>
        layer < layers / 8 || layer >= 7 * layers / 8 || (layer - layers / 8) % 3 == 2;

    /// <summary>Picks the type of one tensor. <paramref name="dims"/> are innermost-first (dims[0] = row length).</summary>
    public static TypeChoice Choose(QuantMix mix, string name, long[] dims, MixContext ctx)
    {
        if (!IsQuantizable(name, dims)) return new(GgmlTypes.F32, null);
        if (mix.IsFloat) return new(mix.BaseType, null);

        int t = Rule(mix, name, dims[0], ctx);
        return FitRow(t, dims[0]);
    }

    static int Rule(QuantMix mix, string name, long rowLength, MixContext ctx)
    {
        int b = mix.BaseType;
        string m = mix.Name.ToLowerInvariant();
        int layer = LayerOf(name);
        int n = ctx.LayerCount;

        if (name == "output.weight" || (!ctx.HasOutput && name == "token_embd.weight"))
        {
            if (rowLength % GgmlTypes.Get(b).BlockSize != 0) return GgmlTypes.Q8_0;
            return b == GgmlTypes.Q8_0 ? GgmlTypes.Q8_0 : GgmlTypes.Q6_K;
        }
        if (name == "token_embd.weight") return b;

        if (name.Contains("attn_v.weight", StringComparison.Ordinal))
        {
            return m switch
            {
                "q2_k" => ctx.Gqa >= 4 ? GgmlTypes.Q4_K : GgmlTypes.Q3_K,
                "q3_k_m" => layer < 2 ? GgmlTypes.Q5_K : GgmlTypes.Q4_K,
                "q3_k_l" => GgmlTypes.Q5_K,
                "iq4_nl" or "iq4_xs" when ctx.Gqa >= 4 => GgmlTypes.Q5_K,
                "q4_k_m" or "q5_k_m" when UseMoreBits(layer, n) => GgmlTypes.Q6_K,
                "q4_k_s" when layer < 4 => GgmlTypes.Q5_K,
                _ => b,
            };
        }
        if (name.Contains("ffn_down", StringComparison.Ordinal))
        {
            return m switch
            {
                "q2_k" => GgmlTypes.Q3_K,
                "q3_k_m" => layer < n / 16 ? GgmlTypes.Q5_K : GgmlTypes.Q4_K,
                "q3_k_l" => GgmlTypes.Q5_K,
                "q4_k_m" or "q5_k_m" when UseMoreBits(layer, n) => GgmlTypes.Q6_K,
                "iq4_nl" or "iq4_xs" when layer < n / 8 && !ctx.HasImatrix => GgmlTypes.Q5_K,
                "q4_k_s" when layer < n / 8 => GgmlTypes.Q5_K,
                "q4_0" when ctx.HasImatrix && layer < n / 8 => GgmlTypes.Q4_1,
                "q5_0" when ctx.HasImatrix && layer < n / 8 => GgmlTypes.Q5_1,
                _ => b,
            };
        }
        if (name.Contains("attn_output.weight", StringComparison.Ordinal))
        {
            return m switch
            {
                "q2_k" => GgmlTypes.Q3_K,
                "q3_k_m" => GgmlTypes.Q4_K,
                "q3_k_l" => GgmlTypes.Q5_K,
                _ => b,
            };
        }
        return b;
    }

    /// <summary>The chosen type, or its fallback when the row length is not a whole number of its blocks.</summary>
    public static TypeChoice FitRow(int type, long rowLength)
    {
        if (rowLength % GgmlTypes.Get(type).BlockSize == 0) return new(type, null);
        // llama.cpp's tensor_type_fallback (src/llama-quant.cpp, since March 2026): the 2–3-bit k-quants and
        // ternary types fall back to Q4_0, only the IQ types to IQ4_NL.
        int fallback = type switch
        {
            GgmlTypes.IQ1_S or GgmlTypes.IQ1_M or GgmlTypes.IQ2_XXS or GgmlTypes.IQ2_XS or GgmlTypes.IQ2_S
                or GgmlTypes.IQ3_XXS or GgmlTypes.IQ3_S or GgmlTypes.IQ4_XS => GgmlTypes.IQ4_NL,
            GgmlTypes.Q2_0 or GgmlTypes.Q2_K or GgmlTypes.Q3_K or GgmlTypes.TQ1_0 or GgmlTypes.TQ2_0 => GgmlTypes.Q4_0,
            GgmlTypes.Q4_K => GgmlTypes.Q5_0,
            GgmlTypes.Q5_K => GgmlTypes.Q5_1,
            GgmlTypes.Q6_K => GgmlTypes.Q8_0,
            _ => GgmlTypes.F16,
        };
        if (rowLength % GgmlTypes.Get(fallback).BlockSize != 0) fallback = GgmlTypes.F16;
        return new(fallback, type);
    }

    /// <summary>The N of "blk.N.…", or -1.</summary>
    public static int LayerOf(string name)
    {
        if (!name.StartsWith("blk.", StringComparison.Ordinal)) return -1;
        int end = name.IndexOf('.', 4);
        return end > 4 && int.TryParse(name.AsSpan(4, end - 4), System.Globalization.NumberStyles.None,
            System.Globalization.CultureInfo.InvariantCulture, out int l) ? l : -1;
    }
}
