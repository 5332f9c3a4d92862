using System.Text;
using TensorCodec.Containers;
using TensorCodec.Models;

namespace TensorCodec.Tokenizers;

/// <summary>
/// llama.cpp's SentencePiece tokenizer (GGUF <c>tokenizer.ggml.model = "llama"</c>), step for step:
/// special tokens are cut out first (control and unknown ones only when parsing special tokens), each text
/// fragment that starts the input or follows a special token gets a space prefix (<c>add_space_prefix</c>),
/// spaces become U+2581, and adjacent symbols are merged — highest score of the token their concatenation
/// spells first, leftmost on ties — starting from single characters. A final symbol that is no token
/// becomes its UTF-8 bytes as <c>&lt;0xXX&gt;</c> tokens.
/// </summary>
public sealed class SpmTokenizer : ITextTokenizer
{
    /// <summary>llama.cpp's token types (<c>llama_token_type</c>).</summary>
    internal const int Normal = 1, Unknown = 2, Control = 3, UserDefined = 4, Unused = 5, Byte = 6;

    readonly string[] _tokens;
    readonly float[] _scores;
    readonly HashSet<long> _pairs = [];        // adjacent code-point pairs inside some token: the only places a merge can cross
    readonly int[] _order;                   // token → rank of its score, highest first: one long key orders the merge queue
    readonly int[] _types;
    readonly Dictionary<string, int>.AlternateLookup<ReadOnlySpan<char>> _lookup;
    readonly int[] _byteToken = new int[256];
    readonly int[] _tokenByte;
    readonly SpecialToken[] _specials;       // control, user-defined and unknown tokens, longest first
    readonly SpecialToken[] _userDefined;    // the ones split on even without parsing special tokens

    /// <inheritdoc/>
    public int VocabSize => _tokens.Length;
    /// <inheritdoc/>
    public int BosId { get; }
    /// <inheritdoc/>
    public int EosId { get; }
    /// <summary>The unknown-token id.</summary>
    public int UnknownId { get; }
    /// <summary>Whether a sequence starts with BOS (<c>tokenizer.ggml.add_bos_token</c>, default true).</summary>
    public bool AddBos { get; }
    /// <summary>Whether a sequence ends with EOS (<c>tokenizer.ggml.add_eos_token</c>, default false).</summary>
    public bool AddEos { get; }
    /// <summary>Whether text gets SentencePiece's dummy-prefix space (<c>tokenizer.ggml.add_space_prefix</c>, default true).</summary>
    public bool AddSpacePrefix { get; }

    internal SpmTokenizer(string[] tokens, float[] scores, int[] types, int bos, int eos, int unk, bool addBos, bool addEos, bool addSpacePrefix, bool stripAfterSpecial, string source)
    {
        _tokens = tokens; _scores = scores; _types = types;
        // Equal scores share a rank, so ties still go to the leftmost pair, as in llama.cpp's comparator.
        var byScore = Enumerable.Range(0, tokens.Length).OrderByDescending(i => scores[i]).ToArray();
        _order = new int[tokens.Length];
        for (int r = 0, i = 0; i < byScore.Length; i++)
        {
            if (i > 0 && scores[byScore[i]] != scores[byScore[i - 1]]) r = i;
            _order[byScore[i]] = r;
        }
        BosId = bos; EosId = eos; UnknownId = unk; AddBos = addBos; AddEos = addEos; AddSpacePrefix = addSpacePrefix;
        var byText = new Dictionary<string, int>(tokens.Length, StringComparer.Ordinal);
        for (int i = 0; i < tokens.Length; i++) byText[tokens[i]] = i; // a repeated string maps to its last id, as in llama.cpp
        _lookup = byText.GetAlternateLookup<ReadOnlySpan<char>>();
        foreach (var t in tokens)
            for (int i = 0, prev = -1; i < t.Length; i += char.IsSurrogatePair(t, i) ? 2 : 1)
            {
                int cp = char.IsSurrogatePair(t, i) ? char.ConvertToUtf32(t[i], t[i + 1]) : t[i];
                if (prev >= 0) _pairs.Add(PairKey(prev, cp));
                prev = cp;
            }
        _tokenByte = new int[tokens.Length];
        Array.Fill(_tokenByte, -1);
        for (int b = 0; b < 256; b++)
        {
            // "<0xXX>", else the byte itself as a one-character token, as llama.cpp's byte_to_token.
            _byteToken[b] = byText.TryGetValue($"<0x{b:X2}>", out int id) ? id
                : b < 0x80 && byText.TryGetValue(((char)b).ToString(), out id) ? id : -1;
        }
        for (int i = 0; i < tokens.Length; i++)
            if (types[i] == Byte && ParseByte(tokens[i]) is int v and >= 0) _tokenByte[i] = v;
        foreach (var (name, id) in new[] { ("bos", bos), ("eos", eos), ("unknown", unk) })
            if (id != -1 && (uint)id >= (uint)tokens.Length)
                throw new TensorFormatException(source, null, $"tokenizer.ggml.{name}_token_id", $"id {id} is outside the vocabulary of {tokens.Length} tokens");
        var specials = new List<SpecialToken>();
        for (int i = 0; i < tokens.Length; i++)
        {
            if (types[i] is not (Control or UserDefined or Unknown)) continue;
            // llama.cpp's Phi-3 rule (by model name): special tokens swallow the whitespace after them,
            // except <unk>, <s> and <|endoftext|>; </s> does too.
            bool rstrip = stripAfterSpecial && tokens[i] is not ("<unk>" or "<s>" or "<|endoftext|>");
            specials.Add(new SpecialToken(i, tokens[i], false, rstrip));
        }
        _specials = SpecialTokenSplitter.Order(specials);
        _userDefined = _specials.Where(s => types[s.Id] == UserDefined).ToArray();
    }

    /// <summary>The tokenizer in a GGUF's <c>tokenizer.ggml.*</c> keys; the model must be "llama" (SentencePiece).</summary>
    public static SpmTokenizer FromGguf(GgufFile gguf, string? path = null)
    {
        var k = new GgufKeys(gguf, path);
        string model = k.String("tokenizer.ggml.model") ?? throw new TensorFormatException(path, null, "tokenizer.ggml.model", "is missing: the file has no tokenizer");
        if (model != "llama") throw new TensorFormatException(path, null, "tokenizer.ggml.model", $"is '{model}', not 'llama' (SentencePiece)");
        var (tokens, scores) = Vocabulary.GgufTokens(gguf, path);
        int[] types = gguf.Find("tokenizer.ggml.token_type") switch
        {
            null => Enumerable.Repeat(Normal, tokens.Length).ToArray(),
            { Value: GgufArray { Items: int[] tt } } => tt,
            var v => throw new TensorFormatException(path, null, "tokenizer.ggml.token_type", $"is {v.Type}, not an int32 array"),
        };
        if (types.Length != tokens.Length) throw new TensorFormatException(path, null, "tokenizer.ggml.token_type", $"has {types.Length} entries for {tokens.Length} tokens");
        tokens = tokens.Select((t, i) => t.Length == 0 ? $"[EMPTY_{i}]" : t).ToArray();
        string name = (k.String("general.name") ?? "").ToLowerInvariant();
        return new SpmTokenizer(tokens, scores, types,
            k.Int("tokenizer.ggml.bos_token_id") ?? 1, k.Int("tokenizer.ggml.eos_token_id") ?? 2, k.Int("tokenizer.ggml.unknown_token_id") ?? 0,
            Bool(gguf, "tokenizer.ggml.add_bos_token", path) ?? true, Bool(gguf, "tokenizer.ggml.add_eos_token", path) ?? false,
            Bool(gguf, "tokenizer.ggml.add_space_prefix", path) ?? true,
            name.Contains("phi-3", StringComparison.Ordinal) || name.Contains("phi3", StringComparison.Ordinal), path ?? "<gguf>");
    }

    static bool? Bool(GgufFile gguf, string key, string? path) => gguf.Find(key) switch
    {
        null => null,
        { Value: bool b } => b,
        var v => throw new TensorFormatException(path, null, key, $"is {v.Type}, not a bool"),
    };

    static int ParseByte(string t) =>
        t.Length == 6 && t.StartsWith("<0x", StringComparison.Ordinal) && t[5] == '>' && int.TryParse(t.AsSpan(3, 2), System.Globalization.NumberStyles.AllowHexSpecifier, null, out int v) ? v : -1;

    /// <inheritdoc/>
    public string TokenText(int id) => _tokens[id];

    /// <summary>llama.cpp's token type of <paramref name="id"/>.</summary>
    internal int TokenType(int id) => _types[id];

    /// <inheritdoc/>
    public int[] Encode(string text, bool addSpecial, bool parseSpecial)
    {
        var output = new List<int>(text.Length / 3 + 2);
        if (addSpecial && AddBos && BosId >= 0) output.Add(BosId);
        bool prevSpecial = true; // the first fragment is prefixed as if after a special token
        var sb = new StringBuilder();
        foreach (var f in SpecialTokenSplitter.Split(text, parseSpecial ? _specials : _userDefined))
        {
            if (!f.IsText) { output.Add(f.Id); prevSpecial = true; continue; }
            sb.Clear();
            if (AddSpacePrefix && prevSpecial) sb.Append(' ');
            sb.Append(text, f.Start, f.Length).Replace(' ', '\u2581');
            Tokenize(sb.ToString(), output);
            prevSpecial = false;
        }
        if (addSpecial && AddEos && EosId >= 0) output.Add(EosId);
        return output.ToArray();
    }

    static long PairKey(int a, int b) => ((long)a << 21) | (uint)b;

    /// <summary>
    /// llama.cpp's <c>llm_tokenizer_spm_session::tokenize</c> over one escaped fragment, run piecewise: where two
    /// adjacent characters occur together in no token, no merged symbol can ever span them, and merges on either
    /// side keep their relative order (score, then position) — so the pieces give exactly the whole's result,
    /// with small working sets.
    /// </summary>
    void Tokenize(string text, List<int> output)
    {
        int from = 0, prevCp = -1;
        for (int i = 0; i < text.Length;)
        {
            int l = char.IsSurrogatePair(text, i) ? 2 : 1;
            int cp = l == 2 ? char.ConvertToUtf32(text[i], text[i + 1]) : text[i];
            if (prevCp >= 0 && !_pairs.Contains(PairKey(prevCp, cp)))
            {
                TokenizeSegment(text.Substring(from, i - from), output);
                from = i;
            }
            prevCp = cp;
            i += l;
        }
        TokenizeSegment(from == 0 ? text : text[from..], output);
    }

    void TokenizeSegment(string text, List<int> output)
    {
        if (text.Length == 0) return;
        // Symbols: one per code point, as (start, length) in UTF-16 units, in a linked list.
        int n = 0;
        var start = new int[text.Length];
        var len = new int[text.Length];
        for (int i = 0; i < text.Length;)
        {
            int l = char.IsHighSurrogate(text[i]) && i + 1 < text.Length && char.IsLowSurrogate(text[i + 1]) ? 2 : 1;
            start[n] = i; len[n] = l; n++; i += l;
        }
        var next = new int[n];
        var prev = new int[n];
        for (int i = 0; i < n; i++) { prev[i] = i - 1; next[i] = i + 1 < n ? i + 1 : -1; }
        // Highest score first, then leftmost; an entry is stale once either side has changed size.
        var queue = new PriorityQueue<(int Left, int Right, int Size), long>(n);
        void TryAdd(int left, int right)
        {
            if (left < 0 || right < 0) return;
            int size = len[left] + len[right];
            if (!_lookup.TryGetValue(text.AsSpan(start[left], size), out int id)) return;
            queue.Enqueue((left, right, size), ((long)_order[id] << 32) | (uint)left);
        }
        for (int i = 1; i < n; i++) TryAdd(i - 1, i);
        while (queue.TryDequeue(out var b, out _))
        {
            if (len[b.Left] == 0 || len[b.Right] == 0 || len[b.Left] + len[b.Right] != b.Size) continue;
            len[b.Left] += len[b.Right];
            len[b.Right] = 0;
            next[b.Left] = next[b.Right];
            if (next[b.Right] >= 0) prev[next[b.Right]] = b.Left;
            TryAdd(prev[b.Left], b.Left);
            TryAdd(b.Left, next[b.Left]);
        }
        Span<byte> utf8 = stackalloc byte[4];
        for (int i = 0; i != -1; i = next[i])
        {
            var s = text.AsSpan(start[i], len[i]);
            if (_lookup.TryGetValue(s, out int id)) { output.Add(id); continue; }
            // Every merged symbol is a token, so only a single character lands here: its bytes.
            int nb = Encoding.UTF8.GetBytes(s, utf8);
            for (int j = 0; j < nb; j++) output.Add(_byteToken[utf8[j]] >= 0 ? _byteToken[utf8[j]] : UnknownId);
        }
    }

    /// <inheritdoc/>
    public string Decode(ReadOnlySpan<int> ids)
    {
        var bytes = new List<byte>(ids.Length * 4);
        bool first = true;
        foreach (int id in ids)
        {
            if ((uint)id >= (uint)_tokens.Length) throw new ArgumentOutOfRangeException(nameof(ids), $"token id {id} is out of range for vocabulary size {_tokens.Length}");
            int type = _types[id];
            if (type is Control or Unknown or Unused) { if (id != BosId) first = false; continue; }
            if (_tokenByte[id] >= 0) bytes.Add((byte)_tokenByte[id]);
            else
            {
                var piece = type == UserDefined ? _tokens[id] : _tokens[id].Replace('\u2581', ' ');
                if (first && AddSpacePrefix && piece.StartsWith(' ')) piece = piece[1..]; // the dummy prefix
                bytes.AddRange(Encoding.UTF8.GetBytes(piece));
            }
            first = false;
        }
        return Encoding.UTF8.GetString(bytes.ToArray());
    }
}
