using TensorCodec.Containers;

namespace TensorCodec.Models;

/// <summary>
/// What a model path names, resolved once for every command that takes a model: a Hugging Face
/// folder (config.json + model.safetensors, or shards listed in model.safetensors.index.json), the
/// index itself, one .safetensors file with config.json beside it, a GGUF or a llama2.c checkpoint.
/// The result lists the files holding tensors and which file holds each tensor; opening or mapping
/// the files is left to the engine and the quantizer. Paths are kept as found (config.json is looked up
/// beside the path given, as in the Hugging Face cache, where the snapshot folder holds symlinks into
/// blobs/); whoever maps a file maps its symlink target.
/// </summary>
internal sealed class ModelFiles
{
    /// <summary>The path as given.</summary>
    public required string Input { get; init; }
    /// <summary>Container format of the tensor files (all shards are safetensors).</summary>
    public required TensorFileFormat Format { get; init; }
    /// <summary>The files holding tensors: one, or the shards in index order.</summary>
    public required IReadOnlyList<string> Files { get; init; }
    /// <summary>Each file's header, parallel to <see cref="Files"/>.</summary>
    public required IReadOnlyList<TensorFile> Layouts { get; init; }
    /// <summary>Every tensor with the index of the file that holds it.</summary>
    public required IReadOnlyList<ShardTensor> Tensors { get; init; }
    /// <summary>The sharded model's index file, else null.</summary>
    public string? IndexPath { get; init; }
    /// <summary>For safetensors: the config.json to read (given, or beside the model); else null.</summary>
    public string? ConfigPath { get; init; }

    /// <summary>The one layout of a single-file model; shards have one each.</summary>
    public TensorFile SingleLayout => Layouts.Count == 1 ? Layouts[0] : throw new InvalidOperationException($"{Input} is sharded");

    /// <summary>Resolves <paramref name="path"/>; <paramref name="configPath"/> overrides the config.json beside the model.</summary>
    /// <exception cref="FileNotFoundException">The path, a shard or (for safetensors) config.json does not exist,
    /// or a folder holds neither model.safetensors nor an index.</exception>
    /// <exception cref="TensorFormatException">A file is malformed, or the index and shards disagree.</exception>
    public static ModelFiles Resolve(string path, string? configPath = null)
    {
        string file = Directory.Exists(path) ? ShardedSafetensors.FileInFolder(path)
            : File.Exists(path) ? path : throw new FileNotFoundException($"{path}: no such file", path);
        string? index = ShardedSafetensors.IsIndexName(file) ? file : null;

        if (index is not null)
        {
            var sharded = ShardedSafetensors.Open(index);
            return new ModelFiles
            {
                Input = path, Format = TensorFileFormat.Safetensors, Files = sharded.Shards, Layouts = sharded.Layouts,
                Tensors = sharded.Tensors, IndexPath = index, ConfigPath = RequireConfig(index, configPath),
            };
        }
        return FromLayout(TensorFileReader.Open(file), file, configPath);
    }

    /// <summary>A single model file whose header was already read.</summary>
    public static ModelFiles FromLayout(TensorFile layout, string file, string? configPath = null) => new()
    {
        Input = file, Format = layout.Format, Files = [file], Layouts = [layout],
        Tensors = layout.Tensors.Select(t => new ShardTensor(t, 0)).ToList(),
        ConfigPath = layout.Format == TensorFileFormat.Safetensors ? RequireConfig(file, configPath) : null,
    };

    static string RequireConfig(string modelFile, string? configPath)
    {
        string cfg = ModelConfig.HfConfigPathFor(modelFile, configPath);
        if (!File.Exists(cfg))
            throw new FileNotFoundException($"{modelFile}: a safetensors model needs its Hugging Face config.json ({cfg} does not exist; pass the config path)", cfg);
        return cfg;
    }

    /// <summary>The model's hyperparameters: config.json for safetensors, else the file's own header.</summary>
    public ModelConfig ReadConfig() => Format switch
    {
        TensorFileFormat.Safetensors => ModelConfig.FromHfConfig(ConfigPath!),
        _ => ModelConfig.Read(Layouts[0], Files[0]),
    };

    /// <summary>The tensor named <paramref name="name"/>, or null.</summary>
    public ShardTensor? Find(string name)
    {
        _byName ??= Tensors.ToDictionary(t => t.Info.Name, StringComparer.Ordinal);
        return _byName.TryGetValue(name, out var t) ? t : null;
    }

    Dictionary<string, ShardTensor>? _byName;

    /// <summary>
    /// Checks every tensor the Llama table knows against the shape <paramref name="config"/> implies, so a
    /// config.json that does not describe the weights (hidden_size 256 over a [vocab, 128] embedding) is one
    /// clear error naming the file, the tensor and both shapes, before anything is computed.
    /// </summary>
    /// <exception cref="InvalidDataException">A tensor's shape differs from the config's.</exception>
    public void CheckShapes(ModelConfig config)
    {
        var naming = TensorNames.NamingOf(Format);
        foreach (var (t, shard) in Tensors)
        {
            if (!TensorNames.TryParse(naming, t.Name, out var role, out int layer)) continue;
            if (layer >= config.Layers) continue; // extra blocks are reported by the caller's completeness check
            long[] expected = TensorNames.ExpectedShape(role, config);
            if (TensorNames.IsStacked(naming) && TensorNames.IsPerLayer(role)) expected = [config.Layers, .. expected];
            if (!t.Shape.SequenceEqual(expected))
                throw new InvalidDataException(ShapeMismatch(Files[shard], t.Name, t.Shape, expected));
        }
    }

    /// <summary>The one wording of a shape that disagrees with the config, shared by the engine and the quantizer.</summary>
    public string ShapeMismatch(string file, string tensor, long[] actual, long[] expected) =>
        $"{file}: tensor '{tensor}' has shape [{string.Join(", ", actual)}], but {ConfigPath ?? "the model's header"} implies [{string.Join(", ", expected)}]";
}
