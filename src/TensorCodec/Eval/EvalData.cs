using TensorCodec.Containers;
using System.Runtime.InteropServices;
using TensorCodec.Engine;
using TensorCodec.Tokenizers;

namespace TensorCodec.Eval;

/// <summary>Which part of a token stream to evaluate.</summary>
public enum TokenSplit : byte
{
    /// <summary>Every token.</summary>
    All = 0,
    /// <summary>Everything before the validation split: tokens 0 … n − n/20 − 1.</summary>
    Train = 1,
    /// <summary>The last n/20 tokens (integer division), the project's hold-out convention.</summary>
    Val = 2,
}

/// <summary>Loading evaluation tokens: raw .u16 files, CSV lists, or text through a tokenizer.</summary>
public static class EvalData
{
    /// <summary>A raw little-endian uint16 token file.</summary>
    public static int[] ReadU16(string path)
    {
        InputFile.EnsureRegular(path);
        var bytes = File.ReadAllBytes(path);
        RefuseNonTokens(bytes, path);
        if (bytes.Length % 2 != 0) throw new InvalidDataException($"{path}: {bytes.Length} bytes is not a whole number of uint16 tokens");
        var u16 = MemoryMarshal.Cast<byte, ushort>(bytes);
        var ids = new int[u16.Length];
        for (int i = 0; i < ids.Length; i++) ids[i] = u16[i];
        return ids;
    }

    /// <summary>
    /// A token file, by extension: <c>.u16</c> is raw little-endian uint16 (<see cref="ReadU16"/>),
    /// <c>.csv</c> is comma-separated ids (<see cref="ParseCsv"/>); anything else is refused naming the file.
    /// </summary>
    public static int[] ReadTokens(string path)
    {
        string ext = Path.GetExtension(path);
        if (ext.Equals(".u16", StringComparison.OrdinalIgnoreCase)) return ReadU16(path);
        InputFile.EnsureRegular(path);
        if (ext.Equals(".csv", StringComparison.OrdinalIgnoreCase))
        {
            ContainerSniff.RefuseContainer(path, "comma-separated token ids");
            return ParseCsv(File.ReadAllText(path), path);
        }
        if (TextExtensions.Contains(ext, StringComparer.OrdinalIgnoreCase))
            throw new ArgumentException($"{path}: a {ext} file is text, not token ids; give text with --text FILE --tokenizer TOK, or ids as .u16 (raw uint16 little-endian) or .csv (comma-separated)");
        throw new ArgumentException($"{path}: unknown token file type '{ext}'; use .u16 (raw uint16 little-endian) or .csv (comma-separated ids)");
    }

    static readonly string[] TextExtensions = [".txt", ".text", ".md"];

    /// <summary>Refuses a container or a text file given where raw uint16 ids are expected: its bytes would
    /// read as ids (a text file's "Fi" is id 26950) and fail later as out of range, or not at all.</summary>
    static void RefuseNonTokens(ReadOnlySpan<byte> bytes, string path)
    {
        ContainerSniff.RefuseContainer(bytes, bytes.Length, path, "raw uint16 token ids");
        // Short files are left to the range check: a few ids can read as text by chance.
        if (bytes.Length >= 32 && ContainerSniff.LooksLikeText(bytes[..Math.Min(bytes.Length, 64 * 1024)]))
            throw new InvalidDataException($"{path}: reads as text, not raw uint16 token ids; give text with --text FILE --tokenizer TOK");
    }

    /// <summary>Comma-separated ids (whitespace and newlines allowed), from a string.</summary>
    public static int[] ParseCsv(string text, string? source = null)
    {
        var parts = text.Split([',', '\n', '\r', ' ', '\t'], StringSplitOptions.RemoveEmptyEntries);
        var ids = new int[parts.Length];
        for (int i = 0; i < parts.Length; i++)
            if (!int.TryParse(parts[i], System.Globalization.NumberStyles.Integer, System.Globalization.CultureInfo.InvariantCulture, out ids[i]))
                throw new InvalidDataException($"{source ?? "token list"}: entry {i} '{parts[i]}' is not an integer token id");
        return ids;
    }

    /// <summary>Encodes a text file with the project's paragraph convention (see <see cref="Tokenizer.EncodeParagraphs"/>).</summary>
    public static int[] Tokenize(string textPath, ITextTokenizer tokenizer) => EncodeParagraphs(File.ReadAllText(textPath), tokenizer);

    /// <summary>
    /// llama-perplexity's tokenization of a text file: the whole file as one string (one trailing
    /// "\n" dropped, as llama.cpp's <c>-f</c> reads it), encoded with the model's special tokens
    /// added (its BOS when it adds one) and special tokens in the text not parsed.
    /// </summary>
    public static int[] TokenizeWhole(string textPath, ITextTokenizer tokenizer) => EncodeWhole(File.ReadAllText(textPath), tokenizer);

    /// <summary>The text form of <see cref="TokenizeWhole"/>.</summary>
    public static int[] EncodeWhole(string text, ITextTokenizer tokenizer)
    {
        if (text.EndsWith('\n')) text = text[..^1];
        return tokenizer.Encode(text, addSpecial: true, parseSpecial: false);
    }

    /// <summary>
    /// The id llama-perplexity writes over the first token of every chunk: the tokenizer's BOS when
    /// encoding adds one (llama.cpp's add_bos flag), else null (chunks are fed unchanged).
    /// </summary>
    public static int? ChunkStartToken(ITextTokenizer tokenizer)
    {
        if (tokenizer.BosId < 0) return null;
        var probe = tokenizer.Encode("a", addSpecial: true, parseSpecial: false);
        return probe.Length > 0 && probe[0] == tokenizer.BosId ? tokenizer.BosId : null;
    }

    /// <summary>
    /// A copy of <paramref name="tokens"/> with <paramref name="token"/> written over the first token
    /// of each whole window of <paramref name="ctx"/> (llama-perplexity replaces, it does not insert:
    /// the window keeps ctx tokens and the replaced one is never a scored target).
    /// </summary>
    public static int[] WithChunkStarts(ReadOnlySpan<int> tokens, int ctx, int token)
    {
        if (ctx < 1) throw new ArgumentOutOfRangeException(nameof(ctx), $"ctx {ctx} must be positive");
        var copy = tokens.ToArray();
        for (long i = 0; i + ctx <= copy.Length; i += ctx) copy[i] = token;
        return copy;
    }

    /// <summary>
    /// A text file as llama-perplexity and llama-imatrix feed it: <see cref="TokenizeWhole"/>, the
    /// <paramref name="split"/> selected, then <see cref="ChunkStartToken"/> written over the first token of
    /// each window of <paramref name="ctx"/> (when the tokenizer adds a BOS).
    /// </summary>
    public static ReadOnlyMemory<int> TextWindows(string textPath, ITextTokenizer tokenizer, TokenSplit split, int ctx)
    {
        var selected = Split(TokenizeWhole(textPath, tokenizer), split);
        return ChunkStartToken(tokenizer) is int bos && ctx > 0 ? WithChunkStarts(selected.Span, ctx, bos) : selected;
    }

    /// <summary>
    /// <see cref="Tokenizer.EncodeParagraphs"/> for any tokenizer: per blank-line-separated paragraph, BOS (when
    /// the tokenizer has one) + the paragraph and "\n" as plain text (special tokens in it are not parsed).
    /// </summary>
    public static int[] EncodeParagraphs(string text, ITextTokenizer tokenizer)
    {
        if (tokenizer is Tokenizer llama2c) return llama2c.EncodeParagraphs(text);
        var list = new List<int>(text.Length / 2);
        foreach (var p in text.Split("\n\n"))
        {
            if (tokenizer.BosId >= 0) list.Add(tokenizer.BosId);
            list.AddRange(tokenizer.Encode(p + "\n", addSpecial: false, parseSpecial: false));
        }
        return list.ToArray();
    }

    /// <summary>The part of <paramref name="tokens"/> that <paramref name="split"/> selects, without copying.</summary>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="split"/> is not a defined value.</exception>
    public static ReadOnlyMemory<int> Split(int[] tokens, TokenSplit split)
    {
        int val = tokens.Length / 20;
        return split switch
        {
            TokenSplit.All => tokens,
            TokenSplit.Train => tokens.AsMemory(0, tokens.Length - val),
            TokenSplit.Val => tokens.AsMemory(tokens.Length - val, val),
            _ => throw new ArgumentOutOfRangeException(nameof(split)),
        };
    }

    /// <summary>Throws naming the first id outside [0, vocab).</summary>
    public static void CheckRange(ReadOnlySpan<int> tokens, int vocab, string source)
    {
        for (int i = 0; i < tokens.Length; i++)
            if ((uint)tokens[i] >= (uint)vocab)
                throw new InvalidDataException($"{source}: token {i} has id {tokens[i]}, out of range for the model's vocabulary of {vocab}");
    }
}
