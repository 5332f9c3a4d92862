using System.Text.Json;
using TensorCodec.Containers;
using TensorCodec.Quantization;
using TensorCodec.Tests.Cli;
using TensorCodec.Tests.Models;
using TensorCodec.Tokenizers;
using Xunit.Abstractions;

namespace TensorCodec.Tests.Quantization;

/// <summary><c>tcodec quantize</c> embeds a model's tokenizer.json so the GGUF tokenizes as the original file does.</summary>
public class QuantizeTokenizerTests(ITestOutputHelper output)
{
    static string HfFixture(string family, string file) => TestFiles.Fixture(Path.Combine("tokenizers", "hf", family, file));

    /// <summary>The family's tokenizer folder: the repo's fixtures, else ../shared (skipped when absent).</summary>
    static string Folder(string family) => File.Exists(HfFixture(family, "tokenizer.json"))
        ? Path.GetDirectoryName(HfFixture(family, "tokenizer.json"))!
        : TestFiles.SharedOrSkip(Path.Combine("data", "tokenizers", "hf", family));

    static string[] Strings(string folder)
    {
        using var doc = JsonDocument.Parse(File.ReadAllText(Path.Combine(folder, "reference.encodings.json")));
        return doc.RootElement.GetProperty("cases").EnumerateArray().Select(c => c.GetProperty("text").GetString()!)
            .Concat(["<|endoftext|><s>Hello world</s><|end|>", "  two  spaces\t\ttabs\n\nnewlines ", "émoji 🦙 and 日本語 42 1234567", " ", ""]).ToArray();
    }

    /// <summary>A tiny Llama with <paramref name="vocab"/> ids and the tokenizer files of <paramref name="folder"/> beside it.</summary>
    static string ModelWithTokenizer(ScratchDir dir, string folder, int vocab)
    {
        string model = Path.Combine(dir.Path, "model");
        TinyHfModel.Write(model, new TinyHfOptions { Vocab = vocab });
        foreach (var f in new[] { "tokenizer.json", "tokenizer_config.json" })
            if (File.Exists(Path.Combine(folder, f))) File.Copy(Path.Combine(folder, f), Path.Combine(model, f));
        return model;
    }

    [SkippableTheory]
    [InlineData("gpt2", "gpt2", "gpt-2")]
    [InlineData("smollm2", "gpt2", "smollm")]
    [InlineData("llama2", "llama", "default")]
    [InlineData("mistral-7b-v0.1", "llama", "default")]
    [InlineData("phi-3-mini", "llama", "default")]
    public void TokenizerJsonIsEmbeddedAndTokenizesTheSame(string family, string ggmlModel, string pre)
    {
        string folder = Folder(family);
        using var dir = new ScratchDir();
        var original = TokenizerLoader.Load(Path.Combine(folder, "tokenizer.json"));
        string model = ModelWithTokenizer(dir, folder, original.VocabSize);
        string output = dir.File("model.gguf");
        var result = ModelQuantizer.Quantize(model, output, new ModelQuantizeOptions { Mix = QuantMix.Get("q8_0"), Threads = 2, ModelName = family });
        Assert.True(result.TokenizerEmbedded);
        Assert.DoesNotContain(result.Notes, n => n.Contains("no tokenizer"));

        GgufFile g;
        using (var s = File.OpenRead(output)) g = GgufFile.Parse(s, output);
        Assert.Equal(ggmlModel, g.Find("tokenizer.ggml.model")!.Value);
        Assert.Equal(pre, g.Find("tokenizer.ggml.pre")!.Value);
        Assert.Equal(original.VocabSize, ((GgufArray)g.Find("tokenizer.ggml.tokens")!.Value).Items.Length);
        if (original.BosId >= 0) Assert.Equal((uint)original.BosId, g.Find("tokenizer.ggml.bos_token_id")!.Value);
        if (original.EosId >= 0) Assert.Equal((uint)original.EosId, g.Find("tokenizer.ggml.eos_token_id")!.Value);

        var embedded = TokenizerLoader.Load(output);
        Assert.Equal(original.VocabSize, embedded.VocabSize);
        Assert.Equal(original.BosId, embedded.BosId);
        Assert.Equal(original.EosId, embedded.EosId);
        // Hugging Face always splits out added tokens (our parseSpecial = true), and so do GGUF readers that parse specials.
        // Without parsing specials a tokenizer.json's non-special added token (Phi-3's "</s>") stays split out while the
        // converter types it control, so that mode is compared only on text holding no added token. Hugging Face also
        // matches a "normalized" added token in the normalized text (Llama 2's "</s>" after a word stays text), which
        // GGUF cannot say: with such tokens parsing specials is compared only on text holding none.
        string[] addedTexts;
        bool normalizedAdded;
        using (var doc = JsonDocument.Parse(File.ReadAllText(Path.Combine(folder, "tokenizer.json"))))
        {
            var added = doc.RootElement.GetProperty("added_tokens").EnumerateArray().ToList();
            addedTexts = added.Select(a => a.GetProperty("content").GetString()!).ToArray();
            normalizedAdded = added.Any(a => a.TryGetProperty("normalized", out var n) && n.ValueKind == JsonValueKind.True);
        }
        var bad = new List<string>();
        foreach (var text in Strings(folder))
            foreach (var (add, special) in new[] { (false, false), (true, false), (false, true), (true, true) })
            {
                bool holdsAdded = addedTexts.Any(a => text.Contains(a, StringComparison.Ordinal));
                if (holdsAdded && (!special || normalizedAdded)) continue;
                int[] want = original.Encode(text, add, special), got = embedded.Encode(text, add, special);
                if (!want.SequenceEqual(got))
                    bad.Add($"'{text}' (add {add}, special {special}): tokenizer.json [{string.Join(",", want)}] vs GGUF [{string.Join(",", got)}]");
            }
        Assert.True(bad.Count == 0, $"{bad.Count} strings differ:\n" + string.Join("\n", bad.Take(10)));
    }

    [Fact]
    public void ByteLevelGgufHoldsGpt2sMergesAndFlags()
    {
        using var dir = new ScratchDir();
        string model = ModelWithTokenizer(dir, Folder("gpt2"), 50257);
        string output = dir.File("gpt2.gguf");
        ModelQuantizer.Quantize(model, output, new ModelQuantizeOptions { Mix = QuantMix.Get("q8_0"), Threads = 2 });
        GgufFile g;
        using (var s = File.OpenRead(output)) g = GgufFile.Parse(s, output);
        Assert.Equal(50000, ((GgufArray)g.Find("tokenizer.ggml.merges")!.Value).Items.Length);
        Assert.Equal("Ġ t", ((string[])((GgufArray)g.Find("tokenizer.ggml.merges")!.Value).Items)[0]);
        Assert.Equal(50256u, g.Find("tokenizer.ggml.bos_token_id")!.Value);
        Assert.Equal(false, g.Find("tokenizer.ggml.add_bos_token")!.Value);
        Assert.Equal(3, ((int[])((GgufArray)g.Find("tokenizer.ggml.token_type")!.Value).Items)[50256]);
    }

    [Fact]
    public void SmallerTokenizerIsPaddedAndLargerIsRefused()
    {
        using var dir = new ScratchDir();
        string model = ModelWithTokenizer(dir, Folder("gpt2"), 50260);
        string output = dir.File("padded.gguf");
        ModelQuantizer.Quantize(model, output, new ModelQuantizeOptions { Mix = QuantMix.Get("q8_0"), Threads = 2 });
        GgufFile g;
        using (var s = File.OpenRead(output)) g = GgufFile.Parse(s, output);
        var tokens = (string[])((GgufArray)g.Find("tokenizer.ggml.tokens")!.Value).Items;
        Assert.Equal(50260, tokens.Length);
        Assert.Equal("[PAD50259]", tokens[^1]);
        Assert.Equal(5, ((int[])((GgufArray)g.Find("tokenizer.ggml.token_type")!.Value).Items)[^1]);

        using var dir2 = new ScratchDir();
        string small = ModelWithTokenizer(dir2, Folder("gpt2"), TinyHfModel.Vocab);
        var e = Assert.Throws<InvalidDataException>(() =>
            ModelQuantizer.Quantize(small, dir2.File("x.gguf"), new ModelQuantizeOptions { Mix = QuantMix.Get("q8_0") }));
        Assert.Contains("50257 tokens", e.Message);
        Assert.Contains("tokenizer.json", e.Message);
        Assert.False(File.Exists(dir2.File("x.gguf")));
    }

    [Fact]
    public void NoTokenizerWarnsAndRequireTokenizerRefuses()
    {
        using var dir = new ScratchDir();
        string model = Path.Combine(dir.Path, "model");
        TinyHfModel.Write(model);
        string output = dir.File("bare.gguf");
        var (code, stdout, err) = CliTests.Tcodec("quantize", model, "-o", output, "--type", "q8_0", "--json");
        Assert.True(code == 0, err);
        Assert.Contains("warning: no tokenizer embedded", err);
        using (var doc = JsonDocument.Parse(stdout))
        {
            Assert.False(doc.RootElement.GetProperty("tokenizer_embedded").GetBoolean());
            var w = Assert.Single(doc.RootElement.GetProperty("warnings").EnumerateArray());
            Assert.StartsWith("no tokenizer embedded", w.GetString());
        }

        string refused = dir.File("refused.gguf");
        (code, _, err) = CliTests.Tcodec("quantize", model, "-o", refused, "--type", "q8_0", "--require-tokenizer");
        Assert.Equal(1, code);
        Assert.Contains("no tokenizer embedded", err);
        Assert.False(File.Exists(refused));

    }

    /// <summary>llama.cpp (node-llama-cpp) tokenizes the GGUF we write from a tokenizer.json as the tokenizer.json does.</summary>
    [SkippableTheory]
    [InlineData("gpt2")]
    [InlineData("smollm2")]
    [InlineData("llama2")]
    [InlineData("mistral-7b-v0.1")]
    [InlineData("phi-3-mini")]
    public void LlamaCppTokenizesTheEmbeddedTokenizerAsTheOriginal(string family)
    {
        string? modules = Environment.GetEnvironmentVariable(NodeLlamaFactAttribute.Variable);
        Skip.If(string.IsNullOrEmpty(modules) || !Directory.Exists(Path.Combine(modules, "node_modules", "node-llama-cpp")),
            $"{NodeLlamaFactAttribute.Variable} does not name a folder with node-llama-cpp installed");
        string folder = Folder(family);
        using var dir = new ScratchDir();
        var original = TokenizerLoader.Load(Path.Combine(folder, "tokenizer.json"));
        string model = ModelWithTokenizer(dir, folder, original.VocabSize);
        string gguf = dir.File("model.gguf");
        ModelQuantizer.Quantize(model, gguf, new ModelQuantizeOptions { Mix = QuantMix.Get("q8_0"), Threads = 2, ModelName = family });
        string[] addedTexts;
        using (var doc = JsonDocument.Parse(File.ReadAllText(Path.Combine(folder, "tokenizer.json"))))
            addedTexts = doc.RootElement.GetProperty("added_tokens").EnumerateArray().Select(a => a.GetProperty("content").GetString()!).ToArray();
        // node-llama-cpp's tokenize parses no special tokens: text holding an added token is compared in-process above.
        var cases = Strings(folder).Where(t => t.Length > 0 && !addedTexts.Any(a => t.Contains(a, StringComparison.Ordinal))).Select(t => new { text = t, ids = original.Encode(t, false, false) });
        string casesPath = dir.File("cases.json");
        File.WriteAllText(casesPath, JsonSerializer.Serialize(cases));
        var r = Assert.Single(NodeLlamaFactAttribute.RunScript([NodeLlamaFactAttribute.Script(), "--modules", modules!,
            "--model", gguf, "--tokenize-cases", casesPath, "--generate", "1"], output));
        Assert.True(r.RootElement.GetProperty("ok").GetBoolean(), r.RootElement.ToString());
    }
}
