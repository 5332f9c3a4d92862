using System.Diagnostics;
using System.Text.Json;
using TensorCodec.Tests.Cli;
using Xunit.Abstractions;

namespace TensorCodec.Tests.Quantization;

public class QuantizeCliTests
{
    [Fact]
    public void QuantizeCommandWritesGgufAndReports()
    {
        using var dir = new ScratchDir();
        var outPath = dir.File("bard.gguf");
        var (code, stdout, err) = CliTests.Tcodec("quantize", ModelQuantizerTests.Bf16Sample, "-o", outPath, "--type", "q4_K_M",
            "--config", ModelQuantizerTests.Config, "--tokenizer", ModelQuantizerTests.Tokenizer, "-T", "2", "--json");
        Assert.True(code == 0, err);
        using var doc = JsonDocument.Parse(stdout);
        var root = doc.RootElement;
        Assert.Equal("q4_K_M", root.GetProperty("mix").GetString());
        Assert.True(root.GetProperty("tokenizer_embedded").GetBoolean());
        Assert.Equal(new FileInfo(outPath).Length, root.GetProperty("output_bytes").GetInt64());
        Assert.Equal(39, root.GetProperty("tensors").GetInt32());
        Assert.Equal(39, root.GetProperty("tensor_list").GetArrayLength());
        double bpw = root.GetProperty("bits_per_value").GetDouble();
        Assert.InRange(bpw, 4.5, 5.5);

        // Human-readable: a table with a total row; refuses to overwrite without -f.
        (code, stdout, err) = CliTests.Tcodec("quantize", ModelQuantizerTests.Bf16Sample, "-o", outPath, "--type", "q8_0",
            "--config", ModelQuantizerTests.Config);
        Assert.Equal(1, code);
        Assert.Contains("already exists", err);
        (code, stdout, err) = CliTests.Tcodec("quantize", ModelQuantizerTests.Bf16Sample, "-o", outPath, "--type", "q8_0",
            "--config", ModelQuantizerTests.Config, "-f");
        Assert.True(code == 0, err);
        Assert.Contains("blk.3.ffn_down.weight", stdout);
        Assert.Contains("total", stdout);
        Assert.Contains("8.5", stdout);
        Assert.Contains("no tokenizer", stdout);
    }

    [Fact]
    public void UnknownTypeListsKnownTypes()
    {
        using var dir = new ScratchDir();
        var (code, _, err) = CliTests.Tcodec("quantize", ModelQuantizerTests.Bf16Sample, "-o", dir.File("x.gguf"), "--type", "q9_K");
        Assert.Equal(1, code);
        Assert.Contains("q9_K", err);
        Assert.Contains("q4_K_M", err);
        Assert.False(File.Exists(dir.File("x.gguf")));
    }
}

/// <summary>Runs only when TCODEC_NODE_LLAMA points at a folder where node-llama-cpp is installed (.ci/run does that).</summary>
public sealed class NodeLlamaFactAttribute : SkippableFactAttribute
{
    public const string Variable = "TCODEC_NODE_LLAMA";

    /// <summary>The node script both interop tests drive llama.cpp with.</summary>
    public static string Script()
    {
        for (var d = new DirectoryInfo(AppContext.BaseDirectory); d is not null; d = d.Parent)
        {
            var p = Path.Combine(d.FullName, "tests", "interop", "llama-interop.mjs");
            if (File.Exists(p)) return p;
        }
        throw new FileNotFoundException("tests/interop/llama-interop.mjs not found above the test output folder");
    }

    /// <summary>Runs the interop script under node; one JSON document per line of its output.</summary>
    public static List<JsonDocument> RunScript(List<string> args, ITestOutputHelper output)
    {
        var psi = new ProcessStartInfo("node") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var a in args) psi.ArgumentList.Add(a);
        using var p = Process.Start(psi)!;
        var stdout = p.StandardOutput.ReadToEndAsync();
        var stderr = p.StandardError.ReadToEndAsync();
        Assert.True(p.WaitForExit(TimeSpan.FromMinutes(5)), "llama.cpp interop script timed out");
        output.WriteLine(stdout.Result);
        output.WriteLine(stderr.Result);
        Assert.True(p.ExitCode == 0, $"interop failed:\n{stdout.Result}\n{stderr.Result}");
        return stdout.Result.Split('\n', StringSplitOptions.RemoveEmptyEntries).Select(l => JsonDocument.Parse(l)).ToList();
    }

    /// <summary>
    /// A llama2.c tokenizer.bin of <paramref name="vocab"/> placeholder pieces (the specials, the 256 byte tokens
    /// llama.cpp's SPM vocabulary needs, then "wN"), for models without a real tokenizer; returns <paramref name="path"/>.
    /// </summary>
    public static string WritePlaceholderTokenizer(string path, int vocab)
    {
        using var s = File.Create(path);
        var w = new BinaryWriter(s);
        w.Write(8);
        var pieces = new List<string> { "<unk>", "<s>", "</s>" };
        pieces.AddRange(Enumerable.Range(0, 256).Select(b => $"<0x{b:X2}>"));
        while (pieces.Count < vocab) pieces.Add($"w{pieces.Count}");
        foreach (var piece in pieces) { w.Write(0f); w.Write(piece.Length); w.Write(System.Text.Encoding.ASCII.GetBytes(piece)); }
        return path;
    }

    public NodeLlamaFactAttribute()
    {
        var dir = Environment.GetEnvironmentVariable(Variable);
        if (string.IsNullOrEmpty(dir))
            Skip = $"{Variable} is not set: install node-llama-cpp (see .ci/run) and point {Variable} at its folder to run the llama.cpp interop test";
        else if (!Directory.Exists(Path.Combine(dir, "node_modules", "node-llama-cpp")))
            Skip = $"{Variable}={dir} has no node_modules/node-llama-cpp";
    }
}

/// <summary>Loads our GGUFs into a real llama.cpp (node-llama-cpp's prebuilt CPU build).</summary>
public class LlamaCppInteropTests(ITestOutputHelper output)
{
    [NodeLlamaFact]
    public void LlamaCppLoadsTokenizesAndGenerates()
    {
        using var dir = new ScratchDir();
        var args = new List<string> { NodeLlamaFactAttribute.Script(), "--modules", Environment.GetEnvironmentVariable(NodeLlamaFactAttribute.Variable)!,
            "--expect-ids", "658,312,375,265,613,391,358,375", "--generate", "8" };
        foreach (var mix in new[] { "f32", "q8_0", "q4_K_M" })
        {
            var path = dir.File($"bard-{mix}.gguf");
            ModelQuantizerTests.QuantizeBard(path, mix);
            args.AddRange(["--model", path]);
        }
        // Reference distributions from the PyTorch model, when the shared data is present.
        // Bounds: measured KL with the BF16 sample as input was 7.7e-6 (f32), 2.2e-4 (q8_0) and
        // 7.9e-3 (q4_K_M); from the F32 safetensors, 5.3e-8.
        var refDir = TestFiles.Shared("data/models/bard-3m/reference");
        if (refDir is not null)
        {
            args.AddRange(["--ref-tokens", Path.Combine(refDir, "val.first128.tokens.csv"), "--ref-logits", Path.Combine(refDir, "val.first128.logits.f32"),
                "--positions", "0,8,32,64,100,127",
                "--kl-max", "bard-f32.gguf=2e-5", "--kl-max", "bard-q8_0.gguf=1e-3", "--kl-max", "bard-q4_K_M.gguf=3e-2"]);
            var f32Model = TestFiles.Shared("data/models/bard-3m/model.safetensors");
            if (f32Model is not null)
            {
                var path = dir.File("bard-f32-exact.gguf");
                TensorCodec.Quantization.ModelQuantizer.Quantize(f32Model, path, new TensorCodec.Quantization.ModelQuantizeOptions
                {
                    Mix = TensorCodec.Quantization.QuantMix.Get("f32"), TokenizerPath = ModelQuantizerTests.Tokenizer,
                });
                args.AddRange(["--model", path, "--kl-max", "bard-f32-exact.gguf=1e-6"]);
            }
        }

        var reports = NodeLlamaFactAttribute.RunScript(args, output);
        Assert.True(reports.Count >= 3);
        foreach (var r in reports)
        {
            Assert.True(r.RootElement.GetProperty("ok").GetBoolean(), r.RootElement.ToString());
            Assert.Equal(8, r.RootElement.GetProperty("generated").GetArrayLength());
        }
    }

    /// <summary>
    /// The llama2.c path (names, no Q/K permutation, eps): llama.cpp's greedy continuation of BOS
    /// must follow llama2.c run.c's reference ids. stories260K has no tokenizer here, so a
    /// placeholder vocabulary of the right size is embedded (llama.cpp refuses a model without one).
    /// Measured: the first 37 ids match; they part at id 38, a near-tie in float32.
    /// </summary>
    [NodeLlamaFact]
    public void LlamaCppReproducesLlama2cGreedyTokens()
    {
        var reference = TestFiles.Shared("data/models/stories260K/reference/greedy.tokens.csv");
        if (reference is null) { output.WriteLine("shared stories260K reference not found; only loading is checked"); }
        using var dir = new ScratchDir();
        var tok = NodeLlamaFactAttribute.WritePlaceholderTokenizer(dir.File("placeholder.bin"), 512);
        var path = dir.File("stories-f32.gguf");
        TensorCodec.Quantization.ModelQuantizer.Quantize(TestFiles.Sample("stories260K.bin"), path, new TensorCodec.Quantization.ModelQuantizeOptions
        {
            Mix = TensorCodec.Quantization.QuantMix.Get("f32"), TokenizerPath = tok,
        });
        var args = new List<string> { NodeLlamaFactAttribute.Script(), "--modules", Environment.GetEnvironmentVariable(NodeLlamaFactAttribute.Variable)!,
            "--model", path, "--prompt-ids", "1", "--generate", "32" };
        if (reference is not null)
            args.AddRange(["--expect-generated", string.Join(",", File.ReadAllText(reference).Trim().Split(',').Skip(1).Take(32))]);
        var r = Assert.Single(NodeLlamaFactAttribute.RunScript(args, output));
        Assert.True(r.RootElement.GetProperty("ok").GetBoolean(), r.RootElement.ToString());
    }

}
