using System.Text.Json;
using TensorCodec.Containers;
using TensorCodec.Tokenizers;
using static TensorCodec.Tests.Cli.CliTests;

namespace TensorCodec.Tests.Tokenizers;

/// <summary>
/// The SentencePiece family against its references: llama.cpp's own tokenizer suite (vocabulary-only GGUFs,
/// copied into Fixtures/tokenizers) and the ids Hugging Face's tokenizers library gives for each tokenizer.json
/// in the shared data.
/// </summary>
public class TokenizerSuiteTests
{
    static string Vocab(string name) => TestFiles.Fixture($"tokenizers/llama.cpp-vocab/ggml-vocab-{name}.gguf");

    /// <summary>llama.cpp's test-tokenizer-0 format: strings separated by "\n__ggml_vocab_test__\n", ids one line each.</summary>
    static List<(string Text, int[] Ids)> Suite(string gguf)
    {
        var inputs = File.ReadAllText(gguf + ".inp").Split("\n__ggml_vocab_test__\n");
        var outputs = File.ReadAllLines(gguf + ".out");
        Assert.Equal("", inputs[^1]);
        Assert.Equal(inputs.Length - 1, outputs.Length);
        return outputs.Select((line, i) => (inputs[i], line.Split(' ', StringSplitOptions.RemoveEmptyEntries).Select(int.Parse).ToArray())).ToList();
    }

    [Theory]
    [InlineData("llama-spm")]
    [InlineData("phi-3")]
    public void Every_string_of_llama_cpps_suite_gives_its_ids(string name)
    {
        var tok = TokenizerLoader.Load(Vocab(name));
        Assert.IsType<SpmTokenizer>(tok);
        var failures = new List<string>();
        foreach (var (text, ids) in Suite(Vocab(name)))
        {
            var got = tok.Encode(text, addSpecial: false, parseSpecial: false);
            if (!got.SequenceEqual(ids)) failures.Add($"{JsonSerializer.Serialize(text)}: expected [{string.Join(' ', ids)}] got [{string.Join(' ', got)}]");
        }
        Assert.True(failures.Count == 0, string.Join("\n", failures));
    }

    [Fact]
    public void Gguf_flags_and_special_tokens_follow_llama_cpp()
    {
        var spm = (SpmTokenizer)TokenizerLoader.Load(Vocab("llama-spm"));
        Assert.True(spm.AddBos); Assert.False(spm.AddEos); Assert.True(spm.AddSpacePrefix);
        Assert.Equal([1, 15043], spm.Encode("Hello", addSpecial: true, parseSpecial: true));
        // Parsed, <s> is BOS and the text after it gets the dummy prefix again; unparsed it is text.
        Assert.Equal([1, 15043, 1, 3186], spm.Encode("Hello<s>world", addSpecial: true, parseSpecial: true));
        Assert.DoesNotContain(1, spm.Encode("Hello<s>world", addSpecial: false, parseSpecial: false));
        Assert.Equal("Hello world", spm.Decode(spm.Encode("Hello world", true, true)));
        Assert.Equal("naïve — 😀 ok\n", spm.Decode(spm.Encode("naïve — 😀 ok\n", true, true)));

        // Phi-3 (by its name, as llama.cpp): chat tokens swallow the whitespace after them.
        var phi = TokenizerLoader.Load(Vocab("phi-3"));
        var ids = phi.Encode("<|user|>\nHi<|end|>", addSpecial: false, parseSpecial: true);
        Assert.Equal(32010, ids[0]);
        Assert.Equal(32007, ids[^1]);
        Assert.Equal(phi.Encode("Hi", false, false), ids[1..^1]);
    }

    public static TheoryData<string> HfFamilies => ["llama2", "mistral-7b-v0.1", "phi-3-mini"];

    [SkippableTheory]
    [MemberData(nameof(HfFamilies))]
    public void Tokenizer_json_gives_hugging_faces_ids(string family)
    {
        string dir = TestFiles.SharedOrSkip($"data/tokenizers/hf/{family}");
        var tok = TokenizerLoader.Load(dir);
        Assert.IsType<HfSentencePieceTokenizer>(tok);
        using var reference = JsonDocument.Parse(File.ReadAllBytes(Path.Combine(dir, "reference.encodings.json")));
        Assert.Equal(reference.RootElement.GetProperty("vocab_size_with_added").GetInt32(), tok.VocabSize);
        var failures = new List<string>();
        int cases = 0;
        foreach (var c in reference.RootElement.GetProperty("cases").EnumerateArray())
        {
            cases++;
            string text = c.GetProperty("text").GetString()!;
            int[] Ids(string key) => c.GetProperty(key).EnumerateArray().Select(x => x.GetInt32()).ToArray();
            var plain = tok.Encode(text, addSpecial: false, parseSpecial: true);
            var special = tok.Encode(text, addSpecial: true, parseSpecial: true);
            if (!plain.SequenceEqual(Ids("ids"))) failures.Add($"{JsonSerializer.Serialize(text)}: expected [{string.Join(' ', Ids("ids"))}] got [{string.Join(' ', plain)}]");
            if (!special.SequenceEqual(Ids("ids_with_special"))) failures.Add($"{JsonSerializer.Serialize(text)} with special: expected [{string.Join(' ', Ids("ids_with_special"))}] got [{string.Join(' ', special)}]");
            var tokens = c.GetProperty("tokens").EnumerateArray().Select(x => x.GetString()).ToArray();
            // An added token's piece there is the text it matched (e.g. "▁<s>", "<|user|>\n"), so compare ordinary text only.
            if (!text.Contains('<') && !plain.Select(tok.TokenText).SequenceEqual(tokens)) failures.Add($"{JsonSerializer.Serialize(text)}: pieces differ");
            if (!text.Contains('<') && tok.Decode(plain) != c.GetProperty("decoded").GetString())
                failures.Add($"{JsonSerializer.Serialize(text)}: decoded {JsonSerializer.Serialize(tok.Decode(plain))}");
        }
        Assert.True(cases >= 50);
        Assert.True(failures.Count == 0, string.Join("\n", failures));
    }

    [SkippableFact]
    public void The_loader_dispatches_by_what_the_file_is()
    {
        Assert.IsType<Tokenizer>(TokenizerLoader.Load(TestFiles.Fixture("engine/tok1024.bin")));
        string json = TestFiles.SharedOrSkip("data/tokenizers/hf/llama2/tokenizer.json");
        Assert.IsType<HfSentencePieceTokenizer>(TokenizerLoader.Load(json));
        // The same family by either route: llama.cpp's GGUF and Hugging Face's file agree on ordinary text.
        var gguf = TokenizerLoader.Load(Vocab("llama-spm"));
        var hf = TokenizerLoader.Load(json);
        const string text = "The quick brown fox, 3.14 — naïve café 😀\n\tend";
        Assert.Equal(gguf.Encode(text, true, true), hf.Encode(text, true, true));
    }

    [SkippableFact]
    public void Llama_cpps_gguf_and_hugging_faces_file_agree_on_all_of_shakespeare()
    {
        // Two independent implementations (scores vs merge ranks) of the same vocabulary, on 1.1 MB of text
        // as one string: also checks that cutting the work where no token can span changes nothing.
        string text = File.ReadAllText(TestFiles.SharedOrSkip("data/text/shakespeare.txt"));
        var hf = TokenizerLoader.Load(TestFiles.SharedOrSkip("data/tokenizers/hf/llama2"));
        var gguf = TokenizerLoader.Load(Vocab("llama-spm"));
        var a = gguf.Encode(text, true, false);
        Assert.Equal(368_634, a.Length);
        Assert.Equal(a, hf.Encode(text, true, false));
        Assert.Equal(text, gguf.Decode(a));
    }

    [Fact]
    public void Loader_opens_byte_level_bpe_from_a_gguf_and_a_tokenizer_json()
    {
        var fromGguf = TokenizerLoader.Load(Vocab("gpt-2"));
        var fromJson = TokenizerLoader.Load(TestFiles.Fixture("tokenizers/hf/gpt2/tokenizer.json"));
        Assert.IsType<ByteLevelBpeTokenizer>(fromGguf);
        Assert.IsType<ByteLevelBpeTokenizer>(fromJson);
        // llama.cpp's gpt-2 suite through the loader, and the same ids from Hugging Face's file of the same vocabulary.
        foreach (var (text, ids) in Suite(Vocab("gpt-2")))
        {
            Assert.Equal(ids, fromGguf.Encode(text, addSpecial: false, parseSpecial: false));
            Assert.Equal(ids, fromJson.Encode(text, addSpecial: false, parseSpecial: false));
        }
        Assert.Equal("Ġthe", fromGguf.TokenText(fromGguf.Encode(" the", false, false)[0]));
    }

    [Fact]
    public void Unknown_tokenizers_are_refused_by_name()
    {
        using var dir = new ScratchDir();
        File.WriteAllText(dir.File("tokenizer.json"), """{"model":{"type":"Unigram","vocab":[]}}""");
        var e = Assert.Throws<NotSupportedException>(() => TokenizerLoader.Load(dir.Path));
        Assert.Contains("Unigram", e.Message);

        var bytes = File.ReadAllBytes(Vocab("llama-spm"));
        var meta = GgufFile.Parse(new MemoryStream(bytes), "x").Metadata
            .Select(kv => kv.Key == "tokenizer.ggml.model" ? new KeyValuePair<string, GgufValue>(kv.Key, GgufValue.String("t5")) : kv).ToList();
        var gguf = new GgufFile { Version = 3, Metadata = meta, Tensors = [], Alignment = 32, DataOffset = 0, FileLength = 0 };
        e = Assert.Throws<NotSupportedException>(() => TokenizerLoader.FromGguf(gguf, "x.gguf"));
        Assert.Contains("'t5'", e.Message);
    }

    [Fact]
    public void Tokenize_cli_prints_ids_and_json_by_the_schema()
    {
        string vocab = Vocab("llama-spm");
        var (code, stdout, err) = Tcodec("tokenize", vocab, "--text", "Hello world", "--ids");
        Assert.True(code == 0, err);
        Assert.Equal("[1,15043,3186]", stdout.Trim());
        (code, stdout, err) = Tcodec("tokenize", vocab, "--text", "Hello world", "--ids", "--no-bos");
        Assert.Equal("[15043,3186]", stdout.Trim());

        using var doc = Cli.JsonSchema.Run("tokenize", "tokenize", vocab, "--text", "Hello<s> world");
        var r = doc.RootElement;
        Assert.Equal(r.GetProperty("tokens").GetInt32(), r.GetProperty("token_ids").GetArrayLength());
        Assert.Equal(["<s>", "▁Hello", "<s>", "▁", "▁world"], r.GetProperty("pieces").EnumerateArray().Select(x => x.GetString()!).ToArray());

        (code, _, err) = Tcodec("tokenize", vocab);
        Assert.Equal(1, code);
        Assert.Contains("--text", err);
    }
}
