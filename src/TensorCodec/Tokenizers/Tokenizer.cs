using System.Text;
using TensorCodec.Models;

namespace TensorCodec.Tokenizers;

/// <summary>
/// SentencePiece-style BPE by scores with byte fallback, as llama2.c and llama.cpp's SPM
/// tokenizer do it: prepend a space, map each character to its token (or its UTF-8 bytes to
/// <c>&lt;0xXX&gt;</c> tokens), then repeatedly merge the adjacent pair whose concatenation is a
/// token with the highest score (leftmost on ties). Pieces hold real spaces, not U+2581.
/// </summary>
public sealed class Tokenizer : ITextTokenizer
{
    readonly byte[][] _pieces;
    readonly float[] _scores;
    readonly Dictionary<string, int> _byText = new(StringComparer.Ordinal);
    readonly Dictionary<string, int>.AlternateLookup<ReadOnlySpan<char>> _lookup;
    readonly Dictionary<long, int> _merges = new();   // (left id, right id) → merged id
    readonly int[] _byteToken = new int[256];          // byte → its <0xXX> token, or -1
    readonly int[] _tokenByte;                         // token → byte it stands for, or -1
    readonly int _space;

    /// <summary>Number of tokens in the vocabulary.</summary>
    public int VocabSize => _pieces.Length;
    /// <summary>Id of the beginning-of-sequence token.</summary>
    public int BosId { get; }
    /// <summary>Id of the end-of-sequence token.</summary>
    public int EosId { get; }

    /// <summary>An encoder over <paramref name="vocabulary"/>.</summary>
    public Tokenizer(Vocabulary vocabulary)
    {
        Vocabulary = vocabulary;
        int count = vocabulary.Count;
        _pieces = new byte[count][];
        _scores = new float[count];
        BosId = vocabulary.BosId; EosId = vocabulary.EosId;
        Array.Fill(_byteToken, -1);
        _tokenByte = new int[count];
        Array.Fill(_tokenByte, -1);
        var text = new string[count];
        for (int id = 0; id < count; id++)
        {
            var p = _pieces[id] = vocabulary.Piece(id).ToArray();
            _scores[id] = vocabulary.Score(id);
            if (vocabulary.ByteValue(id) is int b and >= 0)
            {
                if (_byteToken[b] < 0) _byteToken[b] = id;
                _tokenByte[id] = b;
                continue; // byte tokens never take part in merges
            }
            if (id == BosId || id == EosId || p.Length == 0) continue;
            text[id] = Encoding.UTF8.GetString(p);
            _byText.TryAdd(text[id], id);
        }
        _lookup = _byText.GetAlternateLookup<ReadOnlySpan<char>>();
        // Every way of cutting a piece into two pieces is a merge that produces it.
        for (int id = 0; id < text.Length; id++)
        {
            string? s = text[id];
            if (s is null || s.Length < 2 || _byText[s] != id) continue;
            for (int k = 1; k < s.Length; k++)
            {
                if (char.IsLowSurrogate(s[k])) continue;
                if (_byText.TryGetValue(s[..k], out int a) && _byText.TryGetValue(s[k..], out int c))
                    _merges.TryAdd(((long)a << 32) | (uint)c, id);
            }
        }
        _space = _byText.GetValueOrDefault(" ", -1);
    }

    /// <summary>The vocabulary this tokenizer encodes with.</summary>
    public Vocabulary Vocabulary { get; }

    /// <summary>An encoder over llama2.c's tokenizer.bin (see <see cref="Models.Vocabulary.ReadLlama2c"/>).</summary>
    public static Tokenizer LoadLlama2c(string path) => new(Vocabulary.ReadLlama2c(path));

    /// <summary>A llama2.c tokenizer.bin, or the vocabulary inside a GGUF model.</summary>
    public static Tokenizer Load(string path) => new(Vocabulary.Read(path));

    internal ReadOnlySpan<byte> Piece(int id) => _pieces[id];
    internal float Score(int id) => _scores[id];

    /// <summary>Encodes <paramref name="text"/>, optionally with BOS/EOS, appending ids to <paramref name="output"/>.</summary>
    public void Encode(ReadOnlySpan<char> text, List<int> output, bool bos = false, bool eos = false)
    {
        if (bos) output.Add(BosId);
        if (!text.IsEmpty)
        {
            // Symbols as a doubly linked list over the initial character tokens; merges shrink it.
            var tok = new List<int>(text.Length + 1);
            if (_space >= 0) tok.Add(_space); // SentencePiece's dummy prefix
            Span<byte> utf8 = stackalloc byte[4];
            for (int i = 0; i < text.Length;)
            {
                int len = char.IsHighSurrogate(text[i]) && i + 1 < text.Length && char.IsLowSurrogate(text[i + 1]) ? 2 : 1;
                if (_lookup.TryGetValue(text.Slice(i, len), out int id)) tok.Add(id);
                else
                {
                    int n = Encoding.UTF8.GetBytes(text.Slice(i, len), utf8);
                    for (int j = 0; j < n; j++) tok.Add(_byteToken[utf8[j]] >= 0 ? _byteToken[utf8[j]] : 0); // 0 = <unk>
                }
                i += len;
            }
            Merge(tok);
            output.AddRange(tok);
        }
        if (eos) output.Add(EosId);
    }

    /// <summary>llama2.c's tokenizer adds BOS only; it has no special tokens to parse.</summary>
    int[] ITextTokenizer.Encode(string text, bool addSpecial, bool parseSpecial) => Encode(text, bos: addSpecial);

    /// <summary>The piece's text with its spaces spelled as they are stored (real spaces); invalid UTF-8 as U+FFFD.</summary>
    string ITextTokenizer.TokenText(int id) => Encoding.UTF8.GetString(_pieces[id]);

    /// <summary>Encodes <paramref name="text"/>, optionally with BOS/EOS, and returns the ids.</summary>
    public int[] Encode(string text, bool bos = false, bool eos = false)
    {
        var list = new List<int>();
        Encode(text, list, bos, eos);
        return list.ToArray();
    }

    void Merge(List<int> tokens)
    {
        int n = tokens.Count;
        if (n < 2) return;
        var tok = tokens.ToArray();
        var next = new int[n];
        var prev = new int[n];
        for (int i = 0; i < n; i++) { next[i] = i + 1 < n ? i + 1 : -1; prev[i] = i - 1; }
        // Highest score first, then leftmost; stale entries are skipped when popped.
        var heap = new PriorityQueue<(int Left, int Right, int A, int B, int Merged), (float, int)>();
        void Push(int left)
        {
            int right = left < 0 ? -1 : next[left];
            if (right < 0) return;
            if (_merges.TryGetValue(((long)tok[left] << 32) | (uint)tok[right], out int m))
                heap.Enqueue((left, right, tok[left], tok[right], m), (-_scores[m], left));
        }
        for (int i = 0; i + 1 < n; i++) Push(i);
        while (heap.TryDequeue(out var e, out _))
        {
            if (next[e.Left] != e.Right || tok[e.Left] != e.A || tok[e.Right] != e.B) continue;
            tok[e.Left] = e.Merged;
            tok[e.Right] = -1;
            next[e.Left] = next[e.Right];
            if (next[e.Left] >= 0) prev[next[e.Left]] = e.Left;
            Push(prev[e.Left]);
            Push(e.Left);
        }
        tokens.Clear();
        for (int i = 0; i >= 0; i = next[i]) tokens.Add(tok[i]);
    }

    /// <summary>
    /// The project's document convention (how <c>shakespeare.tok1024.u16</c> was made): split on
    /// blank lines ("\n\n"), and encode each paragraph as BOS + encode(paragraph + "\n").
    /// </summary>
    public int[] EncodeParagraphs(string text)
    {
        var list = new List<int>(text.Length / 2);
        foreach (var p in text.Split("\n\n")) Encode(p + "\n", list, bos: true);
        return list.ToArray();
    }

    /// <summary>
    /// Decodes ids to text: byte tokens become raw bytes (so split UTF-8 sequences rejoin), BOS/EOS
    /// vanish, and the dummy-prefix space of the first piece after BOS is dropped.
    /// </summary>
    public string Decode(ReadOnlySpan<int> ids)
    {
        var bytes = new List<byte>(ids.Length * 4);
        int previous = BosId; // a sequence starts as if after BOS
        foreach (int id in ids)
        {
            if ((uint)id >= (uint)_pieces.Length) throw new ArgumentOutOfRangeException(nameof(ids), $"token id {id} is out of range for vocabulary size {_pieces.Length}");
            if (id == BosId || id == EosId) { previous = id; continue; }
            if (_tokenByte[id] >= 0) bytes.Add((byte)_tokenByte[id]);
            else
            {
                var p = _pieces[id];
                int skip = previous == BosId && p.Length > 0 && p[0] == ' ' ? 1 : 0;
                for (int i = skip; i < p.Length; i++) bytes.Add(p[i]);
            }
            previous = id;
        }
        return Encoding.UTF8.GetString(bytes.ToArray());
    }
}
