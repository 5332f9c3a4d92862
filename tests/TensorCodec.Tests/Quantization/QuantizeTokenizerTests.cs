using System.Text.Json;
using TensorCodec.Containers;
using TensorCodec.Quantization;
using TensorCodec.Tests.Cli;
using TensorCodec.Tests.Models;
using TensorCodec.Tokenizers;

namespace TensorCodec.Tests.Quantization;

/// <summary><c>tcodec quantize</c> embeds a model's tokenizer.json so the GGUF tokenizes as the original file does.</summary>
public class QuantizeTokenizerTests
{
    static string HfFixture(string family, string file) => TestFiles.Fixture(Path.Combine("tokenizers", "hf", family, file));

    static string[] Strings(string family)
    {
        using var doc = JsonDocument.Parse(File.ReadAllText(HfFixture(family, "reference.encodings.json")));
        return doc.RootElement.GetProperty("cases").EnumerateArray().Select(c => c.GetProperty("text").GetString()!)
            .Concat(["<|endoftext|>Hello world<|endoftext|>", "  two  spaces\t\ttabs\n\nnewlines ", "émoji 🦙 and 日本語 42 1234567"]).ToArray();
    }

    /// <summary>A tiny Llama whose vocabulary is the family's, with that family's tokenizer files beside it.</summary>
    static string ModelWithTokenizer(ScratchDir dir, string family, int vocab)
    {
        string model = Path.Combine(dir.Path, "model");
        TinyHfModel.Write(model, new TinyHfOptions { Vocab = vocab });
        foreach (var f in new[] { "tokenizer.json", "tokenizer_config.json" })
            if (File.Exists(HfFixture(family, f))) File.Copy(HfFixture(family, f), Path.Combine(model, f));
        return model;
    }

    [Fact]
    public void ByteLevelTokenizerJsonIsEmbeddedAndTokenizesTheSame()
    {
        using var dir = new ScratchDir();
        string model = ModelWithTokenizer(dir, "gpt2", 50257);
        string output = dir.File("gpt2.gguf");
        var result = ModelQuantizer.Quantize(model, output, new ModelQuantizeOptions { Mix = QuantMix.Get("q8_0"), Threads = 2 });
        Assert.True(result.TokenizerEmbedded);
        Assert.DoesNotContain(result.Notes, n => n.Contains("no tokenizer"));

        GgufFile g;
        using (var s = File.OpenRead(output)) g = GgufFile.Parse(s, output);
        Assert.Equal("gpt2", g.Find("tokenizer.ggml.model")!.Value);
        Assert.Equal("gpt-2", g.Find("tokenizer.ggml.pre")!.Value);
        Assert.Equal(50257, ((GgufArray)g.Find("tokenizer.ggml.tokens")!.Value).Items.Length);
        Assert.Equal(50000, ((GgufArray)g.Find("tokenizer.ggml.merges")!.Value).Items.Length);
        Assert.Equal(50256u, g.Find("tokenizer.ggml.bos_token_id")!.Value);
        Assert.Equal(50256u, g.Find("tokenizer.ggml.eos_token_id")!.Value);
        Assert.Equal(false, g.Find("tokenizer.ggml.add_bos_token")!.Value);

        var original = TokenizerLoader.Load(Path.Combine(model, "tokenizer.json"));
        var embedded = TokenizerLoader.Load(output);
        Assert.Equal(original.VocabSize, embedded.VocabSize);
        foreach (var text in Strings("gpt2"))
            foreach (bool special in new[] { false, true })
                Assert.True(original.Encode(text, special, special).SequenceEqual(embedded.Encode(text, special, special)),
                    $"'{text}' (special {special}): tokenizer.json [{string.Join(",", original.Encode(text, special, special))}] " +
                    $"vs GGUF [{string.Join(",", embedded.Encode(text, special, special))}]");
    }

    [Fact]
    public void SmallerTokenizerIsPaddedAndLargerIsRefused()
    {
        using var dir = new ScratchDir();
        string model = ModelWithTokenizer(dir, "gpt2", 50260);
        string output = dir.File("padded.gguf");
        ModelQuantizer.Quantize(model, output, new ModelQuantizeOptions { Mix = QuantMix.Get("q8_0"), Threads = 2 });
        GgufFile g;
        using (var s = File.OpenRead(output)) g = GgufFile.Parse(s, output);
        var tokens = (string[])((GgufArray)g.Find("tokenizer.ggml.tokens")!.Value).Items;
        Assert.Equal(50260, tokens.Length);
        Assert.Equal("[PAD50259]", tokens[^1]);
        Assert.Equal(5, ((int[])((GgufArray)g.Find("tokenizer.ggml.token_type")!.Value).Items)[^1]);

        using var dir2 = new ScratchDir();
        string small = ModelWithTokenizer(dir2, "gpt2", TinyHfModel.Vocab);
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
}
