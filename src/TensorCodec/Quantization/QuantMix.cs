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
        // The i-quant mixes and Q2_K_S; base types from llama_ftype_get_default_type (llama-quant.cpp):
        // IQ2_S starts from IQ2_XS, IQ2_M from IQ2_S, IQ3_XS and IQ3_M from IQ3_S.
        new("q2_K_S", 21, GgmlTypes.Q2_K),
        new("iq1_s", 24, GgmlTypes.IQ1_S),
        new("iq1_m", 31, GgmlTypes.IQ1_M),
        new("iq2_xxs", 19, GgmlTypes.IQ2_XXS),
        new("iq2_xs", 20, GgmlTypes.IQ2_XS),
        new("iq2_s", 28, GgmlTypes.IQ2_XS),
        new("iq2_m", 29, GgmlTypes.IQ2_S),
        new("iq3_xxs", 23, GgmlTypes.IQ3_XXS),
        new("iq3_xs", 22, GgmlTypes.IQ3_S),
        new("iq3_s", 26, GgmlTypes.IQ3_S),
        new("iq3_m", 27, GgmlTypes.IQ3_S),
    ];

    /// <summary>Every supported mix: f32, f16, bf16, the legacy, k-quant and i-quant mixes.</summary>
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
    /// <summary>llama.cpp's <c>n_expert</c>: 0 (or 1) for a dense model.</summary>
    public int ExpertCount { get; init; }
    /// <summary>llama.cpp classifies the model as <c>LLM_TYPE_70B</c> (llama: 80 layers with GQA; qwen2: 80 layers).</summary>
    public bool Is70B { get; init; }
}

/// <summary>The type a tensor gets, and (when the row length forced it) what was wanted first.</summary>
internal readonly record struct TypeChoice(int Type, int? FallbackFrom);

/// <summary>llama-quantize's per-tensor options that override the mix (<c>--pure</c>, <c>--output-tensor-type</c> …).</summary>
/// <param name="Pure">Every quantizable tensor gets the mix's base type (no per-tensor rules; the row fallback still applies).</param>
/// <param name="OutputType">ggml type id for <c>output.weight</c> (and, through the rules, a tied <c>token_embd.weight</c>).</param>
/// <param name="TokenEmbeddingType">ggml type id for <c>token_embd.weight</c>.</param>
/// <param name="TensorTypes">Regex → ggml type id, first match wins, searched in tensor names (llama-quantize lower-cases the pattern).</param>
/// <param name="LeaveOutput"><c>output.weight</c> is not quantized: it keeps its source type.</param>
internal sealed record TypeOverrides(bool Pure = false, int? OutputType = null, int? TokenEmbeddingType = null,
    IReadOnlyList<(System.Text.RegularExpressions.Regex Pattern, int Type)>? TensorTypes = null, bool LeaveOutput = false)
{
    public static readonly TypeOverrides None = new();
}

/// <summary>
/// llama.cpp's per-tensor type choice, a re-expression of <c>llama_tensor_get_type</c>,
/// <c>llama_tensor_get_type_impl</c> and <c>tensor_type_fallback</c> in llama.cpp's src/llama-quant.cpp (read at
/// ggml-org/llama.cpp 007dbbf3, the rules of the era of the golden files' commit 34af94cd), for every mix in
/// <see cref="QuantMix.All"/>. Falcon and MXFP4 special cases are left out: no supported input is either.
///
/// Rules, in order (the category of a tensor is found by name as llama.cpp's <c>tensor_get_category</c> does):
/// <list type="bullet">
/// <item>Only 2-D (or higher) tensors whose name ends in "weight" (and not "_norm.weight") are quantized; others keep their type.</item>
/// <item><c>--token-embedding-type</c> / <c>--output-tensor-type</c> win outright for their tensor (no fallback).</item>
/// <item>Float mixes (f32/f16/bf16) use their type for every other quantized tensor, with no rules.</item>
/// <item>A <c>--tensor-type</c> pattern that matches, or <c>--pure</c>, replaces the rules below; the row fallback still applies.</item>
/// <item><c>output.weight</c> (or <c>token_embd.weight</c> when tied): Q8_0 if the row is not a whole base block; Q5_K for
///   IQ1_S/IQ1_M/IQ2_XXS/IQ2_XS/IQ2_S/IQ2_M/IQ3_XXS; else Q6_K unless the base is Q8_0.</item>
/// <item><c>token_embd.weight</c> (untied): Q2_K for IQ1_S/IQ1_M/IQ2_XXS/IQ2_XS, IQ3_S for IQ2_S/IQ2_M/IQ3_XXS, else the base.</item>
/// <item>IQ1_S/IQ1_M/IQ2_XXS/IQ2_XS/IQ2_S/IQ2_M: attn_v Q4_K with GQA ≥ 4 (or ≥ 4 experts), else IQ3_S (IQ2_S/M) or Q2_K;
///   ffn_down in the first n/8 layers IQ3_S (IQ2_S/M) or Q2_K; attn_output IQ2_XXS (IQ1_*), IQ3_S (IQ2_S/M), Q5_K with 8 experts.</item>
/// <item>The other mixes: see <see cref="Impl"/>, one branch per llama.cpp branch.</item>
/// <item>use_more_bits(i, n) = i &lt; n/8 || i ≥ 7n/8 || (i − n/8) mod 3 == 2 (integer division).</item>
/// <item>Layer indices are llama.cpp's counters (one per attn_v, ffn_down, ffn_gate, ffn_up tensor the rules see, in
///   file order), which equal the layer number unless an override or <c>--pure</c> skips the rules for some tensors.</item>
/// <item>Fallback when the row length is not a multiple of the chosen block size: IQ1_S/IQ1_M/IQ2_*/IQ3_*/IQ4_XS
///   → IQ4_NL, Q2_0/Q2_K/Q3_K/TQ1_0/TQ2_0 → Q4_0, Q4_K → Q5_0, Q5_K → Q5_1, Q6_K → Q8_0; if that still does
///   not fit, F16. llama.cpp refuses a
///   non-fitting Q4_0…Q8_0/IQ4_NL tensor outright; we use F16 for those too and report it.</item>
/// </list>
/// </summary>
internal static class TensorTypeRules
{
    /// <summary>llama.cpp's <c>tensor_category</c>.</summary>
    internal enum Category { TokenEmbd, AttnQ, AttnV, AttnK, AttnQkv, AttnKvB, AttnOutput, FfnUp, FfnGate, FfnDown, Output, Other }

    /// <summary>llama.cpp's counters (<c>quantize_state_impl</c>): how many attn_v/ffn tensors the rules have seen so far.</summary>
    internal struct Counters
    {
        public int AttnV, FfnDown, FfnGate, FfnUp;
        /// <summary>n_attention_wv: the model's attn_v-like tensors; the ffn counts are the layer count.</summary>
        public int AttnVTotal;
    }

    /// <summary>Whether llama.cpp would quantize this tensor at all (else it keeps its converted type, F32).</summary>
    public static bool IsQuantizable(string ggufName, long[] dims) =>
        dims.Length >= 2 && ggufName.EndsWith("weight", StringComparison.Ordinal) && !ggufName.Contains("_norm.weight", StringComparison.Ordinal);

    public static bool UseMoreBits(int layer, int layers) =>
        layer < layers / 8 || layer >= 7 * layers / 8 || (layer - layers / 8) % 3 == 2;

    // tensor_get_category: the first substring that matches, in llama.cpp's order.
    public static Category CategoryOf(string name) =>
        name == "output.weight" ? Category.Output
        : name is "token_embd.weight" or "per_layer_token_embd.weight" ? Category.TokenEmbd
        : name.Contains("attn_qkv.weight", StringComparison.Ordinal) ? Category.AttnQkv
        : name.Contains("attn_kv_b.weight", StringComparison.Ordinal) ? Category.AttnKvB
        : name.Contains("attn_v.weight", StringComparison.Ordinal) ? Category.AttnV
        : name.Contains("attn_k.weight", StringComparison.Ordinal) ? Category.AttnK
        : name.Contains("attn_q.weight", StringComparison.Ordinal) ? Category.AttnQ
        : name.Contains("attn_output.weight", StringComparison.Ordinal) ? Category.AttnOutput
        : name.Contains("ffn_up", StringComparison.Ordinal) ? Category.FfnUp
        : name.Contains("ffn_gate", StringComparison.Ordinal) ? Category.FfnGate
        : name.Contains("ffn_down", StringComparison.Ordinal) ? Category.FfnDown
        : Category.Other;

    /// <summary>category_is_attn_v: the tensors the attn_v rules (and counter) cover.</summary>
    public static bool IsAttnVLike(Category c) => c is Category.AttnV or Category.AttnQkv or Category.AttnKvB;

    /// <summary>
    /// Picks the type of one tensor with no overrides, reading the layer counters off the name (what llama.cpp's
    /// counters hold when every tensor goes through the rules). <paramref name="dims"/> are innermost-first.
    /// </summary>
    public static TypeChoice Choose(QuantMix mix, string name, long[] dims, MixContext ctx)
    {
        int layer = Math.Max(0, LayerOf(name));
        var c = new Counters { AttnV = layer, FfnDown = layer, FfnGate = layer, FfnUp = layer, AttnVTotal = ctx.LayerCount };
        return Choose(mix, name, dims, ctx, TypeOverrides.None, ref c, GgmlTypes.F32);
    }

    /// <summary>
    /// llama_tensor_get_type: the type of one tensor given the overrides, advancing <paramref name="c"/> as llama.cpp
    /// does. <paramref name="sourceType"/> is what output.weight keeps under <see cref="TypeOverrides.LeaveOutput"/>.
    /// </summary>
    public static TypeChoice Choose(QuantMix mix, string name, long[] dims, MixContext ctx, TypeOverrides o, ref Counters c, int sourceType)
    {
        // What is not quantized stays as converted: llama.cpp's converter writes norms and other 1-D tensors as F32.
        if (!IsQuantizable(name, dims)) return new(GgmlTypes.F32, null);
        if (o.LeaveOutput && name == "output.weight") return new(sourceType, null);
        var cat = CategoryOf(name);
        if (o.TokenEmbeddingType is int te && cat == Category.TokenEmbd) return new(te, null);
        if (o.OutputType is int ot && cat == Category.Output) return new(ot, null);
        if (mix.IsFloat) return new(mix.BaseType, null);

        int t = mix.BaseType;
        bool manual = false;
        foreach (var (pattern, type) in o.TensorTypes ?? [])
        {
            if (!pattern.IsMatch(name)) continue;
            t = type;
            manual = true;
            break;
        }
        if (!manual && !o.Pure) t = Impl(mix, t, name, cat, dims[0], ctx, o, ref c);
        return FitRow(t, dims[0]);
    }

    static bool IsOneOf(string m, params string[] names) => Array.IndexOf(names, m) >= 0;

    /// <summary>llama_tensor_get_type_impl: the mix's rules, branch for branch.</summary>
    static int Impl(QuantMix mix, int t, string name, Category cat, long rowLength, MixContext ctx, TypeOverrides o, ref Counters c)
    {
        string m = mix.Name.ToLowerInvariant();
        int n = ctx.LayerCount, experts = ctx.ExpertCount, gqa = ctx.Gqa;
        bool imatrix = ctx.HasImatrix;
        bool lowIq = IsOneOf(m, "iq2_xxs", "iq2_xs", "iq1_s", "iq2_s", "iq2_m", "iq1_m");
        bool iq2sm = m is "iq2_s" or "iq2_m";
        // layer_info: with experts the layer comes from the name ("experts are not consecutive").
        int LayerFrom(int counter) => experts > 1 ? LayerOf(name) : counter;

        // The output tensor, and token_embd standing in for it when the embeddings are tied.
        if (cat == Category.Output || (!ctx.HasOutput && cat == Category.TokenEmbd))
        {
            if (o.OutputType is int ot) return ot;
            if (rowLength % GgmlTypes.Get(t).BlockSize != 0) return GgmlTypes.Q8_0;
            if (IsOneOf(m, "iq2_xxs", "iq2_xs", "iq3_xxs", "iq1_s", "iq2_s", "iq2_m", "iq1_m")) return GgmlTypes.Q5_K;
            return t != GgmlTypes.Q8_0 ? GgmlTypes.Q6_K : t;
        }
        if (cat == Category.TokenEmbd)
        {
            if (o.TokenEmbeddingType is int te) return te;
            if (IsOneOf(m, "iq2_xxs", "iq2_xs", "iq1_s", "iq1_m")) return GgmlTypes.Q2_K;
            if (iq2sm || m == "iq3_xxs") return GgmlTypes.IQ3_S;
            return t;
        }
        if (lowIq)
        {
            if (IsAttnVLike(cat))
            {
                c.AttnV++;
                return gqa >= 4 || experts >= 4 ? GgmlTypes.Q4_K : iq2sm ? GgmlTypes.IQ3_S : GgmlTypes.Q2_K;
            }
            if (experts == 8 && cat == Category.AttnK) return GgmlTypes.Q4_K;
            if (cat == Category.FfnDown)
            {
                // This branch compares the raw counter with n_ffn_down / 8, even with experts.
                if (c.FfnDown < n / 8) t = iq2sm ? GgmlTypes.IQ3_S : GgmlTypes.Q2_K;
                c.FfnDown++;
                return t;
            }
            if (cat == Category.AttnOutput)
            {
                if (experts == 8) return GgmlTypes.Q5_K;
                if (m is "iq1_s" or "iq1_m") return GgmlTypes.IQ2_XXS;
                if (iq2sm) return GgmlTypes.IQ3_S;
            }
            return t;
        }
        if (IsAttnVLike(cat))
        {
            int i = c.AttnV;
            if (m == "q2_k") t = gqa >= 4 ? GgmlTypes.Q4_K : GgmlTypes.Q3_K;
            else if (m == "q2_k_s" && gqa >= 4) t = GgmlTypes.Q4_K;
            else if (m == "iq3_xxs") t = gqa >= 4 ? GgmlTypes.Q4_K : !imatrix ? GgmlTypes.IQ3_S : GgmlTypes.IQ3_XXS;
            else if (m is "iq3_xs" or "iq3_s" && gqa >= 4) t = GgmlTypes.Q4_K;
            else if (m == "iq3_m") t = GgmlTypes.Q4_K;
            else if (m == "q3_k_m") t = i < 2 ? GgmlTypes.Q5_K : GgmlTypes.Q4_K;
            else if (m == "q3_k_l") t = GgmlTypes.Q5_K;
            else if (m is "iq4_nl" or "iq4_xs" && gqa >= 4) t = GgmlTypes.Q5_K;
            else if (m is "q4_k_m" or "q5_k_m" && UseMoreBits(i, c.AttnVTotal)) t = GgmlTypes.Q6_K;
            else if (m == "q4_k_s" && i < 4) t = GgmlTypes.Q5_K;
            // "8 heads sharing the same attn_v weights": the tensor is small, so it gets more bits.
            if (ctx.Is70B && t is GgmlTypes.Q3_K or GgmlTypes.Q4_K) t = GgmlTypes.Q5_K;
            if (experts == 8) t = GgmlTypes.Q8_0;
            c.AttnV++;
            return t;
        }
        if (cat == Category.AttnK)
        {
            if (experts == 8) return GgmlTypes.Q8_0;
            if (m == "iq3_xs") return GgmlTypes.IQ3_XXS;
            if (m == "iq3_xxs") return GgmlTypes.IQ2_S;
            return t;
        }
        if (cat == Category.AttnQ)
        {
            if (m == "iq3_xs") return GgmlTypes.IQ3_XXS;
            if (m == "iq3_xxs") return GgmlTypes.IQ2_S;
            return t;
        }
        if (cat == Category.FfnDown)
        {
            int i = LayerFrom(c.FfnDown);
            if (m == "q2_k") t = GgmlTypes.Q3_K;
            else if (m == "q2_k_s") { if (i < n / 8) t = GgmlTypes.Q4_K; }
            else if (m == "iq3_xxs" && !imatrix) t = i < n / 8 ? GgmlTypes.Q4_K : GgmlTypes.Q3_K;
            else if (m == "q3_k_m") t = i < n / 16 ? GgmlTypes.Q5_K : GgmlTypes.Q4_K; // Falcon's Q3_K case left out
            else if (m == "iq3_m" && (i < n / 8 || (experts == 8 && UseMoreBits(i, n)))) t = GgmlTypes.Q4_K;
            else if (m == "q3_k_l") t = GgmlTypes.Q5_K;
            else if (m == "q4_k_m") { if (UseMoreBits(i, n)) t = GgmlTypes.Q6_K; }
            else if (i < n / 8 && m is "iq4_nl" or "iq4_xs" && !imatrix) t = GgmlTypes.Q5_K;
            else if (m == "q5_k_m" && UseMoreBits(i, n)) t = GgmlTypes.Q6_K;
            else if (m == "q4_k_s" && i < n / 8) t = GgmlTypes.Q5_K;
            // "Guard against craziness in the first few ffn_down layers" — only with an imatrix.
            else if (m is "q4_0" or "q5_0" && imatrix && i < n / 8) t = m == "q4_0" ? GgmlTypes.Q4_1 : GgmlTypes.Q5_1;
            c.FfnDown++;
            return t;
        }
        if (cat == Category.AttnOutput)
        {
            if (experts == 8)
            {
                if (IsOneOf(m, "q2_k", "iq3_xs", "iq3_xxs", "q3_k_s", "q3_k_m", "iq4_nl", "q4_k_s", "q4_k_m", "iq3_s", "iq3_m", "iq4_xs"))
                    t = GgmlTypes.Q5_K;
            }
            else if (m == "q2_k") t = GgmlTypes.Q3_K;
            else if (m == "iq3_xxs") t = GgmlTypes.IQ3_S;
            else if (m == "q3_k_m") t = GgmlTypes.Q4_K;
            else if (m == "q3_k_l") t = GgmlTypes.Q5_K;
            else if (m == "iq3_m") t = GgmlTypes.Q4_K;
            return t;
        }
        // (llama.cpp's attn_qkv branch is unreachable: category_is_attn_v takes attn_qkv first.)
        if (cat is Category.FfnGate or Category.FfnUp)
        {
            ref int counter = ref cat == Category.FfnGate ? ref c.FfnGate : ref c.FfnUp;
            int i = LayerFrom(counter);
            if (m == "iq3_xs" && i >= n / 8 && i < 7 * n / 8) t = GgmlTypes.IQ3_XXS;
            counter++;
            return t;
        }
        return t;
    }

    /// <summary>
    /// tensor_requires_imatrix: llama-quantize refuses these without an importance matrix ("the result will be
    /// garbage"): the IQ1/IQ2/IQ3_XXS types anywhere but token_embd and output, and Q2_K in a Q2_K_S file.
    /// </summary>
    public static bool RequiresImatrix(string name, int type, QuantMix mix)
    {
        if (name is "token_embd.weight" or "per_layer_token_embd.weight" or "output.weight") return false;
        return type switch
        {
            GgmlTypes.IQ3_XXS or GgmlTypes.IQ2_XXS or GgmlTypes.IQ2_XS or GgmlTypes.IQ2_S or GgmlTypes.IQ1_M or GgmlTypes.IQ1_S => true,
            GgmlTypes.Q2_K => string.Equals(mix.Name, "q2_K_S", StringComparison.OrdinalIgnoreCase),
            _ => false,
        };
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

/// <summary>
/// Chooses the types of a whole model's tensors in file order, keeping llama.cpp's counters across tensors
/// (<c>quantize_state_impl</c>): the counters only advance for tensors the mix rules see.
/// </summary>
internal sealed class TensorTypePlanner
{
    readonly QuantMix _mix;
    readonly MixContext _ctx;
    readonly TypeOverrides _overrides;
    TensorTypeRules.Counters _counters;

    public TensorTypePlanner(QuantMix mix, MixContext ctx, TypeOverrides overrides, IEnumerable<string> names)
    {
        _mix = mix;
        _ctx = ctx;
        _overrides = overrides;
        _counters.AttnVTotal = names.Count(n => TensorTypeRules.IsAttnVLike(TensorTypeRules.CategoryOf(n)));
    }

    /// <summary>The next tensor's type; call in file order.</summary>
    public TypeChoice Next(string name, long[] dims, int sourceType) =>
        TensorTypeRules.Choose(_mix, name, dims, _ctx, _overrides, ref _counters, sourceType);
}
