using System.Buffers.Binary;
using System.Text;
using TensorCodec.Containers;

namespace TensorCodec.Models;

/// <summary>
/// A SentencePiece-style vocabulary: pieces (UTF-8 bytes, spaces as ' '), merge scores and the
/// special ids. Read from llama2.c's <c>tokenizer.bin</c> (int32 max_token_length, then per token:
/// float32 score, int32 byte length, bytes) or from a GGUF's <c>tokenizer.ggml.*</c> keys, and
/// written as the latter for llama.cpp's "llama" (SPM) tokenizer.
/// </summary>
public sealed class Vocabulary
{
    /// <summary>llama.cpp's token attribute types (llama_token_type).</summary>
    internal const int Normal = 1, Unknown = 2, Control = 3, Byte = 6;

    readonly byte[][] _pieces;
    readonly float[] _scores;
    readonly int[]? _offsets; // file offset of each piece, for errors about it

    /// <summary>Number of tokens.</summary>
    public int Count => _pieces.Length;
    /// <summary>Beginning-of-sequence id.</summary>
    public int BosId { get; }
    /// <summary>End-of-sequence id.</summary>
    public int EosId { get; }
    /// <summary>The unknown-token id.</summary>
    public int UnknownId { get; }
    /// <summary>The file this vocabulary was read from, for errors.</summary>
    public string Source { get; }

    /// <summary>A vocabulary from pieces (UTF-8 bytes, spaces as ' ') and their scores.</summary>
    public Vocabulary(IReadOnlyList<byte[]> pieces, IReadOnlyList<float> scores, int bosId = 1, int eosId = 2, int unknownId = 0, string source = "<memory>")
        : this(pieces.ToArray(), scores.ToArray(), bosId, eosId, unknownId, source, null) { }

    Vocabulary(byte[][] pieces, float[] scores, int bosId, int eosId, int unknownId, string source, int[]? offsets)
    {
        if (pieces.Length != scores.Length) throw new ArgumentException($"{pieces.Length} pieces but {scores.Length} scores");
        _pieces = pieces; _scores = scores; _offsets = offsets;
        BosId = bosId; EosId = eosId; UnknownId = unknownId; Source = source;
        foreach (var (id, name) in new[] { (bosId, "bos"), (eosId, "eos"), (unknownId, "unknown") })
            if ((uint)id >= (uint)pieces.Length)
                throw new TensorFormatException(source, null, $"{name} token", $"id {id} is outside the vocabulary of {pieces.Length} tokens");
    }

    /// <summary>The bytes of token <paramref name="id"/>.</summary>
    public ReadOnlySpan<byte> Piece(int id) => _pieces[id];
    /// <summary>The merge score of token <paramref name="id"/>.</summary>
    public float Score(int id) => _scores[id];

    /// <summary>The byte a <c>&lt;0xXX&gt;</c> byte-fallback token stands for, or −1.</summary>
    internal int ByteValue(int id)
    {
        var p = _pieces[id];
        return p.Length == 6 && p[0] == '<' && p[1] == '0' && p[2] == 'x' && p[5] == '>' && Hex(p[3]) is int hi and >= 0 && Hex(p[4]) is int lo and >= 0
            ? hi * 16 + lo : -1;
    }

    static int Hex(byte c) => c is >= (byte)'0' and <= (byte)'9' ? c - '0' : c is >= (byte)'a' and <= (byte)'f' ? c - 'a' + 10 : c is >= (byte)'A' and <= (byte)'F' ? c - 'A' + 10 : -1;

    /// <summary>A llama2.c tokenizer.bin, or the vocabulary embedded in a GGUF model.</summary>
    public static Vocabulary Read(string path)
    {
        InputFile.EnsureRegular(path);
        using var stream = File.OpenRead(path);
        return GgufFile.HasMagic(stream) ? FromGguf(GgufFile.Parse(stream, path), path) : ReadLlama2c(path);
    }

    /// <summary>Reads llama2.c's tokenizer.bin. BOS, EOS and unknown are the pieces &lt;s&gt;, &lt;/s&gt;, &lt;unk&gt; (default ids 1, 2, 0).</summary>
    public static Vocabulary ReadLlama2c(string path)
    {
        InputFile.EnsureRegular(path);
        var bytes = File.ReadAllBytes(path);
        if (bytes.Length < 4) throw new TensorFormatException(path, 0, "max_token_length", "tokenizer file is shorter than its 4-byte header");
        var pieces = new List<byte[]>();
        var scores = new List<float>();
        var offsets = new List<int>();
        int p = 4;
        while (p < bytes.Length)
        {
            int at = p;
            if (bytes.Length - p < 8) throw new TensorFormatException(path, at, $"token[{pieces.Count}]", "truncated token record");
            float score = BinaryPrimitives.ReadSingleLittleEndian(bytes.AsSpan(p));
            int len = BinaryPrimitives.ReadInt32LittleEndian(bytes.AsSpan(p + 4));
            p += 8;
            if (len < 0 || len > bytes.Length - p)
                throw new TensorFormatException(path, at + 4, $"token[{pieces.Count}].length", $"token length {len} exceeds the {bytes.Length - p} remaining bytes");
            pieces.Add(bytes.AsSpan(p, len).ToArray());
            scores.Add(score);
            offsets.Add(p);
            p += len;
        }
        if (pieces.Count == 0) throw new TensorFormatException(path, 4, "tokens", "tokenizer holds no tokens");
        int Find(string s, int dflt)
        {
            var b = Encoding.ASCII.GetBytes(s);
            int i = pieces.FindIndex(x => x.AsSpan().SequenceEqual(b));
            return i < 0 ? dflt : i;
        }
        return new Vocabulary(pieces.ToArray(), scores.ToArray(), Find("<s>", 1), Find("</s>", 2), Find("<unk>", 0), path, offsets.ToArray());
    }

    /// <summary>
    /// The vocabulary in a GGUF's <c>tokenizer.ggml.*</c> keys (model "llama" = SentencePiece).
    /// Pieces there spell spaces as U+2581; byte tokens are "&lt;0xXX&gt;" like tokenizer.bin.
    /// </summary>
    public static Vocabulary FromGguf(GgufFile gguf, string? path = null)
    {
        var k = new GgufKeys(gguf, path);
        string model = k.String("tokenizer.ggml.model") ?? "llama";
        if (model != "llama") throw new TensorFormatException(path, null, "tokenizer.ggml.model", $"is '{model}'; only 'llama' (SentencePiece) is supported");
        var (tokens, scores) = GgufTokens(gguf, path);
        var pieces = tokens.Select(t => Encoding.UTF8.GetBytes(t.Replace('\u2581', ' '))).ToArray();
        return new Vocabulary(pieces, scores, k.Int("tokenizer.ggml.bos_token_id") ?? 1, k.Int("tokenizer.ggml.eos_token_id") ?? 2,
            k.Int("tokenizer.ggml.unknown_token_id") ?? 0, path ?? "<gguf>", null);
    }

    /// <summary><c>tokenizer.ggml.tokens</c> and <c>tokenizer.ggml.scores</c> (zeros when absent), checked to match.</summary>
    internal static (string[] Tokens, float[] Scores) GgufTokens(GgufFile gguf, string? path)
    {
        if (gguf.Find("tokenizer.ggml.tokens")?.Value is not GgufArray { Items: string[] tokens })
            throw new TensorFormatException(path, null, "tokenizer.ggml.tokens", "is missing or not a string array");
        float[] scores = gguf.Find("tokenizer.ggml.scores") switch
        {
            null => new float[tokens.Length],
            { Value: GgufArray { Items: float[] sc } } => sc,
            var v => throw new TensorFormatException(path, null, "tokenizer.ggml.scores", $"is {v.Type}, not a float32 array"),
        };
        if (scores.Length != tokens.Length)
            throw new TensorFormatException(path, null, "tokenizer.ggml.scores", $"has {scores.Length} entries for {tokens.Length} tokens");
        return (tokens, scores);
    }

    /// <summary>
    /// The tokenizer for the model at <paramref name="modelPath"/> when none is given: tokenizer.bin
    /// beside it (in it, for a model folder), else the first tok*.bin beside it (ordinal order), else the model itself if it is a
    /// GGUF with an embedded vocabulary. Null when there is none.
    /// </summary>
    public static string? Locate(string modelPath)
    {
        // A model folder holds its tokenizer; a file (even a symlink into a cache's blobs/) has it beside the path given.
        var dir = Directory.Exists(modelPath) ? Path.GetFullPath(modelPath) : Path.GetDirectoryName(Path.GetFullPath(modelPath))!;
        var beside = new[] { Path.Combine(dir, "tokenizer.bin") }
            .Concat(Directory.EnumerateFiles(dir, "tok*.bin").Order(StringComparer.Ordinal))
            .FirstOrDefault(File.Exists);
        if (beside is not null || !File.Exists(modelPath)) return beside;
        using var s = File.OpenRead(modelPath);
        return GgufFile.HasMagic(s) && GgufFile.Parse(s, modelPath).Find("tokenizer.ggml.tokens") is not null ? modelPath : null;
    }

    /// <summary>llama.cpp's token type of <paramref name="id"/>.</summary>
    internal int TokenType(int id)
    {
        if (id == UnknownId) return Unknown;
        if (id == BosId || id == EosId) return Control;
        return ByteValue(id) >= 0 ? Byte : Normal;
    }

    static readonly UTF8Encoding StrictUtf8 = new(false, throwOnInvalidBytes: true);

    /// <summary>
    /// The tokenizer.ggml.* keys llama.cpp reads for a "llama" (SentencePiece) vocabulary. Spaces
    /// become U+2581 ("▁"), SentencePiece's word boundary. GGUF strings are UTF-8, so a piece that is
    /// not (a raw partial character) is an error naming it.
    /// </summary>
    internal IEnumerable<KeyValuePair<string, GgufValue>> ToGgufMetadata()
    {
        var spm = new string[Count];
        var types = new int[Count];
        for (int i = 0; i < Count; i++)
        {
            try { spm[i] = StrictUtf8.GetString(_pieces[i]).Replace(' ', '\u2581'); }
            catch (DecoderFallbackException)
            {
                throw new TensorFormatException(Source, _offsets?[i], $"token[{i}]", "token is not valid UTF-8");
            }
            types[i] = TokenType(i);
        }
        return
        [
            new("tokenizer.ggml.model", GgufValue.String("llama")),
            new("tokenizer.ggml.tokens", GgufValue.Array(GgufArray.Of(spm))),
            new("tokenizer.ggml.scores", GgufValue.Array(GgufArray.Of((float[])_scores.Clone()))),
            new("tokenizer.ggml.token_type", GgufValue.Array(GgufArray.Of(types))),
            new("tokenizer.ggml.bos_token_id", GgufValue.UInt32((uint)BosId)),
            new("tokenizer.ggml.eos_token_id", GgufValue.UInt32((uint)EosId)),
            new("tokenizer.ggml.unknown_token_id", GgufValue.UInt32((uint)UnknownId)),
            new("tokenizer.ggml.add_bos_token", GgufValue.Bool(true)),
            new("tokenizer.ggml.add_eos_token", GgufValue.Bool(false)),
        ];
    }
}
