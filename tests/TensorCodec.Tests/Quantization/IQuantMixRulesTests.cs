using System.Text.RegularExpressions;
using TensorCodec.Containers;
using TensorCodec.Quantization;

namespace TensorCodec.Tests.Quantization;

/// <summary>
/// The i-quant mixes' per-tensor types, pinned by hand from llama.cpp's src/llama-quant.cpp
/// (llama_tensor_get_type_impl; ggml-org/llama.cpp read at 007dbbf3, the rules of the goldens' commit 34af94cd).
/// Each row is a whole synthetic dense model (256-wide rows, so no fallback): the type of every tensor, written
/// per role as run lengths over the layers ("Q2_K IQ2_XXS*7" = layer 0 Q2_K, layers 1–7 IQ2_XXS).
/// </summary>
public class IQuantMixRulesTests
{
    static readonly string[] Roles = ["attn_q", "attn_k", "attn_v", "attn_output", "ffn_gate", "ffn_up", "ffn_down"];

    /// <summary>A llama model's GGUF tensors in llama.cpp's order: token_embd, each block, output.</summary>
    static List<(string Name, long[] Dims)> Model(int layers, bool tied, long row = 256)
    {
        var list = new List<(string, long[])> { ("token_embd.weight", [row, 512]) };
        for (int l = 0; l < layers; l++)
        {
            list.Add(($"blk.{l}.attn_norm.weight", [row]));
            foreach (var r in Roles) list.Add(($"blk.{l}.{r}.weight", [row, row]));
            list.Add(($"blk.{l}.ffn_norm.weight", [row]));
        }
        list.Add(("output_norm.weight", [row]));
        if (!tied) list.Add(("output.weight", [row, 512]));
        return list;
    }

    static Dictionary<string, string> Plan(string mix, int layers, int gqa, bool imatrix, bool tied = false, TypeOverrides? o = null,
        int experts = 0, bool is70B = false, long row = 256)
    {
        var model = Model(layers, tied, row);
        var ctx = new MixContext(layers, 8, 8 / gqa, HasOutput: !tied, HasImatrix: imatrix) { ExpertCount = experts, Is70B = is70B };
        var planner = new TensorTypePlanner(QuantMix.Get(mix), ctx, o ?? TypeOverrides.None, model.Select(t => t.Name));
        return model.ToDictionary(t => t.Name, t => GgmlTypes.Get(planner.Next(t.Name, t.Dims, GgmlTypes.F32).Type).Name);
    }

    /// <summary>"embd T | out T | q … | k … | v … | o … | gate … | up … | down …", each layer row run-length coded.</summary>
    static string Render(Dictionary<string, string> plan, int layers, bool tied = false)
    {
        string Runs(string role)
        {
            var types = Enumerable.Range(0, layers).Select(l => plan[$"blk.{l}.{role}.weight"]).ToList();
            var parts = new List<string>();
            for (int i = 0; i < types.Count;)
            {
                int j = i;
                while (j < types.Count && types[j] == types[i]) j++;
                parts.Add(j - i == 1 ? types[i] : $"{types[i]}*{j - i}");
                i = j;
            }
            return string.Join(" ", parts);
        }
        var s = new List<string> { $"embd {plan["token_embd.weight"]}" };
        if (!tied) s.Add($"out {plan["output.weight"]}");
        string[] shortNames = ["q", "k", "v", "o", "gate", "up", "down"];
        for (int i = 0; i < Roles.Length; i++) s.Add($"{shortNames[i]} {Runs(Roles[i])}");
        return string.Join(" | ", s);
    }

    // Rules, with the llama-quant.cpp lines they come from:
    //  output (or tied token_embd):  "ftype == IQ2_XXS || IQ2_XS || IQ3_XXS || IQ1_S || IQ2_S || IQ2_M || IQ1_M → Q5_K",
    //                                else "new_type != Q8_0 → Q6_K" (after "nx % qk_k != 0 → Q8_0").
    //  token_embd:                   "IQ2_XXS || IQ2_XS || IQ1_S || IQ1_M → Q2_K", "IQ2_S || IQ2_M → IQ3_S", "IQ3_XXS → IQ3_S".
    //  IQ1_*/IQ2_* branch, attn_v:   "n_gqa() >= 4 || n_expert >= 4 → Q4_K, else IQ2_S/IQ2_M ? IQ3_S : Q2_K".
    //                   ffn_down:    "i_ffn_down < n_ffn_down/8 → IQ2_S/IQ2_M ? IQ3_S : Q2_K".
    //                   attn_output: "IQ1_S || IQ1_M → IQ2_XXS", "IQ2_S || IQ2_M → IQ3_S".
    //  attn_v:   "Q2_K_S && n_gqa() >= 4 → Q4_K"; "IQ3_XXS → n_gqa() >= 4 ? Q4_K : !has_imatrix ? IQ3_S : IQ3_XXS";
    //            "(IQ3_XS || IQ3_S) && n_gqa() >= 4 → Q4_K"; "IQ3_M → Q4_K"; "(IQ4_NL || IQ4_XS) && n_gqa() >= 4 → Q5_K".
    //  attn_k / attn_q: "IQ3_XS → IQ3_XXS", "IQ3_XXS → IQ2_S".
    //  ffn_down: "Q2_K_S: i_layer < n_layer/8 → Q4_K"; "IQ3_XXS && !has_imatrix → i_layer < n_layer/8 ? Q4_K : Q3_K";
    //            "IQ3_M && i_layer < n_layer/8 → Q4_K"; "i_layer < n_layer/8 && (IQ4_NL || IQ4_XS) && !has_imatrix → Q5_K".
    //  attn_output: "IQ3_XXS → IQ3_S", "IQ3_M → Q4_K".
    //  ffn_gate / ffn_up: "IQ3_XS && i_layer >= n_layer/8 && i_layer < 7*n_layer/8 → IQ3_XXS".
    //  Base types (llama_ftype_get_default_type): IQ2_S → IQ2_XS, IQ2_M → IQ2_S, IQ3_XS/IQ3_S/IQ3_M → IQ3_S, Q2_K_S → Q2_K.
    [Theory]
    // IQ1_S
    [InlineData("iq1_s", 8, 1, true, "embd Q2_K | out Q5_K | q IQ1_S*8 | k IQ1_S*8 | v Q2_K*8 | o IQ2_XXS*8 | gate IQ1_S*8 | up IQ1_S*8 | down Q2_K IQ1_S*7")]
    [InlineData("iq1_s", 16, 4, true, "embd Q2_K | out Q5_K | q IQ1_S*16 | k IQ1_S*16 | v Q4_K*16 | o IQ2_XXS*16 | gate IQ1_S*16 | up IQ1_S*16 | down Q2_K*2 IQ1_S*14")]
    [InlineData("iq1_s", 4, 8, true, "embd Q2_K | out Q5_K | q IQ1_S*4 | k IQ1_S*4 | v Q4_K*4 | o IQ2_XXS*4 | gate IQ1_S*4 | up IQ1_S*4 | down IQ1_S*4")]
    // IQ1_M
    [InlineData("iq1_m", 8, 1, true, "embd Q2_K | out Q5_K | q IQ1_M*8 | k IQ1_M*8 | v Q2_K*8 | o IQ2_XXS*8 | gate IQ1_M*8 | up IQ1_M*8 | down Q2_K IQ1_M*7")]
    [InlineData("iq1_m", 16, 8, true, "embd Q2_K | out Q5_K | q IQ1_M*16 | k IQ1_M*16 | v Q4_K*16 | o IQ2_XXS*16 | gate IQ1_M*16 | up IQ1_M*16 | down Q2_K*2 IQ1_M*14")]
    // IQ2_XXS
    [InlineData("iq2_xxs", 8, 1, true, "embd Q2_K | out Q5_K | q IQ2_XXS*8 | k IQ2_XXS*8 | v Q2_K*8 | o IQ2_XXS*8 | gate IQ2_XXS*8 | up IQ2_XXS*8 | down Q2_K IQ2_XXS*7")]
    [InlineData("iq2_xxs", 16, 4, true, "embd Q2_K | out Q5_K | q IQ2_XXS*16 | k IQ2_XXS*16 | v Q4_K*16 | o IQ2_XXS*16 | gate IQ2_XXS*16 | up IQ2_XXS*16 | down Q2_K*2 IQ2_XXS*14")]
    // IQ2_XS
    [InlineData("iq2_xs", 8, 1, true, "embd Q2_K | out Q5_K | q IQ2_XS*8 | k IQ2_XS*8 | v Q2_K*8 | o IQ2_XS*8 | gate IQ2_XS*8 | up IQ2_XS*8 | down Q2_K IQ2_XS*7")]
    [InlineData("iq2_xs", 4, 4, true, "embd Q2_K | out Q5_K | q IQ2_XS*4 | k IQ2_XS*4 | v Q4_K*4 | o IQ2_XS*4 | gate IQ2_XS*4 | up IQ2_XS*4 | down IQ2_XS*4")]
    // IQ2_S (base IQ2_XS)
    [InlineData("iq2_s", 8, 1, true, "embd IQ3_S | out Q5_K | q IQ2_XS*8 | k IQ2_XS*8 | v IQ3_S*8 | o IQ3_S*8 | gate IQ2_XS*8 | up IQ2_XS*8 | down IQ3_S IQ2_XS*7")]
    [InlineData("iq2_s", 16, 8, true, "embd IQ3_S | out Q5_K | q IQ2_XS*16 | k IQ2_XS*16 | v Q4_K*16 | o IQ3_S*16 | gate IQ2_XS*16 | up IQ2_XS*16 | down IQ3_S*2 IQ2_XS*14")]
    // IQ2_M (base IQ2_S)
    [InlineData("iq2_m", 8, 1, true, "embd IQ3_S | out Q5_K | q IQ2_S*8 | k IQ2_S*8 | v IQ3_S*8 | o IQ3_S*8 | gate IQ2_S*8 | up IQ2_S*8 | down IQ3_S IQ2_S*7")]
    [InlineData("iq2_m", 16, 4, true, "embd IQ3_S | out Q5_K | q IQ2_S*16 | k IQ2_S*16 | v Q4_K*16 | o IQ3_S*16 | gate IQ2_S*16 | up IQ2_S*16 | down IQ3_S*2 IQ2_S*14")]
    // IQ3_XXS: attn_v and ffn_down depend on the imatrix
    [InlineData("iq3_xxs", 8, 1, true, "embd IQ3_S | out Q5_K | q IQ2_S*8 | k IQ2_S*8 | v IQ3_XXS*8 | o IQ3_S*8 | gate IQ3_XXS*8 | up IQ3_XXS*8 | down IQ3_XXS*8")]
    [InlineData("iq3_xxs", 8, 1, false, "embd IQ3_S | out Q5_K | q IQ2_S*8 | k IQ2_S*8 | v IQ3_S*8 | o IQ3_S*8 | gate IQ3_XXS*8 | up IQ3_XXS*8 | down Q4_K Q3_K*7")]
    [InlineData("iq3_xxs", 16, 4, false, "embd IQ3_S | out Q5_K | q IQ2_S*16 | k IQ2_S*16 | v Q4_K*16 | o IQ3_S*16 | gate IQ3_XXS*16 | up IQ3_XXS*16 | down Q4_K*2 Q3_K*14")]
    // IQ3_XS (base IQ3_S)
    [InlineData("iq3_xs", 8, 1, true, "embd IQ3_S | out Q6_K | q IQ3_XXS*8 | k IQ3_XXS*8 | v IQ3_S*8 | o IQ3_S*8 | gate IQ3_S IQ3_XXS*6 IQ3_S | up IQ3_S IQ3_XXS*6 IQ3_S | down IQ3_S*8")]
    [InlineData("iq3_xs", 16, 4, true, "embd IQ3_S | out Q6_K | q IQ3_XXS*16 | k IQ3_XXS*16 | v Q4_K*16 | o IQ3_S*16 | gate IQ3_S*2 IQ3_XXS*12 IQ3_S*2 | up IQ3_S*2 IQ3_XXS*12 IQ3_S*2 | down IQ3_S*16")]
    [InlineData("iq3_xs", 4, 1, false, "embd IQ3_S | out Q6_K | q IQ3_XXS*4 | k IQ3_XXS*4 | v IQ3_S*4 | o IQ3_S*4 | gate IQ3_XXS*3 IQ3_S | up IQ3_XXS*3 IQ3_S | down IQ3_S*4")]
    // IQ3_S
    [InlineData("iq3_s", 8, 1, false, "embd IQ3_S | out Q6_K | q IQ3_S*8 | k IQ3_S*8 | v IQ3_S*8 | o IQ3_S*8 | gate IQ3_S*8 | up IQ3_S*8 | down IQ3_S*8")]
    [InlineData("iq3_s", 16, 8, true, "embd IQ3_S | out Q6_K | q IQ3_S*16 | k IQ3_S*16 | v Q4_K*16 | o IQ3_S*16 | gate IQ3_S*16 | up IQ3_S*16 | down IQ3_S*16")]
    // IQ3_M (base IQ3_S)
    [InlineData("iq3_m", 8, 1, false, "embd IQ3_S | out Q6_K | q IQ3_S*8 | k IQ3_S*8 | v Q4_K*8 | o Q4_K*8 | gate IQ3_S*8 | up IQ3_S*8 | down Q4_K IQ3_S*7")]
    [InlineData("iq3_m", 16, 4, true, "embd IQ3_S | out Q6_K | q IQ3_S*16 | k IQ3_S*16 | v Q4_K*16 | o Q4_K*16 | gate IQ3_S*16 | up IQ3_S*16 | down Q4_K*2 IQ3_S*14")]
    // IQ4_XS / IQ4_NL
    [InlineData("iq4_xs", 8, 1, false, "embd IQ4_XS | out Q6_K | q IQ4_XS*8 | k IQ4_XS*8 | v IQ4_XS*8 | o IQ4_XS*8 | gate IQ4_XS*8 | up IQ4_XS*8 | down Q5_K IQ4_XS*7")]
    [InlineData("iq4_xs", 16, 4, true, "embd IQ4_XS | out Q6_K | q IQ4_XS*16 | k IQ4_XS*16 | v Q5_K*16 | o IQ4_XS*16 | gate IQ4_XS*16 | up IQ4_XS*16 | down IQ4_XS*16")]
    [InlineData("iq4_nl", 16, 8, false, "embd IQ4_NL | out Q6_K | q IQ4_NL*16 | k IQ4_NL*16 | v Q5_K*16 | o IQ4_NL*16 | gate IQ4_NL*16 | up IQ4_NL*16 | down Q5_K*2 IQ4_NL*14")]
    [InlineData("iq4_nl", 8, 1, true, "embd IQ4_NL | out Q6_K | q IQ4_NL*8 | k IQ4_NL*8 | v IQ4_NL*8 | o IQ4_NL*8 | gate IQ4_NL*8 | up IQ4_NL*8 | down IQ4_NL*8")]
    // Q2_K_S (base Q2_K)
    [InlineData("q2_K_S", 8, 1, true, "embd Q2_K | out Q6_K | q Q2_K*8 | k Q2_K*8 | v Q2_K*8 | o Q2_K*8 | gate Q2_K*8 | up Q2_K*8 | down Q4_K Q2_K*7")]
    [InlineData("q2_K_S", 16, 4, true, "embd Q2_K | out Q6_K | q Q2_K*16 | k Q2_K*16 | v Q4_K*16 | o Q2_K*16 | gate Q2_K*16 | up Q2_K*16 | down Q4_K*2 Q2_K*14")]
    public void MixRuleTable(string mix, int layers, int gqa, bool imatrix, string expected) =>
        Assert.Equal(expected, Render(Plan(mix, layers, gqa, imatrix), layers));

    [Theory]
    // Tied embeddings: token_embd takes the output rule ("has_tied_embeddings && category == TOKEN_EMBD").
    [InlineData("iq2_xxs", "embd Q5_K | q IQ2_XXS*8 | k IQ2_XXS*8 | v Q2_K*8 | o IQ2_XXS*8 | gate IQ2_XXS*8 | up IQ2_XXS*8 | down Q2_K IQ2_XXS*7")]
    [InlineData("iq3_s", "embd Q6_K | q IQ3_S*8 | k IQ3_S*8 | v IQ3_S*8 | o IQ3_S*8 | gate IQ3_S*8 | up IQ3_S*8 | down IQ3_S*8")]
    [InlineData("q4_K_M", "embd Q6_K | q Q4_K*8 | k Q4_K*8 | v Q6_K Q4_K*2 Q6_K Q4_K*2 Q6_K*2 | o Q4_K*8 | gate Q4_K*8 | up Q4_K*8 | down Q6_K Q4_K*2 Q6_K Q4_K*2 Q6_K*2")]
    public void TiedEmbeddingsTakeTheOutputRule(string mix, string expected) =>
        Assert.Equal(expected, Render(Plan(mix, 8, 1, imatrix: true, tied: true), 8, tied: true));

    [Fact]
    public void StatelessChooseAgreesWithThePlannerWithoutOverrides()
    {
        // TensorTypeRules.Choose reads the counters off the layer number: the same as the planner's for a whole model.
        foreach (var mix in QuantMix.All)
            foreach (var (layers, gqa) in new[] { (4, 2), (8, 1), (16, 4), (32, 8) })
            {
                var plan = Plan(mix.Name, layers, gqa, imatrix: true);
                var ctx = new MixContext(layers, 8, 8 / gqa, HasOutput: true, HasImatrix: true);
                foreach (var (name, dims) in Model(layers, tied: false))
                    Assert.Equal(plan[name], GgmlTypes.Get(TensorTypeRules.Choose(mix, name, dims, ctx).Type).Name);
            }
    }

    [Fact]
    public void ExpertAnd70BRules()
    {
        // n_expert == 8: "bumping this to Q8_0 trades just ~128MB" (attn_v, attn_k), attn_output Q5_K.
        var moe = Plan("q4_K_M", 8, 1, imatrix: true, experts: 8);
        Assert.Equal("Q8_0", moe["blk.3.attn_v.weight"]);
        Assert.Equal("Q8_0", moe["blk.3.attn_k.weight"]);
        Assert.Equal("Q5_K", moe["blk.3.attn_output.weight"]);
        // IQ2 branch with experts: attn_v Q4_K (n_expert >= 4), attn_k Q4_K and attn_output Q5_K (n_expert == 8).
        var iq = Plan("iq2_xxs", 8, 1, imatrix: true, experts: 8);
        Assert.Equal(["Q4_K", "Q4_K", "Q5_K"], new[] { iq["blk.0.attn_v.weight"], iq["blk.0.attn_k.weight"], iq["blk.0.attn_output.weight"] });
        // IQ3_M with 8 experts: ffn_down Q4_K where use_more_bits too.
        var m = Plan("iq3_m", 16, 4, imatrix: true, experts: 8);
        Assert.Equal(Enumerable.Range(0, 16).Select(l => l < 2 || TensorTypeRules.UseMoreBits(l, 16) ? "Q4_K" : "IQ3_S"),
            Enumerable.Range(0, 16).Select(l => m[$"blk.{l}.ffn_down.weight"]));
        // 70B: attn_v Q3_K/Q4_K become Q5_K.
        var big = Plan("q3_K_S", 8, 8, imatrix: false, is70B: true);
        Assert.Equal("Q5_K", big["blk.5.attn_v.weight"]);
        Assert.Equal("Q3_K", big["blk.5.attn_q.weight"]);
        Assert.Equal("Q5_K", Plan("q2_K", 8, 8, imatrix: false, is70B: true)["blk.0.attn_v.weight"]);
        Assert.Equal("Q6_K", Plan("q4_K_M", 8, 8, imatrix: false, is70B: true)["blk.0.attn_v.weight"]);
    }

    [Theory]
    // tensor_type_fallback on 288-wide rows (GQA 4): the IQ types fall back to IQ4_NL, Q2_K to Q4_0, Q4_K to Q5_0, Q5_K to Q5_1;
    // output is Q8_0 by its own rule ("nx % qk_k != 0").
    [InlineData("iq2_xxs", "embd Q4_0 | out Q8_0 | q IQ4_NL*4 | k IQ4_NL*4 | v Q5_0*4 | o IQ4_NL*4 | gate IQ4_NL*4 | up IQ4_NL*4 | down IQ4_NL*4")]
    [InlineData("iq2_m", "embd IQ4_NL | out Q8_0 | q IQ4_NL*4 | k IQ4_NL*4 | v Q5_0*4 | o IQ4_NL*4 | gate IQ4_NL*4 | up IQ4_NL*4 | down IQ4_NL*4")]
    [InlineData("iq3_m", "embd IQ4_NL | out Q8_0 | q IQ4_NL*4 | k IQ4_NL*4 | v Q5_0*4 | o Q5_0*4 | gate IQ4_NL*4 | up IQ4_NL*4 | down IQ4_NL*4")]
    [InlineData("iq4_xs", "embd IQ4_NL | out Q8_0 | q IQ4_NL*4 | k IQ4_NL*4 | v Q5_1*4 | o IQ4_NL*4 | gate IQ4_NL*4 | up IQ4_NL*4 | down IQ4_NL*4")]
    public void RowFallbackOn288WideRows(string mix, string expected) =>
        Assert.Equal(expected, Render(Plan(mix, 4, 4, imatrix: true, row: 288), 4));

    [Theory]
    // tensor_requires_imatrix: IQ1_S/IQ1_M/IQ2_XXS/IQ2_XS/IQ2_S/IQ3_XXS anywhere but token_embd/output, Q2_K only in Q2_K_S.
    [InlineData("iq1_s", true)]
    [InlineData("iq1_m", true)]
    [InlineData("iq2_xxs", true)]
    [InlineData("iq2_xs", true)]
    [InlineData("iq2_s", true)]   // base IQ2_XS
    [InlineData("iq2_m", true)]   // base IQ2_S
    [InlineData("iq3_xxs", true)]
    [InlineData("iq3_xs", true)]  // attn_q/attn_k and the middle ffn_gate/ffn_up are IQ3_XXS
    [InlineData("iq3_s", false)]
    [InlineData("iq3_m", false)]
    [InlineData("iq4_xs", false)]
    [InlineData("q2_K_S", true)]
    [InlineData("q2_K", false)]
    [InlineData("q4_K_M", false)]
    public void ImatrixRequirementFollowsTensorRequiresImatrix(string mix, bool required)
    {
        var m = QuantMix.Get(mix);
        var plan = Plan(mix, 8, 1, imatrix: false);
        Assert.Equal(required, plan.Any(kv => TensorTypeRules.RequiresImatrix(kv.Key, GgmlTypes.TryGetByName(kv.Value, out var t) ? t.Id : -1, m)));
        // token_embd and output never need one, even as Q2_K in a Q2_K_S file.
        Assert.False(TensorTypeRules.RequiresImatrix("token_embd.weight", GgmlTypes.IQ2_XXS, m));
        Assert.False(TensorTypeRules.RequiresImatrix("output.weight", GgmlTypes.Q2_K, QuantMix.Get("q2_K_S")));
    }

    [Theory]
    [InlineData("iq1_s", 24, GgmlTypes.IQ1_S)]
    [InlineData("iq1_m", 31, GgmlTypes.IQ1_M)]
    [InlineData("iq2_xxs", 19, GgmlTypes.IQ2_XXS)]
    [InlineData("iq2_xs", 20, GgmlTypes.IQ2_XS)]
    [InlineData("iq2_s", 28, GgmlTypes.IQ2_XS)]
    [InlineData("iq2_m", 29, GgmlTypes.IQ2_S)]
    [InlineData("iq3_xxs", 23, GgmlTypes.IQ3_XXS)]
    [InlineData("iq3_xs", 22, GgmlTypes.IQ3_S)]
    [InlineData("iq3_s", 26, GgmlTypes.IQ3_S)]
    [InlineData("iq3_m", 27, GgmlTypes.IQ3_S)]
    [InlineData("iq4_nl", 25, GgmlTypes.IQ4_NL)]
    [InlineData("iq4_xs", 30, GgmlTypes.IQ4_XS)]
    [InlineData("q2_K_S", 21, GgmlTypes.Q2_K)]
    public void FileTypeIdsAndBaseTypes(string name, int fileType, int baseType)
    {
        // llama.h's llama_ftype ids (general.file_type) and llama_ftype_get_default_type.
        var m = QuantMix.Get(name.ToUpperInvariant());
        Assert.Equal(name, m.Name);
        Assert.Equal(fileType, m.FileType);
        Assert.Equal(baseType, m.BaseType);
    }

    static TypeOverrides Patterns(params (string Pattern, int Type)[] p) =>
        new(TensorTypes: p.Select(x => (new Regex(x.Pattern, RegexOptions.ECMAScript), x.Type)).ToList());

    [Fact]
    public void ManualOverridesSkipTheRulesAndTheirCounters()
    {
        // An override skips llama_tensor_get_type_impl, so i_attention_wv does not advance for blk.0:
        // blk.1 is judged as use_more_bits(0, 8), blk.2 as (1, 8) …; true for 0, 3, 6, 7.
        var plan = Plan("q4_K_M", 8, 1, imatrix: false, o: Patterns((@"blk\.0\.attn_v", GgmlTypes.Q8_0)));
        Assert.Equal("embd Q4_K | out Q6_K | q Q4_K*8 | k Q4_K*8 | v Q8_0 Q6_K Q4_K*2 Q6_K Q4_K*2 Q6_K | o Q4_K*8 | gate Q4_K*8 | up Q4_K*8 | down Q6_K Q4_K*2 Q6_K Q4_K*2 Q6_K*2",
            Render(plan, 8));
        // First matching pattern wins; the row fallback still applies to an override (Q4_K on 288 → Q5_0).
        var two = Plan("q4_K_M", 4, 4, imatrix: false, row: 288, o: Patterns(("ffn_", GgmlTypes.Q4_K), ("ffn_down", GgmlTypes.Q8_0)));
        Assert.Equal("Q5_0", two["blk.0.ffn_down.weight"]);
        Assert.Equal("Q5_0", two["blk.3.ffn_up.weight"]);
    }

    [Fact]
    public void PureUsesTheBaseTypeEverywhere()
    {
        var o = new TypeOverrides(Pure: true);
        Assert.Equal("embd IQ2_XS | out IQ2_XS | q IQ2_XS*8 | k IQ2_XS*8 | v IQ2_XS*8 | o IQ2_XS*8 | gate IQ2_XS*8 | up IQ2_XS*8 | down IQ2_XS*8",
            Render(Plan("iq2_s", 8, 4, imatrix: true, o: o), 8));
        // Still the row fallback.
        Assert.Equal("Q5_0", Plan("q4_K_M", 4, 4, imatrix: false, row: 288, o: o)["output.weight"]);
    }

    [Fact]
    public void OutputAndEmbeddingTypesWinWithoutFallback()
    {
        var o = new TypeOverrides(OutputType: GgmlTypes.Q8_0, TokenEmbeddingType: GgmlTypes.F16);
        var plan = Plan("iq2_xxs", 8, 1, imatrix: true, o: o);
        Assert.Equal("F16", plan["token_embd.weight"]);
        Assert.Equal("Q8_0", plan["output.weight"]);
        Assert.Equal("Q2_K", plan["blk.0.ffn_down.weight"]);
        // Even in a float mix and with --pure (checked before either).
        Assert.Equal("Q8_0", Plan("f16", 4, 1, imatrix: false, o: o with { Pure = true })["output.weight"]);
        // Tied: --output-tensor-type reaches token_embd through the rules; --pure skips them.
        Assert.Equal("Q4_K", Plan("q8_0", 4, 1, imatrix: false, tied: true, o: new TypeOverrides(OutputType: GgmlTypes.Q4_K))["token_embd.weight"]);
        Assert.Equal("Q8_0", Plan("q8_0", 4, 1, imatrix: false, tied: true, o: new TypeOverrides(Pure: true, OutputType: GgmlTypes.Q4_K))["token_embd.weight"]);
        // --tensor-type does not apply to float mixes ("if (ggml_is_quantized(default_type))").
        Assert.Equal("F16", Plan("f16", 4, 1, imatrix: false, o: Patterns(("attn_q", GgmlTypes.Q8_0)))["blk.0.attn_q.weight"]);
    }

    [Fact]
    public void LeaveOutputKeepsTheSourceType()
    {
        var o = new TypeOverrides(LeaveOutput: true);
        var ctx = new MixContext(4, 8, 4, HasOutput: true, HasImatrix: false);
        var planner = new TensorTypePlanner(QuantMix.Get("q4_K_M"), ctx, o, ["output.weight"]);
        Assert.Equal(GgmlTypes.BF16, planner.Next("output.weight", [256, 512], GgmlTypes.BF16).Type);
        Assert.Equal(GgmlTypes.Q4_K, planner.Next("blk.0.attn_q.weight", [256, 256], GgmlTypes.BF16).Type);
        // Norms stay F32 whatever the source, as llama.cpp's converter writes them.
        Assert.Equal(GgmlTypes.F32, planner.Next("blk.0.attn_norm.weight", [256], GgmlTypes.BF16).Type);
    }
}
