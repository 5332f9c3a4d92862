using TensorCodec.Containers;
using TensorCodec.Formats;
using TensorCodec.Models;
using TensorCodec.Numerics;

namespace TensorCodec.Engine;

/// <summary>How to load a model.</summary>
public sealed record LlamaLoadOptions
{
    /// <summary>HF config.json for safetensors models; default: config.json beside the model file (in the model folder, beside the index).</summary>
    public string? ConfigPath { get; init; }
    /// <summary>Expand BF16/F16 weights to F32 on load (faster kernels, twice the memory).</summary>
    public bool WidenToF32 { get; init; }
}

/// <summary>The weights of one transformer block.</summary>
internal sealed class LlamaLayer
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
    /// <summary>q/k/v biases (Qwen2, Llama attention_bias), else null.</summary>
    public float[]? Bq { get; init; }
    public float[]? Bk { get; init; }
    public float[]? Bv { get; init; }
    /// <summary>Attention output bias (Llama attention_bias), else null.</summary>
    public float[]? Bo { get; init; }
    /// <summary>Per-head RMSNorm weights of q and k (Qwen3), else null.</summary>
    public float[]? QNorm { get; init; }
    public float[]? KNorm { get; init; }
}

/// <summary>
/// A Llama-family model (Llama 2/3, Mistral, Qwen2, Qwen3): config plus weights, memory-mapped from a llama2.c checkpoint,
/// HF safetensors (+ config.json) or a GGUF of architecture llama, qwen2 or qwen3 (block-quantized weights stay packed). Weights come from a <see cref="TensorFile"/> (names, dtypes,
/// byte ranges) over the mapped file, so a new container only needs a name map here.
/// Inference state lives in <see cref="LlamaSession"/>; one model serves many sessions.
/// </summary>
public sealed class LlamaModel : IDisposable
{
    readonly MappedFileSet? _files;

    /// <summary>The model's hyperparameters, validated on load.</summary>
    public ModelConfig Config { get; }
    internal IWeightMatrix Embedding { get; }
    internal IReadOnlyList<LlamaLayer> Layers { get; }
    internal float[] FinalNorm { get; }
    /// <summary>The classifier; the same object as <see cref="Embedding"/> when tied.</summary>
    internal IWeightMatrix Output { get; }
    /// <summary>The path the model was loaded from (<c>&lt;memory&gt;</c> for one built in memory).</summary>
    public string Source { get; }
    /// <summary>The files the weights were mapped from (one, or a sharded model's shards in order); empty for a model built in memory.</summary>
    internal IReadOnlyList<string> Files { get; init; } = [];

    internal LlamaModel(ModelConfig config, IWeightMatrix embedding, IReadOnlyList<LlamaLayer> layers, float[] finalNorm,
        IWeightMatrix output, string source = "<memory>", MappedFileSet? files = null)
    {
        config.Validate(source);
        Config = config; Embedding = embedding; Layers = layers; FinalNorm = finalNorm; Output = output; Source = source;
        _files = files;
    }

    /// <summary>Total bytes of the weight matrices as stored.</summary>
    public long WeightBytes => Embedding.ByteSize + (ReferenceEquals(Output, Embedding) ? 0 : Output.ByteSize)
        + Layers.Sum(l => l.Wq.ByteSize + l.Wk.ByteSize + l.Wv.ByteSize + l.Wo.ByteSize + l.Gate.ByteSize + l.Up.ByteSize + l.Down.ByteSize);

    /// <summary>Bytes of weights one generated token reads: every matrix in full, except one row of an untied embedding.</summary>
    public long WeightBytesPerToken => WeightBytes - (ReferenceEquals(Output, Embedding) ? 0 : Embedding.ByteSize - Embedding.ByteSize / Embedding.Rows);

    /// <summary>A new sequence over this model with its own KV cache and scratch; dispose it when done.</summary>
    /// <exception cref="ArgumentOutOfRangeException">A capacity of zero or less.</exception>
    public LlamaSession CreateSession(LlamaSessionOptions? options = null) => new(this, options ?? new LlamaSessionOptions());

    /// <summary>Unmaps the model's files. Sessions of this model must not be used afterwards.</summary>
    public void Dispose() => _files?.Dispose();

    /// <summary>
    /// Opens a model: a Hugging Face folder (config.json + model.safetensors, or the shards of
    /// model.safetensors.index.json), the index itself, one safetensors file with config.json beside it,
    /// a GGUF or a llama2.c checkpoint (format detected from the content). Shards are mapped, not copied.
    /// </summary>
    /// <exception cref="FileNotFoundException">The model, a shard it names or its config.json does not exist.</exception>
    /// <exception cref="TensorFormatException">A file is malformed, or an index and its shards disagree.</exception>
    /// <exception cref="InvalidDataException">A tensor is missing or its shape differs from the config's.</exception>
    public static LlamaModel Load(string path, LlamaLoadOptions? options = null) =>
        Load(ModelFiles.Resolve(path, options?.ConfigPath), options);

    /// <summary>Loads from an already parsed layout of the file at <paramref name="path"/>.</summary>
    public static LlamaModel Load(TensorFile layout, string path, LlamaLoadOptions? options = null) =>
        Load(ModelFiles.FromLayout(layout, path, options?.ConfigPath), options);

    internal static LlamaModel Load(ModelFiles model, LlamaLoadOptions? options)
    {
        options ??= new LlamaLoadOptions();
        var config = model.ReadConfig();
        model.CheckShapes(config);
        var naming = TensorNames.NamingOf(model.Format);

        var files = new MappedFileSet(model.Files);
        try
        {
            var loader = new Loader(model, files, config, naming, options.WidenToF32);
            var embedding = loader.Matrix(TensorRole.TokenEmbedding, -1, config.VocabSize, config.Dim);
            var layers = new LlamaLayer[config.Layers];
            for (int l = 0; l < config.Layers; l++)
                layers[l] = new LlamaLayer
                {
                    AttnNorm = loader.Vector(TensorRole.AttentionNorm, l, config.Dim),
                    Wq = loader.Matrix(TensorRole.Query, l, config.QDim, config.Dim),
                    Wk = loader.Matrix(TensorRole.Key, l, config.KvDim, config.Dim),
                    Wv = loader.Matrix(TensorRole.Value, l, config.KvDim, config.Dim),
                    Wo = loader.Matrix(TensorRole.AttentionOutput, l, config.Dim, config.QDim),
                    Bq = config.QkvBias ? loader.Vector(TensorRole.QueryBias, l, config.QDim) : null,
                    Bk = config.QkvBias ? loader.Vector(TensorRole.KeyBias, l, config.KvDim) : null,
                    Bv = config.QkvBias ? loader.Vector(TensorRole.ValueBias, l, config.KvDim) : null,
                    Bo = config.OutputBias ? loader.Vector(TensorRole.AttentionOutputBias, l, config.Dim) : null,
                    QNorm = config.QkNorm ? loader.Vector(TensorRole.QueryNorm, l, config.HeadDim) : null,
                    KNorm = config.QkNorm ? loader.Vector(TensorRole.KeyNorm, l, config.HeadDim) : null,
                    FfnNorm = loader.Vector(TensorRole.FfnNorm, l, config.Dim),
                    Gate = loader.Matrix(TensorRole.FfnGate, l, config.HiddenDim, config.Dim),
                    Up = loader.Matrix(TensorRole.FfnUp, l, config.HiddenDim, config.Dim),
                    Down = loader.Matrix(TensorRole.FfnDown, l, config.Dim, config.HiddenDim),
                };
            var finalNorm = loader.Vector(TensorRole.OutputNorm, -1, config.Dim);
            // Some HF exports keep a tied lm_head anyway; use it when present.
            var output = !config.TiedEmbeddings || model.Find(TensorNames.Name(naming, TensorRole.Output)) is not null
                ? loader.Matrix(TensorRole.Output, -1, config.VocabSize, config.Dim)
                : embedding;
            return new LlamaModel(config, embedding, layers, finalNorm, output, model.Input, files) { Files = model.Files };
        }
        catch
        {
            files.Dispose();
            throw;
        }
    }

    /// <summary>Finds tensors, checks their shapes against the config, and wraps their bytes.</summary>
    sealed unsafe class Loader(ModelFiles model, MappedFileSet files, ModelConfig config, TensorNaming naming, bool widen)
    {
        public IWeightMatrix Matrix(TensorRole role, int layer, int rows, int cols)
        {
            var (t, file, offset, size) = Locate(role, layer, [rows, cols]);
            return WeightMatrix.Create(t.DType, file.At(offset, size), rows, cols, file, widen, t.GgmlType);
        }

        public float[] Vector(TensorRole role, int layer, int n)
        {
            var (t, file, offset, size) = Locate(role, layer, [n]);
            return WeightMatrix.ReadVector(t.DType, file.At(offset, size), n, t.GgmlType);
        }

        (TensorInfo, MappedFile, long, long) Locate(TensorRole role, int layer, long[] shape)
        {
            bool stacked = TensorNames.IsStacked(naming) && layer >= 0;
            string name = TensorNames.Name(naming, role, layer);
            if (model.Find(name) is not { } found)
                throw new InvalidDataException($"{model.IndexPath ?? model.Files[0]}: tensor '{name}' is missing");
            var t = found.Info;
            var file = files[found.Shard];
            long[] expected = stacked ? [config.Layers, .. shape] : shape;
            if (!t.Shape.SequenceEqual(expected))
                throw new InvalidDataException(model.ShapeMismatch(file.Path, name, t.Shape, expected));
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
            return (t, file, offset, slice);
        }
    }
}
