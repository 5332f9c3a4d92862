using TensorCodec.Containers;
using TensorCodec.Quantization;

namespace TensorCodec.Tests.Quantization;

/// <summary>
/// <c>general.file_type</c> of <c>--bpw/--size</c> files: llama.cpp's loader guess from the dominant type (most tensors,
/// first to get there in its layer-then-name order, weights of 2+ dimensions), not the <c>-t</c> mix.
/// </summary>
public class LlamaFileTypesTests
{
    [Fact]
    public void GuessTakesTheMostCommonWeightTypeFirstInLoaderOrder()
    {
        // Two q4_K and two q6_K: the tie goes to the type that reached two first in the loader's order. blk.2 sorts
        // before blk.10 (layer numbers, not strings), and output.weight (no layer) before both.
        Assert.Equal(15, LlamaFileTypes.Guess([
            ("blk.10.attn_q.weight", GgmlTypes.Q6_K, 2), ("blk.2.attn_q.weight", GgmlTypes.Q4_K, 2),
            ("output.weight", GgmlTypes.Q4_K, 2), ("blk.3.ffn_up.weight", GgmlTypes.Q6_K, 2)]));
        Assert.Equal(18, LlamaFileTypes.Guess([
            ("blk.10.attn_q.weight", GgmlTypes.Q4_K, 2), ("blk.2.attn_q.weight", GgmlTypes.Q6_K, 2),
            ("output.weight", GgmlTypes.Q6_K, 2), ("blk.3.ffn_up.weight", GgmlTypes.Q4_K, 2)]));
        // 1-D tensors (norms, F32 in every quantized file) do not count, however many.
        Assert.Equal(10, LlamaFileTypes.Guess([
            ("blk.0.attn_norm.weight", GgmlTypes.F32, 1), ("blk.0.ffn_norm.weight", GgmlTypes.F32, 1),
            ("output_norm.weight", GgmlTypes.F32, 1), ("blk.0.attn_q.weight", GgmlTypes.Q2_K, 2)]));
        Assert.Null(LlamaFileTypes.Guess([("output_norm.weight", GgmlTypes.F32, 1)]));
        // The loader's switch: q3_K/q4_K/q5_K name their _M mixes; types it lacks (mxfp4) fall to "all F32".
        Assert.Equal(12, LlamaFileTypes.OfDominantType(GgmlTypes.Q3_K));
        Assert.Equal(17, LlamaFileTypes.OfDominantType(GgmlTypes.Q5_K));
        Assert.Equal(30, LlamaFileTypes.OfDominantType(GgmlTypes.IQ4_XS));
        Assert.Equal(1, LlamaFileTypes.OfDominantType(GgmlTypes.F16));
        Assert.Equal(0, LlamaFileTypes.OfDominantType(GgmlTypes.MXFP4));
        // Every plain mix's base type maps back to that mix's own ftype.
        foreach (var name in new[] { "f16", "bf16", "q8_0", "q4_0", "q4_1", "q5_0", "q5_1", "q2_K", "q6_K", "iq4_nl", "iq4_xs", "iq2_xxs", "iq2_xs", "iq3_xxs", "iq1_s", "iq1_m", "iq3_s" })
        {
            var mix = QuantMix.Get(name);
            Assert.True(mix.FileType == LlamaFileTypes.OfDominantType(mix.BaseType), $"{name}: mix ftype {mix.FileType}, guess {LlamaFileTypes.OfDominantType(mix.BaseType)}");
        }
    }

    static uint FileTypeOf(string path)
    {
        using var s = File.OpenRead(path);
        return GgufFile.Parse(s, path).Find("general.file_type")!.As<uint>();
    }

    [Fact]
    public void BudgetedFilesNameTheirDominantTypeNotTheMix()
    {
        using var dir = new ScratchDir();
        ModelQuantizeOptions Options(long? bytes) => new()
        {
            Mix = QuantMix.Get("q4_K_M"), ConfigPath = ModelQuantizerTests.Config, TokenizerPath = ModelQuantizerTests.Tokenizer,
            Method = QuantMethod.Rtn, Threads = 2, TargetBytes = bytes,
        };
        // The smallest file: every chosen weight Q2_K (the budget's cheapest type), so "Q2_K", not the mix's Q4_K_M (15).
        var smallest = dir.File("smallest.gguf");
        var e = Assert.Throws<ArgumentException>(() => ModelQuantizer.Quantize(ModelQuantizerTests.Bf16Sample, smallest, Options(1)));
        long bytes = long.Parse(System.Text.RegularExpressions.Regex.Match(e.Message, @"size, ([\d,]+) bytes").Groups[1].Value.Replace(",", ""));
        var r = ModelQuantizer.Quantize(ModelQuantizerTests.Bf16Sample, smallest, Options(bytes));
        Assert.All(r.MixedPrecision!.Tensors.Where(t => !t.Fixed), t => Assert.Equal("Q2_K", t.Type));
        Assert.Equal(10u, FileTypeOf(smallest));
        Assert.Equal(bytes, new FileInfo(smallest).Length); // relabelling kept the planned size
        // A budget for everything: F16 (exact for these BF16 weights) everywhere, so "F16".
        var largest = dir.File("largest.gguf");
        r = ModelQuantizer.Quantize(ModelQuantizerTests.Bf16Sample, largest, Options(r.MixedPrecision.LargestBytes));
        Assert.All(r.MixedPrecision!.Tensors.Where(t => !t.Fixed), t => Assert.Equal("F16", t.Type));
        Assert.Equal(1u, FileTypeOf(largest));
        // Without a budget the mix still names itself, as llama-quantize does.
        var plain = dir.File("mix.gguf");
        ModelQuantizer.Quantize(ModelQuantizerTests.Bf16Sample, plain, Options(null));
        Assert.Equal(15u, FileTypeOf(plain));
    }
}
