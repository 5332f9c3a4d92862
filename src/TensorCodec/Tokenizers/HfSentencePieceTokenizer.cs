using System.Text;
using System.Text.Json;

namespace TensorCodec.Tokenizers;

/// <summary>
/// A Hugging Face <c>tokenizer.json</c> of the SentencePiece family (Llama 2, Mistral, Phi-3): model
/// <c>BPE</c> with <c>byte_fallback</c>, normalizer <c>Prepend("▁")</c> + <c>Replace(" ", "▁")</c>, no
/// pre-tokenizer, added tokens, and a <c>TemplateProcessing</c> post-processor for BOS. Encodes as the
/// <c>tokenizers</c> library does: added tokens are cut out (the non-normalized ones from the raw text, the
/// normalized ones after normalizing), then each piece is one word merged by rank (lowest first, leftmost
/// on ties) from its characters, a character outside the vocabulary becoming its <c>&lt;0xXX&gt;</c> bytes.
/// </summary>
public sealed class HfSentencePieceTokenizer : ITextTokenizer
{
    readonly string[] _tokens;
    readonly Dictionary<string, int>.AlternateLookup<ReadOnlySpan<char>> _vocab;
    readonly Dictionary<long, (int Rank, int Id)> _merges = new();
    readonly HashSet<long> _pairs = [];    // adjacent code-point pairs inside some token: the only places a merge can cross
    readonly int[] _byteToken = new int[256];
    readonly int[] _tokenByte;
    readonly bool[] _special;
    readonly bool[] _mergeable;    // the token is one side of some merge
    readonly int _unk;
    readonly bool _fuseUnk, _byteFallback;
    string? _prepend; // set while reading the normalizer
    readonly List<(string From, string To)> _replace = [];
    readonly SpecialToken[] _rawAll, _rawNonSpecial, _normAll, _normNonSpecial;
    readonly int[] _prefix, _suffix; // the post-processor's single-sequence template
    readonly List<(string From, string To)> _decodeReplace = [];
    readonly int _decodeStrip;

    /// <inheritdoc/>
    public int VocabSize => _tokens.Length;
    /// <inheritdoc/>
    public int BosId { get; }
    /// <inheritdoc/>
    public int EosId { get; }

    HfSentencePieceTokenizer(JsonElement root, string path, string? bosToken, string? eosToken)
    {
        var model = root.GetProperty("model");
        ReadNormalizer(root.TryGetProperty("normalizer", out var nz) ? nz : default, path);
        var vocab = new Dictionary<string, int>(StringComparer.Ordinal);
        foreach (var kv in model.GetProperty("vocab").EnumerateObject()) vocab[kv.Name] = kv.Value.GetInt32();
        var added = root.TryGetProperty("added_tokens", out var at) && at.ValueKind == JsonValueKind.Array ? at.EnumerateArray().ToList() : [];
        int count = vocab.Count == 0 ? 0 : vocab.Values.Max() + 1;
        foreach (var a in added) count = Math.Max(count, a.GetProperty("id").GetInt32() + 1);
        _tokens = new string[count];
        foreach (var (text, id) in vocab)
        {
            if (id < 0) throw new TensorFormatException(path, null, $"model.vocab[\"{text}\"]", $"id {id} is negative");
            _tokens[id] = text;
        }
        _special = new bool[count];
        var rawAll = new List<SpecialToken>(); var normAll = new List<SpecialToken>();
        var rawNon = new List<SpecialToken>(); var normNon = new List<SpecialToken>();
        foreach (var a in added)
        {
            int id = a.GetProperty("id").GetInt32();
            string content = a.GetProperty("content").GetString() ?? "";
            bool special = Flag(a, "special"), normalized = Flag(a, "normalized");
            if (Flag(a, "single_word")) throw new NotSupportedException($"{path}: added token \"{content}\" has single_word, which is not supported");
            _tokens[id] ??= content;
            vocab.TryAdd(content, id);
            _special[id] = special;
            // A normalized added token is matched in the normalized text, as its own normalized form
            // (Llama 2's "<s>" is found as "▁<s>", so "</s>" after a word is plain text).
            var st = new SpecialToken(id, normalized ? Normalize(content) : content, Flag(a, "lstrip"), Flag(a, "rstrip"));
            (normalized ? normAll : rawAll).Add(st);
            if (!special) (normalized ? normNon : rawNon).Add(st);
        }
        for (int i = 0; i < count; i++) _tokens[i] ??= "";
        _rawAll = SpecialTokenSplitter.Order(rawAll); _normAll = SpecialTokenSplitter.Order(normAll);
        _rawNonSpecial = SpecialTokenSplitter.Order(rawNon); _normNonSpecial = SpecialTokenSplitter.Order(normNon);
        _vocab = vocab.GetAlternateLookup<ReadOnlySpan<char>>();
        foreach (var t in vocab.Keys)
            for (int i = 0, prev = -1; i < t.Length; i += char.IsSurrogatePair(t, i) ? 2 : 1)
            {
                int cp = char.IsSurrogatePair(t, i) ? char.ConvertToUtf32(t[i], t[i + 1]) : t[i];
                if (prev >= 0) _pairs.Add(((long)prev << 21) | (uint)cp);
                prev = cp;
            }

        _byteFallback = model.TryGetProperty("byte_fallback", out var bf) && bf.ValueKind == JsonValueKind.True;
        _fuseUnk = model.TryGetProperty("fuse_unk", out var fu) && fu.ValueKind == JsonValueKind.True;
        _unk = model.TryGetProperty("unk_token", out var ut) && ut.ValueKind == JsonValueKind.String && vocab.TryGetValue(ut.GetString()!, out int u) ? u : -1;
        foreach (var key in new[] { "continuing_subword_prefix", "end_of_word_suffix" })
            if (model.TryGetProperty(key, out var v) && v.ValueKind == JsonValueKind.String && v.GetString()!.Length > 0)
                throw new NotSupportedException($"{path}: model.{key} is not supported");
        if (model.TryGetProperty("dropout", out var dr) && dr.ValueKind == JsonValueKind.Number && dr.GetDouble() > 0)
            throw new NotSupportedException($"{path}: BPE dropout is not supported");
        if (model.TryGetProperty("ignore_merges", out var im) && im.ValueKind == JsonValueKind.True)
            throw new NotSupportedException($"{path}: model.ignore_merges is not supported for a SentencePiece-style BPE");
        Array.Fill(_byteToken, -1);
        _tokenByte = new int[count];
        Array.Fill(_tokenByte, -1);
        for (int b = 0; b < 256; b++)
            if (vocab.TryGetValue($"<0x{b:X2}>", out int id)) { _byteToken[b] = id; _tokenByte[id] = b; }

        _mergeable = new bool[count];
        int rank = 0;
        foreach (var m in model.GetProperty("merges").EnumerateArray())
        {
            string a, c;
            if (m.ValueKind == JsonValueKind.Array) { a = m[0].GetString()!; c = m[1].GetString()!; }
            else
            {
                // Split on the ASCII space only: pieces may hold NBSP or U+2028, which other splitters treat as spaces.
                string s = m.GetString()!;
                int sp = s.IndexOf(' ');
                if (sp <= 0 || sp == s.Length - 1) throw new TensorFormatException(path, null, $"model.merges[{rank}]", $"\"{s}\" is not two tokens separated by a space");
                a = s[..sp]; c = s[(sp + 1)..];
            }
            if (!vocab.TryGetValue(a, out int ia) || !vocab.TryGetValue(c, out int ic) || !vocab.TryGetValue(a + c, out int im2))
                throw new TensorFormatException(path, null, $"model.merges[{rank}]", $"\"{a} {c}\" names a token that is not in the vocabulary");
            _merges.TryAdd(((long)ia << 32) | (uint)ic, (rank, im2));
            _mergeable[ia] = _mergeable[ic] = true;
            rank++;
        }

        if (root.TryGetProperty("pre_tokenizer", out var pt) && pt.ValueKind != JsonValueKind.Null)
            throw new NotSupportedException($"{path}: pre_tokenizer {TypeOf(pt)} is not supported with a SentencePiece-style BPE (only none)");
        (_prefix, _suffix) = ReadPostProcessor(root.TryGetProperty("post_processor", out var pp) ? pp : default, vocab, path);
        ReadDecoder(root.TryGetProperty("decoder", out var dc) ? dc : default, path, out _decodeStrip);
        BosId = bosToken is not null && vocab.TryGetValue(bosToken, out int bos) ? bos : _prefix.Length > 0 ? _prefix[0] : -1;
        EosId = eosToken is not null && vocab.TryGetValue(eosToken, out int eos) ? eos : -1;
    }

    /// <summary>
    /// How llama.cpp's SentencePiece tokenizer (GGUF model "llama") reproduces this one: the dummy prefix, BOS/EOS
    /// flags, and why it cannot (null when it can): other normalizers or post-processor templates have no GGUF key.
    /// </summary>
    internal (bool AddSpacePrefix, bool AddBos, bool AddEos, int? Unk, string? Unsupported) LlamaCppForm()
    {
        string? why = null;
        if (_prepend is not (null or "\u2581")) why = $"normalizer Prepend \"{_prepend}\" is not llama.cpp's dummy prefix";
        else if (!(_replace.Count == 0 || (_replace.Count == 1 && _replace[0] == (" ", "\u2581"))))
            why = "its normalizer replaces other than spaces with \u2581";
        bool addBos = _prefix.Length == 1 && _prefix[0] == BosId, addEos = _suffix.Length == 1 && _suffix[0] == EosId;
        if ((_prefix.Length > 0 && !addBos) || (_suffix.Length > 0 && !addEos))
            why ??= "its post-processor template adds other tokens than BOS and EOS";
        return (_prepend is not null, addBos, addEos, _unk >= 0 ? _unk : null, why);
    }

    /// <summary>
    /// Scores for llama.cpp's merge-by-score: a token made by a merge scores minus that merge's rank, so the
    /// best-scoring adjacent pair is the lowest-ranked merge; other tokens score 0 (they are never merged into).
    /// </summary>
    internal float[] MergeScores()
    {
        var scores = new float[_tokens.Length];
        var best = new int[_tokens.Length];
        Array.Fill(best, int.MaxValue);
        foreach (var (rank, id) in _merges.Values) best[id] = Math.Min(best[id], rank);
        for (int i = 0; i < scores.Length; i++) scores[i] = best[i] == int.MaxValue ? 0 : -best[i];
        return scores;
    }

    /// <summary>llama.cpp's token types as its converter assigns them (BOS/EOS and special ids control, then byte, unknown,
    /// user-defined, normal).</summary>
    internal int[] LlamaCppTokenTypes()
    {
        var types = new int[_tokens.Length];
        var added = _rawNonSpecial.Concat(_normNonSpecial).Select(t => t.Id).ToHashSet();
        for (int i = 0; i < types.Length; i++)
            // SentencePiece's own control pieces stay control even where tokenizer.json lists them as non-special (Phi-3's "</s>").
            types[i] = _special[i] || i == BosId || i == EosId || _tokens[i] is "<s>" or "</s>" ? 3
                : _tokenByte[i] >= 0 ? 6 : i == _unk ? 2 : added.Contains(i) ? 4 : 1;
        return types;
    }

    static bool Flag(JsonElement e, string name) => e.TryGetProperty(name, out var v) && v.ValueKind == JsonValueKind.True;
    static string TypeOf(JsonElement e) => e.ValueKind == JsonValueKind.Object && e.TryGetProperty("type", out var t) ? $"'{t.GetString()}'" : e.ValueKind.ToString();

    /// <summary>Whether <paramref name="root"/> is a tokenizer.json this type handles: BPE, no pre-tokenizer, byte fallback.</summary>
    internal static bool Handles(JsonElement root) =>
        root.TryGetProperty("model", out var m) && m.TryGetProperty("type", out var t) && t.GetString() == "BPE"
        && m.TryGetProperty("byte_fallback", out var bf) && bf.ValueKind == JsonValueKind.True;

    /// <summary>
    /// The tokenizer in a parsed tokenizer.json; <paramref name="config"/> (tokenizer_config.json, optional)
    /// names the BOS and EOS tokens. Features outside the SentencePiece family are refused by name.
    /// </summary>
    public static HfSentencePieceTokenizer FromTokenizerJson(JsonDocument json, string path, JsonDocument? config = null)
    {
        var root = json.RootElement;
        if (!Handles(root)) throw new NotSupportedException($"{path}: not a SentencePiece-style BPE tokenizer.json (model BPE with byte_fallback)");
        string? bos = null, eos = null;
        if (config is not null)
        {
            bos = TokenName(config.RootElement, "bos_token");
            eos = TokenName(config.RootElement, "eos_token");
        }
        return new HfSentencePieceTokenizer(root, path, bos, eos);
    }

    static string? TokenName(JsonElement cfg, string key) =>
        !cfg.TryGetProperty(key, out var v) ? null
        : v.ValueKind == JsonValueKind.String ? v.GetString()
        : v.ValueKind == JsonValueKind.Object && v.TryGetProperty("content", out var c) ? c.GetString() : null;

    void ReadNormalizer(JsonElement n, string path)
    {
        if (n.ValueKind is JsonValueKind.Undefined or JsonValueKind.Null) return;
        switch (n.GetProperty("type").GetString())
        {
            case "Sequence":
                foreach (var x in n.GetProperty("normalizers").EnumerateArray()) ReadNormalizer(x, path);
                break;
            case "Prepend":
                if (_prepend is not null || _replace.Count > 0) throw new NotSupportedException($"{path}: normalizer Prepend must come first, once");
                _prepend = n.GetProperty("prepend").GetString();
                break;
            case "Replace":
                _replace.Add((StringPattern(n, path, "normalizer"), n.GetProperty("content").GetString()!));
                break;
            case var other:
                throw new NotSupportedException($"{path}: normalizer '{other}' is not supported");
        }
    }

    static string StringPattern(JsonElement n, string path, string where) =>
        n.GetProperty("pattern").TryGetProperty("String", out var s) ? s.GetString()!
        : throw new NotSupportedException($"{path}: {where} Replace with a Regex pattern is not supported");

    static (int[], int[]) ReadPostProcessor(JsonElement p, Dictionary<string, int> vocab, string path)
    {
        if (p.ValueKind is JsonValueKind.Undefined or JsonValueKind.Null) return ([], []);
        if (p.GetProperty("type").GetString() is var type && type != "TemplateProcessing")
            throw new NotSupportedException($"{path}: post_processor '{type}' is not supported (only TemplateProcessing)");
        var specials = new Dictionary<string, int[]>(StringComparer.Ordinal);
        if (p.TryGetProperty("special_tokens", out var st))
            foreach (var kv in st.EnumerateObject())
                specials[kv.Name] = kv.Value.GetProperty("ids").EnumerateArray().Select(x => x.GetInt32()).ToArray();
        var prefix = new List<int>(); var suffix = new List<int>();
        bool seenSequence = false;
        foreach (var item in p.GetProperty("single").EnumerateArray())
        {
            if (item.TryGetProperty("Sequence", out _)) { seenSequence = true; continue; }
            string id = item.GetProperty("SpecialToken").GetProperty("id").GetString()!;
            int[] ids = specials.TryGetValue(id, out var v) ? v : vocab.TryGetValue(id, out int one) ? [one]
                : throw new TensorFormatException(path, null, "post_processor.single", $"special token \"{id}\" is not defined");
            (seenSequence ? suffix : prefix).AddRange(ids);
        }
        return (prefix.ToArray(), suffix.ToArray());
    }

    void ReadDecoder(JsonElement d, string path, out int strip)
    {
        strip = 0;
        if (d.ValueKind is JsonValueKind.Undefined or JsonValueKind.Null) return;
        var steps = d.GetProperty("type").GetString() == "Sequence" ? d.GetProperty("decoders").EnumerateArray().ToList() : [d];
        foreach (var s in steps)
            switch (s.GetProperty("type").GetString())
            {
                case "Replace": _decodeReplace.Add((StringPattern(s, path, "decoder"), s.GetProperty("content").GetString()!)); break;
                case "ByteFallback" or "Fuse": break; // byte runs are always rejoined; pieces are always fused
                case "Strip":
                    if (s.GetProperty("content").GetString() != " " || s.GetProperty("stop").GetInt32() != 0)
                        throw new NotSupportedException($"{path}: decoder Strip other than leading spaces is not supported");
                    strip = s.GetProperty("start").GetInt32();
                    break;
                case var other: throw new NotSupportedException($"{path}: decoder '{other}' is not supported");
            }
    }

    /// <inheritdoc/>
    public string TokenText(int id) => _tokens[id];

    /// <inheritdoc/>
    public int[] Encode(string text, bool addSpecial, bool parseSpecial)
    {
        var output = new List<int>(text.Length / 3 + 4);
        if (addSpecial) output.AddRange(_prefix);
        foreach (var raw in SpecialTokenSplitter.Split(text, parseSpecial ? _rawAll : _rawNonSpecial, unicodeSpace: true))
        {
            if (!raw.IsText) { output.Add(raw.Id); continue; }
            string norm = Normalize(text.AsSpan(raw.Start, raw.Length));
            foreach (var f in SpecialTokenSplitter.Split(norm, parseSpecial ? _normAll : _normNonSpecial, unicodeSpace: true))
                if (f.IsText) Word(norm.AsSpan(f.Start, f.Length), output);
                else output.Add(f.Id);
        }
        if (addSpecial) output.AddRange(_suffix);
        return output.ToArray();
    }

    /// <summary>The normalizer: Prepend (to non-empty text), then each Replace in order.</summary>
    string Normalize(ReadOnlySpan<char> text)
    {
        if (text.IsEmpty) return "";
        string s = string.Concat(_prepend, text);
        foreach (var (from, to) in _replace) s = s.Replace(from, to, StringComparison.Ordinal);
        return s;
    }

    /// <summary>The <c>tokenizers</c> BPE model on one word: characters (or their bytes), then merges by rank.</summary>
    void Word(ReadOnlySpan<char> w, List<int> output)
    {
        if (w.IsEmpty) return;
        var tok = new List<int>(w.Length);
        var cps = new List<int>(w.Length); // the character a symbol stands for, or −1 for byte and unknown symbols
        bool lastUnk = false;
        Span<byte> utf8 = stackalloc byte[4];
        for (int i = 0; i < w.Length;)
        {
            int l = char.IsHighSurrogate(w[i]) && i + 1 < w.Length && char.IsLowSurrogate(w[i + 1]) ? 2 : 1;
            var ch = w.Slice(i, l);
            i += l;
            if (_vocab.TryGetValue(ch, out int id)) { tok.Add(id); cps.Add(ch.Length == 2 ? char.ConvertToUtf32(ch[0], ch[1]) : ch[0]); lastUnk = false; continue; }
            if (_byteFallback)
            {
                int nb = Encoding.UTF8.GetBytes(ch, utf8);
                bool all = true;
                for (int j = 0; j < nb; j++) all &= _byteToken[utf8[j]] >= 0;
                if (all) { for (int j = 0; j < nb; j++) { tok.Add(_byteToken[utf8[j]]); cps.Add(-1); } lastUnk = false; continue; }
            }
            if (_unk < 0) throw new InvalidOperationException($"character U+{char.ConvertToUtf32(ch.ToString(), 0):X4} is not in the vocabulary and the tokenizer has no unk_token");
            if (!(_fuseUnk && lastUnk)) { tok.Add(_unk); cps.Add(-1); }
            lastUnk = true;
        }
        // Merge piecewise: next to a symbol that takes part in no merge, or between two characters that occur
        // together in no token, no merge can ever happen,
        // and merges on either side keep their order (rank, then position), so the result is the whole word's.
        var symbols = tok.ToArray();
        int from = 0;
        for (int i = 1; i < symbols.Length; i++)
            if (!_mergeable[symbols[i - 1]] || !_mergeable[symbols[i]]
                || (cps[i - 1] >= 0 && cps[i] >= 0 && !_pairs.Contains(((long)cps[i - 1] << 21) | (uint)cps[i])))
            {
                Merge(symbols.AsSpan(from, i - from), output);
                from = i;
            }
        Merge(symbols.AsSpan(from), output);
    }

    void Merge(ReadOnlySpan<int> symbols, List<int> output)
    {
        int n = symbols.Length;
        var t = symbols.ToArray();
        var next = new int[n]; var prev = new int[n];
        for (int i = 0; i < n; i++) { next[i] = i + 1 < n ? i + 1 : -1; prev[i] = i - 1; }
        var queue = new PriorityQueue<(int Pos, int NewId), long>(n);
        void Push(int pos)
        {
            if (pos < 0 || next[pos] < 0) return;
            if (_merges.TryGetValue(((long)t[pos] << 32) | (uint)t[next[pos]], out var m)) queue.Enqueue((pos, m.Id), ((long)m.Rank << 32) | (uint)pos);
        }
        for (int i = 0; i + 1 < n; i++) Push(i);
        while (queue.TryDequeue(out var e, out _))
        {
            int pos = e.Pos;
            if (t[pos] < 0 || next[pos] < 0) continue;
            int right = next[pos];
            // Stale unless the pair there still merges into the same token.
            if (!_merges.TryGetValue(((long)t[pos] << 32) | (uint)t[right], out var m) || m.Id != e.NewId) continue;
            t[pos] = e.NewId;
            t[right] = -1;
            next[pos] = next[right];
            if (next[right] >= 0) prev[next[right]] = pos;
            Push(prev[pos]);
            Push(pos);
        }
        for (int i = 0; i >= 0; i = next[i]) output.Add(t[i]);
    }

    /// <inheritdoc/>
    public string Decode(ReadOnlySpan<int> ids)
    {
        // Replace, then ByteFallback (a run of byte tokens becomes its UTF-8 text, or U+FFFD per byte if invalid), Fuse, Strip.
        var sb = new StringBuilder();
        var run = new List<byte>();
        void Flush()
        {
            if (run.Count == 0) return;
            try { sb.Append(new UTF8Encoding(false, true).GetString(run.ToArray())); }
            catch (DecoderFallbackException) { sb.Append('\uFFFD', run.Count); }
            run.Clear();
        }
        foreach (int id in ids)
        {
            if ((uint)id >= (uint)_tokens.Length) throw new ArgumentOutOfRangeException(nameof(ids), $"token id {id} is out of range for vocabulary size {_tokens.Length}");
            if (_special[id]) continue;
            if (_tokenByte[id] >= 0) { run.Add((byte)_tokenByte[id]); continue; }
            Flush();
            string piece = _tokens[id];
            foreach (var (from, to) in _decodeReplace) piece = piece.Replace(from, to, StringComparison.Ordinal);
            sb.Append(piece);
        }
        Flush();
        int cut = 0;
        while (cut < _decodeStrip && cut < sb.Length && sb[cut] == ' ') cut++;
        return sb.ToString(cut, sb.Length - cut);
    }
}
