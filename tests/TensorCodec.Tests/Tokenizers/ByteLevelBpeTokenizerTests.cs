using System.Diagnostics;
using System.Text;
using System.Text.Json;
using TensorCodec.Containers;
using TensorCodec.Tokenizers;
using Xunit;
using Xunit.Abstractions;

namespace TensorCodec.Tests.Tokenizers;

public class ByteLevelBpeTokenizerTests
{
    internal static ByteLevelBpeTokenizer Gguf(string path)
    {
        using var s = File.OpenRead(path);
        return ByteLevelBpeTokenizer.FromGguf(GgufFile.Parse(s, path), path);
    }

    internal static string Vocab(string name) => TestFiles.Fixture(Path.Combine("tokenizers", "llama.cpp-vocab", $"ggml-vocab-{name}.gguf"));
    static string Hf(string family) => TestFiles.Fixture(Path.Combine("tokenizers", "hf", family, "tokenizer.json"));

    /// <summary>llama.cpp's test-tokenizer-0 cases: strings split by "\n__ggml_vocab_test__\n", one line of ids per string.</summary>
    static List<(string Text, int[] Ids)> Cases(string gguf)
    {
        var texts = File.ReadAllText(gguf + ".inp", Encoding.UTF8).Split("\n__ggml_vocab_test__\n").ToList();
        if (texts[^1].Length == 0) texts.RemoveAt(texts.Count - 1);
        var lines = File.ReadAllLines(gguf + ".out");
        Assert.Equal(texts.Count, lines.Length);
        return texts.Select((t, i) => (t, lines[i].Split(' ', StringSplitOptions.RemoveEmptyEntries).Select(int.Parse).ToArray())).ToList();
    }

    [Theory]
    [InlineData("gpt-2")]
    [InlineData("deepseek-coder")]
    [InlineData("falcon")]
    public void LlamaCppSuiteGivesExactlyTheExpectedIds(string name)
    {
        var path = Vocab(name);
        var tok = Gguf(path);
        var cases = Cases(path);
        Assert.True(cases.Count > 30, $"{cases.Count} cases");
        var failures = new List<string>();
        foreach (var (text, expected) in cases)
        {
            var got = tok.Encode(text, addBos: false, parseSpecial: false);
            if (!got.SequenceEqual(expected))
                failures.Add($"{JsonSerializer.Serialize(text)}: expected [{string.Join(' ', expected)}] got [{string.Join(' ', got)}]");
        }
        Assert.True(failures.Count == 0, $"{tok.PreTokenizerName}: {failures.Count}/{cases.Count} differ:\n" + string.Join('\n', failures));
    }

    [Theory]
    [InlineData("gpt2")]
    [InlineData("smollm2")]
    public void TokenizerJsonMatchesHuggingFaceReferenceEncodings(string family)
    {
        var tok = ByteLevelBpeTokenizer.FromTokenizerJson(Hf(family));
        using var doc = JsonDocument.Parse(File.ReadAllBytes(TestFiles.Fixture(Path.Combine("tokenizers", "hf", family, "reference.encodings.json"))));
        Assert.Equal(doc.RootElement.GetProperty("vocab_size_with_added").GetInt32(), tok.VocabSize);
        var failures = new List<string>();
        int n = 0;
        foreach (var c in doc.RootElement.GetProperty("cases").EnumerateArray())
        {
            n++;
            string text = c.GetProperty("text").GetString()!;
            int[] expected = c.GetProperty("ids").EnumerateArray().Select(e => e.GetInt32()).ToArray();
            int[] withSpecial = c.GetProperty("ids_with_special").EnumerateArray().Select(e => e.GetInt32()).ToArray();
            var got = tok.Encode(text, addBos: false, parseSpecial: true);
            if (!got.SequenceEqual(expected)) failures.Add($"{JsonSerializer.Serialize(text)}: expected [{string.Join(' ', expected)}] got [{string.Join(' ', got)}]");
            var gotSpecial = tok.Encode(text, addBos: true, parseSpecial: true);
            if (!gotSpecial.SequenceEqual(withSpecial)) failures.Add($"{JsonSerializer.Serialize(text)} with special: expected [{string.Join(' ', withSpecial)}] got [{string.Join(' ', gotSpecial)}]");
            string decoded = c.GetProperty("decoded").GetString()!;
            if (tok.Decode(expected) != decoded) failures.Add($"{JsonSerializer.Serialize(text)}: decodes to {JsonSerializer.Serialize(tok.Decode(expected))}, not {JsonSerializer.Serialize(decoded)}");
        }
        Assert.True(n >= 60, $"{n} cases");
        Assert.True(failures.Count == 0, $"{failures.Count} mismatches:\n" + string.Join('\n', failures));
    }

    /// <summary>llama.cpp's gpt-2 vocabulary and Hugging Face's gpt2 tokenizer.json are one tokenizer: same ids on a whole book.</summary>
    [SkippableFact]
    public void GgufAndTokenizerJsonGpt2AgreeOnShakespeare()
    {
        var text = File.ReadAllText(TestFiles.SharedOrSkip("data/text/shakespeare.txt"));
        var fromGguf = Gguf(Vocab("gpt-2")).Encode(text, false, false);
        var fromJson = ByteLevelBpeTokenizer.FromTokenizerJson(Hf("gpt2")).Encode(text, false, false);
        Assert.Equal(fromJson.Length, fromGguf.Length);
        Assert.True(fromGguf.SequenceEqual(fromJson));
        Assert.Equal(text, Gguf(Vocab("gpt-2")).Decode(fromGguf));
    }

    [Fact]
    public void DecodeInvertsEncodeOnTheSuiteStrings()
    {
        var path = Vocab("gpt-2");
        var tok = Gguf(path);
        foreach (var (text, _) in Cases(path))
            Assert.Equal(text, tok.Decode(tok.Encode(text, false, false)));
    }

    [Fact]
    public void SpecialTokensSplitOnlyWhenParsingSpecials()
    {
        var tok = ByteLevelBpeTokenizer.FromTokenizerJson(Hf("smollm2"));
        var parsed = tok.Encode("<|im_start|>user hi<|im_end|>", false, parseSpecial: true);
        Assert.Equal(1, parsed[0]);
        Assert.Equal(2, parsed[^1]);
        var literal = tok.Encode("<|im_start|>", false, parseSpecial: false);
        Assert.DoesNotContain(1, literal);
        Assert.Equal("<|im_start|>", tok.Decode(literal));

        var gpt2 = Gguf(Vocab("gpt-2"));
        Assert.Equal([50256], gpt2.Encode("<|endoftext|>", false, parseSpecial: true));
        Assert.True(gpt2.Encode("<|endoftext|>", false, parseSpecial: false).Length > 1);
    }

    [Fact]
    public void GgufIdsAndPreTokenizerAreReadFromTheMetadata()
    {
        var tok = Gguf(Vocab("falcon"));
        Assert.Contains("'falcon'", tok.PreTokenizerName);
        Assert.True(tok.VocabSize > 60000);
        Assert.NotNull(tok.BosId);
        Assert.NotNull(tok.EosId);
    }

    [Fact]
    public void UnknownPreTokenizerIsRefusedByName()
    {
        using var dir = new ScratchDir();
        var src = Vocab("gpt-2");
        GgufFile g;
        using (var s = File.OpenRead(src)) g = GgufFile.Parse(s, src);
        var meta = g.Metadata.Select(kv => kv.Key == "tokenizer.ggml.pre" ? new KeyValuePair<string, GgufValue>(kv.Key, GgufValue.String("no-such-pre")) : kv).ToList();
        var changed = new GgufFile { Version = g.Version, Metadata = meta, Tensors = g.Tensors, Alignment = g.Alignment, DataOffset = g.DataOffset, FileLength = g.FileLength };
        var e = Assert.Throws<TensorFormatException>(() => ByteLevelBpeTokenizer.FromGguf(changed, "x.gguf"));
        Assert.Contains("no-such-pre", e.Message);
        Assert.Contains("tokenizer.ggml.pre", e.Message);
    }

    [Fact]
    public void UnsupportedNormalizerIsRefusedByName()
    {
        using var dir = new ScratchDir();
        var json = File.ReadAllText(Hf("gpt2")).Replace("\"normalizer\": null", "\"normalizer\": {\"type\": \"NFKC\"}");
        Assert.Contains("NFKC", json);
        File.WriteAllText(dir.File("tokenizer.json"), json);
        var e = Assert.Throws<TensorFormatException>(() => ByteLevelBpeTokenizer.FromTokenizerJson(dir.File("tokenizer.json")));
        Assert.Contains("NFKC", e.Message);
    }

    [Theory]
    [InlineData("llama-bpe")]
    [InlineData("qwen2")]
    [InlineData("starcoder")]
    [InlineData("refact")]
    [InlineData("mpt")]
    [InlineData("deepseek-coder")]
    [InlineData("deepseek-llm")]
    [InlineData("falcon")]
    [InlineData("gpt-2")]
    [InlineData("default")]
    public void EveryImplementedPreTokenizerCoversTheTextWithoutLosingAChar(string pre)
    {
        var p = RegexPreTokenizer.ForLlamaCpp(pre, out _, out _)!;
        Assert.NotNull(p);
        const string text = "Hello  world!\n\n 3333 tokens' 🦙 Ünïcödé 中文字符 \t\tend ... $+<=>^~|` 𝓐𝓑 ١٢٣";
        var pieces = new List<(int Start, int Length)>();
        p.Split(text, pieces);
        Assert.Equal(text, string.Concat(pieces.Select(x => text.Substring(x.Start, x.Length))));
        Assert.All(pieces, x => Assert.True(x.Length > 0));
    }

    [Fact]
    public void Llama3SplitsDigitsInThreesAndQwen2OneByOne()
    {
        static string[] Split(string pre, string text)
        {
            var pieces = new List<(int Start, int Length)>();
            RegexPreTokenizer.ForLlamaCpp(pre, out _, out _)!.Split(text, pieces);
            return pieces.Select(x => text.Substring(x.Start, x.Length)).ToArray();
        }
        Assert.Equal(["1234567", " it", "'s"], Split("gpt-2", "1234567 it's"));
        Assert.Equal(["123", "456", "7", " it", "'s"], Split("llama-bpe", "1234567 it's"));
        Assert.Equal(["1", "2", "3", " it", "'S"], Split("qwen2", "123 it'S"));
        Assert.Equal(["Hello", " world", "\n\n  ", " x"], Split("gpt-2", "Hello world\n\n   x"));
        // deepseek-llm: its letter class reaches beyond the BMP (Deseret 𐐀), not to math letters (𝓐: left in the gap);
        // trailing spaces are one piece.
        Assert.Equal(["Ab", " 𐐀𐐁", " 𝓐", "!?", "\n", "12", "  "], Split("deepseek-llm", "Ab 𐐀𐐁 𝓐!?\n12  "));
    }
}

/// <summary>Timed alone (not beside other test classes), so the process CPU time is this test's.</summary>
[CollectionDefinition(Name, DisableParallelization = true)]
public sealed class ByteLevelBpeTiming { public const string Name = "ByteLevelBpe timing"; }

[Collection(ByteLevelBpeTiming.Name)]
public class ByteLevelBpeSpeedTests(ITestOutputHelper output)
{
    static ByteLevelBpeTokenizer Gguf(string path) => ByteLevelBpeTokenizerTests.Gguf(path);
    static string Vocab(string name) => ByteLevelBpeTokenizerTests.Vocab(name);

    /// <summary>The figure in BENCHMARKS.md: the 1.1 MB Shakespeare text with the gpt-2 vocabulary, median of 5 (cold cache each run).</summary>
    [SkippableFact]
    public void ShakespeareWithGpt2TakesWellUnderASecond()
    {
        var text = File.ReadAllText(TestFiles.SharedOrSkip("data/text/shakespeare.txt"));
        var times = new List<double>();
        var cpu = new List<double>();
        int count = 0;
        var warm = Gguf(Vocab("gpt-2"));
        warm.Encode(text[..20000], false, false); // JIT the regex and the hot paths once
        using var self = Process.GetCurrentProcess();
        for (int run = 0; run < 5; run++)
        {
            var tok = Gguf(Vocab("gpt-2")); // a fresh tokenizer: no piece cache carried over
            self.Refresh();
            var cpu0 = self.TotalProcessorTime;
            var sw = Stopwatch.StartNew();
            count = tok.Encode(text, false, false).Length;
            times.Add(sw.Elapsed.TotalMilliseconds);
            self.Refresh();
            cpu.Add((self.TotalProcessorTime - cpu0).TotalMilliseconds);
        }
        times.Sort();
        cpu.Sort();
        output.WriteLine($"shakespeare.txt ({text.Length:N0} chars) -> {count:N0} tokens; wall median {times[2]:F0} ms (min {times[0]:F0}, max {times[4]:F0}); process CPU median {cpu[2]:F0} ms{(File.Exists("/proc/loadavg") ? "; load " + File.ReadAllText("/proc/loadavg").Split(' ')[0] : "")}");
        // Wall time moves with the machine's load (2 shared cores); CPU time much less, so that is what is held.
        Assert.True(cpu[2] < 1000, $"CPU median {cpu[2]:F0} ms (wall {times[2]:F0} ms)");
    }
}
