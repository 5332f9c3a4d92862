using System.Text.Json;
using TensorCodec.Tests.Quantization;
using TensorCodec.Tokenizers;
using Xunit.Abstractions;

namespace TensorCodec.Tests.Tokenizers;

/// <summary>
/// Our tokenizer.json tokenizers against Hugging Face's own JavaScript library (@huggingface/tokenizers), run
/// through tests/interop/hf-tokenize.mjs. Runs only when TCODEC_HF_TOKENIZERS names a folder where the npm
/// package is installed (.ci/run installs it next to node-llama-cpp).
/// </summary>
public class HfTokenizersInteropTests(ITestOutputHelper output)
{
    public const string Variable = "TCODEC_HF_TOKENIZERS";

    /// <summary>The folder holding node_modules/@huggingface/tokenizers; skips the test (with the reason) when absent.</summary>
    public static string ModulesOrSkip()
    {
        string? dir = Environment.GetEnvironmentVariable(Variable);
        Skip.If(string.IsNullOrEmpty(dir), $"{Variable} is not set: install @huggingface/tokenizers (see .ci/run) and point {Variable} at its folder");
        Skip.IfNot(File.Exists(Path.Combine(dir!, "node_modules", "@huggingface", "tokenizers", "package.json")),
            $"{Variable}={dir} has no node_modules/@huggingface/tokenizers");
        return dir!;
    }

    /// <summary>Hugging Face's ids for each string, without and (for strings up to 10,000 chars, else null) with specials.</summary>
    public static (int[] Plain, int[]? Special)[] HfEncode(string modules, string tokenizerJson, string? config, IReadOnlyList<string> texts, ITestOutputHelper output)
    {
        using var dir = new ScratchDir();
        string cases = dir.File("cases.json");
        File.WriteAllText(cases, JsonSerializer.Serialize(texts));
        string script = Path.Combine(Path.GetDirectoryName(NodeLlamaFactAttribute.Script())!, "hf-tokenize.mjs");
        var args = new List<string> { script, "--modules", modules, "--tokenizer", tokenizerJson, "--cases", cases };
        if (config is not null && File.Exists(config)) args.AddRange(["--config", config]);
        var r = Assert.Single(NodeLlamaFactAttribute.RunScript(args, new Quiet(output))).RootElement;
        static int[]? Ids(JsonElement e) => e.ValueKind == JsonValueKind.Null ? null : e.EnumerateArray().Select(x => x.GetInt32()).ToArray();
        var plain = r.GetProperty("ids").EnumerateArray().Select(e => Ids(e)!).ToArray();
        var special = r.GetProperty("ids_with_special").EnumerateArray().Select(Ids).ToArray();
        Assert.Equal(texts.Count, plain.Length);
        return plain.Select((p, i) => (p, special[i])).ToArray();
    }

    /// <summary>Keeps megabytes of ids out of the test log: only stderr-sized lines pass.</summary>
    sealed class Quiet(ITestOutputHelper inner) : ITestOutputHelper
    {
        public void WriteLine(string message) { if (message.Length < 4000) inner.WriteLine(message); }
        public void WriteLine(string format, params object[] args) => WriteLine(string.Format(format, args));
    }

    /// <summary>Whitespace runs, tabs and newlines, emoji, CJK, accents, digits, code: where tokenizers differ.</summary>
    public static readonly string[] HardStrings =
    [
        "Hello world", " Hello world", "Hello  world", "   leading", "trailing   ", " ", "  ", "   ", "\t", "\n", "\r\n", "\n\n\n",
        "a\tb\t\tc", "line one\nline two\n\n  indented\n\t\ttabbed\n", "  two  spaces\t\ttabs\n\n\nnewlines \n ", "\r\nwindows\r\n\r\n",
        "😀", "😀🤖 emoji 👨‍👩‍👧 family 🏳️‍🌈 flag ✋🏽 skin", "🦙🦙🦙", "❤️‍🔥 and ☕",
        "中文测试", "日本語のテキスト、句読点。", "한국어 텍스트", "混合 mixed 文本 text", "ｆｕｌｌｗｉｄｔｈ ＡＢＣ １２３",
        "café naïve résumé Ångström", "ﬁ ligature", "Ελληνικά Кириллица עברית العربية हिन्दी ไทย",
        "e\u0301 combining vs é", "\u00a0nbsp\u00a0 and \u2028line sep\u2029para", "zero\u200bwidth",
        "0", "7", "42", "123", "1234", "12345", "1234567890", "3.14159", "1,000,000", "-0.5e-10", "2024-01-31 12:34:56", "v1.2.3",
        "def f(x):\n    return x**2  # comment\n", "\tif (a != b) { return a->c[i++]; }\n", "for i in range(10):\n\tprint(i)",
        "<div class=\"x\">&amp;</div>", "SELECT * FROM t WHERE id='1';", "x = [1, 2, 3]  # ok?!", "$HOME/.config && echo ~",
        "don't I'm we'll they've she'd it's O'Neil 'quoted' DON'T", "He said: \"Hi!\" -- (really?) ... ok.", "...!!!???", "__init__ -- ==> <==",
        "ALL CAPS WORDS", "camelCaseWords snake_case_words kebab-case-words", "http://example.com/a?b=c&d=e#f",
    ];

    public static TheoryData<string> Families => ["gpt2", "smollm2", "llama2", "mistral-7b-v0.1", "phi-3-mini"];

    static string Folder(string family)
    {
        string fixture = TestFiles.Fixture($"tokenizers/hf/{family}");
        return File.Exists(Path.Combine(fixture, "tokenizer.json")) ? fixture : TestFiles.SharedOrSkip($"data/tokenizers/hf/{family}");
    }

    [SkippableTheory]
    [MemberData(nameof(Families))]
    public void Our_ids_equal_hugging_faces_on_hard_strings_and_shakespeare(string family)
    {
        string modules = ModulesOrSkip();
        string folder = Folder(family);
        string json = Path.Combine(folder, "tokenizer.json");
        var tok = TokenizerLoader.Load(json);
        string shakespeare = File.ReadAllText(TestFiles.SharedOrSkip("data/text/shakespeare.txt"));
        // Byte-level BPE takes the whole text as one string; Hugging Face's JavaScript SentencePiece BPE needs
        // ~2 min for that (no pre-tokenizer cuts it), so those families take it paragraph by paragraph.
        var texts = new List<string>(HardStrings);
        if (tok is ByteLevelBpeTokenizer) texts.Add(shakespeare);
        else texts.AddRange(shakespeare.Split("\n\n"));
        var theirs = HfEncode(modules, json, Path.Combine(folder, "tokenizer_config.json"), texts, output);
        var failures = new List<string>();
        for (int i = 0; i < texts.Count && failures.Count < 20; i++)
        {
            var plain = tok.Encode(texts[i], addSpecial: false, parseSpecial: true);
            if (!plain.SequenceEqual(theirs[i].Plain)) failures.Add(Describe(texts[i], theirs[i].Plain, plain));
            if (theirs[i].Special is { } s && tok.Encode(texts[i], addSpecial: true, parseSpecial: true) is var withSpecial && !withSpecial.SequenceEqual(s))
                failures.Add("with specials: " + Describe(texts[i], s, withSpecial));
        }
        Assert.True(failures.Count == 0, string.Join("\n", failures));
    }

    /// <summary>The first difference, with a little context, so a 300,000-id mismatch stays readable.</summary>
    internal static string Describe(string text, int[] expected, int[] got)
    {
        int at = 0;
        while (at < expected.Length && at < got.Length && expected[at] == got[at]) at++;
        int from = Math.Max(0, at - 3);
        string Window(int[] a) => string.Join(' ', a.Skip(from).Take(10));
        string shown = text.Length > 80 ? text[..80] + "…" : text;
        return $"{JsonSerializer.Serialize(shown)} ({text.Length} chars): first difference at id {at} of {expected.Length}/{got.Length}: expected [{Window(expected)}] got [{Window(got)}]";
    }
}
