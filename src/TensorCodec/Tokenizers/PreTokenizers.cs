using System.Collections.Concurrent;
using System.Globalization;
using System.Text.Json;
using System.Text.RegularExpressions;

namespace TensorCodec.Tokenizers;

/// <summary>
/// How a split step sees the text. Each code point becomes one char, so .NET's Regex (UTF-16)
/// matches code points as llama.cpp's and Hugging Face's engines do.
/// </summary>
internal enum TextView
{
    /// <summary>Every code point in its own Unicode category (llama.cpp's hand-written gpt2/llama3 splitters, Hugging Face's regexes).</summary>
    Exact,
    /// <summary>
    /// llama.cpp's "collapsed" text for std::regex with \p{..}: ASCII as itself, non-ASCII whitespace as \v, and every
    /// other non-ASCII code point as one letter, digit or punctuation mark by category — symbols and marks count as letters there.
    /// </summary>
    LlamaCollapsed,
    /// <summary>llama.cpp's std::wregex text (no categories in the regex): code points as themselves, non-ASCII whitespace as \v.</summary>
    LlamaWide,
}

/// <summary>
/// A pre-tokenizer as a chain of regex splits: each step splits every piece from the step before into its
/// matches and the gaps between them (llama.cpp's unicode_regex_split, Hugging Face's Split "Isolated").
/// </summary>
internal sealed class RegexPreTokenizer
{
    /// <summary>GPT-2's pattern as llama.cpp spells it (no trailing \s+; its hand-written splitter has it).</summary>
    internal const string Gpt2 = @"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)";
    /// <summary>GPT-2's pattern as Hugging Face's ByteLevel pre-tokenizer spells it.</summary>
    internal const string Gpt2Hf = Gpt2 + @"|\s+";
    internal const string Llama3 = @"(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";
    internal const string Qwen2 = @"(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";
    /// <summary>Llama-3's Split regex as its tokenizer.json spells it (case-insensitive contractions).</summary>
    internal const string Llama3Hf = @"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";
    /// <summary>Qwen2's Split regex as its tokenizer.json spells it: Llama-3's with single digits.</summary>
    internal const string Qwen2Hf = @"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";

    // deepseek-llm's letters as llama-vocab.cpp lists them (a std::wregex class, no \p{L}); as \u escapes the code points
    // that Unicode normalization would change (U+1F7D, U+1FBE, U+1FD3, U+1FDB, U+2126, U+212A).
    const string DeepseekLetters = @"\s?[A-Za-zµÀ-ÖØ-öø-ƺƼ-ƿǄ-ʓʕ-ʯͰ-ͳͶͷͻ-ͽͿΆΈ-ΊΌΎ-ΡΣ-ϵϷ-ҁҊ-ԯԱ-ՖႠ-ჅᎠ-Ᏽᏸ-ᏽᲐ-ᲺᲽ-Ჿᴀ-ᴫᵫ-ᵷᵹ-ᶚḀ-ἕἘ-Ἕἠ-ὅὈ-Ὅὐ-ὗὙὛὝὟ-\u1F7Dᾀ-ᾴᾶ-ᾼ\u1FBEῂ-ῄῆ-ῌῐ-\u1FD3ῖ-\u1FDBῠ-Ῥῲ-ῴῶ-ῼℂℇℊ-ℓℕℙ-ℝℤ\u2126ℨ\u212A-ℭℯ-ℴℹℼ-ℿⅅ-ⅉⅎↃↄⰀ-ⱻⱾ-ⳤⳫ-ⳮⳲⳳꙀ-ꙭꚀ-ꚛꜢ-ꝯꝱ-ꞇꞋ-ꞎꭰ-ꮿﬀ-ﬆﬓ-ﬗＡ-Ｚａ-ｚ𐐀-𐑏𐒰-𐓓𐓘-𐓻𐲀-𐲲𐳀-𐳲𑢠-𑣟𞤀-𞥃]+";

    static readonly ConcurrentDictionary<string, Regex> Compiled = new();
    static readonly char[] CategoryChar = BuildCategoryChars();

    readonly (Regex Regex, TextView View, (int Lo, int Hi, char Stand)[] Beyond)[] _steps;

    /// <summary>What this pre-tokenizer is, for messages.</summary>
    public string Name { get; }

    RegexPreTokenizer(string name, (Regex, TextView, (int, int, char)[])[] steps) { Name = name; _steps = steps; }

    /// <summary>
    /// llama.cpp's pre-tokenizer for a <c>tokenizer.ggml.pre</c> value (llama-vocab.cpp's regex lists), or null when
    /// the value is not one we implement. A missing value is llama.cpp's "default".
    /// </summary>
    public static RegexPreTokenizer? ForLlamaCpp(string? pre, out bool ignoreMerges, out bool addBos)
    {
        ignoreMerges = false; addBos = false;
        string[]? exprs = pre switch
        {
            null or "" or "default" => [@"[\p{P}\$\+<=>\^~\|]+", Gpt2, @"\p{N}+", "[0-9][0-9][0-9]"],
            "llama3" or "llama-v3" or "llama-bpe" or "falcon3" or "dbrx" or "smaug-bpe" or "chatglm-bpe" => [Llama3],
            "deepseek-llm" => ["[\r\n]", DeepseekLetters, @"\s?[!-/:-~！-／：-～‘-‟　-。]+", @"\s+$", "[一-龥ࠀ-一가-퟿]+", @"\p{N}+"],
            "deepseek-coder" => ["[\r\n]", @"\s?\p{L}+", @"\s?\p{P}+", "[一-龥ࠀ-一가-퟿]+", @"\p{N}"],
            "falcon" => [@"[\p{P}\$\+<=>\^~\|`]+", Gpt2, "[0-9][0-9][0-9]"],
            "starcoder" or "refact" or "command-r" or "smollm" or "codeshell" or "exaone" or "minerva-7b" => [@"\p{N}", Gpt2],
            "gpt-2" or "phi-2" or "mpt" or "olmo" or "jais" or "roberta-bpe" or "gigachat" or "jina-es" or "jina-de"
                or "jina-v1-en" or "jina-v2-es" or "jina-v2-de" or "jina-v2-code" => [Gpt2],
            "qwen2" or "stablelm2" or "megrez" => [Qwen2],
            _ => null,
        };
        if (exprs is null) return null;
        if (pre is "llama3" or "llama-v3" or "llama-bpe" or "falcon3") { ignoreMerges = true; addBos = true; }
        var steps = exprs.Select(e =>
        {
            var view = ViewFor(e);
            var (pattern, beyond) = view == TextView.LlamaWide ? BeyondBmp(ToDotNet(e)) : (ToDotNet(e), []);
            return (Get(pattern), view, beyond);
        }).ToArray();
        return new RegexPreTokenizer($"llama.cpp pre-tokenizer '{(string.IsNullOrEmpty(pre) ? "default" : pre)}'", steps);
    }

    /// <summary>Hugging Face Split/Digits/ByteLevel steps, in Exact view.</summary>
    internal static RegexPreTokenizer FromPatterns(string name, IEnumerable<string> dotNetPatterns) =>
        new(name, dotNetPatterns.Select(p => (Get(p), TextView.Exact, Array.Empty<(int, int, char)>())).ToArray());

    // Code points beyond the BMP in a std::wregex class (one wchar_t each there, two UTF-16 units here): each
    // range becomes a noncharacter stand-in (U+FDD0 up) that the wide view spells its code points with.
    static (string Pattern, (int Lo, int Hi, char Stand)[] Ranges) BeyondBmp(string pattern)
    {
        var runes = pattern.EnumerateRunes().ToList();
        if (runes.All(r => r.IsBmp)) return (pattern, []);
        var ranges = new List<(int, int, char)>();
        var sb = new System.Text.StringBuilder();
        for (int i = 0; i < runes.Count; i++)
        {
            if (runes[i].IsBmp) { sb.Append(runes[i].ToString()); continue; }
            int lo = runes[i].Value, hi = lo;
            if (i + 2 < runes.Count && runes[i + 1].Value == '-' && !runes[i + 2].IsBmp) { hi = runes[i + 2].Value; i += 2; }
            char stand = (char)(0xFDD0 + ranges.Count);
            if (stand > 0xFDEF) throw new NotSupportedException("more than 32 code point ranges beyond the BMP in one pre-tokenizer regex");
            ranges.Add((lo, hi, stand));
            sb.Append(stand);
        }
        return (sb.ToString(), ranges.ToArray());
    }

    // llama.cpp runs its two hand-written splitters on true categories; every other regex with \p{..} on the
    // collapsed text, and the rest with std::wregex. std::regex's "$" is end of input only: .NET's \z.
    static TextView ViewFor(string expr) =>
        expr is Gpt2 or Llama3 ? TextView.Exact : expr.Contains(@"\p{") ? TextView.LlamaCollapsed : TextView.LlamaWide;

    static string ToDotNet(string expr) =>
        expr == Gpt2 ? Gpt2Hf : expr.EndsWith('$') && !expr.EndsWith(@"\$") ? expr[..^1] + @"\z" : expr;

    static Regex Get(string pattern) => Compiled.GetOrAdd(pattern, p => new Regex(p, RegexOptions.Compiled | RegexOptions.CultureInvariant));

    /// <summary>Splits <paramref name="text"/> into pieces, appended to <paramref name="pieces"/> as UTF-16 (start, length).</summary>
    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.AggressiveOptimization)]
    public void Split(ReadOnlySpan<char> text, List<(int Start, int Length)> pieces)
    {
        if (text.IsEmpty) return;
        // Code points and where each starts in UTF-16.
        var cps = new int[text.Length];
        var at = new int[text.Length + 1];
        int n = 0;
        for (int i = 0; i < text.Length; n++)
        {
            at[n] = i;
            char c = text[i];
            if (char.IsHighSurrogate(c) && i + 1 < text.Length && char.IsLowSurrogate(text[i + 1])) { cps[n] = char.ConvertToUtf32(c, text[i + 1]); i += 2; }
            else { cps[n] = c; i++; }
        }
        at[n] = text.Length;

        var frags = new List<(int, int)> { (0, n) };
        var next = new List<(int, int)>();
        var view = new char[n];
        TextView? built = null;
        bool builtBeyond = false;
        foreach (var (regex, kind, beyond) in _steps)
        {
            if (built != kind || beyond.Length > 0 || builtBeyond) { Map(cps, n, kind, beyond, view); built = kind; builtBeyond = beyond.Length > 0; }
            next.Clear();
            foreach (var (s, len) in frags)
            {
                int last = 0;
                foreach (var m in regex.EnumerateMatches(view.AsSpan(s, len)))
                {
                    if (m.Length == 0) continue;
                    if (m.Index > last) next.Add((s + last, m.Index - last));
                    next.Add((s + m.Index, m.Length));
                    last = m.Index + m.Length;
                }
                if (last < len) next.Add((s + last, len - last));
            }
            (frags, next) = (next, frags);
        }
        foreach (var (s, len) in frags) pieces.Add((at[s], at[s + len] - at[s]));
    }

    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.AggressiveOptimization)]
    static void Map(int[] cps, int n, TextView kind, (int Lo, int Hi, char Stand)[] beyond, char[] view)
    {
        for (int i = 0; i < n; i++)
        {
            int cp = cps[i];
            view[i] = kind switch
            {
                TextView.Exact => cp < 0x10000 ? (char)cp : CategoryChar[(int)CharUnicodeInfo.GetUnicodeCategory(cp)],
                _ when cp < 0x80 => (char)cp,
                _ when cp < 0x10000 && char.IsWhiteSpace((char)cp) => '\v',
                TextView.LlamaWide => cp is >= 0xFDD0 and <= 0xFDEF ? '\uFFFF' : cp < 0x10000 ? (char)cp : Beyond(cp, beyond),
                _ => Collapse(CharUnicodeInfo.GetUnicodeCategory(cp)),
            };
        }
    }

    static char Beyond(int cp, (int Lo, int Hi, char Stand)[] ranges)
    {
        foreach (var (lo, hi, stand) in ranges) if (cp >= lo && cp <= hi) return stand;
        return '\uFFFF';
    }

    // llama.cpp collapses to letter/number/punctuation; everything else falls back to "letter".
    static char Collapse(UnicodeCategory c) => c switch
    {
        UnicodeCategory.DecimalDigitNumber or UnicodeCategory.LetterNumber or UnicodeCategory.OtherNumber => '\u00B2',
        UnicodeCategory.ConnectorPunctuation or UnicodeCategory.DashPunctuation or UnicodeCategory.OpenPunctuation
            or UnicodeCategory.ClosePunctuation or UnicodeCategory.InitialQuotePunctuation or UnicodeCategory.FinalQuotePunctuation
            or UnicodeCategory.OtherPunctuation => '\u00A1',
        _ => '\u00C0',
    };

    // A BMP stand-in of each category, for code points beyond the BMP (Regex sees UTF-16 units).
    static char[] BuildCategoryChars()
    {
        var reps = new char[32];
        Array.Fill(reps, '\uFFFF');
        for (int c = 0xFFFF; c >= 0x80; c--)
            if (!char.IsSurrogate((char)c)) reps[(int)CharUnicodeInfo.GetUnicodeCategory(c)] = (char)c;
        return reps;
    }
}
