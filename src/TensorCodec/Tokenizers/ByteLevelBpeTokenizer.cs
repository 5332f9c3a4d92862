using System.Runtime.CompilerServices;
using System.Text;
using System.Text.Json;
using TensorCodec.Containers;

namespace TensorCodec.Tokenizers;

/// <summary>
/// Byte-level BPE (GPT-2 style): special tokens split out first, then a pre-tokenizer splits the text, each piece's
/// UTF-8 bytes are spelled with GPT-2's byte-to-unicode map and merged by rank. Read from a GGUF
/// (<c>tokenizer.ggml.model</c> = "gpt2", with llama.cpp's pre-tokenizer for <c>tokenizer.ggml.pre</c>) or from a
/// Hugging Face <c>tokenizer.json</c> (model BPE with a ByteLevel pre-tokenizer and decoder).
/// </summary>
public sealed class ByteLevelBpeTokenizer : ITextTokenizer
{
    // llama.cpp's token types (llama_token_type).
    const int Normal = 1, Unknown = 2, Control = 3, UserDefined = 4;

    // Names llama.cpp treats as control tokens whatever their stored type (its end-of-generation and FIM detection).
    static readonly HashSet<string> LlamaCppControlNames =
    [
        "<|eot_id|>", "<|im_end|>", "<|end|>", "<end_of_turn>", "<|endoftext|>", "<EOT>", "<｜end▁of▁sentence｜>", "<|eom_id|>",
        "<|fim_prefix|>", "<fim-prefix>", "<｜fim▁begin｜>", "<PRE>", "<|fim_suffix|>", "<fim-suffix>", "<｜fim▁hole｜>", "<SUF>",
        "<|fim_middle|>", "<fim-middle>", "<｜fim▁end｜>", "<MID>", "<|fim_pad|>", "<fim-pad>", "<PAD>",
        "<|fim_repo|>", "<|repo_name|>", "<fim-repo>", "<REPO>", "<|file_sep|>",
    ];

    readonly string[] _tokens;
    readonly int[] _types;
    readonly Dictionary<string, int> _ids;
    readonly Dictionary<long, (int Rank, int Merged)> _merges = new(PairComparer.Instance);
    readonly List<string> _extra = []; // merge parts that are not tokens: ids from _tokens.Length up
    readonly int[] _byteIds = new int[256];
    readonly RegexPreTokenizer _pre;
    readonly bool _ignoreMerges, _addBos, _addEos, _llamaFallback, _prefixSpace;
    readonly int? _unkId;
    // Special tokens, longest first: (text, id, split even without parseSpecial).
    readonly (string Text, int Id, bool Always)[] _specials;
    // Pieces already encoded (text -> ids), shared by all callers under a lock.
    readonly Dictionary<string, int[]> _cache = new(StringComparer.Ordinal);
    readonly Dictionary<string, int[]>.AlternateLookup<ReadOnlySpan<char>> _cacheBySpan;
    const int CacheLimit = 1 << 17;

    /// <summary>Number of token ids (the vocabulary and its added tokens).</summary>
    public int VocabSize => _tokens.Length;
    /// <summary>Beginning-of-sequence id, if the vocabulary names one.</summary>
    public int? BosId { get; }
    /// <summary>End-of-sequence id, if the vocabulary names one.</summary>
    public int? EosId { get; }
    int ITextTokenizer.BosId => BosId ?? -1;
    int ITextTokenizer.EosId => EosId ?? -1;

    /// <summary>The token's string as the vocabulary stores it (GPT-2's byte-to-character form, e.g. <c>Ġthe</c>).</summary>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="id"/> is not below <see cref="VocabSize"/>.</exception>
    public string TokenText(int id) => (uint)id < (uint)_tokens.Length ? _tokens[id]
        : throw new ArgumentOutOfRangeException(nameof(id), id, $"not below the vocabulary size {_tokens.Length}");
    /// <summary>The pre-tokenizer in use, e.g. "llama.cpp pre-tokenizer 'gpt-2'".</summary>
    public string PreTokenizerName => _pre.Name;

    /// <summary>llama.cpp's <c>tokenizer.ggml.pre</c> name for a tokenizer.json pre-tokenizer it implements the same way; null when none does.</summary>
    internal string? LlamaCppPre { get; private init; }
    bool _nfc; // tokenizer.json's NFC normalizer, applied to each text fragment (not to added tokens)
    internal bool AddBos => _addBos;
    internal bool AddEos => _addEos;
    internal int? UnkId => _unkId;
    internal int TokenType(int id) => _types[id];

    /// <summary>The merges in rank order, as GGUF stores them ("left right").</summary>
    internal string[] MergeTexts()
    {
        string Text(int id) => id < _tokens.Length ? _tokens[id] : _extra[id - _tokens.Length];
        return _merges.OrderBy(kv => kv.Value.Rank).Select(kv => Text((int)(kv.Key >> 32)) + " " + Text((int)(uint)kv.Key)).ToArray();
    }

    ByteLevelBpeTokenizer(string[] tokens, int[] types, IEnumerable<(string Left, string Right)> merges, RegexPreTokenizer pre,
        int? bos, int? eos, bool addBos, bool addEos, bool ignoreMerges, bool llamaFallback, bool prefixSpace, int? unk,
        IEnumerable<(string, int, bool)> specials)
    {
        _tokens = tokens; _types = types; _pre = pre;
        BosId = bos; EosId = eos; _addBos = addBos && bos is not null; _addEos = addEos && eos is not null;
        _ignoreMerges = ignoreMerges; _llamaFallback = llamaFallback; _prefixSpace = prefixSpace; _unkId = unk;
        _ids = new Dictionary<string, int>(tokens.Length, StringComparer.Ordinal);
        for (int i = 0; i < tokens.Length; i++) _ids.TryAdd(tokens[i], i); // first id wins for a repeated text
        for (int b = 0; b < 256; b++) _byteIds[b] = Intern(ByteUnicode.ByteToChar[b].ToString());
        int rank = 0;
        foreach (var (l, r) in merges)
        {
            long key = Key(Intern(l), Intern(r));
            _merges.TryAdd(key, (rank, Intern(l + r)));
            rank++;
        }
        _specials = specials.Where(s => s.Item1.Length > 0).OrderByDescending(s => s.Item1.Length).ToArray();
        _cacheBySpan = _cache.GetAlternateLookup<ReadOnlySpan<char>>();
    }

    int Intern(string s)
    {
        if (_ids.TryGetValue(s, out int id)) return id;
        _extra.Add(s);
        id = _tokens.Length + _extra.Count - 1;
        _ids[s] = id;
        return id;
    }

    static long Key(int left, int right) => ((long)left << 32) | (uint)right;

    /// <summary>
    /// The byte-level BPE vocabulary in a GGUF's <c>tokenizer.ggml.*</c> keys (model "gpt2"): tokens, merges,
    /// token_type, pre, bos/eos ids and add_bos_token/add_eos_token, as llama.cpp reads them.
    /// </summary>
    /// <exception cref="TensorFormatException">A key is missing or malformed, or the model or pre-tokenizer is not supported.</exception>
    public static ByteLevelBpeTokenizer FromGguf(GgufFile gguf, string path)
    {
        string model = Str(gguf, "tokenizer.ggml.model", path) ?? throw new TensorFormatException(path, null, "tokenizer.ggml.model", "is missing");
        if (model != "gpt2") throw new TensorFormatException(path, null, "tokenizer.ggml.model", $"is '{model}', not 'gpt2' (byte-level BPE)");
        if (gguf.Find("tokenizer.ggml.tokens")?.Value is not GgufArray { Items: string[] tokens })
            throw new TensorFormatException(path, null, "tokenizer.ggml.tokens", "is missing or not a string array");
        if (gguf.Find("tokenizer.ggml.merges")?.Value is not GgufArray { Items: string[] merges })
            throw new TensorFormatException(path, null, "tokenizer.ggml.merges", "is missing or not a string array");
        int[] types = gguf.Find("tokenizer.ggml.token_type") switch
        {
            null => Enumerable.Repeat(Normal, tokens.Length).ToArray(),
            { Value: GgufArray { Items: int[] t } } => t,
            var v => throw new TensorFormatException(path, null, "tokenizer.ggml.token_type", $"is {v.Type}, not an int32 array"),
        };
        if (types.Length != tokens.Length)
            throw new TensorFormatException(path, null, "tokenizer.ggml.token_type", $"has {types.Length} entries for {tokens.Length} tokens");
        tokens = tokens.Select((t, i) => t.Length == 0 ? $"[EMPTY_{i}]" : t).ToArray(); // as llama.cpp names empty tokens
        types = (int[])types.Clone();
        for (int i = 0; i < tokens.Length; i++) if (LlamaCppControlNames.Contains(tokens[i])) types[i] = Control;

        string? pre = Str(gguf, "tokenizer.ggml.pre", path);
        var preTok = RegexPreTokenizer.ForLlamaCpp(pre, out bool ignoreMerges, out bool addBos)
            ?? throw new TensorFormatException(path, null, "tokenizer.ggml.pre", $"is '{pre}', a pre-tokenizer we do not implement");
        bool addEos = false;
        addBos = Bool(gguf, "tokenizer.ggml.add_bos_token", path) ?? addBos;
        addEos = Bool(gguf, "tokenizer.ggml.add_eos_token", path) ?? addEos;
        // llama.cpp's defaults for "gpt2" are 11/11; an id outside the vocabulary keeps the default.
        int? Id(string key, int? dflt)
        {
            int? v = Int(gguf, key, path);
            return v is { } x && x >= 0 && x < tokens.Length ? x : dflt is { } d && d < tokens.Length ? d : null;
        }
        int? bos = pre == "chatglm-bpe" ? null : Id("tokenizer.ggml.bos_token_id", 11);
        int? eos = Id("tokenizer.ggml.eos_token_id", 11);

        var parsed = new List<(string, string)>(merges.Length);
        for (int i = 0; i < merges.Length; i++)
        {
            string m = merges[i];
            int sp = m.Length > 1 ? m.IndexOf(' ', 1) : -1; // llama.cpp: the first space after the first character
            parsed.Add(sp < 0 ? ("", "") : (m[..sp], m[(sp + 1)..]));
        }
        // llama.cpp splits out control, user-defined and unknown tokens; control and unknown only when parsing specials.
        var specials = new List<(string, int, bool)>();
        for (int i = 0; i < tokens.Length; i++)
            if (types[i] is Control or UserDefined or Unknown) specials.Add((tokens[i], i, types[i] == UserDefined));
        return new ByteLevelBpeTokenizer(tokens, types, parsed, preTok, bos, eos, addBos, addEos, ignoreMerges,
            llamaFallback: true, prefixSpace: false, unk: null, specials);
    }

    /// <summary>
    /// A Hugging Face <c>tokenizer.json</c> with model BPE, a ByteLevel (or Sequence of Split/Digits/ByteLevel)
    /// pre-tokenizer and a ByteLevel decoder, optionally an NFC normalizer (Qwen2's); <c>tokenizer_config.json</c>
    /// beside it names BOS/EOS. Anything else (another normalizer, model or pre-tokenizer, dropout, subword prefixes)
    /// is refused by name.
    /// </summary>
    /// <exception cref="TensorFormatException">The file is malformed or uses something we do not implement.</exception>
    public static ByteLevelBpeTokenizer FromTokenizerJson(string path)
    {
        using var doc = ReadJson(path);
        var root = doc.RootElement;
        var modelEl = Prop(root, "model", path);
        string type = modelEl.TryGetProperty("type", out var t) ? t.GetString() ?? "" : "BPE";
        if (type != "BPE") throw new TensorFormatException(path, null, "model.type", $"is '{type}'; only BPE is supported here");
        // NFC (Qwen2's) changes only text that is not already composed; any other normalizer is refused.
        bool nfc = false;
        if (root.TryGetProperty("normalizer", out var norm) && norm.ValueKind != JsonValueKind.Null && !(nfc = TypeOf(norm) == "NFC"))
            throw new TensorFormatException(path, null, "normalizer", $"is '{TypeOf(norm)}', a normalizer we do not implement for byte-level BPE");
        foreach (var (key, ok) in new (string, Func<JsonElement, bool>)[]
        {
            ("dropout", e => e.ValueKind == JsonValueKind.Null),
            ("continuing_subword_prefix", e => e.ValueKind == JsonValueKind.Null || e.GetString() == ""),
            ("end_of_word_suffix", e => e.ValueKind == JsonValueKind.Null || e.GetString() == ""),
            ("byte_fallback", e => e.ValueKind is JsonValueKind.False or JsonValueKind.Null),
        })
            if (modelEl.TryGetProperty(key, out var v) && !ok(v))
                throw new TensorFormatException(path, null, "model." + key, $"is {v.GetRawText()}; not supported");
        bool ignoreMerges = modelEl.TryGetProperty("ignore_merges", out var im) && im.ValueKind == JsonValueKind.True;
        if (root.TryGetProperty("decoder", out var dec) && dec.ValueKind != JsonValueKind.Null && TypeOf(dec) != "ByteLevel")
            throw new TensorFormatException(path, null, "decoder", $"is '{TypeOf(dec)}'; only ByteLevel is supported here");

        // Vocabulary, then added tokens (which may extend it).
        var vocab = Prop(modelEl, "vocab", path);
        var byId = new Dictionary<int, string>();
        foreach (var p in vocab.EnumerateObject()) byId[p.Value.GetInt32()] = p.Name;
        var specials = new List<(string, int, bool)>();
        var special = new HashSet<int>();
        if (root.TryGetProperty("added_tokens", out var added) && added.ValueKind == JsonValueKind.Array)
            foreach (var a in added.EnumerateArray())
            {
                int id = a.GetProperty("id").GetInt32();
                string content = a.GetProperty("content").GetString() ?? "";
                foreach (var flag in new[] { "single_word", "lstrip", "rstrip" })
                    if (a.TryGetProperty(flag, out var f) && f.ValueKind == JsonValueKind.True)
                        throw new TensorFormatException(path, null, $"added_tokens[{id}].{flag}", "is true; not supported");
                bool isSpecial = a.TryGetProperty("special", out var sp) && sp.ValueKind == JsonValueKind.True;
                byId[id] = content;
                specials.Add((content, id, !isSpecial));
                if (isSpecial) special.Add(id);
            }
        int n = byId.Count == 0 ? 0 : byId.Keys.Max() + 1;
        var tokens = new string[n];
        var types = new int[n];
        for (int i = 0; i < n; i++)
        {
            if (!byId.TryGetValue(i, out var s)) throw new TensorFormatException(path, null, "model.vocab", $"has no token with id {i} (ids must be dense)");
            tokens[i] = s;
            types[i] = special.Contains(i) ? Control : specials.Any(x => x.Item2 == i) ? UserDefined : Normal;
        }

        var merges = new List<(string, string)>();
        foreach (var m in Prop(modelEl, "merges", path).EnumerateArray())
        {
            if (m.ValueKind == JsonValueKind.Array) { merges.Add((m[0].GetString() ?? "", m[1].GetString() ?? "")); continue; }
            string s = m.GetString() ?? "";
            int spc = s.Length > 1 ? s.IndexOf(' ', 1) : -1;
            if (spc < 0) throw new TensorFormatException(path, null, $"model.merges[{merges.Count}]", $"'{s}' is not two tokens separated by a space");
            merges.Add((s[..spc], s[(spc + 1)..]));
        }

        var patterns = new List<string>();
        bool prefixSpace = false;
        if (root.TryGetProperty("pre_tokenizer", out var preEl) && preEl.ValueKind != JsonValueKind.Null)
            AddPreTokenizer(preEl, patterns, ref prefixSpace, first: true, path, "pre_tokenizer");
        else throw new TensorFormatException(path, null, "pre_tokenizer", "is missing; byte-level BPE needs a ByteLevel pre-tokenizer");

        int? unk = modelEl.TryGetProperty("unk_token", out var u) && u.ValueKind == JsonValueKind.String && byId.ContainsValue(u.GetString()!)
            ? byId.First(kv => kv.Value == u.GetString()).Key : null;
        var (addBos, addEos, bosFromTemplate, eosFromTemplate) = PostProcessor(root, path);
        var (bosName, eosName) = ConfigNames(Path.Combine(Path.GetDirectoryName(Path.GetFullPath(path))!, "tokenizer_config.json"));
        int? Find(string? name) => name is not null && byId.ContainsValue(name) ? byId.First(kv => kv.Value == name).Key : null;
        int? bos = bosFromTemplate ?? Find(bosName), eos = eosFromTemplate ?? Find(eosName);
        var pre = RegexPreTokenizer.FromPatterns("tokenizer.json pre_tokenizer", patterns);
        // The llama.cpp pre-tokenizers that split as these Hugging Face steps do (its converter matches them by hash).
        string? llamaPre = prefixSpace ? null : patterns switch
        {
            [RegexPreTokenizer.Gpt2Hf] => "gpt-2",
            [@"\p{N}", RegexPreTokenizer.Gpt2Hf] => "smollm",
            // Llama-3 and Qwen2 (a Split then ByteLevel without its regex), as llama.cpp's converter names them; llama-bpe
            // ignores merges and qwen2 does not, so the flag must agree. llama.cpp has no NFC step, as its converter.
            [RegexPreTokenizer.Llama3Hf] when ignoreMerges => "llama-bpe",
            [RegexPreTokenizer.Qwen2Hf] when !ignoreMerges => "qwen2",
            _ => null,
        };
        return new ByteLevelBpeTokenizer(tokens, types, merges, pre, bos, eos, addBos, addEos, ignoreMerges,
            llamaFallback: false, prefixSpace, unk, specials) { LlamaCppPre = llamaPre, _nfc = nfc };
    }

    static void AddPreTokenizer(JsonElement el, List<string> patterns, ref bool prefixSpace, bool first, string path, string field)
    {
        string type = TypeOf(el);
        switch (type)
        {
            case "Sequence":
                int i = 0;
                foreach (var p in Prop(el, "pretokenizers", path).EnumerateArray())
                {
                    AddPreTokenizer(p, patterns, ref prefixSpace, first && i == 0, path, $"{field}.pretokenizers[{i}]");
                    i++;
                }
                break;
            case "ByteLevel":
                if (el.TryGetProperty("add_prefix_space", out var aps) && aps.ValueKind == JsonValueKind.True)
                {
                    // Hugging Face adds the space to each piece so far; only the first step has just one.
                    if (!first) throw new TensorFormatException(path, null, field + ".add_prefix_space", "is true after another pre-tokenizer; not supported");
                    prefixSpace = true;
                }
                if (!el.TryGetProperty("use_regex", out var ur) || ur.ValueKind != JsonValueKind.False) patterns.Add(RegexPreTokenizer.Gpt2Hf);
                break;
            case "Digits":
                bool single = el.TryGetProperty("individual_digits", out var d) && d.ValueKind == JsonValueKind.True;
                patterns.Add(single ? @"\p{N}" : @"\p{N}+");
                break;
            case "Split":
                string behavior = el.TryGetProperty("behavior", out var b) ? b.GetString() ?? "" : "";
                if (behavior != "Isolated") throw new TensorFormatException(path, null, field + ".behavior", $"is '{behavior}'; only Isolated is supported");
                if (el.TryGetProperty("invert", out var inv) && inv.ValueKind == JsonValueKind.True)
                    throw new TensorFormatException(path, null, field + ".invert", "is true; not supported");
                var pat = Prop(el, "pattern", path);
                if (pat.TryGetProperty("Regex", out var rx)) patterns.Add(rx.GetString() ?? "");
                else if (pat.TryGetProperty("String", out var str)) patterns.Add(System.Text.RegularExpressions.Regex.Escape(str.GetString() ?? ""));
                else throw new TensorFormatException(path, null, field + ".pattern", "is neither Regex nor String");
                break;
            default:
                throw new TensorFormatException(path, null, field, $"is '{type}', a pre-tokenizer we do not implement for byte-level BPE");
        }
    }

    // TemplateProcessing's single template: special tokens before $A are BOS, after it EOS.
    static (bool AddBos, bool AddEos, int? Bos, int? Eos) PostProcessor(JsonElement root, string path)
    {
        if (!root.TryGetProperty("post_processor", out var pp) || pp.ValueKind == JsonValueKind.Null) return (false, false, null, null);
        var list = TypeOf(pp) == "Sequence" ? Prop(pp, "processors", path).EnumerateArray().ToList() : [pp];
        (bool, bool, int?, int?) result = (false, false, null, null);
        foreach (var p in list)
        {
            string type = TypeOf(p);
            if (type == "ByteLevel") continue;
            if (type != "TemplateProcessing") throw new TensorFormatException(path, null, "post_processor", $"is '{type}', a post-processor we do not implement");
            var specialIds = Prop(p, "special_tokens", path);
            bool seenA = false;
            foreach (var item in Prop(p, "single", path).EnumerateArray())
            {
                if (item.TryGetProperty("Sequence", out _)) { seenA = true; continue; }
                if (!item.TryGetProperty("SpecialToken", out var st)) continue;
                string name = st.GetProperty("id").GetString() ?? "";
                int id = specialIds.GetProperty(name).GetProperty("ids")[0].GetInt32();
                if (seenA) result = (result.Item1, true, result.Item3, id); else result = (true, result.Item2, id, result.Item4);
            }
        }
        return result;
    }

    static (string? Bos, string? Eos) ConfigNames(string configPath)
    {
        if (!File.Exists(configPath)) return (null, null);
        using var doc = ReadJson(configPath);
        static string? Name(JsonElement root, string key) => !root.TryGetProperty(key, out var v) ? null
            : v.ValueKind == JsonValueKind.String ? v.GetString()
            : v.ValueKind == JsonValueKind.Object && v.TryGetProperty("content", out var c) ? c.GetString() : null;
        return (Name(doc.RootElement, "bos_token"), Name(doc.RootElement, "eos_token"));
    }

    static JsonDocument ReadJson(string path)
    {
        try { return JsonDocument.Parse(File.ReadAllBytes(path)); }
        catch (JsonException e) { throw new TensorFormatException(path, e.BytePositionInLine, null, $"is not valid JSON: {e.Message}", e); }
    }

    static JsonElement Prop(JsonElement el, string name, string path) =>
        el.ValueKind == JsonValueKind.Object && el.TryGetProperty(name, out var v) ? v
            : throw new TensorFormatException(path, null, name, "is missing");

    static string TypeOf(JsonElement el) => el.ValueKind == JsonValueKind.Object && el.TryGetProperty("type", out var t) ? t.GetString() ?? "?" : "?";

    static string? Str(GgufFile g, string key, string path) => g.Find(key) is not { } v ? null
        : v.Value as string ?? throw new TensorFormatException(path, null, key, $"is {v.Type}, not a string");

    static bool? Bool(GgufFile g, string key, string path) => g.Find(key) is not { } v ? null
        : v.Value as bool? ?? throw new TensorFormatException(path, null, key, $"is {v.Type}, not a bool");

    static int? Int(GgufFile g, string key, string path) => g.Find(key) is not { } v ? null : v.Value switch
    {
        uint x when x <= int.MaxValue => (int)x, int x => x, ulong x when x <= int.MaxValue => (int)x, long x when x is >= int.MinValue and <= int.MaxValue => (int)x,
        ushort x => x, short x => x, byte x => x, sbyte x => x,
        _ => throw new TensorFormatException(path, null, key, $"is {v.Type} {v.Value}, not a 32-bit integer"),
    };

    /// <summary>
    /// The ids of <paramref name="text"/>. <paramref name="addBos"/> adds the BOS (and EOS) the vocabulary asks for
    /// (add_bos_token / add_eos_token, or the tokenizer.json post-processor); <paramref name="parseSpecial"/> turns the
    /// text of control/special tokens into their ids (user-defined and non-special added tokens always are).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)] // hot from the first call: no tier-0 pass over a whole text
    public int[] Encode(string text, bool addBos, bool parseSpecial)
    {
        ArgumentNullException.ThrowIfNull(text);
        var ids = new List<int>(text.Length / 3 + 2);
        if (addBos && _addBos) ids.Add(BosId!.Value);
        var pieces = new List<(int, int)>();
        foreach (var (start, length, special) in Partition(text, parseSpecial))
        {
            if (special >= 0) { ids.Add(special); continue; }
            var fragment = text.AsSpan(start, length);
            if (_nfc && !fragment.IsNormalized(System.Text.NormalizationForm.FormC)) fragment = fragment.ToString().Normalize(System.Text.NormalizationForm.FormC).AsSpan();
            if (_prefixSpace && fragment[0] != ' ') fragment = (" " + fragment.ToString()).AsSpan();
            pieces.Clear();
            _pre.Split(fragment, pieces);
            foreach (var (s, l) in pieces) EncodePiece(fragment.Slice(s, l), ids);
        }
        if (addBos && _addEos) ids.Add(EosId!.Value);
        return ids.ToArray();
    }

    // Text fragments (special = -1) and special tokens, in order: each special token, longest first, splits every text fragment left.
    List<(int Start, int Length, int Special)> Partition(string text, bool parseSpecial)
    {
        var frags = new List<(int, int, int)> { (0, text.Length, -1) };
        if (text.Length == 0) return [];
        foreach (var (tok, id, always) in _specials)
        {
            if (!always && !parseSpecial) continue;
            if (!frags.Exists(f => f.Item3 < 0 && f.Item2 >= tok.Length)) continue;
            var next = new List<(int, int, int)>(frags.Count + 2);
            foreach (var f in frags)
            {
                if (f.Item3 >= 0 || f.Item2 < tok.Length) { next.Add(f); continue; }
                int pos = f.Item1, end = f.Item1 + f.Item2;
                while (pos < end)
                {
                    int hit = text.AsSpan(pos, end - pos).IndexOf(tok.AsSpan(), StringComparison.Ordinal);
                    if (hit < 0) break;
                    if (hit > 0) next.Add((pos, hit, -1));
                    next.Add((pos + hit, tok.Length, id));
                    pos += hit + tok.Length;
                }
                if (pos < end) next.Add((pos, end - pos, -1));
            }
            frags = next;
        }
        return frags;
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)] // hot from the first call: no tier-0 pass over a whole text
    void EncodePiece(ReadOnlySpan<char> piece, List<int> output)
    {
        int[]? cached;
        lock (_cache) _cacheBySpan.TryGetValue(piece, out cached);
        if (cached is not null) { output.AddRange(cached); return; }
        var result = Bpe(piece);
        lock (_cache)
        {
            if (_cache.Count >= CacheLimit) _cache.Clear();
            _cacheBySpan.TryAdd(piece, result);
        }
        output.AddRange(result);
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)] // hot from the first call: no tier-0 pass over a whole text
    int[] Bpe(ReadOnlySpan<char> piece)
    {
        int nBytes = Encoding.UTF8.GetByteCount(piece);
        Span<byte> bytes = nBytes <= 512 ? stackalloc byte[nBytes] : new byte[nBytes];
        Encoding.UTF8.GetBytes(piece, bytes);
        if (_ignoreMerges)
        {
            Span<char> spelled = nBytes <= 512 ? stackalloc char[nBytes] : new char[nBytes];
            for (int i = 0; i < nBytes; i++) spelled[i] = ByteUnicode.ByteToChar[bytes[i]];
            if (_ids.GetAlternateLookup<ReadOnlySpan<char>>().TryGetValue(spelled, out int whole) && whole < _tokens.Length) return [whole];
        }
        // Symbols and the rank of each adjacent pair; merge the lowest rank (leftmost on ties) until none is left.
        Span<int> sym = nBytes <= 256 ? stackalloc int[nBytes] : new int[nBytes];
        Span<int> rank = nBytes <= 256 ? stackalloc int[nBytes] : new int[nBytes];
        Span<int> merged = nBytes <= 256 ? stackalloc int[nBytes] : new int[nBytes];
        for (int i = 0; i < nBytes; i++) sym[i] = _byteIds[bytes[i]];
        int n = nBytes;
        for (int i = 0; i + 1 < n; i++) Lookup(sym[i], sym[i + 1], out rank[i], out merged[i]);
        while (n > 1)
        {
            int best = -1, bestRank = int.MaxValue;
            for (int i = 0; i + 1 < n; i++) if (rank[i] < bestRank) { bestRank = rank[i]; best = i; }
            if (best < 0) break;
            sym[best] = merged[best];
            sym[(best + 2)..n].CopyTo(sym[(best + 1)..]);
            rank[(best + 1)..(n - 1)].CopyTo(rank[best..]);
            merged[(best + 1)..(n - 1)].CopyTo(merged[best..]);
            n--;
            if (best > 0) Lookup(sym[best - 1], sym[best], out rank[best - 1], out merged[best - 1]);
            if (best + 1 < n) Lookup(sym[best], sym[best + 1], out rank[best], out merged[best]);
        }
        var ids = new List<int>(n);
        for (int i = 0; i < n; i++)
        {
            if (sym[i] < _tokens.Length) { ids.Add(sym[i]); continue; }
            if (_llamaFallback)
            {
                // llama.cpp: a symbol that is not a token falls back to tokens of its single UTF-8 bytes, where they exist.
                foreach (byte b in Encoding.UTF8.GetBytes(_extra[sym[i] - _tokens.Length]))
                    if (b < 0x80 && _ids.TryGetValue(((char)b).ToString(), out int bid) && bid < _tokens.Length) ids.Add(bid);
            }
            else if (_unkId is { } unk) ids.Add(unk);
        }
        return ids.ToArray();
    }

    void Lookup(int left, int right, out int rank, out int merged)
    {
        if (_merges.TryGetValue(Key(left, right), out var m)) { rank = m.Rank; merged = m.Merged; }
        else { rank = int.MaxValue; merged = -1; }
    }

    /// <summary>The text of <paramref name="ids"/>: byte-level tokens back to their bytes, special tokens as their text.</summary>
    public string Decode(ReadOnlySpan<int> ids)
    {
        var bytes = new List<byte>(ids.Length * 4);
        Span<byte> utf8 = stackalloc byte[4];
        foreach (int id in ids)
        {
            if ((uint)id >= (uint)_tokens.Length) throw new ArgumentOutOfRangeException(nameof(ids), $"token id {id} is outside the vocabulary of {_tokens.Length}");
            string tok = _tokens[id];
            bool raw = _types[id] is Control or UserDefined or Unknown;
            foreach (var rune in tok.EnumerateRunes())
            {
                int b = !raw && rune.Value < 0x10000 ? ByteUnicode.ToByte((char)rune.Value) : -1;
                if (b >= 0) { bytes.Add((byte)b); continue; }
                int len = rune.EncodeToUtf8(utf8);
                for (int k = 0; k < len; k++) bytes.Add(utf8[k]);
            }
        }
        return Encoding.UTF8.GetString(bytes.ToArray());
    }
}

/// <summary>Hashes (left, right) id pairs: long's own hash (low ^ high) collides for most token pairs.</summary>
file sealed class PairComparer : IEqualityComparer<long>
{
    public static readonly PairComparer Instance = new();
    public bool Equals(long x, long y) => x == y;
    public int GetHashCode(long key) => (int)(((ulong)key * 0x9E3779B97F4A7C15UL) >> 32);
}
