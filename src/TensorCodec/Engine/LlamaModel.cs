using TensorCodec.Containers;
using TensorCodec.Formats;
using TensorCodec.Numerics;

namespace TensorCodec.Engine;

/// <summary>How to load a model.</summary>
public sealed record LlamaLoadOptions
{
    /// <summary>HF config.json for safetensors models; default: config.json beside the model.</summary>
    public string? ConfigPath { get; init; }
    /// <summary>Expand BF16/F16 weights to F32 on load (faster kernels, twice the memory).</summary>
    public bool WidenToF32 { get; init; }
}

/// <summary>The weights of one transformer block.</summary>
public sealed class LlamaLayer
{
    public required float[] AttnNorm { get; init; }
    public required IWeightMatrix Wq { get; init; }
    public required IWeightMatrix Wk { get; init; }
    public required IWeightMatrix Wv { get; init; }
    public required IWeightMatrix Wo { get; init; }
    public required float[] FfnNorm { get; init; }
    /// <summary>w1, HF gate_proj.</summary>
    public required IWeightMatrix Gate { get; init; }
    /// <summary>w3, HF up_proj.</summary>
    public required IWeightMatrix Up { get; init; }
    /// <summary>w2, HF down_proj.</summary>
    public required IWeightMatrix Down { get; init; }
}

/// <summary>
/// A Llama-architecture model: config plus weights, memory-mapped from a llama2.c checkpoint,
/// HF safetensors (+ config.json) or a GGUF of architecture llama (block-quantized weights stay packed). Weights come from a <see cref="TensorFile"/> (names, dtypes,
/// byte ranges) over the mapped file, so a new container only needs a name map here.
/// Inference state lives in <see cref="LlamaSession"/>; one model serves many sessions.
/// </summary>
public sealed class LlamaModel : IDisposable
{
    readonly MappedFile? _file;

    public LlamaConfig Config { get; }
    public IWeightMatrix Embedding { get; }
    public IReadOnlyList<LlamaLayer> Layers { get; }
    public float[] FinalNorm { get; }
    /// <summary>The classifier; the same object as <see cref="Embedding"/> when tied.</summary>
    public IWeightMatrix Output { get; }
    public string Source { get; }

    public LlamaModel(LlamaConfig config, IWeightMatrix embedding, IReadOnlyList<LlamaLayer> layers, float[] finalNorm,
        IWeightMatrix output, string source = "<memory>", MappedFile? file = null)
    {
        config.Validate(source);
        Config = config; Embedding = embedding; Layers = layers; FinalNorm = finalNorm; Output = output; Source = source;
        _file = file;
    }

    /// <summary>Total bytes of the weight matrices as stored.</summary>
    public long WeightBytes => Embedding.ByteSize + (ReferenceEquals(Output, Embedding) ? 0 : Output.ByteSize)
        + Layers.Sum(l => l.Wq.ByteSize + l.Wk.ByteSize + l.Wv.ByteSize + l.Wo.ByteSize + l.Gate.ByteSize + l.Up.ByteSize + l.Down.ByteSize);

    public LlamaSession CreateSession(LlamaSessionOptions? options = null) => new(this, options ?? new LlamaSessionOptions());

    public void Dispose() => _file?.Dispose();

    /// <summary>Opens a llama2.c checkpoint or HF safetensors model (format detected from the content).</summary>
    public static LlamaModel Load(string path, LlamaLoadOptions? options = null)
    {
        if (!File.Exists(path)) throw new FileNotFoundException($"{path}: no such file");
        return Load(TensorFileReader.Open(path), path, options);
    }

    /// <summary>Loads from an already parsed layout of the file at <paramref name="path"/>.</summary>
    public static LlamaModel Load(TensorFile layout, string path, LlamaLoadOptions? options = null)
    {
        options ??= new LlamaLoadOptions();
        LlamaConfig config;
        NameMap names;
        switch (layout.Format)
        {
            case TensorFileFormat.Llama2c:
                config = LlamaConfig.FromLlama2c(layout.Metadata, path);
                names = NameMap.Llama2c;
                break;
            case TensorFileFormat.Safetensors:
                string cfg = options.ConfigPath ?? System.IO.Path.Combine(System.IO.Path.GetDirectoryName(System.IO.Path.GetFullPath(path))!, "config.json");
                if (!File.Exists(cfg))
                    throw new FileNotFoundException($"{path}: safetensors model needs its config.json ({cfg} not found; pass the config path)");
                config = LlamaConfig.FromHfConfigJson(cfg);
                names = NameMap.HuggingFace;
                break;
            case TensorFileFormat.Gguf:
                using (var stream = File.OpenRead(path)) config = LlamaConfig.FromGguf(GgufFile.Parse(stream, path), path);
                names = NameMap.Gguf;
                break;
            default:
                throw new NotSupportedException($"{path}: not a recognised model file (expected llama2.c, safetensors or GGUF)");
        }

        var file = new MappedFile(path);
        try
        {
            var loader = new Loader(layout, file, config, names, options.WidenToF32);
            var embedding = loader.Matrix(names.Embedding, -1, config.VocabSize, config.Dim);
            var layers = new LlamaLayer[config.Layers];
            for (int l = 0; l < config.Layers; l++)
                layers[l] = new LlamaLayer
                {
                    AttnNorm = loader.Vector(names.AttnNorm, l, config.Dim),
                    Wq = loader.Matrix(names.Wq, l, config.Dim, config.Dim),
                    Wk = loader.Matrix(names.Wk, l, config.KvDim, config.Dim),
                    Wv = loader.Matrix(names.Wv, l, config.KvDim, config.Dim),
                    Wo = loader.Matrix(names.Wo, l, config.Dim, config.Dim),
                    FfnNorm = loader.Vector(names.FfnNorm, l, config.Dim),
                    Gate = loader.Matrix(names.Gate, l, config.HiddenDim, config.Dim),
                    Up = loader.Matrix(names.Up, l, config.HiddenDim, config.Dim),
                    Down = loader.Matrix(names.Down, l, config.Dim, config.HiddenDim),
                };
            var finalNorm = loader.Vector(names.FinalNorm, -1, config.Dim);
            // Some HF exports keep a tied lm_head anyway; use it when present.
            var output = !config.TiedEmbeddings || layout.Tensors.Any(t => t.Name == names.Output)
                ? loader.Matrix(names.Output, -1, config.VocabSize, config.Dim)
                : embedding;
            return new LlamaModel(config, embedding, layers, finalNorm, output, path, file);
        }
        catch
        {
            file.Dispose();
            throw;
        }
    }

    /// <summary>
    /// Tensor names of one container convention. <c>{0}</c> is the layer; <see cref="Stacked"/>
    /// means one tensor holds every layer (llama2.c) with the layer as the outermost dimension.
    /// </summary>
    sealed record NameMap(bool Stacked, string Embedding, string AttnNorm, string Wq, string Wk, string Wv, string Wo,
        string FfnNorm, string Gate, string Up, string Down, string FinalNorm, string Output)
    {
        public static readonly NameMap Llama2c = new(true, "token_embedding_table", "rms_att_weight", "wq", "wk", "wv", "wo",
            "rms_ffn_weight", "w1", "w3", "w2", "rms_final_weight", "wcls");

        public static readonly NameMap HuggingFace = new(false, "model.embed_tokens.weight",
            "model.layers.{0}.input_layernorm.weight", "model.layers.{0}.self_attn.q_proj.weight",
            "model.layers.{0}.self_attn.k_proj.weight", "model.layers.{0}.self_attn.v_proj.weight",
            "model.layers.{0}.self_attn.o_proj.weight", "model.layers.{0}.post_attention_layernorm.weight",
            "model.layers.{0}.mlp.gate_proj.weight", "model.layers.{0}.mlp.up_proj.weight",
            "model.layers.{0}.mlp.down_proj.weight", "model.norm.weight", "lm_head.weight");

        public static readonly NameMap Gguf = new(false, "token_embd.weight", "blk.{0}.attn_norm.weight",
            "blk.{0}.attn_q.weight", "blk.{0}.attn_k.weight", "blk.{0}.attn_v.weight", "blk.{0}.attn_output.weight",
            "blk.{0}.ffn_norm.weight", "blk.{0}.ffn_gate.weight", "blk.{0}.ffn_up.weight", "blk.{0}.ffn_down.weight",
            "output_norm.weight", "output.weight");
    }

    /// <summary>Finds tensors, checks their shapes against the config, and wraps their bytes.</summary>
    sealed unsafe class Loader(TensorFile layout, MappedFile file, LlamaConfig config, NameMap names, bool widen)
    {
        readonly Dictionary<string, TensorInfo> _byName = layout.Tensors.ToDictionary(t => t.Name, StringComparer.Ordinal);

        public IWeightMatrix Matrix(string pattern, int layer, int rows, int cols)
        {
            var (t, offset, size) = Locate(pattern, layer, [rows, cols]);
            return WeightMatrix.Create(t.DType, file.At(offset, size), rows, cols, file, widen, t.GgmlType);
        }

        public float[] Vector(string pattern, int layer, int n)
        {
            var (t, offset, size) = Locate(pattern, layer, [n]);
            return WeightMatrix.ReadVector(t.DType, file.At(offset, size), n, t.GgmlType);
        }

        (TensorInfo, long, long) Locate(string pattern, int layer, long[] shape)
        {
            bool stacked = names.Stacked && layer >= 0;
            string name = stacked || layer < 0 ? pattern : string.Format(System.Globalization.CultureInfo.InvariantCulture, pattern, layer);
            if (!_byName.TryGetValue(name, out var t))
                throw new InvalidDataException($"{file.Path}: tensor '{name}' is missing");
            long[] expected = stacked ? [config.Layers, .. shape] : shape;
            if (!t.Shape.SequenceEqual(expected))
                throw new InvalidDataException($"{file.Path}: tensor '{name}' has shape [{string.Join(", ", t.Shape)}], the config implies [{string.Join(", ", expected)}]");
            long bytesPerLayer;
            long elements = shape.Aggregate(1L, (a, b) => a * b);
            if (t.DType is DType.F32 or DType.BF16 or DType.F16) bytesPerLayer = elements * t.DType.ElementSize();
            else if (t.DType == DType.Packed && BlockFormats.FromGgmlType(t.GgmlType) is { } f && shape[^1] % f.BlockSize == 0)
                bytesPerLayer = elements / f.BlockSize * f.BlockBytes;
            else
                throw new NotSupportedException($"{file.Path}: tensor '{name}' has type {(t.GgmlType >= 0 && GgmlTypes.TryGet(t.GgmlType, out var gi) ? gi.Name : t.DType.ToString())}, which the engine does not support");
            long slice = bytesPerLayer;
            if (t.Length != slice * (stacked ? config.Layers : 1))
                throw new InvalidDataException($"{file.Path}: tensor '{name}' holds {t.Length} bytes, its shape and type imply {slice * (stacked ? config.Layers : 1)}");
            long offset = t.Offset + (stacked ? layer * slice : 0);
            return (t, offset, slice);
        }
    }
}
