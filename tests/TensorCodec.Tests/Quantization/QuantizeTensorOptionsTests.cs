using System.Text.Json;
using TensorCodec.Containers;
using TensorCodec.Quantization;
using TensorCodec.Tests.Cli;

namespace TensorCodec.Tests.Quantization;

/// <summary>llama-quantize's per-tensor options on <c>tcodec quantize</c>: --pure, --output-tensor-type,
/// --token-embedding-type, --tensor-type PATTERN=TYPE and --leave-output-tensor.</summary>
public class QuantizeTensorOptionsTests
{
    static Dictionary<string, string> Types(string json)
    {
        using var doc = JsonDocument.Parse(json);
        return doc.RootElement.GetProperty("tensor_list").EnumerateArray()
            .ToDictionary(t => t.GetProperty("name").GetString()!, t => t.GetProperty("dtype").GetString()!);
    }

    static (int Code, string Stdout, string Err) Quantize(string output, params string[] extra) =>
        CliTests.Tcodec(["quantize", ModelQuantizerTests.Bf16Sample, "-o", output, "--config", ModelQuantizerTests.Config, "-T", "2", "--json", "-f", .. extra]);

    [Fact]
    public void PureGivesTheBaseTypeToEveryMatrix()
    {
        using var dir = new ScratchDir();
        var (code, stdout, err) = Quantize(dir.File("pure.gguf"), "-t", "q4_K_M", "--pure");
        Assert.True(code == 0, err);
        var types = Types(stdout);
        Assert.All(types.Where(kv => !kv.Key.EndsWith("norm.weight")), kv => Assert.Equal("q4_K", kv.Value));
        Assert.Equal("f32", types["blk.0.attn_norm.weight"]);
    }

    [Fact]
    public void OutputEmbeddingAndPatternTypes()
    {
        using var dir = new ScratchDir();
        var path = dir.File("mixed.gguf");
        var (code, stdout, err) = Quantize(path, "-t", "q4_K_M", "--output-tensor-type", "Q8_0", "--token-embedding-type", "f16",
            "--tensor-type", @"blk\.[01]\.attn_v=q8_0", "--tensor-type", "ATTN_V=q5_K", "--tensor-type", "ffn_down=q5_0");
        Assert.True(code == 0, err);
        var types = Types(stdout);
        Assert.Equal("q8_0", types["output.weight"]);
        Assert.Equal("f16", types["token_embd.weight"]);
        // First matching pattern wins; patterns are lower-cased as llama-quantize does.
        Assert.Equal(["q8_0", "q8_0", "q5_K", "q5_K"], Enumerable.Range(0, 4).Select(l => types[$"blk.{l}.attn_v.weight"]));
        Assert.All(Enumerable.Range(0, 4), l => Assert.Equal("q5_0", types[$"blk.{l}.ffn_down.weight"]));
        Assert.Equal("q4_K", types["blk.2.attn_q.weight"]);
        // The file says so too.
        using var s = File.OpenRead(path);
        var g = GgufFile.Parse(s, path);
        Assert.Equal(GgmlTypes.Q8_0, g.Tensors.Single(t => t.Name == "output.weight").GgmlType);
        Assert.Equal((uint)15, g.Find("general.file_type")!.As<uint>());
    }

    [Fact]
    public void LeaveOutputTensorKeepsItsSourceType()
    {
        using var dir = new ScratchDir();
        var (code, stdout, err) = Quantize(dir.File("leave.gguf"), "-t", "q4_K_M", "--leave-output-tensor");
        Assert.True(code == 0, err);
        var types = Types(stdout);
        Assert.Equal("bf16", types["output.weight"]); // the sample is BF16 safetensors
        Assert.Equal("q4_K", types["token_embd.weight"]);
    }

    [Theory]
    [InlineData("--tensor-type", "attn_v", "malformed")]
    [InlineData("--tensor-type", "=q8_0", "missing tensor name")]
    [InlineData("--tensor-type", "attn_v=", "missing quantization type")]
    [InlineData("--tensor-type", "attn_v=q9_9", "invalid ggml type 'q9_9'")]
    [InlineData("--tensor-type", "attn_v(=q8_0", "bad pattern")]
    [InlineData("--output-tensor-type", "q7_0", "invalid ggml type 'q7_0'")]
    [InlineData("--token-embedding-type", "I32", "cannot be written")]
    public void BadOptionsAreRefusedBeforeWriting(string option, string value, string message)
    {
        using var dir = new ScratchDir();
        var path = dir.File("bad.gguf");
        var (code, _, err) = Quantize(path, "-t", "q4_K_M", option, value);
        Assert.Equal(1, code);
        Assert.Contains(message, err);
        Assert.False(File.Exists(path));
    }

    [Fact]
    public void AnOverrideThatDoesNotFitTheRowIsRefused()
    {
        // --token-embedding-type / --output-tensor-type skip the row fallback (llama_tensor_get_type returns them as given):
        // a type that does not fit stories260K's 64-wide rows is refused, not silently replaced.
        using var dir = new ScratchDir();
        var path = dir.File("x.gguf");
        var e = Assert.Throws<InvalidDataException>(() => ModelQuantizer.Quantize(TestFiles.Sample("stories260K.bin"), path, new ModelQuantizeOptions
        {
            Mix = QuantMix.Get("q8_0"), TokenEmbeddingType = "q4_K",
        }));
        Assert.Contains("token_embd.weight: row length 64 is not a multiple of Q4_K's block size 256", e.Message);
        Assert.False(File.Exists(path));
    }

    [Theory]
    [InlineData("iq2_xxs", "IQ2_XXS")]
    [InlineData("iq1_s", "IQ1_S")]
    [InlineData("iq3_xxs", "IQ2_S")]  // attn_q, the first such tensor here
    [InlineData("iq2_s", "IQ2_XS")]
    [InlineData("q2_K_S", "Q2_K")]
    public void MixesThatNeedAnImatrixAreRefusedWithoutOne(string mix, string type)
    {
        using var dir = new ScratchDir();
        var path = dir.File("x.gguf");
        var (code, _, err) = Quantize(path, "-t", mix);
        Assert.Equal(1, code);
        Assert.Contains("this quantization requires an importance matrix", err);
        Assert.Contains($"gets {type}", err);
        Assert.False(File.Exists(path));
        // --pure with a type that needs none is fine; a --tensor-type override to a type that needs one is refused.
        var (ok, _, err2) = Quantize(path, "-t", "q4_K_M", "--tensor-type", "ffn_up=iq2_xxs");
        Assert.Equal(1, ok);
        Assert.Contains("blk.0.ffn_up.weight gets IQ2_XXS", err2);
    }

    [Fact]
    public void AnImatrixMissingATensorItNeedsIsRefused()
    {
        using var dir = new ScratchDir();
        var imat = dir.File("partial.dat");
        using (var s = File.Create(imat))
            ImportanceMatrix.WriteDat(s, [new("blk.0.attn_q.weight", Enumerable.Repeat(1f, 256).ToArray())]);
        var path = dir.File("x.gguf");
        var (code, _, err) = Quantize(path, "-t", "iq2_xs", "--imatrix", imat);
        Assert.Equal(1, code);
        Assert.Contains("missing importance matrix for tensor blk.0.", err);
        Assert.Contains("in a very low-bit quantization", err);
        Assert.False(File.Exists(path));
    }
}
