using System.Globalization;
using System.Text.Json;
using TensorCodec.Containers;

namespace TensorCodec.Models;

/// <summary>How RoPE pairs the dimensions of a head.</summary>
public enum RopeStyle : byte
{
    /// <summary>(x[2i], x[2i+1]): llama2.c and GGUF (llama.cpp permutes Q/K rows on conversion).</summary>
    AdjacentPairs = 0,
    /// <summary>(x[i], x[i + head/2]): Hugging Face <c>rotate_half</c>.</summary>
    HalfSplit = 1,
}

/// <summary>
/// The hyperparameters of a Llama-architecture model, read from a Hugging Face <c>config.json</c>,
/// GGUF <c>llama.*</c> metadata or a llama2.c header. The engine runs, and the quantizer writes,
/// exactly what this accepts. A malformed or inconsistent value is a <see cref="TensorFormatException"/>
/// naming the file and the field; a well-formed request for something the engine does not implement
/// (listed once in <see cref="Refusals"/>) is a <see cref="NotSupportedException"/> naming both too.
/// </summary>
public sealed record ModelConfig
{
    /// <summary>Model width (HF hidden_size, GGUF embedding_length, llama2.c dim).</summary>
    public required int Dim { get; init; }
    /// <summary>Feed-forward width (HF intermediate_size).</summary>
    public required int HiddenDim { get; init; }
    /// <summary>Transformer blocks.</summary>
    public required int Layers { get; init; }
    /// <summary>Query heads.</summary>
    public required int Heads { get; init; }
    /// <summary>Key/value heads (grouped-query attention when fewer than <see cref="Heads"/>).</summary>
    public required int KvHeads { get; init; }
    /// <summary>Vocabulary size: rows of the embedding and the classifier.</summary>
    public required int VocabSize { get; init; }
    /// <summary>Maximum positions the model was built for (llama2.c seq_len, HF max_position_embeddings).</summary>
    public required int MaxSeqLen { get; init; }
    /// <summary>RMSNorm epsilon.</summary>
    public float NormEps { get; init; } = 1e-5f;
    /// <summary>RoPE base frequency.</summary>
    public float RopeTheta { get; init; } = 10000f;
    /// <summary>The RoPE pairing the stored Q/K rows expect (see <see cref="TensorNames.Rope"/>).</summary>
    public RopeStyle Rope { get; init; } = RopeStyle.AdjacentPairs;
    /// <summary>The classifier reuses the token embedding matrix.</summary>
    public bool TiedEmbeddings { get; init; } = true;
    /// <summary>Beginning-of-sequence token id.</summary>
    public int BosId { get; init; } = 1;
    /// <summary>End-of-sequence token id.</summary>
    public int EosId { get; init; } = 2;

    /// <summary>The configuration as text: <see cref="IdentityText"/>.</summary>
    public override string ToString() => IdentityText();

    /// <summary>
    /// <c>LlamaConfig { Dim = …, …, KvDim = … }</c>: the record's text under its former name, culture-invariant.
    /// A <c>.tkv</c> file's model identity hashes this text (FORMAT.md), so it must not change.
    /// </summary>
    internal string IdentityText() => string.Create(CultureInfo.InvariantCulture,
        $"LlamaConfig {{ Dim = {Dim}, HiddenDim = {HiddenDim}, Layers = {Layers}, Heads = {Heads}, KvHeads = {KvHeads}, VocabSize = {VocabSize}, " +
        $"MaxSeqLen = {MaxSeqLen}, NormEps = {NormEps}, RopeTheta = {RopeTheta}, Rope = {Rope}, TiedEmbeddings = {TiedEmbeddings}, " +
        $"BosId = {BosId}, EosId = {EosId}, HeadDim = {HeadDim}, KvDim = {KvDim} }}");

    /// <summary>Dimensions per head: <see cref="Dim"/> / <see cref="Heads"/> (a separate head_dim is refused).</summary>
    public int HeadDim => Dim / Heads;
    /// <summary>Width of the K and V projections.</summary>
    public int KvDim => HeadDim * KvHeads;

    /// <summary>
    /// What a model file may ask for that the engine does not implement, and why it is refused.
    /// Each reader checks its own spelling of these; the reason text is shared.
    /// </summary>
    public static IReadOnlyDictionary<string, string> Refusals { get; } = new Dictionary<string, string>
    {
        ["architecture"] = "only the Llama architecture is implemented",
        ["rope scaling"] = "the engine applies plain RoPE; scaled positions (linear, dynamic, YaRN, llama3) would give different logits",
        ["head_dim"] = "the engine derives head_dim as hidden size / attention heads; a separate head_dim is not implemented",
        ["partial rotary"] = "RoPE over only part of each head is not implemented",
        ["experts"] = "mixture-of-experts feed-forward layers are not implemented",
        ["bias"] = "the engine's projections have no bias terms",
        ["activation"] = "the feed-forward gate is SiLU; other activations are not implemented",
    };

    /// <summary>A refusal: the file is well formed but asks for something the engine does not implement.</summary>
    static NotSupportedException Refuse(string? path, string field, string what, string refusal) =>
        new($"{path ?? "<config>"}, field '{field}': {what}: {Refusals[refusal]}");

    /// <summary>
    /// Checks sizes and divisibility, throwing a <see cref="TensorFormatException"/> naming the
    /// source's spelling of the first bad field.
    /// </summary>
    public void Validate(string? source = null) => Validate(source, ConfigOrigin.Code);

    void Validate(string? source, ConfigOrigin origin)
    {
        var n = origin.Names();
        string file = source ?? "<config>";
        void Positive(int v, string field)
        {
            if (v <= 0) throw new TensorFormatException(file, null, field, $"is {v}; must be a positive integer");
        }
        Positive(Dim, n.Dim); Positive(HiddenDim, n.HiddenDim); Positive(Layers, n.Layers);
        Positive(Heads, n.Heads); Positive(KvHeads, n.KvHeads); Positive(VocabSize, n.Vocab); Positive(MaxSeqLen, n.MaxSeqLen);
        if (Dim % Heads != 0)
            throw new TensorFormatException(file, null, n.Heads, $"{n.Dim} = {Dim} is not a multiple of {n.Heads} = {Heads}");
        if (Heads % KvHeads != 0)
            throw new TensorFormatException(file, null, n.KvHeads, $"{n.Heads} = {Heads} is not a multiple of {n.KvHeads} = {KvHeads}");
        if (HeadDim % 2 != 0)
            throw new TensorFormatException(file, null, n.Heads, $"head size {n.Dim} / {n.Heads} = {HeadDim} is odd; RoPE rotates pairs");
        if (!(NormEps > 0) || !float.IsFinite(NormEps))
            throw new TensorFormatException(file, null, n.Eps, $"is {NormEps.ToString(CultureInfo.InvariantCulture)}; must be positive and finite");
        if (!(RopeTheta > 0) || !float.IsFinite(RopeTheta))
            throw new TensorFormatException(file, null, n.Theta, $"is {RopeTheta.ToString(CultureInfo.InvariantCulture)}; must be positive and finite");
        if ((uint)BosId >= (uint)VocabSize) throw new TensorFormatException(file, null, n.Bos, $"token id {BosId} is outside the vocabulary of {VocabSize}");
        if ((uint)EosId >= (uint)VocabSize) throw new TensorFormatException(file, null, n.Eos, $"token id {EosId} is outside the vocabulary of {VocabSize}");
    }

    /// <summary><paramref name="configPath"/>, or <c>config.json</c> in the folder of <paramref name="modelPath"/>.</summary>
    internal static string HfConfigPathFor(string modelPath, string? configPath) =>
        configPath ?? Path.Combine(Path.GetDirectoryName(Path.GetFullPath(modelPath))!, "config.json");

    /// <summary>
    /// The config of the model file at <paramref name="path"/> whose layout is <paramref name="layout"/>:
    /// its llama2.c header, its GGUF metadata, or (safetensors) <paramref name="configPath"/> or the
    /// config.json beside it.
    /// </summary>
    public static ModelConfig Read(TensorFile layout, string path, string? configPath = null)
    {
        switch (layout.Format)
        {
            case TensorFileFormat.Llama2c:
                using (var s = File.OpenRead(path)) return FromLlama2c(Llama2cFile.ReadConfig(s, path), path);
            case TensorFileFormat.Gguf:
                using (var s = File.OpenRead(path)) return FromGguf(GgufFile.Parse(s, path), path);
            case TensorFileFormat.Safetensors:
                string cfg = HfConfigPathFor(path, configPath);
                if (!File.Exists(cfg))
                    throw new FileNotFoundException($"{path}: a safetensors model needs its Hugging Face config.json ({cfg} does not exist; pass the config path)", cfg);
                return FromHfConfig(cfg);
            default:
                throw new NotSupportedException($"{path}: not a recognised model file (expected llama2.c, safetensors or GGUF)");
        }
    }

    /// <summary>From llama2.c's 7 header fields; run.c fixes eps at 1e-5 and the RoPE base at 10000.</summary>
    public static ModelConfig FromLlama2c(Llama2cConfig header, string? path = null)
    {
        var c = new ModelConfig
        {
            Dim = header.Dim, HiddenDim = header.HiddenDim, Layers = header.NLayers, Heads = header.NHeads,
            KvHeads = header.NKvHeads, VocabSize = header.VocabSize, MaxSeqLen = header.SeqLen,
            NormEps = 1e-5f, RopeTheta = 10000f, Rope = TensorNames.Rope(TensorNaming.Llama2c), TiedEmbeddings = header.SharedClassifier,
        };
        c.Validate(path, ConfigOrigin.Llama2c);
        return c;
    }

    /// <summary>
    /// From the <c>llama.*</c> keys of a GGUF (llama.cpp's converter already permuted Q/K to
    /// adjacent-pair RoPE). Vocabulary size: <c>llama.vocab_size</c>, else the tokenizer's token
    /// count, else the rows of <c>token_embd.weight</c>.
    /// </summary>
    public static ModelConfig FromGguf(GgufFile gguf, string? path = null)
    {
        var k = new GgufKeys(gguf, path);
        string arch = k.String("general.architecture")
            ?? throw new TensorFormatException(path, null, "general.architecture", "is missing");
        if (arch != "llama") throw Refuse(path, "general.architecture", $"is '{arch}'", "architecture");
        if (k.Int("llama.expert_count") is > 0) throw Refuse(path, "llama.expert_count", $"is {k.Int("llama.expert_count")}", "experts");
        if (k.String("llama.rope.scaling.type") is { } st && st != "none")
            throw Refuse(path, "llama.rope.scaling.type", $"is '{st}'", "rope scaling");
        if (k.Float("llama.rope.scaling.factor") is { } sf && sf != 0 && sf != 1)
            throw Refuse(path, "llama.rope.scaling.factor", $"is {sf.ToString(CultureInfo.InvariantCulture)}", "rope scaling");
        if (gguf.Tensors.Any(t => t.Name == "rope_freqs.weight"))
            throw Refuse(path, "rope_freqs.weight", $"per-dimension RoPE frequency factors", "rope scaling");

        int Required(string key) => k.Int(key) ?? throw new TensorFormatException(path, null, key, "is missing");
        int heads = Required("llama.attention.head_count");
        int vocab = k.Int("llama.vocab_size")
            ?? (gguf.Find("tokenizer.ggml.tokens")?.Value is GgufArray toks ? toks.Count
            : gguf.Tensors.FirstOrDefault(t => t.Name == "token_embd.weight")?.Dims is { Length: 2 } d && d[1] <= int.MaxValue ? (int)d[1]
            : throw new TensorFormatException(path, null, "llama.vocab_size", "vocabulary size unknown (no llama.vocab_size, tokenizer or token_embd.weight)"));
        var c = new ModelConfig
        {
            Dim = Required("llama.embedding_length"), HiddenDim = Required("llama.feed_forward_length"),
            Layers = Required("llama.block_count"), Heads = heads, KvHeads = k.Int("llama.attention.head_count_kv") ?? heads,
            VocabSize = vocab, MaxSeqLen = k.Int("llama.context_length") ?? 2048,
            NormEps = k.Float("llama.attention.layer_norm_rms_epsilon") ?? 1e-5f, RopeTheta = k.Float("llama.rope.freq_base") ?? 10000f,
            Rope = TensorNames.Rope(TensorNaming.Gguf),
            TiedEmbeddings = !gguf.Tensors.Any(t => t.Name == TensorNames.Name(TensorNaming.Gguf, TensorRole.Output)),
            BosId = k.Int("tokenizer.ggml.bos_token_id") ?? 1, EosId = k.Int("tokenizer.ggml.eos_token_id") ?? 2,
        };
        c.Validate(path, ConfigOrigin.Gguf);
        foreach (var key in new[] { "llama.attention.key_length", "llama.attention.value_length" })
            if (k.Int(key) is int hd && hd != c.HeadDim)
                throw Refuse(path, key, $"is {hd}, not embedding_length / head_count = {c.HeadDim}", "head_dim");
        if (k.Int("llama.rope.dimension_count") is int rd && rd != c.HeadDim)
            throw Refuse(path, "llama.rope.dimension_count", $"is {rd}, not the head size {c.HeadDim}", "partial rotary");
        return c;
    }

    /// <summary>From a Hugging Face <c>config.json</c> of a <c>LlamaForCausalLM</c>.</summary>
    public static ModelConfig FromHfConfig(string path)
    {
        JsonDocument doc;
        InputFile.EnsureRegular(path);
        var bytes = File.ReadAllBytes(path);
        // The JSON reader checks UTF-8 only when a string is read, and then throws InvalidOperationException.
        if (!System.Text.Unicode.Utf8.IsValid(bytes))
            throw new TensorFormatException(path, null, null, "not valid UTF-8 text, so not a config.json");
        try { doc = JsonDocument.Parse(bytes); }
        catch (JsonException e)
        {
            throw new TensorFormatException(path, null, null, $"not valid JSON (line {e.LineNumber + 1}, byte {e.BytePositionInLine + 1}): {e.Message}", e);
        }
        using (doc) return FromHfConfig(doc.RootElement, path);
    }

    static ModelConfig FromHfConfig(JsonElement root, string path)
    {
        if (root.ValueKind != JsonValueKind.Object) throw new TensorFormatException(path, null, null, $"is a JSON {root.ValueKind}, not an object");
        var j = new JsonFields(root, path);
        if (j.String("model_type") is { } type && type != "llama")
            throw Refuse(path, "model_type", $"is '{type}'", "architecture");
        if (j.Strings("architectures") is { } archs && !archs.Contains("LlamaForCausalLM"))
            throw Refuse(path, "architectures", $"is [{string.Join(", ", archs)}], not LlamaForCausalLM", "architecture");
        if (root.TryGetProperty("rope_scaling", out var rs) && rs.ValueKind != JsonValueKind.Null && !IsDefaultRope(rs))
            throw Refuse(path, "rope_scaling", $"is {rs.GetRawText()}", "rope scaling");
        if (j.String("hidden_act") is { } act && act != "silu")
            throw Refuse(path, "hidden_act", $"is '{act}'", "activation");
        foreach (var key in new[] { "attention_bias", "mlp_bias" })
            if (j.Bool(key) == true) throw Refuse(path, key, $"is true", "bias");

        int Required(string key) => j.Int(key) ?? throw new TensorFormatException(path, null, key, "is missing");
        int heads = Required("num_attention_heads");
        int? headDim = j.Int("head_dim");
        var c = new ModelConfig
        {
            Dim = Required("hidden_size"), HiddenDim = Required("intermediate_size"), Layers = Required("num_hidden_layers"),
            Heads = heads, KvHeads = j.Int("num_key_value_heads") ?? heads, VocabSize = Required("vocab_size"),
            MaxSeqLen = j.Int("max_position_embeddings") ?? 2048,
            // Defaults are transformers' LlamaConfig defaults (tie_word_embeddings false).
            NormEps = (float)(j.Number("rms_norm_eps") ?? 1e-6), RopeTheta = (float)(j.Number("rope_theta") ?? 10000),
            Rope = TensorNames.Rope(TensorNaming.HuggingFace),
            TiedEmbeddings = j.Bool("tie_word_embeddings") ?? false,
            BosId = j.Int("bos_token_id") ?? 1, EosId = j.FirstInt("eos_token_id") ?? 2,
        };
        c.Validate(path, ConfigOrigin.HfConfig);
        if (headDim is int hd && hd != c.HeadDim)
            throw Refuse(path, "head_dim", $"is {hd}, not hidden_size / num_attention_heads = {c.HeadDim}", "head_dim");
        return c;
    }

    /// <summary>transformers writes <c>{"rope_type": "default"}</c> for plain RoPE.</summary>
    static bool IsDefaultRope(JsonElement rs) =>
        rs.ValueKind == JsonValueKind.Object
        && (rs.TryGetProperty("rope_type", out var t) || rs.TryGetProperty("type", out t))
        && t.ValueKind == JsonValueKind.String && t.GetString() == "default"
        && rs.EnumerateObject().All(p => p.Name is "rope_type" or "type");

    /// <summary>The <c>llama.*</c> keys llama.cpp needs to build the graph, in the order its converter writes them.</summary>
    internal IEnumerable<KeyValuePair<string, GgufValue>> ToGgufMetadata()
    {
        yield return new("llama.context_length", GgufValue.UInt32((uint)MaxSeqLen));
        yield return new("llama.embedding_length", GgufValue.UInt32((uint)Dim));
        yield return new("llama.block_count", GgufValue.UInt32((uint)Layers));
        yield return new("llama.feed_forward_length", GgufValue.UInt32((uint)HiddenDim));
        yield return new("llama.rope.dimension_count", GgufValue.UInt32((uint)HeadDim));
        yield return new("llama.attention.head_count", GgufValue.UInt32((uint)Heads));
        yield return new("llama.attention.head_count_kv", GgufValue.UInt32((uint)KvHeads));
        yield return new("llama.attention.layer_norm_rms_epsilon", GgufValue.Float32(NormEps));
        yield return new("llama.rope.freq_base", GgufValue.Float32(RopeTheta));
        yield return new("llama.vocab_size", GgufValue.UInt32((uint)VocabSize));
    }
}

/// <summary>The file format a <see cref="ModelConfig"/> came from.</summary>
internal enum ConfigOrigin : byte { Code, HfConfig, Gguf, Llama2c }

internal readonly record struct ConfigFieldNames(string Dim, string HiddenDim, string Layers, string Heads, string KvHeads,
    string Vocab, string MaxSeqLen, string Eps, string Theta, string Bos, string Eos);

internal static class ConfigOriginNames
{
    static readonly ConfigFieldNames Code = new("Dim", "HiddenDim", "Layers", "Heads", "KvHeads", "VocabSize", "MaxSeqLen", "NormEps", "RopeTheta", "BosId", "EosId");
    static readonly ConfigFieldNames Hf = new("hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads", "num_key_value_heads",
        "vocab_size", "max_position_embeddings", "rms_norm_eps", "rope_theta", "bos_token_id", "eos_token_id");
    static readonly ConfigFieldNames Gguf = new("llama.embedding_length", "llama.feed_forward_length", "llama.block_count", "llama.attention.head_count",
        "llama.attention.head_count_kv", "llama.vocab_size", "llama.context_length", "llama.attention.layer_norm_rms_epsilon", "llama.rope.freq_base",
        "tokenizer.ggml.bos_token_id", "tokenizer.ggml.eos_token_id");
    static readonly ConfigFieldNames Llama2c = new("dim", "hidden_dim", "n_layers", "n_heads", "n_kv_heads", "vocab_size", "seq_len", "eps", "rope_theta", "bos", "eos");

    public static ConfigFieldNames Names(this ConfigOrigin o) => o switch
    {
        ConfigOrigin.HfConfig => Hf, ConfigOrigin.Gguf => Gguf, ConfigOrigin.Llama2c => Llama2c, _ => Code,
    };
}

/// <summary>Typed reads of config.json fields: absent or null is "not given"; a value of the wrong kind is an error naming the field.</summary>
internal readonly struct JsonFields(JsonElement root, string path)
{
    JsonElement? Get(string key) => root.TryGetProperty(key, out var e) && e.ValueKind != JsonValueKind.Null ? e : null;

    static string Kind(JsonElement e) => e.ValueKind switch
    {
        JsonValueKind.String => $"the string {e.GetRawText()}", JsonValueKind.Array => "an array", JsonValueKind.Object => "an object",
        JsonValueKind.True or JsonValueKind.False => $"the boolean {e.GetRawText()}", _ => e.GetRawText(),
    };

    TensorFormatException Wrong(string key, JsonElement e, string want) => new(path, null, key, $"is {Kind(e)}, not {want}");

    public int? Int(string key) => Get(key) is { } e ? AsInt(key, e) : null;

    int AsInt(string key, JsonElement e) =>
        e.ValueKind == JsonValueKind.Number && e.TryGetInt32(out int v) ? v
        : e.ValueKind == JsonValueKind.Number ? throw new TensorFormatException(path, null, key, $"is {e.GetRawText()}, not a 32-bit integer")
        : throw Wrong(key, e, "an integer");

    /// <summary>An integer, or the first of an array of integers (transformers allows several EOS ids).</summary>
    public int? FirstInt(string key)
    {
        if (Get(key) is not { } e) return null;
        if (e.ValueKind != JsonValueKind.Array) return AsInt(key, e);
        int? first = null;
        int i = 0;
        foreach (var x in e.EnumerateArray()) { int v = AsInt($"{key}[{i++}]", x); first ??= v; }
        return first ?? throw new TensorFormatException(path, null, key, "is an empty array");
    }

    public double? Number(string key) => Get(key) is not { } e ? null
        : e.ValueKind == JsonValueKind.Number ? e.GetDouble() : throw Wrong(key, e, "a number");

    public bool? Bool(string key) => Get(key) is not { } e ? null
        : e.ValueKind switch { JsonValueKind.True => true, JsonValueKind.False => false, _ => throw Wrong(key, e, "true or false") };

    public string? String(string key) => Get(key) is not { } e ? null
        : e.ValueKind == JsonValueKind.String ? e.GetString() : throw Wrong(key, e, "a string");

    public string[]? Strings(string key)
    {
        if (Get(key) is not { } e) return null;
        if (e.ValueKind != JsonValueKind.Array) throw Wrong(key, e, "an array of strings");
        var list = new List<string>();
        int i = 0;
        foreach (var x in e.EnumerateArray())
        {
            if (x.ValueKind != JsonValueKind.String) throw Wrong($"{key}[{i}]", x, "a string");
            list.Add(x.GetString()!);
            i++;
        }
        return list.ToArray();
    }
}

/// <summary>Typed reads of GGUF metadata: absent is "not given"; a value of the wrong type is an error naming the key.</summary>
internal readonly struct GgufKeys(GgufFile gguf, string? path)
{
    public int? Int(string key)
    {
        if (gguf.Find(key) is not { } v) return null;
        Int128 x = v.Value switch
        {
            byte b => b, sbyte b => b, ushort b => b, short b => b, uint b => b, int b => b, long b => b, ulong b => b,
            _ => throw new TensorFormatException(path, null, key, $"is {v.Type}, not an integer"),
        };
        if (x < int.MinValue || x > int.MaxValue) throw new TensorFormatException(path, null, key, $"is {x}, out of the 32-bit range");
        return (int)x;
    }

    public float? Float(string key) => gguf.Find(key) is not { } v ? null : v.Value switch
    {
        float f => f, double d => (float)d,
        _ => throw new TensorFormatException(path, null, key, $"is {v.Type}, not a float"),
    };

    public string? String(string key) => gguf.Find(key) is not { } v ? null
        : v.Value as string ?? throw new TensorFormatException(path, null, key, $"is {v.Type}, not a string");
}
