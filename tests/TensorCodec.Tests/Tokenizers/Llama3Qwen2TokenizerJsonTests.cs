using System.Text;
using System.Text.Json;
using System.Text.RegularExpressions;
using TensorCodec.Containers;
using TensorCodec.Quantization;
using TensorCodec.Tests.Quantization;
using TensorCodec.Tokenizers;
using Xunit.Abstractions;

namespace TensorCodec.Tests.Tokenizers;

/// <summary>
/// Llama-3 and Qwen2 style tokenizer.json files (a Split with their regex, then ByteLevel without its own): written as
/// GGUF with llama.cpp's tokenizer.ggml.pre ("llama-bpe", "qwen2") and tokenized there as from the file. The files
/// are small synthetic ones: 256 byte tokens plus merges learned in the test.
/// </summary>
public class Llama3Qwen2TokenizerJsonTests(ITestOutputHelper output)
{
    const string Corpus = """
        The quick brown fox jumps over the lazy dog. They've said it's 1234 times, and we'll see 3.14159 again.
        def tokenize(text):\n    return [t for t in text.split() if t]  # comment
        Les élèves naïfs du café — résumé. 中文测试 日本語のテキスト 한국어 "quoted" (parens) [brackets] {braces}
        """;

    /// <summary>A tokenizer.json with <paramref name="pattern"/> learned on <see cref="Corpus"/> (+ the hard strings).</summary>
    static string Write(ScratchDir dir, string name, string pattern, bool ignoreMerges, bool nfc, bool bosTemplate, int merges = 600)
    {
        var map = ByteUnicode.ByteToChar;
        string Bytes(string s) => new(Encoding.UTF8.GetBytes(s).Select(b => map[b]).ToArray());
        var words = new Dictionary<string, int>();
        foreach (var text in new[] { Corpus }.Concat(HfTokenizersInteropTests.HardStrings))
            foreach (Match m in new Regex(pattern).Matches(text)) words[Bytes(m.Value)] = words.GetValueOrDefault(Bytes(m.Value)) + 1;
        var split = words.ToDictionary(kv => kv.Key, kv => kv.Key.Select(c => c.ToString()).ToList());
        var vocab = new List<string>(Enumerable.Range(0, 256).Select(b => map[b].ToString()));
        var mergeList = new List<string[]>();
        for (int k = 0; k < merges; k++)
        {
            var counts = new Dictionary<(string, string), int>();
            foreach (var (w, parts) in split)
                for (int i = 0; i + 1 < parts.Count; i++) counts[(parts[i], parts[i + 1])] = counts.GetValueOrDefault((parts[i], parts[i + 1])) + words[w];
            if (counts.Count == 0) break;
            var best = counts.OrderByDescending(kv => kv.Value).ThenBy(kv => kv.Key.Item1 + " " + kv.Key.Item2, StringComparer.Ordinal).First().Key;
            mergeList.Add([best.Item1, best.Item2]);
            vocab.Add(best.Item1 + best.Item2);
            foreach (var parts in split.Values)
                for (int i = 0; i + 1 < parts.Count; i++)
                    if (parts[i] == best.Item1 && parts[i + 1] == best.Item2) { parts[i] += parts[i + 1]; parts.RemoveAt(i + 1); }
        }
        int bos = vocab.Count, eos = vocab.Count + 1;
        object Added(int id, string content) => new { id, content, single_word = false, lstrip = false, rstrip = false, normalized = false, special = true };
        object post = bosTemplate
            ? new Dictionary<string, object>
            {
                ["type"] = "TemplateProcessing",
                ["single"] = new object[] { new { SpecialToken = new { id = "<|begin_of_text|>", type_id = 0 } }, new { Sequence = new { id = "A", type_id = 0 } } },
                ["pair"] = new object[] { new { Sequence = new { id = "A", type_id = 0 } } },
                ["special_tokens"] = new Dictionary<string, object> { ["<|begin_of_text|>"] = new { id = "<|begin_of_text|>", ids = new[] { bos }, tokens = new[] { "<|begin_of_text|>" } } },
            }
            : new { type = "ByteLevel", add_prefix_space = false, trim_offsets = false, use_regex = false };
        var doc = new Dictionary<string, object?>
        {
            ["version"] = "1.0",
            ["added_tokens"] = new[] { Added(bos, "<|begin_of_text|>"), Added(eos, "<|end_of_text|>") },
            ["normalizer"] = nfc ? new { type = "NFC" } : null,
            ["pre_tokenizer"] = new
            {
                type = "Sequence",
                pretokenizers = new object[]
                {
                    new { type = "Split", pattern = new { Regex = pattern }, behavior = "Isolated", invert = false },
                    new { type = "ByteLevel", add_prefix_space = false, trim_offsets = true, use_regex = false },
                },
            },
            ["post_processor"] = post,
            ["decoder"] = new { type = "ByteLevel", add_prefix_space = true, trim_offsets = true, use_regex = true },
            ["model"] = new Dictionary<string, object?>
            {
                ["type"] = "BPE", ["dropout"] = null, ["unk_token"] = null, ["continuing_subword_prefix"] = null, ["end_of_word_suffix"] = null,
                ["fuse_unk"] = false, ["byte_fallback"] = false, ["ignore_merges"] = ignoreMerges,
                ["vocab"] = vocab.Select((v, i) => (v, i)).ToDictionary(x => x.v, x => x.i),
                ["merges"] = mergeList,
            },
        };
        string sub = Directory.CreateDirectory(Path.Combine(dir.Path, name)).FullName;
        string path = Path.Combine(sub, "tokenizer.json");
        File.WriteAllText(path, JsonSerializer.Serialize(doc));
        File.WriteAllText(Path.Combine(sub, "tokenizer_config.json"), """{"bos_token":"<|begin_of_text|>","eos_token":"<|end_of_text|>"}""");
        return path;
    }

    /// <summary>The tokenizer llama.cpp gets: our GGUF keys for the file, read back as llama.cpp reads them.</summary>
    static ITextTokenizer ThroughGguf(ITextTokenizer tok, string path)
    {
        var meta = TokenizerMetadata.For(tok, path, tok.VocabSize + 3, out var reason);
        Assert.True(meta is not null, reason);
        var gguf = new GgufFile { Version = 3, Metadata = meta, Tensors = [], Alignment = 32, DataOffset = 0, FileLength = 0 };
        return TokenizerLoader.FromGguf(gguf, path + ".gguf");
    }

    static List<string> Texts()
    {
        // Symbols and marks between letters: llama.cpp runs the qwen2 regex on a collapsed text that calls them letters.
        var texts = new List<string>(HfTokenizersInteropTests.HardStrings)
            { Corpus, "ſtrange 'S 'LL 'Ve", "a😀b x©y ab\u0301\u0302c ™z", "<|begin_of_text|>Hi<|end_of_text|>" };
        if (TestFiles.Shared("data/text/shakespeare.txt") is { } s) texts.Add(File.ReadAllText(s)[..200_000]);
        return texts;
    }

    [Theory]
    [InlineData("llama3", "llama-bpe")]
    [InlineData("qwen2", "qwen2")]
    public void Llama3_and_qwen2_files_map_to_llama_cpps_pre_tokenizer_and_tokenize_alike(string family, string pre)
    {
        using var dir = new ScratchDir();
        bool llama3 = family == "llama3";
        string path = Write(dir, family, llama3 ? RegexPreTokenizer.Llama3Hf : RegexPreTokenizer.Qwen2Hf, ignoreMerges: llama3, nfc: !llama3, bosTemplate: llama3);
        var tok = Assert.IsType<ByteLevelBpeTokenizer>(TokenizerLoader.Load(path));
        Assert.Equal(pre, tok.LlamaCppPre);
        var gguf = Assert.IsType<ByteLevelBpeTokenizer>(ThroughGguf(tok, path));
        Assert.Contains($"'{pre}'", gguf.PreTokenizerName);
        int compared = 0;
        foreach (var text in Texts())
        {
            // llama.cpp has no NFC step: the comparison is on composed text, where NFC changes nothing.
            string t = text.Normalize(NormalizationForm.FormC);
            foreach (var (addSpecial, parse) in new[] { (false, false), (true, true) })
            {
                var ours = tok.Encode(t, addSpecial, parse);
                var theirs = gguf.Encode(t, addSpecial, parse);
                Assert.True(ours.SequenceEqual(theirs), HfTokenizersInteropTests.Describe(t, theirs, ours));
            }
            compared++;
        }
        Assert.True(compared > 40, $"{compared} strings compared");
        Assert.Equal(llama3 ? [tok.BosId!.Value, .. tok.Encode("Hi", false, false)] : tok.Encode("Hi", false, false), tok.Encode("Hi", true, true));
        // NFC: a decomposed é tokenizes as the composed one (Qwen2's normalizer), not in Llama-3's file.
        Assert.Equal(!llama3, tok.Encode("cafe\u0301", false, false).SequenceEqual(tok.Encode("café", false, false)));
    }

    [Theory]
    [InlineData("llama3", false)]
    [InlineData("qwen2", true)]
    public void A_merges_flag_llama_cpp_would_not_apply_is_not_written(string family, bool ignoreMerges)
    {
        // llama.cpp's llama-bpe always ignores merges and its qwen2 never does: the other flag has no GGUF spelling.
        using var dir = new ScratchDir();
        string path = Write(dir, family, family == "llama3" ? RegexPreTokenizer.Llama3Hf : RegexPreTokenizer.Qwen2Hf, ignoreMerges, nfc: false, bosTemplate: false, merges: 50);
        var tok = Assert.IsType<ByteLevelBpeTokenizer>(TokenizerLoader.Load(path));
        Assert.Null(tok.LlamaCppPre);
        Assert.Null(TokenizerMetadata.For(tok, path, tok.VocabSize, out var reason));
        Assert.Contains("tokenizer.ggml.pre", reason);
    }

    [SkippableTheory]
    [InlineData("llama3")]
    [InlineData("qwen2")]
    public void Our_ids_equal_hugging_faces_on_the_synthetic_files(string family)
    {
        string modules = HfTokenizersInteropTests.ModulesOrSkip();
        using var dir = new ScratchDir();
        bool llama3 = family == "llama3";
        string path = Write(dir, family, llama3 ? RegexPreTokenizer.Llama3Hf : RegexPreTokenizer.Qwen2Hf, ignoreMerges: llama3, nfc: !llama3, bosTemplate: llama3);
        var tok = TokenizerLoader.Load(path);
        var texts = Texts();
        texts.Add("cafe\u0301 e\u0301le\u0300ve A\u030A");
        var theirs = HfTokenizersInteropTests.HfEncode(modules, path, Path.Combine(Path.GetDirectoryName(path)!, "tokenizer_config.json"), texts, output);
        var failures = new List<string>();
        for (int i = 0; i < texts.Count; i++)
        {
            var ours = tok.Encode(texts[i], false, true);
            if (!ours.SequenceEqual(theirs[i].Plain)) failures.Add(HfTokenizersInteropTests.Describe(texts[i], theirs[i].Plain, ours));
            if (theirs[i].Special is { } s && tok.Encode(texts[i], true, true) is var w && !w.SequenceEqual(s)) failures.Add("with specials: " + HfTokenizersInteropTests.Describe(texts[i], s, w));
        }
        Assert.True(failures.Count == 0, string.Join("\n", failures));
    }

    [SkippableTheory]
    [InlineData("llama3")]
    [InlineData("qwen2")]
    public void Llama_cpp_tokenizes_the_gguf_we_write_as_we_do(string family)
    {
        string? modules = Environment.GetEnvironmentVariable(NodeLlamaFactAttribute.Variable);
        Skip.If(string.IsNullOrEmpty(modules) || !Directory.Exists(Path.Combine(modules, "node_modules", "node-llama-cpp")),
            $"{NodeLlamaFactAttribute.Variable} does not name a folder with node-llama-cpp installed");
        using var dir = new ScratchDir();
        bool llama3 = family == "llama3";
        string path = Write(dir, family, llama3 ? RegexPreTokenizer.Llama3Hf : RegexPreTokenizer.Qwen2Hf, ignoreMerges: llama3, nfc: !llama3, bosTemplate: llama3);
        var tok = TokenizerLoader.Load(path);
        // A vocabulary-only GGUF: the hyperparameters of llama.cpp's own gpt-2 vocabulary file, our tokenizer keys.
        var baseline = GgufFile.Parse(new MemoryStream(File.ReadAllBytes(TestFiles.Fixture("tokenizers/llama.cpp-vocab/ggml-vocab-gpt-2.gguf"))), "gpt-2");
        var meta = baseline.Metadata.Where(kv => !kv.Key.StartsWith("tokenizer.", StringComparison.Ordinal)).ToList();
        meta.AddRange(TokenizerMetadata.For(tok, path, tok.VocabSize, out var reason) ?? throw new InvalidOperationException(reason));
        string gguf = dir.File($"{family}.gguf");
        using (var f = File.Create(gguf)) GgufWriter.Write(f, meta, []);
        // node-llama-cpp's tokenize parses no special tokens and adds none; llama.cpp has no NFC step (composed text only).
        var texts = Texts().Select(t => t.Normalize(NormalizationForm.FormC)).Where(t => t.Length > 0).ToList();
        string cases = dir.File("cases.json");
        File.WriteAllText(cases, JsonSerializer.Serialize(texts));
        string script = Path.Combine(Path.GetDirectoryName(NodeLlamaFactAttribute.Script())!, "llama-tokenize.mjs");
        var r = Assert.Single(NodeLlamaFactAttribute.RunScript([script, "--modules", modules!, "--model", gguf, "--cases", cases], output)).RootElement;
        var theirs = r.GetProperty("ids").EnumerateArray().Select(e => e.EnumerateArray().Select(x => x.GetInt32()).ToArray()).ToArray();
        Assert.Equal(texts.Count, theirs.Length);
        var failures = new List<string>();
        for (int i = 0; i < texts.Count; i++)
            if (tok.Encode(texts[i], false, false) is var ours && !ours.SequenceEqual(theirs[i])) failures.Add(HfTokenizersInteropTests.Describe(texts[i], theirs[i], ours));
        Assert.True(failures.Count == 0, string.Join("\n", failures));
    }
}
