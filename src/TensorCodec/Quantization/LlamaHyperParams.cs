using System.Text.Json;
using TensorCodec.Containers;

namespace TensorCodec.Quantization;

/// <summary>The llama.* hyperparameters llama.cpp needs to build a llama-architecture graph.</summary>
public sealed record LlamaHyperParams(
    int ContextLength, int EmbeddingLength, int BlockCount, int FeedForwardLength,
    int HeadCount, int HeadCountKv, float RmsNormEps, float RopeFreqBase, int VocabSize,
    int? HeadDim = null, bool TiedEmbeddings = false)
{
    public int RopeDimensionCount => HeadDim ?? EmbeddingLength / HeadCount;

    public IEnumerable<KeyValuePair<string, GgufValue>> ToGgufMetadata()
    {
        yield return new("llama.context_length", GgufValue.UInt32((uint)ContextLength));
        yield return new("llama.embedding_length", GgufValue.UInt32((uint)EmbeddingLength));
        yield return new("llama.block_count", GgufValue.UInt32((uint)BlockCount));
        yield return new("llama.feed_forward_length", GgufValue.UInt32((uint)FeedForwardLength));
        yield return new("llama.rope.dimension_count", GgufValue.UInt32((uint)RopeDimensionCount));
        yield return new("llama.attention.head_count", GgufValue.UInt32((uint)HeadCount));
        yield return new("llama.attention.head_count_kv", GgufValue.UInt32((uint)HeadCountKv));
        yield return new("llama.attention.layer_norm_rms_epsilon", GgufValue.Float32(RmsNormEps));
        yield return new("llama.rope.freq_base", GgufValue.Float32(RopeFreqBase));
        yield return new("llama.vocab_size", GgufValue.UInt32((uint)VocabSize));
        if (HeadDim is int hd && hd != EmbeddingLength / HeadCount)
        {
            yield return new("llama.attention.key_length", GgufValue.UInt32((uint)hd));
            yield return new("llama.attention.value_length", GgufValue.UInt32((uint)hd));
        }
    }

    /// <summary>Reads a Hugging Face LlamaConfig (config.json).</summary>
    public static LlamaHyperParams FromHfConfig(string path)
    {
        using var doc = JsonDocument.Parse(File.ReadAllBytes(path));
        var root = doc.RootElement;
        if (root.ValueKind != JsonValueKind.Object) throw new InvalidDataException($"{path}: not a JSON object");
        if (root.TryGetProperty("model_type", out var mt) && mt.ValueKind == JsonValueKind.String && mt.GetString() is string type && type != "llama")
            throw new NotSupportedException($"{path}: model_type '{type}' is not supported (only llama)");

        int Int(string key, int? fallback = null)
        {
            if (root.TryGetProperty(key, out var v) && v.ValueKind == JsonValueKind.Number && v.TryGetInt32(out int i) && i > 0) return i;
            return fallback ?? throw new InvalidDataException($"{path}: '{key}' is missing or not a positive integer");
        }
        float Float(string key, float fallback) =>
            root.TryGetProperty(key, out var v) && v.ValueKind == JsonValueKind.Number ? (float)v.GetDouble() : fallback;

        int heads = Int("num_attention_heads");
        int? headDim = root.TryGetProperty("head_dim", out var hdv) && hdv.ValueKind == JsonValueKind.Number ? hdv.GetInt32() : null;
        bool tied = root.TryGetProperty("tie_word_embeddings", out var tie) && tie.ValueKind == JsonValueKind.True;
        return new LlamaHyperParams(
            ContextLength: Int("max_position_embeddings", 2048),
            EmbeddingLength: Int("hidden_size"),
            BlockCount: Int("num_hidden_layers"),
            FeedForwardLength: Int("intermediate_size"),
            HeadCount: heads,
            HeadCountKv: Int("num_key_value_heads", heads),
            RmsNormEps: Float("rms_norm_eps", 1e-6f),
            RopeFreqBase: Float("rope_theta", 10000f),
            VocabSize: Int("vocab_size"),
            HeadDim: headDim,
            TiedEmbeddings: tied);
    }

    /// <summary>llama2.c's run.c hard-codes eps 1e-5 and RoPE base 10000.</summary>
    public static LlamaHyperParams FromLlama2c(Llama2cConfig c) => new(
        c.SeqLen, c.Dim, c.NLayers, c.HiddenDim, c.NHeads, c.NKvHeads, 1e-5f, 10000f, c.VocabSize,
        TiedEmbeddings: c.SharedClassifier);

    /// <summary>Reads the {arch}.* keys of a GGUF file (for the layer count and head counts the rules need).</summary>
    public static LlamaHyperParams FromGguf(GgufFile f, string path)
    {
        string arch = f.Find("general.architecture")?.Value as string
            ?? throw new InvalidDataException($"{path}: general.architecture is missing");
        long Num(string key, long? fallback = null)
        {
            var v = f.Find($"{arch}.{key}");
            if (v is null) return fallback ?? throw new InvalidDataException($"{path}: {arch}.{key} is missing");
            return v.Value switch
            {
                uint u => u, int i => i, ulong ul => (long)ul, long l => l, ushort us => us, short s => s, byte b => b, sbyte sb => sb,
                GgufArray a when a.Count > 0 => Convert.ToInt64(a[0].Value, System.Globalization.CultureInfo.InvariantCulture),
                _ => throw new InvalidDataException($"{path}: {arch}.{key} is {v.Type}, not an integer"),
            };
        }
        float Flt(string key, float fallback) => f.Find($"{arch}.{key}")?.Value switch
        {
            float x => x, double d => (float)d, _ => fallback,
        };
        int heads = (int)Num("attention.head_count");
        int embd = (int)Num("embedding_length");
        int vocab = f.Find($"{arch}.vocab_size") is not null ? (int)Num("vocab_size")
            : f.Find("tokenizer.ggml.tokens")?.Value is GgufArray toks ? toks.Count : 0;
        return new LlamaHyperParams(
            (int)Num("context_length", 2048), embd, (int)Num("block_count"), (int)Num("feed_forward_length", 0),
            heads, (int)Num("attention.head_count_kv", heads), Flt("attention.layer_norm_rms_epsilon", 1e-5f),
            Flt("rope.freq_base", 10000f), vocab);
    }
}
