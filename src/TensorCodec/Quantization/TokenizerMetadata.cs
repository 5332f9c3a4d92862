using TensorCodec.Containers;
using TensorCodec.Tokenizers;

namespace TensorCodec.Quantization;

/// <summary>
/// The <c>tokenizer.ggml.*</c> keys for a loaded tokenizer, as llama.cpp's convert_hf_to_gguf.py writes them,
/// so llama.cpp (and <see cref="TokenizerLoader.FromGguf"/>) tokenizes the GGUF as the source file does.
/// </summary>
internal static class TokenizerMetadata
{
    const int Unused = 5; // llama.cpp's token type of the converter's [PADn] fillers

    /// <summary>
    /// The keys for <paramref name="tokenizer"/> padded to <paramref name="vocabSize"/> ids, or null with
    /// <paramref name="reason"/> when GGUF cannot express it the same way.
    /// </summary>
    /// <exception cref="InvalidDataException">The tokenizer has more tokens than the model's vocabulary.</exception>
    internal static List<KeyValuePair<string, GgufValue>>? For(ITextTokenizer tokenizer, string path, int vocabSize, out string? reason)
    {
        reason = null;
        if (tokenizer.VocabSize > vocabSize)
            throw new InvalidDataException($"{path}: tokenizer has {tokenizer.VocabSize} tokens but the model's vocabulary is {vocabSize}");
        switch (tokenizer)
        {
            case Tokenizer { Vocabulary: var v }:
                if (v.Count != vocabSize)
                    throw new InvalidDataException($"{path}: tokenizer has {v.Count} tokens but the model's vocabulary is {vocabSize}");
                return v.ToGgufMetadata().ToList();
            case ByteLevelBpeTokenizer b:
                return ByteLevel(b, path, vocabSize, out reason);
            case HfSentencePieceTokenizer h:
                return SentencePiece(h, path, vocabSize, out reason);
            default:
                reason = $"{path}: a {tokenizer.GetType().Name} cannot be written as GGUF tokenizer metadata yet";
                return null;
        }
    }

    static List<KeyValuePair<string, GgufValue>>? ByteLevel(ByteLevelBpeTokenizer b, string path, int vocabSize, out string? reason)
    {
        reason = null;
        if (b.LlamaCppPre is not string pre)
        {
            reason = $"{path}: its pre-tokenizer has no llama.cpp tokenizer.ggml.pre that splits the same way";
            return null;
        }
        var tokens = new string[vocabSize];
        var types = new int[vocabSize];
        for (int i = 0; i < vocabSize; i++)
        {
            bool real = i < b.VocabSize;
            tokens[i] = real ? b.TokenText(i) : $"[PAD{i}]";
            types[i] = real ? b.TokenType(i) : Unused;
        }
        var meta = new List<KeyValuePair<string, GgufValue>>
        {
            new("tokenizer.ggml.model", GgufValue.String("gpt2")),
            new("tokenizer.ggml.pre", GgufValue.String(pre)),
            new("tokenizer.ggml.tokens", GgufValue.Array(GgufArray.Of(tokens))),
            new("tokenizer.ggml.token_type", GgufValue.Array(GgufArray.Of(types))),
            new("tokenizer.ggml.merges", GgufValue.Array(GgufArray.Of(b.MergeTexts()))),
        };
        AddSpecials(meta, b.BosId, b.EosId, b.UnkId, b.AddBos, b.AddEos);
        return meta;
    }

    static List<KeyValuePair<string, GgufValue>>? SentencePiece(HfSentencePieceTokenizer h, string path, int vocabSize, out string? reason)
    {
        var (spacePrefix, addBos, addEos, unk, why) = h.LlamaCppForm();
        reason = why is null ? null : $"{path}: {why}";
        if (why is not null) return null;
        var scores = h.MergeScores();
        var realTypes = h.LlamaCppTokenTypes();
        var tokens = new string[vocabSize];
        var allScores = new float[vocabSize];
        var types = new int[vocabSize];
        for (int i = 0; i < vocabSize; i++)
        {
            bool real = i < h.VocabSize;
            tokens[i] = real ? h.TokenText(i) : $"[PAD{i}]";
            allScores[i] = real ? scores[i] : -1000f; // the converter's filler score
            types[i] = real ? realTypes[i] : Unused;
        }
        var meta = new List<KeyValuePair<string, GgufValue>>
        {
            new("tokenizer.ggml.model", GgufValue.String("llama")),
            new("tokenizer.ggml.pre", GgufValue.String("default")),
            new("tokenizer.ggml.tokens", GgufValue.Array(GgufArray.Of(tokens))),
            new("tokenizer.ggml.scores", GgufValue.Array(GgufArray.Of(allScores))),
            new("tokenizer.ggml.token_type", GgufValue.Array(GgufArray.Of(types))),
        };
        AddSpecials(meta, h.BosId >= 0 ? h.BosId : null, h.EosId >= 0 ? h.EosId : null, unk, addBos, addEos);
        meta.Add(new("tokenizer.ggml.add_space_prefix", GgufValue.Bool(spacePrefix)));
        return meta;
    }

    static void AddSpecials(List<KeyValuePair<string, GgufValue>> meta, int? bos, int? eos, int? unk, bool addBos, bool addEos)
    {
        if (bos is int bo) meta.Add(new("tokenizer.ggml.bos_token_id", GgufValue.UInt32((uint)bo)));
        if (eos is int eo) meta.Add(new("tokenizer.ggml.eos_token_id", GgufValue.UInt32((uint)eo)));
        if (unk is int u) meta.Add(new("tokenizer.ggml.unknown_token_id", GgufValue.UInt32((uint)u)));
        meta.Add(new("tokenizer.ggml.add_bos_token", GgufValue.Bool(addBos)));
        meta.Add(new("tokenizer.ggml.add_eos_token", GgufValue.Bool(addEos)));
    }
}
