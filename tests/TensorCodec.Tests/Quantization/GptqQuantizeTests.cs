using TensorCodec.Containers;
using TensorCodec.Engine;
using TensorCodec.Eval;
using TensorCodec.Quantization;

namespace TensorCodec.Tests.Quantization;

/// <summary>quantize --method imatrix|gptq end to end on the bard-3m sample.</summary>
public class GptqQuantizeTests
{
    static int[] Tokens(int n, int seed)
    {
        var rng = new Random(seed);
        return Enumerable.Range(0, n).Select(_ => rng.Next(1024)).ToArray();
    }

    static QuantizeResult Quantize(string output, string mix, QuantMethod method, ICalibration? calibration) =>
        ModelQuantizer.Quantize(ModelQuantizerTests.Bf16Sample, output, new ModelQuantizeOptions
        {
            Mix = QuantMix.Get(mix), ConfigPath = ModelQuantizerTests.Config, TokenizerPath = ModelQuantizerTests.Tokenizer,
            Method = method, Calibration = calibration, Threads = 2,
        });

    [Fact]
    public void GptqFileIsStandardAndCloserToTheModelThanRoundToNearest()
    {
        using var dir = new ScratchDir();
        using var model = LlamaModel.Load(ModelQuantizerTests.Bf16Sample, new LlamaLoadOptions { ConfigPath = ModelQuantizerTests.Config });
        // Calibration and evaluation on different token streams.
        var calib = new CalibrationStats(model, Tokens(16 * 64, 1), new ImatrixOptions { Ctx = 64, Threads = 2 }, "random-1", hessian: true);
        Assert.NotNull(calib.Hessian("blk.0.attn_q.weight"));
        Assert.Same(calib.Hessian("blk.0.attn_q.weight"), calib.Hessian("blk.0.attn_v.weight"));
        Assert.Null(calib.Hessian("token_embd.weight"));

        var kl = new Dictionary<QuantMethod, double>();
        foreach (var method in new[] { QuantMethod.Rtn, QuantMethod.Imatrix, QuantMethod.Gptq })
        {
            var path = dir.File($"{method}.gguf");
            var r = Quantize(path, "q3_K_M", method, method == QuantMethod.Rtn ? null : calib);
            Assert.Equal(method != QuantMethod.Rtn, r.ImatrixUsed);
            if (method == QuantMethod.Gptq) Assert.Contains(r.Notes, n => n.StartsWith("gptq: 29 of 30 weight matrices"));
            using (var s = File.OpenRead(path))
            {
                var g = GgufFile.Parse(s, path);
                Assert.Equal(method == QuantMethod.Rtn ? null : "random-1", g.Find("quantize.imatrix.dataset")?.AsString());
            }
            using var q = LlamaModel.Load(path);
            kl[method] = Perplexity.Run(q, Tokens(6 * 64, 2), new EvalOptions { Ctx = 64, Base = model, Threads = 2 }).Kl!.Mean;
        }
        Assert.True(kl[QuantMethod.Imatrix] < kl[QuantMethod.Rtn], $"imatrix KL {kl[QuantMethod.Imatrix]} vs rtn {kl[QuantMethod.Rtn]}");
        Assert.True(kl[QuantMethod.Gptq] < kl[QuantMethod.Imatrix], $"gptq KL {kl[QuantMethod.Gptq]} vs imatrix {kl[QuantMethod.Imatrix]}");
    }

    [Fact]
    public void GptqWithoutCalibrationIsRefused()
    {
        using var dir = new ScratchDir();
        var e = Assert.Throws<ArgumentException>(() => Quantize(dir.File("x.gguf"), "q4_K_M", QuantMethod.Gptq, null));
        Assert.Contains("--calibration", e.Message);
        Assert.False(File.Exists(dir.File("x.gguf")));
    }

    [Fact]
    public void CommandJsonNamesTheMethod()
    {
        using var dir = new ScratchDir();
        File.WriteAllText(dir.File("c.csv"), string.Join(",", Tokens(4 * 64, 4)));
        using var doc = TensorCodec.Tests.Cli.JsonSchema.Run("quantize", "quantize", ModelQuantizerTests.Bf16Sample, "-o", dir.File("g.gguf"), "--type", "q4_K_M",
            "--config", ModelQuantizerTests.Config, "--method", "gptq", "--calibration", dir.File("c.csv"), "--calibration-ctx", "64", "-T", "2");
        Assert.Equal("gptq", doc.RootElement.GetProperty("method").GetString());
        Assert.True(doc.RootElement.GetProperty("imatrix_used").GetBoolean());
    }

    /// <summary>
    /// quantize --calibration TEXT reads text as `tcodec imatrix --text` does (one string, BOS over each window's
    /// first token), so its importance weights and an imatrix file made from the same text (with output.weight, which
    /// llama-imatrix skips unless asked) give the same tensors.
    /// </summary>
    [Fact]
    public void CalibrationTextReadsLikeTheImatrixCommand()
    {
        using var dir = new ScratchDir();
        var text = string.Join("\n", Enumerable.Range(0, 60).Select(i => $"Line {i}: to be, or not to be, that is the question {i * 7}."));
        File.WriteAllText(dir.File("c.txt"), text);
        string[] common = ["--config", ModelQuantizerTests.Config, "--tokenizer", ModelQuantizerTests.Tokenizer];
        var (code, _, err) = TensorCodec.Tests.Cli.CliTests.Tcodec(["imatrix", ModelQuantizerTests.Bf16Sample, .. common,
            "--text", dir.File("c.txt"), "--ctx", "64", "--chunks", "4", "--process-output", "-o", dir.File("im.gguf")]);
        Assert.True(code == 0, err);
        (code, _, err) = TensorCodec.Tests.Cli.CliTests.Tcodec(["quantize", ModelQuantizerTests.Bf16Sample, .. common, "-t", "q4_K_M",
            "--imatrix", dir.File("im.gguf"), "-o", dir.File("a.gguf"), "-T", "2"]);
        Assert.True(code == 0, err);
        (code, _, err) = TensorCodec.Tests.Cli.CliTests.Tcodec(["quantize", ModelQuantizerTests.Bf16Sample, .. common, "-t", "q4_K_M",
            "--method", "imatrix", "--calibration", dir.File("c.txt"), "--calibration-ctx", "64", "--calibration-chunks", "4",
            "-o", dir.File("b.gguf"), "-T", "2"]);
        Assert.True(code == 0, err);
        var a = TensorsOf(dir.File("a.gguf"));
        var b = TensorsOf(dir.File("b.gguf"));
        Assert.Equal(a.Keys.Order(), b.Keys.Order());
        foreach (var (name, bytes) in a)
            Assert.True(bytes.AsSpan().SequenceEqual(b[name]), $"{name}: the calibration text and the imatrix file give different bytes");
    }

    static Dictionary<string, byte[]> TensorsOf(string path)
    {
        using var fs = File.OpenRead(path);
        var g = GgufFile.Parse(fs, path);
        var result = new Dictionary<string, byte[]>();
        foreach (var t in g.Tensors)
        {
            var bytes = new byte[t.ByteSize];
            fs.Position = t.Offset;
            fs.ReadExactly(bytes);
            result[t.Name] = bytes;
        }
        return result;
    }
}
