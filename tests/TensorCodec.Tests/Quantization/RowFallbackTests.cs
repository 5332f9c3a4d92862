using TensorCodec.Containers;
using TensorCodec.Quantization;
using TensorCodec.Tests.Containers;

namespace TensorCodec.Tests.Quantization;

/// <summary>
/// Mixes on a model whose rows are 288 wide (stories15M's width): no 256-block fits, so llama.cpp's row-length
/// fallback decides most types. Expected types follow llama.cpp's tensor_type_fallback (src/llama-quant.cpp).
/// </summary>
public class RowFallbackTests
{
    // dim 288, FFN 768 (= 3 K blocks, so ffn_down keeps its K type), 3 layers, 6 heads, no GQA, untied output.
    static readonly Llama2cConfig Wide = new(288, 768, 3, 6, 6, 64, 8, SharedClassifier: false);

    static Dictionary<string, string> Quantize(string mix)
    {
        using var dir = new ScratchDir();
        var input = dir.File("wide.bin");
        File.WriteAllBytes(input, Llama2cWriter.ToBytes(Wide, ContainerTestData.TinyLlamaWeights(Wide, 3)));
        var r = ModelQuantizer.Quantize(input, dir.File("out.gguf"), new ModelQuantizeOptions { Mix = QuantMix.Get(mix) });
        GgufFile g;
        using (var s = File.OpenRead(dir.File("out.gguf"))) g = GgufFile.Parse(s, "out.gguf");
        var types = g.Tensors.ToDictionary(t => t.Name, t => GgmlTypes.Get(t.GgmlType).Name);
        // The result reports the same types the file holds.
        foreach (var t in r.Tensors) Assert.Equal(types[t.Name], t.Type);
        return types;
    }

    static void AssertLayers(Dictionary<string, string> types, string tensor, params string[] perLayer)
    {
        for (int l = 0; l < perLayer.Length; l++) Assert.Equal(perLayer[l], types[$"blk.{l}.{tensor}.weight"]);
    }

    [Fact]
    public void Q2KFallsBackToQ4_0On288WideRows()
    {
        var t = Quantize("q2_K");
        Assert.Equal(2 + 3 * 9 + 1, t.Count);
        Assert.Equal("Q4_0", t["token_embd.weight"]);   // Q2_K → Q4_0
        Assert.Equal("Q8_0", t["output.weight"]);       // output: not a whole K block → Q8_0
        Assert.Equal("F32", t["output_norm.weight"]);
        foreach (var name in new[] { "attn_q", "attn_k", "attn_v", "attn_output", "ffn_gate", "ffn_up" })
            AssertLayers(t, name, "Q4_0", "Q4_0", "Q4_0"); // Q2_K and Q3_K (attn_v, attn_output) → Q4_0
        AssertLayers(t, "ffn_down", "Q3_K", "Q3_K", "Q3_K"); // rows of 768 fit
        AssertLayers(t, "attn_norm", "F32", "F32", "F32");
    }

    [Fact]
    public void Q3KMFallsBackPerTypeOn288WideRows()
    {
        var t = Quantize("q3_K_M");
        Assert.Equal("Q4_0", t["token_embd.weight"]);   // Q3_K → Q4_0
        Assert.Equal("Q8_0", t["output.weight"]);
        foreach (var name in new[] { "attn_q", "attn_k", "ffn_gate", "ffn_up" })
            AssertLayers(t, name, "Q4_0", "Q4_0", "Q4_0");
        AssertLayers(t, "attn_v", "Q5_1", "Q5_1", "Q5_0");   // Q5_K (layers 0–1) → Q5_1, Q4_K → Q5_0
        AssertLayers(t, "attn_output", "Q5_0", "Q5_0", "Q5_0"); // Q4_K → Q5_0
        AssertLayers(t, "ffn_down", "Q4_K", "Q4_K", "Q4_K");
    }
}
