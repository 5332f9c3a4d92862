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

/// <summary>The transformer families the engine runs; each is a GGUF <c>general.architecture</c>.</summary>
public enum ModelArchitecture : byte
{
    /// <summary>Llama 2/3 and Mistral (llama.cpp's converter writes Mistral as <c>llama</c>): Q/K rows permuted to adjacent-pair RoPE.</summary>
    Llama = 0,
    /// <summary>Qwen2 / Qwen2.5: bias on q/k/v, NEOX (half-split) RoPE with unpermuted rows.</summary>
    Qwen2 = 1,
    /// <summary>Qwen3: RMSNorm on each q and k head before RoPE, NEOX RoPE.</summary>
    Qwen3 = 2,
}

/// <summary>How RoPE positions or frequencies are scaled for a longer context.</summary>
public enum RopeScalingType : byte
{
    /// <summary>Plain RoPE.</summary>
    None = 0,
    /// <summary>Positions divided by <see cref="RopeScaling.Factor"/> (GGUF <c>rope.scaling.type = linear</c>).</summary>
    Linear = 1,
    /// <summary>Llama 3.1's per-frequency factors (llama.cpp stores them as the tensor <c>rope_freqs.weight</c>).</summary>
    Llama3 = 2,
}

/// <summary>A RoPE scaling request from <c>rope_scaling</c> (config.json) or <c>rope.scaling.*</c> (GGUF).</summary>
/// <param name="Type">Which scaling.</param>
/// <param name="Factor">Context extension factor.</param>
/// <param name="LowFreqFactor">Llama 3: wavelengths above original/low_freq_factor are divided by the factor.</param>
/// <param name="HighFreqFactor">Llama 3: wavelengths below original/high_freq_factor are kept.</param>
/// <param name="OriginalContext">Llama 3: original_max_position_embeddings.</param>
public sealed record RopeScaling(RopeScalingType Type, float Factor, float LowFreqFactor = 1, float HighFreqFactor = 4, int OriginalContext = 8192)
{
    /// <summary>
    /// Llama 3's per-pair frequency divisors for a head of <paramref name="headDim"/> and base <paramref name="theta"/>,
    /// computed as llama.cpp's convert_hf_to_gguf.py computes <c>rope_freqs.weight</c> (float32 frequencies,
    /// double arithmetic, rounded to float32 on write).
    /// </summary>
    internal float[] Llama3Factors(int headDim, float theta)
    {
        double lowWavelen = OriginalContext / (double)LowFreqFactor, highWavelen = OriginalContext / (double)HighFreqFactor;
        var factors = new float[headDim / 2];
        for (int i = 0; i < factors.Length; i++)
        {
            float freq = 1f / MathF.Pow(theta, 2 * i / (float)headDim);
            double wavelen = 2 * Math.PI / freq;
            if (wavelen < highWavelen) factors[i] = 1;
            else if (wavelen > lowWavelen) factors[i] = Factor;
            else
            {
                double smooth = (OriginalContext / wavelen - LowFreqFactor) / (HighFreqFactor - LowFreqFactor);
                factors[i] = (float)(1 / ((1 - smooth) / Factor + smooth));
            }
        }
        return factors;
    }
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
    /// <summary>The RoPE pairing the stored Q/K rows expect (see <see cref="TensorNames.Rope(TensorNaming, ModelArchitecture)"/>).</summary>
    public RopeStyle Rope { get; init; } = RopeStyle.AdjacentPairs;
    /// <summary>The classifier reuses the token embedding matrix.</summary>
    public bool TiedEmbeddings { get; init; } = true;
    /// <summary>Beginning-of-sequence token id.</summary>
    public int BosId { get; init; } = 1;
    /// <summary>End-of-sequence token id.</summary>
    public int EosId { get; init; } = 2;
    /// <summary>The transformer family (GGUF <c>general.architecture</c>).</summary>
    public ModelArchitecture Architecture { get; init; } = ModelArchitecture.Llama;
    /// <summary>The q, k and v projections have bias vectors (Qwen2, Llama <c>attention_bias</c>).</summary>
    public bool QkvBias { get; init; }
    /// <summary>The attention output projection has a bias vector (Llama <c>attention_bias</c>).</summary>
    public bool OutputBias { get; init; }
    /// <summary>RMSNorm over each q and k head before RoPE (Qwen3).</summary>
    public bool QkNorm { get; init; }
    /// <summary>RoPE scaling; null for plain RoPE.</summary>
    public RopeScaling? RopeScaling { get; init; }
    /// <summary>
    /// Per-pair RoPE frequency divisors as stored in a GGUF's <c>rope_freqs.weight</c> (read with the file); for
    /// config.json they follow from <see cref="RopeScaling"/> (<see cref="FrequencyFactors"/>).
    /// </summary>
    internal float[]? StoredFrequencyFactors { get; init; }
    /// <summary>
    /// Attention sees only the last this many positions (Mistral <c>sliding_window</c>); null for full attention.
    /// Only config.json sets it: llama.cpp's converter writes Mistral as <c>llama</c> without the window, and the
    /// llama.cpp bundled with node-llama-cpp 3.22 (release v0.5.0) reads no sliding window for arch llama, so a
    /// GGUF runs full attention in both engines.
    /// </summary>
    public int? SlidingWindow { get; init; }

    /// <summary>The configuration as text: <see cref="IdentityText"/>.</summary>
    public override string ToString() => IdentityText();

    /// <summary>
    /// <c>LlamaConfig { Dim = …, …, KvDim = … }</c>: the record's text under its former name, culture-invariant.
    /// A <c>.tkv</c> file's model identity hashes this text (FORMAT.md), so it must not change.
    /// </summary>
    internal string IdentityText() => string.Create(CultureInfo.InvariantCulture,
        $"LlamaConfig {{ Dim = {Dim}, HiddenDim = {HiddenDim}, Layers = {Layers}, Heads = {Heads}, KvHeads = {KvHeads}, VocabSize = {VocabSize}, " +
        $"MaxSeqLen = {MaxSeqLen}, NormEps = {NormEps}, RopeTheta = {RopeTheta}, Rope = {Rope}, TiedEmbeddings = {TiedEmbeddings}, " +
        $"BosId = {BosId}, EosId = {EosId}, HeadDim = {HeadDim}, KvDim = {KvDim}{ExtraIdentity()} }}");

    // Only what a Llama 2 model lacks is appended, so the identity of every model the engine ran before is unchanged.
    string ExtraIdentity()
    {
        var parts = new List<string>();
        if (Architecture != ModelArchitecture.Llama) parts.Add($"Architecture = {Architecture}");
        if (QkvBias) parts.Add("QkvBias = True");
        if (OutputBias) parts.Add("OutputBias = True");
        if (QkNorm) parts.Add("QkNorm = True");
        if (RopeScaling is { } rs) parts.Add(string.Create(CultureInfo.InvariantCulture, $"RopeScaling = {rs}"));
        if (StoredFrequencyFactors is { } f) parts.Add(string.Create(CultureInfo.InvariantCulture, $"RopeFreqs = [{string.Join(", ", f)}]"));
        if (SlidingWindow is int w) parts.Add(string.Create(CultureInfo.InvariantCulture, $"SlidingWindow = {w}"));
        return parts.Count == 0 ? "" : ", " + string.Join(", ", parts);
    }

    readonly int? _headDim;

    /// <summary>Dimensions per head: config.json <c>head_dim</c> / GGUF <c>attention.key_length</c>, else <see cref="Dim"/> / <see cref="Heads"/>.</summary>
    public int HeadDim { get => _headDim ?? Dim / Heads; init => _headDim = value; }
    /// <summary>True when <see cref="HeadDim"/> was given rather than derived.</summary>
    internal bool HeadDimGiven => _headDim is not null;
    /// <summary>Width of the Q projection (and the attention output): Heads × HeadDim.</summary>
    public int QDim => HeadDim * Heads;
    /// <summary>Width of the K and V projections.</summary>
    public int KvDim => HeadDim * KvHeads;

    /// <summary>Per-pair RoPE frequency divisors (Llama 3 scaling), or null.</summary>
    internal float[]? FrequencyFactors() =>
        StoredFrequencyFactors ?? (RopeScaling is { Type: RopeScalingType.Llama3 } rs ? rs.Llama3Factors(HeadDim, RopeTheta) : null);

    /// <summary>RoPE positions are multiplied by this (1 / linear factor).</summary>
    internal float RopePositionScale => RopeScaling is { Type: RopeScalingType.Linear } rs ? 1f / rs.Factor : 1f;

    /// <summary>The GGUF <c>general.architecture</c> string, which also prefixes the model's metadata keys.</summary>
    public string GgufArchitecture => ArchitectureName(Architecture);

    static string ArchitectureName(ModelArchitecture a) => a switch
    {
        ModelArchitecture.Qwen2 => "qwen2", ModelArchitecture.Qwen3 => "qwen3", _ => "llama",
    };

    /// <summary>config.json <c>model_type</c>s the engine runs, with their GGUF architecture.</summary>
    static readonly Dictionary<string, (ModelArchitecture Arch, string ClassName)> HfTypes = new()
    {
        ["llama"] = (ModelArchitecture.Llama, "LlamaForCausalLM"),
        ["mistral"] = (ModelArchitecture.Llama, "MistralForCausalLM"),
        ["qwen2"] = (ModelArchitecture.Qwen2, "Qwen2ForCausalLM"),
        ["qwen3"] = (ModelArchitecture.Qwen3, "Qwen3ForCausalLM"),
    };

    static readonly Dictionary<string, ModelArchitecture> GgufArchs = new()
    {
        ["llama"] = ModelArchitecture.Llama, ["qwen2"] = ModelArchitecture.Qwen2, ["qwen3"] = ModelArchitecture.Qwen3,
    };

    /// <summary>
    /// What a model file may ask for that the engine does not implement, and why it is refused.
    /// Each reader checks its own spelling of these; the reason text is shared.
    /// </summary>
    public static IReadOnlyDictionary<string, string> Refusals { get; } = new Dictionary<string, string>
    {
        ["architecture"] = "the implemented architectures are llama, mistral, qwen2 and qwen3 (config.json model_type; GGUF llama, qwen2, qwen3)",
        ["rope scaling"] = "the engine implements plain, linear and llama3 RoPE scaling; llama.cpp has no dynamic NTK scaling at inference, and YaRN/LongRoPE are not implemented",
        ["head_dim"] = "keys and values of different head sizes are not implemented",
        ["partial rotary"] = "RoPE over only part of each head is not implemented",
        ["experts"] = "mixture-of-experts feed-forward layers are not implemented",
        ["bias"] = "only attention projections have bias terms in the engine; feed-forward bias is not implemented",
        ["sliding window"] = "llama.cpp's qwen2 graph has no sliding-window attention, so a GGUF would not reproduce it",
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
        if (origin == ConfigOrigin.Gguf && Architecture != ModelArchitecture.Llama) n = n.WithArchitecture(GgufArchitecture);
        string file = source ?? "<config>";
        void Positive(int v, string field)
        {
            if (v <= 0) throw new TensorFormatException(file, null, field, $"is {v}; must be a positive integer");
        }
        Positive(Dim, n.Dim); Positive(HiddenDim, n.HiddenDim); Positive(Layers, n.Layers);
        Positive(Heads, n.Heads); Positive(KvHeads, n.KvHeads); Positive(VocabSize, n.Vocab); Positive(MaxSeqLen, n.MaxSeqLen);
        if (_headDim is int hd0 && hd0 <= 0) throw new TensorFormatException(file, null, n.HeadDim, $"is {hd0}; must be a positive integer");
        if (_headDim is null && Dim % Heads != 0)
            throw new TensorFormatException(file, null, n.Heads, $"{n.Dim} = {Dim} is not a multiple of {n.Heads} = {Heads}");
        if (Heads % KvHeads != 0)
            throw new TensorFormatException(file, null, n.KvHeads, $"{n.Heads} = {Heads} is not a multiple of {n.KvHeads} = {KvHeads}");
        if (HeadDim % 2 != 0)
            throw new TensorFormatException(file, null, _headDim is null ? n.Heads : n.HeadDim,
                _headDim is null ? $"head size {n.Dim} / {n.Heads} = {HeadDim} is odd; RoPE rotates pairs" : $"head size {HeadDim} is odd; RoPE rotates pairs");
        if (RopeScaling is { } rs && (!(rs.Factor > 0) || !float.IsFinite(rs.Factor)))
            throw new TensorFormatException(file, null, n.Scaling, $"factor {rs.Factor.ToString(CultureInfo.InvariantCulture)} must be positive and finite");
        if (RopeScaling is { Type: RopeScalingType.Llama3 } l3 && (!(l3.LowFreqFactor > 0) || !(l3.HighFreqFactor > l3.LowFreqFactor) || l3.OriginalContext <= 0
            || !float.IsFinite(l3.HighFreqFactor)))
            throw new TensorFormatException(file, null, n.Scaling, "llama3 scaling needs 0 < low_freq_factor < high_freq_factor and a positive original_max_position_embeddings");
        if (StoredFrequencyFactors is { } ff && (ff.Length != HeadDim / 2 || ff.Any(f => !(f > 0) || !float.IsFinite(f))))
            throw new TensorFormatException(file, null, "rope_freqs.weight", $"needs {HeadDim / 2} positive finite factors (one per rotated pair)");
        if (SlidingWindow is int sw && sw <= 0)
            throw new TensorFormatException(file, null, n.Window, $"is {sw}; must be a positive integer");
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
                using (var s = File.OpenRead(path))
                {
                    var g = GgufFile.Parse(s, path);
                    return WithStoredFrequencies(FromGguf(g, path), g, s, path);
                }
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
    /// From the <c>{arch}.*</c> keys of a GGUF of architecture llama, qwen2 or qwen3 (for llama, llama.cpp's
    /// converter already permuted Q/K to adjacent-pair RoPE; qwen rows are unpermuted, NEOX RoPE). Vocabulary
    /// size: <c>{arch}.vocab_size</c>, else the tokenizer's token count, else the rows of <c>token_embd.weight</c>.
    /// Bias and q/k-norm tensors are detected by name; <c>rope_freqs.weight</c>'s values are read by
    /// <see cref="Read"/>, which has the file.
    /// </summary>
    public static ModelConfig FromGguf(GgufFile gguf, string? path = null)
    {
        var k = new GgufKeys(gguf, path);
        string archName = k.String("general.architecture")
            ?? throw new TensorFormatException(path, null, "general.architecture", "is missing");
        if (!GgufArchs.TryGetValue(archName, out var arch)) throw Refuse(path, "general.architecture", $"is '{archName}'", "architecture");
        string a = archName;
        if (k.Int($"{a}.expert_count") is > 0) throw Refuse(path, $"{a}.expert_count", $"is {k.Int($"{a}.expert_count")}", "experts");
        RopeScaling? scaling = null;
        string? st = k.String($"{a}.rope.scaling.type");
        // llama.cpp: a factor without a type is linear; factor 0 or 1 is no scaling.
        float? sf = k.Float($"{a}.rope.scaling.factor") ?? k.Float($"{a}.rope.scale_linear");
        if (st is not (null or "none" or "linear"))
            throw Refuse(path, $"{a}.rope.scaling.type", $"is '{st}'", "rope scaling");
        if (st != "none" && sf is float f && f != 0 && f != 1) scaling = new RopeScaling(RopeScalingType.Linear, f);
        bool hasFreqs = gguf.Tensors.Any(t => t.Name == RopeFreqsTensor);
        if (hasFreqs && scaling is not null)
            throw Refuse(path, RopeFreqsTensor, "per-pair RoPE factors together with linear scaling", "rope scaling");

        int Required(string key) => k.Int(key) ?? throw new TensorFormatException(path, null, key, "is missing");
        int heads = Required($"{a}.attention.head_count");
        int vocab = k.Int($"{a}.vocab_size")
            ?? (gguf.Find("tokenizer.ggml.tokens")?.Value is GgufArray toks ? toks.Count
            : gguf.Tensors.FirstOrDefault(t => t.Name == "token_embd.weight")?.Dims is { Length: 2 } d && d[1] <= int.MaxValue ? (int)d[1]
            : throw new TensorFormatException(path, null, $"{a}.vocab_size", "vocabulary size unknown (no vocab_size, tokenizer or token_embd.weight)"));
        int? keyLength = k.Int($"{a}.attention.key_length");
        bool Has(string tensor) => gguf.Tensors.Any(t => t.Name == tensor);
        var c = new ModelConfig
        {
            Dim = Required($"{a}.embedding_length"), HiddenDim = Required($"{a}.feed_forward_length"),
            Layers = Required($"{a}.block_count"), Heads = heads, KvHeads = k.Int($"{a}.attention.head_count_kv") ?? heads,
            VocabSize = vocab, MaxSeqLen = k.Int($"{a}.context_length") ?? 2048,
            NormEps = k.Float($"{a}.attention.layer_norm_rms_epsilon") ?? 1e-5f, RopeTheta = k.Float($"{a}.rope.freq_base") ?? 10000f,
            Rope = TensorNames.Rope(TensorNaming.Gguf, arch),
            TiedEmbeddings = !Has(TensorNames.Name(TensorNaming.Gguf, TensorRole.Output)),
            BosId = k.Int("tokenizer.ggml.bos_token_id") ?? 1, EosId = k.Int("tokenizer.ggml.eos_token_id") ?? 2,
            Architecture = arch,
            QkvBias = Has(TensorNames.Name(TensorNaming.Gguf, TensorRole.QueryBias, 0)),
            OutputBias = Has(TensorNames.Name(TensorNaming.Gguf, TensorRole.AttentionOutputBias, 0)),
            QkNorm = arch == ModelArchitecture.Qwen3 || Has(TensorNames.Name(TensorNaming.Gguf, TensorRole.QueryNorm, 0)),
            RopeScaling = scaling,
        };
        if (keyLength is int kl && (kl != c.HeadDim || c.Dim % c.Heads != 0)) c = c with { HeadDim = kl };
        c.Validate(path, ConfigOrigin.Gguf);
        if (k.Int($"{a}.attention.value_length") is int vl && vl != c.HeadDim)
            throw Refuse(path, $"{a}.attention.value_length", $"is {vl}, not the key head size {c.HeadDim}", "head_dim");
        if (k.Int($"{a}.rope.dimension_count") is int rd && rd != c.HeadDim)
            throw Refuse(path, $"{a}.rope.dimension_count", $"is {rd}, not the head size {c.HeadDim}", "partial rotary");
        return c;
    }

    /// <summary>The GGUF tensor of per-pair RoPE frequency divisors llama.cpp's converter writes for Llama 3 scaling.</summary>
    internal const string RopeFreqsTensor = "rope_freqs.weight";

    /// <summary>A GGUF config with <c>rope_freqs.weight</c>'s values, which the engine needs to rotate.</summary>
    internal static ModelConfig WithStoredFrequencies(ModelConfig c, GgufFile gguf, Stream s, string path)
    {
        if (gguf.Tensors.FirstOrDefault(t => t.Name == RopeFreqsTensor) is not { } t) return c;
        if (t.GgmlType != GgmlTypes.F32 || t.Dims.Length != 1 || t.Dims[0] != c.HeadDim / 2)
            throw new TensorFormatException(path, t.Offset, RopeFreqsTensor, $"must be F32 of {c.HeadDim / 2} values (one per rotated pair)");
        var bytes = new byte[t.ByteSize];
        s.Position = t.Offset;
        s.ReadExactly(bytes);
        var f = System.Runtime.InteropServices.MemoryMarshal.Cast<byte, float>(bytes).ToArray();
        var result = c with { StoredFrequencyFactors = f };
        result.Validate(path, ConfigOrigin.Gguf);
        return result;
    }

    /// <summary>From a Hugging Face <c>config.json</c> of a Llama, Mistral, Qwen2 or Qwen3 causal LM.</summary>
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
        string? type = j.String("model_type");
        string[]? archs = j.Strings("architectures");
        if (type is not null && !HfTypes.ContainsKey(type))
            throw Refuse(path, "model_type", $"is '{type}'", "architecture");
        // Without model_type, the class name decides (transformers writes both).
        type ??= archs is null ? "llama" : HfTypes.FirstOrDefault(kv => archs.Contains(kv.Value.ClassName)).Key ?? "llama";
        var (arch, className) = HfTypes[type];
        if (archs is not null && !archs.Contains(className))
            throw Refuse(path, "architectures", $"is [{string.Join(", ", archs)}], not {className}", "architecture");
        var scaling = root.TryGetProperty("rope_scaling", out var rs) && rs.ValueKind != JsonValueKind.Null ? HfRopeScaling(rs, path) : null;
        if (j.String("hidden_act") is { } act && act != "silu")
            throw Refuse(path, "hidden_act", $"is '{act}'", "activation");
        if (j.Bool("mlp_bias") == true) throw Refuse(path, "mlp_bias", $"is true", "bias");
        if (j.Number("partial_rotary_factor") is double prf && prf != 1)
            throw Refuse(path, "partial_rotary_factor", $"is {prf.ToString(CultureInfo.InvariantCulture)}", "partial rotary");
        foreach (var key in new[] { "num_local_experts", "num_experts" })
            if (j.Int(key) is > 0) throw Refuse(path, key, $"is {j.Int(key)}", "experts");
        // Qwen2 declares a window but applies it only with use_sliding_window, which llama.cpp's qwen2 does not implement.
        if (arch == ModelArchitecture.Qwen2 && j.Bool("use_sliding_window") == true)
            throw Refuse(path, "use_sliding_window", "is true", "sliding window");
        bool attentionBias = j.Bool("attention_bias") ?? false;

        int Required(string key) => j.Int(key) ?? throw new TensorFormatException(path, null, key, "is missing");
        int heads = Required("num_attention_heads");
        // transformers' Qwen3Config defaults head_dim to 128; the others derive it.
        int? headDim = j.Int("head_dim") ?? (arch == ModelArchitecture.Qwen3 ? 128 : null);
        int maxSeq = j.Int("max_position_embeddings") ?? 2048;
        // Mistral applies its window in transformers; a window as long as the context changes nothing.
        int? window = type == "mistral" && j.Int("sliding_window") is int w && w < maxSeq ? w : null;
        var c = new ModelConfig
        {
            Dim = Required("hidden_size"), HiddenDim = Required("intermediate_size"), Layers = Required("num_hidden_layers"),
            Heads = heads, KvHeads = j.Int("num_key_value_heads") ?? heads, VocabSize = Required("vocab_size"),
            MaxSeqLen = maxSeq,
            // Defaults are transformers' LlamaConfig defaults (tie_word_embeddings false).
            NormEps = (float)(j.Number("rms_norm_eps") ?? 1e-6), RopeTheta = (float)(j.Number("rope_theta") ?? 10000),
            Rope = TensorNames.Rope(TensorNaming.HuggingFace),
            TiedEmbeddings = j.Bool("tie_word_embeddings") ?? false,
            BosId = j.Int("bos_token_id") ?? 1, EosId = j.FirstInt("eos_token_id") ?? 2,
            Architecture = arch,
            // Qwen2's q/k/v always have bias and its o_proj never; Llama's attention_bias covers all four.
            QkvBias = arch == ModelArchitecture.Qwen2 || attentionBias,
            OutputBias = arch != ModelArchitecture.Qwen2 && attentionBias,
            QkNorm = arch == ModelArchitecture.Qwen3,
            RopeScaling = scaling, SlidingWindow = window,
        };
        // An explicit head_dim equal to the derived one is the same model (and the same identity).
        // Heads ≤ 0 is Validate's to name; deriving a head size from it first would divide by zero.
        if (headDim is int hd && (c.Heads <= 0 || c.Dim % c.Heads != 0 || hd != c.HeadDim)) c = c with { HeadDim = hd };
        c.Validate(path, ConfigOrigin.HfConfig);
        return c;
    }

    /// <summary>
    /// config.json <c>rope_scaling</c>: default (none), linear or llama3; dynamic NTK is refused because
    /// llama.cpp has no dynamic scaling at inference, so a GGUF could not reproduce it.
    /// </summary>
    static RopeScaling? HfRopeScaling(JsonElement rs, string path)
    {
        if (rs.ValueKind != JsonValueKind.Object) throw new TensorFormatException(path, null, "rope_scaling", $"is {rs.GetRawText()}, not an object");
        var j = new JsonFields(rs, path, "rope_scaling.");
        string? type = j.String("rope_type") ?? j.String("type");
        double Factor() => j.Number("factor") ?? throw new TensorFormatException(path, null, "rope_scaling.factor", "is missing");
        switch (type)
        {
            case "default" when rs.EnumerateObject().All(p => p.Name is "rope_type" or "type"):
                return null;
            case "linear":
                return new RopeScaling(RopeScalingType.Linear, (float)Factor());
            case "llama3":
                return new RopeScaling(RopeScalingType.Llama3, (float)Factor(), (float)(j.Number("low_freq_factor") ?? 1), (float)(j.Number("high_freq_factor") ?? 4),
                    j.Int("original_max_position_embeddings") ?? 8192);
            default:
                throw Refuse(path, "rope_scaling", $"is {rs.GetRawText()}", "rope scaling");
        }
    }

    /// <summary>
    /// The <c>{arch}.*</c> keys llama.cpp needs to build the graph, in the order its converter writes them
    /// (Llama: LlamaModel.set_gguf_parameters; Qwen: TextModel's). key/value_length only when head_dim was given
    /// and differs from hidden / heads (always for Qwen3, whose config.json always has head_dim).
    /// </summary>
    internal IEnumerable<KeyValuePair<string, GgufValue>> ToGgufMetadata()
    {
        string a = GgufArchitecture;
        yield return new($"{a}.context_length", GgufValue.UInt32((uint)MaxSeqLen));
        yield return new($"{a}.embedding_length", GgufValue.UInt32((uint)Dim));
        yield return new($"{a}.block_count", GgufValue.UInt32((uint)Layers));
        yield return new($"{a}.feed_forward_length", GgufValue.UInt32((uint)HiddenDim));
        if (Architecture == ModelArchitecture.Llama) yield return new($"{a}.rope.dimension_count", GgufValue.UInt32((uint)HeadDim));
        yield return new($"{a}.attention.head_count", GgufValue.UInt32((uint)Heads));
        yield return new($"{a}.attention.head_count_kv", GgufValue.UInt32((uint)KvHeads));
        if (Architecture == ModelArchitecture.Llama)
        {
            yield return new($"{a}.attention.layer_norm_rms_epsilon", GgufValue.Float32(NormEps));
            yield return new($"{a}.rope.freq_base", GgufValue.Float32(RopeTheta));
        }
        else
        {
            yield return new($"{a}.rope.freq_base", GgufValue.Float32(RopeTheta));
            yield return new($"{a}.attention.layer_norm_rms_epsilon", GgufValue.Float32(NormEps));
        }
        if ((HeadDimGiven && HeadDim * Heads != Dim) || Architecture == ModelArchitecture.Qwen3)
        {
            yield return new($"{a}.attention.key_length", GgufValue.UInt32((uint)HeadDim));
            yield return new($"{a}.attention.value_length", GgufValue.UInt32((uint)HeadDim));
        }
        if (RopeScaling is { Type: RopeScalingType.Linear } rs)
        {
            yield return new($"{a}.rope.scaling.type", GgufValue.String("linear"));
            yield return new($"{a}.rope.scaling.factor", GgufValue.Float32(rs.Factor));
        }
        if (Architecture == ModelArchitecture.Llama) yield return new($"{a}.vocab_size", GgufValue.UInt32((uint)VocabSize));
    }
}

/// <summary>The file format a <see cref="ModelConfig"/> came from.</summary>
internal enum ConfigOrigin : byte { Code, HfConfig, Gguf, Llama2c }

internal readonly record struct ConfigFieldNames(string Dim, string HiddenDim, string Layers, string Heads, string KvHeads,
    string Vocab, string MaxSeqLen, string Eps, string Theta, string Bos, string Eos,
    string HeadDim = "HeadDim", string Scaling = "RopeScaling", string Window = "SlidingWindow")
{
    /// <summary>GGUF keys of another architecture: <c>llama.</c> becomes <c>{arch}.</c>.</summary>
    public ConfigFieldNames WithArchitecture(string arch)
    {
        static string R(string key, string arch) => key.StartsWith("llama.", StringComparison.Ordinal) ? arch + key[5..] : key;
        return new(R(Dim, arch), R(HiddenDim, arch), R(Layers, arch), R(Heads, arch), R(KvHeads, arch), R(Vocab, arch), R(MaxSeqLen, arch),
            R(Eps, arch), R(Theta, arch), Bos, Eos, R(HeadDim, arch), R(Scaling, arch), Window);
    }
}

internal static class ConfigOriginNames
{
    static readonly ConfigFieldNames Code = new("Dim", "HiddenDim", "Layers", "Heads", "KvHeads", "VocabSize", "MaxSeqLen", "NormEps", "RopeTheta", "BosId", "EosId");
    static readonly ConfigFieldNames Hf = new("hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads", "num_key_value_heads",
        "vocab_size", "max_position_embeddings", "rms_norm_eps", "rope_theta", "bos_token_id", "eos_token_id", "head_dim", "rope_scaling", "sliding_window");
    static readonly ConfigFieldNames Gguf = new("llama.embedding_length", "llama.feed_forward_length", "llama.block_count", "llama.attention.head_count",
        "llama.attention.head_count_kv", "llama.vocab_size", "llama.context_length", "llama.attention.layer_norm_rms_epsilon", "llama.rope.freq_base",
        "tokenizer.ggml.bos_token_id", "tokenizer.ggml.eos_token_id", "llama.attention.key_length", "llama.rope.scaling.factor");
    static readonly ConfigFieldNames Llama2c = new("dim", "hidden_dim", "n_layers", "n_heads", "n_kv_heads", "vocab_size", "seq_len", "eps", "rope_theta", "bos", "eos");

    public static ConfigFieldNames Names(this ConfigOrigin o) => o switch
    {
        ConfigOrigin.HfConfig => Hf, ConfigOrigin.Gguf => Gguf, ConfigOrigin.Llama2c => Llama2c, _ => Code,
    };
}

/// <summary>Typed reads of config.json fields: absent or null is "not given"; a value of the wrong kind is an error naming the field.</summary>
internal readonly struct JsonFields(JsonElement root, string path, string prefix = "")
{
    JsonElement? Get(string key) => root.TryGetProperty(key, out var e) && e.ValueKind != JsonValueKind.Null ? e : null;

    static string Kind(JsonElement e) => e.ValueKind switch
    {
        JsonValueKind.String => $"the string {e.GetRawText()}", JsonValueKind.Array => "an array", JsonValueKind.Object => "an object",
        JsonValueKind.True or JsonValueKind.False => $"the boolean {e.GetRawText()}", _ => e.GetRawText(),
    };

    TensorFormatException Wrong(string key, JsonElement e, string want) => new(path, null, prefix + key, $"is {Kind(e)}, not {want}");

    public int? Int(string key) => Get(key) is { } e ? AsInt(key, e) : null;

    int AsInt(string key, JsonElement e) =>
        e.ValueKind == JsonValueKind.Number && e.TryGetInt32(out int v) ? v
        : e.ValueKind == JsonValueKind.Number ? throw new TensorFormatException(path, null, prefix + key, $"is {e.GetRawText()}, not a 32-bit integer")
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
