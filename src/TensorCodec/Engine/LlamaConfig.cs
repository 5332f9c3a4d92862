using System.Globalization;
using System.Text.Json;
using TensorCodec.Containers;

namespace TensorCodec.Engine;

/// <summary>How RoPE pairs the dimensions of a head.</summary>
public enum RopeStyle : byte
{
    /// <summary>(x[2i], x[2i+1]): llama2.c and GGUF (llama.cpp permutes Q/K rows on conversion).</summary>
    AdjacentPairs = 0,
    /// <summary>(x[i], x[i + head/2]): Hugging Face <c>rotate_half</c>.</summary>
    HalfSplit = 1,
}

/// <summary>Hyperparameters of a Llama-architecture model.</summary>
public sealed record LlamaConfig
{
    public required int Dim { get; init; }
    public required int HiddenDim { get; init; }
    public required int Layers { get; init; }
    public required int Heads { get; init; }
    public required int KvHeads { get; init; }
    public required int VocabSize { get; init; }
    /// <summary>Maximum positions the model was built for (llama2.c seq_len, HF max_position_embeddings).</summary>
    public required int MaxSeqLen { get; init; }
    public float NormEps { get; init; } = 1e-5f;
    public float RopeTheta { get; init; } = 10000f;
    public RopeStyle Rope { get; init; } = RopeStyle.AdjacentPairs;
    /// <summary>The classifier reuses the token embedding matrix.</summary>
    public bool TiedEmbeddings { get; init; } = true;
    public int BosId { get; init; } = 1;
    public int EosId { get; init; } = 2;

    public int HeadDim => Dim / Heads;
    public int KvDim => HeadDim * KvHeads;

    /// <summary>Throws <see cref="InvalidDataException"/> naming the first inconsistent field.</summary>
    public void Validate(string? source = null)
    {
        string where = source is null ? "" : source + ": ";
        void Positive(int v, string name)
        {
            if (v <= 0) throw new InvalidDataException($"{where}config field '{name}' = {v} must be positive");
        }
        Positive(Dim, "dim"); Positive(HiddenDim, "hidden_dim"); Positive(Layers, "n_layers");
        Positive(Heads, "n_heads"); Positive(KvHeads, "n_kv_heads"); Positive(VocabSize, "vocab_size");
        Positive(MaxSeqLen, "max_seq_len");
        if (Dim % Heads != 0) throw new InvalidDataException($"{where}config field 'dim' = {Dim} is not a multiple of n_heads = {Heads}");
        if (Heads % KvHeads != 0) throw new InvalidDataException($"{where}config field 'n_heads' = {Heads} is not a multiple of n_kv_heads = {KvHeads}");
        if (HeadDim % 2 != 0) throw new InvalidDataException($"{where}head size {HeadDim} is odd; RoPE rotates pairs");
        if (!(NormEps > 0)) throw new InvalidDataException($"{where}config field 'rms_norm_eps' = {NormEps} must be positive");
        if (!(RopeTheta > 0)) throw new InvalidDataException($"{where}config field 'rope_theta' = {RopeTheta} must be positive");
    }

    /// <summary>From the 7 llama2.c header fields (as the llama2.c reader puts them in metadata).</summary>
    public static LlamaConfig FromLlama2c(IReadOnlyDictionary<string, string> meta, string? source = null)
    {
        int Get(string key) => meta.TryGetValue(key, out var s) && int.TryParse(s, NumberStyles.Integer, CultureInfo.InvariantCulture, out int v)
            ? v : throw new InvalidDataException($"{source}: llama2.c header field '{key}' missing or not an integer");
        int vocab = Get("vocab_size");
        bool shared = vocab > 0;
        if (meta.TryGetValue("shared_classifier", out var sc)) shared = sc == "true";
        var c = new LlamaConfig
        {
            Dim = Get("dim"), HiddenDim = Get("hidden_dim"), Layers = Get("n_layers"), Heads = Get("n_heads"),
            KvHeads = Get("n_kv_heads"), VocabSize = Math.Abs(vocab), MaxSeqLen = Get("seq_len"),
            Rope = RopeStyle.AdjacentPairs, TiedEmbeddings = shared,
        };
        c.Validate(source);
        return c;
    }

    /// <summary>From the <c>llama.*</c> keys of a GGUF (llama.cpp's converter already permuted Q/K to adjacent-pair RoPE).</summary>
    public static LlamaConfig FromGguf(GgufFile gguf, string? source = null)
    {
        string arch = gguf.Find("general.architecture")?.Value as string
            ?? throw new InvalidDataException($"{source}: GGUF key 'general.architecture' is missing");
        if (arch != "llama") throw new NotSupportedException($"{source}: GGUF architecture '{arch}' is not supported (only 'llama')");
        long Int(string key, long? dflt = null)
        {
            var v = gguf.Find(key);
            if (v is null) return dflt ?? throw new InvalidDataException($"{source}: GGUF key '{key}' is missing");
            return v.Value switch
            {
                byte b => b, sbyte b => b, ushort b => b, short b => b, uint b => b, int b => b, ulong b => (long)b, long b => b,
                _ => throw new InvalidDataException($"{source}: GGUF key '{key}' is {v.Type}, not an integer"),
            };
        }
        double Num(string key, double dflt) => gguf.Find(key)?.Value switch { float f => f, double d => d, null => dflt, var o => Convert.ToDouble(o, CultureInfo.InvariantCulture) };
        int vocab = gguf.Find("tokenizer.ggml.tokens")?.Value is GgufArray toks ? toks.Count : 0;
        if (gguf.Find("llama.vocab_size") is not null) vocab = (int)Int("llama.vocab_size");
        if (vocab == 0)
            vocab = (int)(gguf.Tensors.FirstOrDefault(t => t.Name == "token_embd.weight")?.Dims is { Length: 2 } d ? d[1]
                : throw new InvalidDataException($"{source}: vocabulary size unknown (no llama.vocab_size, tokenizer or token_embd.weight)"));
        int heads = (int)Int("llama.attention.head_count");
        var c = new LlamaConfig
        {
            Dim = (int)Int("llama.embedding_length"), HiddenDim = (int)Int("llama.feed_forward_length"),
            Layers = (int)Int("llama.block_count"), Heads = heads, KvHeads = (int)Int("llama.attention.head_count_kv", heads),
            VocabSize = vocab, MaxSeqLen = (int)Int("llama.context_length", 2048),
            NormEps = (float)Num("llama.attention.layer_norm_rms_epsilon", 1e-5), RopeTheta = (float)Num("llama.rope.freq_base", 10000),
            Rope = RopeStyle.AdjacentPairs,
            TiedEmbeddings = !gguf.Tensors.Any(t => t.Name == "output.weight"),
            BosId = (int)Int("tokenizer.ggml.bos_token_id", 1), EosId = (int)Int("tokenizer.ggml.eos_token_id", 2),
        };
        c.Validate(source);
        return c;
    }

    /// <summary>From a Hugging Face <c>config.json</c> of a <c>LlamaForCausalLM</c>.</summary>
    public static LlamaConfig FromHfConfigJson(string path)
    {
        using var doc = JsonDocument.Parse(File.ReadAllBytes(path));
        var r = doc.RootElement;
        string? modelType = r.TryGetProperty("model_type", out var mt) ? mt.GetString() : null;
        if (modelType is not null && modelType != "llama")
            throw new NotSupportedException($"{path}: model_type '{modelType}' is not supported (only 'llama')");
        if (r.TryGetProperty("rope_scaling", out var rs) && rs.ValueKind != JsonValueKind.Null)
            throw new NotSupportedException($"{path}: field 'rope_scaling' is not supported");
        int Int(string key, int? dflt = null)
        {
            if (r.TryGetProperty(key, out var e) && e.ValueKind == JsonValueKind.Number && e.TryGetInt32(out int v)) return v;
            return dflt ?? throw new InvalidDataException($"{path}: field '{key}' missing or not an integer");
        }
        double Num(string key, double dflt) =>
            r.TryGetProperty(key, out var e) && e.ValueKind == JsonValueKind.Number ? e.GetDouble() : dflt;
        int heads = Int("num_attention_heads");
        var c = new LlamaConfig
        {
            Dim = Int("hidden_size"), HiddenDim = Int("intermediate_size"), Layers = Int("num_hidden_layers"),
            Heads = heads, KvHeads = Int("num_key_value_heads", heads), VocabSize = Int("vocab_size"),
            MaxSeqLen = Int("max_position_embeddings", 2048),
            NormEps = (float)Num("rms_norm_eps", 1e-6), RopeTheta = (float)Num("rope_theta", 10000),
            Rope = RopeStyle.HalfSplit,
            // HF LlamaConfig defaults tie_word_embeddings to false.
            TiedEmbeddings = r.TryGetProperty("tie_word_embeddings", out var t) && t.ValueKind == JsonValueKind.True,
            BosId = Int("bos_token_id", 1), EosId = Int("eos_token_id", 2),
        };
        if (r.TryGetProperty("head_dim", out var hd) && hd.ValueKind == JsonValueKind.Number && hd.GetInt32() != c.HeadDim)
            throw new NotSupportedException($"{path}: field 'head_dim' = {hd.GetInt32()} differs from hidden_size/num_attention_heads = {c.HeadDim}");
        c.Validate(path);
        return c;
    }
}
