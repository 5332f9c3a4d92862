using System.Buffers.Binary;
using System.Text;
using TensorCodec.Containers;

namespace TensorCodec.Quantization;

/// <summary>
/// A SentencePiece-style vocabulary in llama2.c's <c>tokenizer.bin</c> format (int32
/// max_token_length, then per token: float32 score, int32 byte length, bytes), and its GGUF
/// form for llama.cpp's "llama" (SPM) tokenizer.
/// </summary>
public sealed class Llama2cTokenizer
{
    /// <summary>llama.cpp's token attribute types (llama_token_type).</summary>
    public const int Normal = 1, Unknown = 2, Control = 3, Byte = 6;

    public required string[] Pieces { get; init; }
    public required float[] Scores { get; init; }
    public int UnknownId { get; init; }
    public int BosId { get; init; } = 1;
    public int EosId { get; init; } = 2;

    static readonly UTF8Encoding StrictUtf8 = new(false, throwOnInvalidBytes: true);

    public static Llama2cTokenizer Read(string path)
    {
        var bytes = File.ReadAllBytes(path);
        if (bytes.Length < 4) throw new TensorFormatException(path, 0, "max_token_length", "tokenizer file is shorter than its 4-byte header");
        var pieces = new List<string>();
        var scores = new List<float>();
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
            try { pieces.Add(StrictUtf8.GetString(bytes, p, len)); }
            catch (DecoderFallbackException)
            {
                // GGUF strings must be UTF-8; a raw partial-character piece cannot be stored.
                throw new TensorFormatException(path, p, $"token[{pieces.Count}]", "token is not valid UTF-8");
            }
            scores.Add(score);
            p += len;
        }
        if (pieces.Count == 0) throw new TensorFormatException(path, 4, "tokens", "tokenizer holds no tokens");
        int bos = pieces.IndexOf("<s>"), eos = pieces.IndexOf("</s>"), unk = pieces.IndexOf("<unk>");
        return new Llama2cTokenizer
        {
            Pieces = pieces.ToArray(), Scores = scores.ToArray(),
            BosId = bos < 0 ? 1 : bos, EosId = eos < 0 ? 2 : eos, UnknownId = unk < 0 ? 0 : unk,
        };
    }

    /// <summary>
    /// A piece as llama.cpp's SPM tokenizer stores it: spaces become U+2581 ("▁"), which is how
    /// SentencePiece vocabularies spell the word boundary.
    /// </summary>
    public static string ToSpmPiece(string piece) => piece.Replace(' ', '\u2581');

    public int TokenType(int id)
    {
        if (id == UnknownId) return Unknown;
        if (id == BosId || id == EosId) return Control;
        string s = Pieces[id];
        if (s.Length == 6 && s.StartsWith("<0x", StringComparison.Ordinal) && s[5] == '>' && Uri.IsHexDigit(s[3]) && Uri.IsHexDigit(s[4]))
            return Byte;
        return Normal;
    }

    /// <summary>The tokenizer.ggml.* keys llama.cpp reads for a "llama" (SentencePiece) vocabulary.</summary>
    public IEnumerable<KeyValuePair<string, GgufValue>> ToGgufMetadata()
    {
        var types = new int[Pieces.Length];
        for (int i = 0; i < types.Length; i++) types[i] = TokenType(i);
        yield return new("tokenizer.ggml.model", GgufValue.String("llama"));
        yield return new("tokenizer.ggml.tokens", GgufValue.Array(GgufArray.Of(Pieces.Select(ToSpmPiece).ToArray())));
        yield return new("tokenizer.ggml.scores", GgufValue.Array(GgufArray.Of((float[])Scores.Clone())));
        yield return new("tokenizer.ggml.token_type", GgufValue.Array(GgufArray.Of(types)));
        yield return new("tokenizer.ggml.bos_token_id", GgufValue.UInt32((uint)BosId));
        yield return new("tokenizer.ggml.eos_token_id", GgufValue.UInt32((uint)EosId));
        yield return new("tokenizer.ggml.unknown_token_id", GgufValue.UInt32((uint)UnknownId));
        yield return new("tokenizer.ggml.add_bos_token", GgufValue.Bool(true));
        yield return new("tokenizer.ggml.add_eos_token", GgufValue.Bool(false));
    }
}
