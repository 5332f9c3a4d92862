using TensorCodec.Containers;
using TensorCodec.Models;
using TensorCodec.Quantization;

namespace TensorCodec.Tests.Quantization;

public class NamesAndRulesTests
{
    [Theory]
    [InlineData("model.embed_tokens.weight", "token_embd.weight")]
    [InlineData("model.norm.weight", "output_norm.weight")]
    [InlineData("lm_head.weight", "output.weight")]
    [InlineData("model.layers.0.input_layernorm.weight", "blk.0.attn_norm.weight")]
    [InlineData("model.layers.3.self_attn.q_proj.weight", "blk.3.attn_q.weight")]
    [InlineData("model.layers.3.self_attn.k_proj.weight", "blk.3.attn_k.weight")]
    [InlineData("model.layers.3.self_attn.v_proj.weight", "blk.3.attn_v.weight")]
    [InlineData("model.layers.12.self_attn.o_proj.weight", "blk.12.attn_output.weight")]
    [InlineData("model.layers.1.post_attention_layernorm.weight", "blk.1.ffn_norm.weight")]
    [InlineData("model.layers.1.mlp.gate_proj.weight", "blk.1.ffn_gate.weight")]
    [InlineData("model.layers.1.mlp.up_proj.weight", "blk.1.ffn_up.weight")]
    [InlineData("model.layers.1.mlp.down_proj.weight", "blk.1.ffn_down.weight")]
    [InlineData("model.layers.1.self_attn.rotary_emb.inv_freq", null)]
    [InlineData("model.layers.x.mlp.down_proj.weight", null)]
    public void HfNamesMapToLlamaCppNames(string hf, string? gguf) => Assert.Equal(gguf, TensorNames.ToGguf(TensorNaming.HuggingFace, hf));

    [Theory]
    [InlineData("token_embedding_table", -1, "token_embd.weight")]
    [InlineData("rms_final_weight", -1, "output_norm.weight")]
    [InlineData("wcls", -1, "output.weight")]
    [InlineData("rms_att_weight", 2, "blk.2.attn_norm.weight")]
    [InlineData("wq", 0, "blk.0.attn_q.weight")]
    [InlineData("wo", 4, "blk.4.attn_output.weight")]
    [InlineData("rms_ffn_weight", 1, "blk.1.ffn_norm.weight")]
    [InlineData("w1", 1, "blk.1.ffn_gate.weight")]
    [InlineData("w2", 1, "blk.1.ffn_down.weight")]
    [InlineData("w3", 1, "blk.1.ffn_up.weight")]
    [InlineData("freq_cis_real", -1, null)]
    public void Llama2cNamesMapToLlamaCppNames(string name, int layer, string? gguf) => Assert.Equal(gguf, TensorNames.ToGguf(TensorNaming.Llama2c, name, layer));

    [Fact]
    public void PermutationMatchesHandComputedExample()
    {
        // 2 heads of size 4, one column: HF pairs (0,2),(1,3) within a head; GGUF wants pairs
        // adjacent, so head rows [a0 a1 b0 b1] become [a0 b0 a1 b1].
        float[] w = [0, 1, 2, 3, 4, 5, 6, 7];
        Assert.Equal([0, 2, 1, 3, 4, 6, 5, 7], RopePermutation.ToGguf(w, 8, 1, 2));
        // Head size 6: [0 1 2 | 3 4 5] → [0 3 1 4 2 5].
        float[] w6 = [0, 1, 2, 3, 4, 5];
        Assert.Equal([0, 3, 1, 4, 2, 5], RopePermutation.ToGguf(w6, 6, 1, 1));
        // Whole rows move, columns stay.
        float[] m = [10, 11, 20, 21, 30, 31, 40, 41];
        Assert.Equal([10, 11, 30, 31, 20, 21, 40, 41], RopePermutation.ToGguf(m, 4, 2, 1));
    }

    [Theory]
    [InlineData(8, 2, 2)]
    [InlineData(64, 4, 8)]
    [InlineData(256, 8, 3)]
    public void PermutationRoundTrips(int rows, int heads, int cols)
    {
        var rng = new Random(rows);
        var w = Enumerable.Range(0, rows * cols).Select(_ => (float)rng.NextDouble()).ToArray();
        var p = RopePermutation.ToGguf(w, rows, cols, heads);
        Assert.NotEqual(w, p);
        Assert.Equal(w, RopePermutation.FromGguf(p, rows, cols, heads));
    }

    /// <summary>
    /// The point of the permutation: rotate_half RoPE applied to W·x equals adjacent-pair RoPE
    /// applied to W'·x, up to the same row reordering, so attention scores are unchanged.
    /// </summary>
    [Fact]
    public void PermutedWeightsGiveTheSameRopeScores()
    {
        const int heads = 2, hd = 8, cols = 5, rows = heads * hd;
        var rng = new Random(7);
        float[] Rand(int n) => Enumerable.Range(0, n).Select(_ => (float)(rng.NextDouble() * 2 - 1)).ToArray();
        var wq = Rand(rows * cols);
        var wk = Rand(rows * cols);
        var x = Rand(cols);
        var y = Rand(cols);
        double[] MatVec(float[] w) => Enumerable.Range(0, rows).Select(r => Enumerable.Range(0, cols).Sum(c => (double)w[r * cols + c] * x[c])).ToArray();
        double[] MatVecY(float[] w) => Enumerable.Range(0, rows).Select(r => Enumerable.Range(0, cols).Sum(c => (double)w[r * cols + c] * y[c])).ToArray();

        double[] RopeHf(double[] q, int pos)
        {
            var o = new double[q.Length];
            for (int h = 0; h < heads; h++)
                for (int i = 0; i < hd / 2; i++)
                {
                    double th = pos * Math.Pow(10000, -2.0 * i / hd);
                    double a = q[h * hd + i], b = q[h * hd + i + hd / 2];
                    o[h * hd + i] = a * Math.Cos(th) - b * Math.Sin(th);
                    o[h * hd + i + hd / 2] = b * Math.Cos(th) + a * Math.Sin(th);
                }
            return o;
        }
        double[] RopeGguf(double[] q, int pos)
        {
            var o = new double[q.Length];
            for (int h = 0; h < heads; h++)
                for (int i = 0; i < hd / 2; i++)
                {
                    double th = pos * Math.Pow(10000, -2.0 * i / hd);
                    double a = q[h * hd + 2 * i], b = q[h * hd + 2 * i + 1];
                    o[h * hd + 2 * i] = a * Math.Cos(th) - b * Math.Sin(th);
                    o[h * hd + 2 * i + 1] = b * Math.Cos(th) + a * Math.Sin(th);
                }
            return o;
        }
        double Score(double[] q, double[] k, int h) => Enumerable.Range(h * hd, hd).Sum(i => q[i] * k[i]);

        var qHf = RopeHf(MatVec(wq), 5);
        var kHf = RopeHf(MatVecY(wk), 2);
        var qG = RopeGguf(MatVec(RopePermutation.ToGguf(wq, rows, cols, heads)), 5);
        var kG = RopeGguf(MatVecY(RopePermutation.ToGguf(wk, rows, cols, heads)), 2);
        for (int h = 0; h < heads; h++)
            Assert.Equal(Score(qHf, kHf, h), Score(qG, kG, h), 1e-5);
    }

    static readonly MixContext Bard = new(LayerCount: 4, HeadCount: 8, HeadCountKv: 4, HasOutput: true, HasImatrix: false);

    static string Type(string mix, string name, long row = 256, MixContext? ctx = null) =>
        GgmlTypes.Get(TensorTypeRules.Choose(QuantMix.Get(mix), name, [row, 256], ctx ?? Bard).Type).Name;

    [Fact]
    public void Q4KMFollowsLlamaCppRules()
    {
        Assert.Equal("Q4_K", Type("q4_K_M", "token_embd.weight"));
        Assert.Equal("Q6_K", Type("q4_K_M", "output.weight"));
        // use_more_bits(i, 4) holds for layers 2 and 3 only.
        Assert.Equal(["Q4_K", "Q4_K", "Q6_K", "Q6_K"], Enumerable.Range(0, 4).Select(l => Type("q4_K_M", $"blk.{l}.attn_v.weight")));
        Assert.Equal(["Q4_K", "Q4_K", "Q6_K", "Q6_K"], Enumerable.Range(0, 4).Select(l => Type("q4_K_M", $"blk.{l}.ffn_down.weight")));
        foreach (var t in new[] { "attn_q", "attn_k", "attn_output", "ffn_gate", "ffn_up" })
            Assert.Equal("Q4_K", Type("q4_K_M", $"blk.1.{t}.weight"));
        var norm = TensorTypeRules.Choose(QuantMix.Get("q4_K_M"), "blk.0.attn_norm.weight", [256], Bard);
        Assert.Equal(GgmlTypes.F32, norm.Type);
    }

    [Fact]
    public void OtherMixesFollowLlamaCppRules()
    {
        Assert.Equal("Q8_0", Type("q8_0", "output.weight"));
        Assert.Equal("Q8_0", Type("q8_0", "blk.3.ffn_down.weight"));
        Assert.Equal("Q6_K", Type("q4_0", "output.weight"));
        Assert.Equal("Q4_0", Type("q4_0", "token_embd.weight"));
        Assert.Equal(["Q5_K", "Q5_K", "Q4_K", "Q4_K"], Enumerable.Range(0, 4).Select(l => Type("q3_K_M", $"blk.{l}.attn_v.weight")));
        Assert.Equal("Q4_K", Type("q3_K_M", "blk.0.ffn_down.weight"));
        Assert.Equal("Q4_K", Type("q3_K_M", "blk.0.attn_output.weight"));
        Assert.Equal("Q5_K", Type("q3_K_L", "blk.0.attn_output.weight"));
        Assert.Equal("Q3_K", Type("q3_K_S", "blk.0.attn_v.weight"));
        Assert.Equal("Q3_K", Type("q2_K", "blk.0.attn_v.weight")); // GQA 2 < 4
        Assert.Equal("Q4_K", Type("q2_K", "blk.0.attn_v.weight", ctx: Bard with { HeadCountKv = 2 }));
        Assert.Equal("Q3_K", Type("q2_K", "blk.0.ffn_down.weight"));
        Assert.Equal("Q2_K", Type("q2_K", "blk.0.ffn_up.weight"));
        Assert.Equal("Q5_K", Type("q4_K_S", "blk.3.attn_v.weight"));
        Assert.Equal("Q4_K", Type("q4_K_S", "blk.4.attn_v.weight", ctx: Bard with { LayerCount = 8 }));
        Assert.Equal("Q5_K", Type("q4_K_S", "blk.0.ffn_down.weight", ctx: Bard with { LayerCount = 8 }));
        Assert.Equal("Q6_K", Type("q5_K_M", "blk.3.ffn_down.weight"));
        Assert.Equal("Q5_K", Type("q5_K_S", "blk.3.ffn_down.weight"));
        Assert.Equal("Q6_K", Type("q6_K", "blk.0.attn_q.weight"));
        Assert.Equal("IQ4_NL", Type("iq4_nl", "blk.0.attn_q.weight"));
        Assert.Equal("Q5_K", Type("iq4_xs", "blk.0.ffn_down.weight", ctx: Bard with { LayerCount = 8 }));
        Assert.Equal("Q4_1", Type("q4_0", "blk.0.ffn_down.weight", ctx: Bard with { LayerCount = 8, HasImatrix = true }));
        Assert.Equal("F16", Type("f16", "output.weight"));
        Assert.Equal("BF16", Type("bf16", "blk.0.attn_q.weight"));
        Assert.Equal("F32", Type("f32", "blk.0.attn_q.weight"));
        // Tied embeddings: token_embd is treated as the output tensor.
        Assert.Equal("Q6_K", Type("q4_K_M", "token_embd.weight", ctx: Bard with { HasOutput = false }));
    }

    [Fact]
    public void UseMoreBitsMatchesLlamaCpp()
    {
        // 32 layers: first and last 4, plus every third layer from 6.
        var expected = new[] { 0, 1, 2, 3, 6, 9, 12, 15, 18, 21, 24, 27, 28, 29, 30, 31 };
        Assert.Equal(expected, Enumerable.Range(0, 32).Where(l => TensorTypeRules.UseMoreBits(l, 32)));
    }

    [Theory]
    [InlineData("q4_K_M", "blk.0.attn_q.weight", 64, "Q5_0")]      // Q4_K → Q5_0
    [InlineData("q4_K_M", "blk.0.ffn_down.weight", 172, "F16")]    // Q4_K → Q5_0 does not fit either
    [InlineData("q4_K_M", "blk.3.attn_v.weight", 96, "Q8_0")]      // Q6_K → Q8_0
    [InlineData("q5_K_S", "blk.0.attn_q.weight", 64, "Q5_1")]      // Q5_K → Q5_1
    [InlineData("q3_K_S", "blk.0.attn_q.weight", 64, "Q4_0")]      // Q3_K → Q4_0 (llama.cpp since March 2026)
    [InlineData("q2_K", "blk.0.attn_q.weight", 64, "Q4_0")]        // Q2_K → Q4_0
    [InlineData("iq4_xs", "blk.0.attn_q.weight", 64, "IQ4_NL")]    // IQ4_XS → IQ4_NL
    [InlineData("q4_K_M", "output.weight", 64, "Q8_0")]            // output: Q8_0 when not a whole K block
    [InlineData("q8_0", "blk.0.attn_q.weight", 40, "F16")]
    public void RowLengthFallbacks(string mix, string name, long row, string expected)
    {
        var c = TensorTypeRules.Choose(QuantMix.Get(mix), name, [row, 16], Bard);
        Assert.Equal(expected, GgmlTypes.Get(c.Type).Name);
        if (name != "output.weight") Assert.NotNull(c.FallbackFrom);
    }

    [Fact]
    public void UnknownMixListsKnownOnes()
    {
        var e = Assert.Throws<ArgumentException>(() => QuantMix.Get("q4_k_x"));
        Assert.Contains("q4_K_M", e.Message);
        Assert.Contains("iq4_xs", e.Message);
        Assert.Equal(15, QuantMix.Get("Q4_K_M").FileType);
    }
}
