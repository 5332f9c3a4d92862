using System.Globalization;
using System.Runtime.InteropServices;
using TensorCodec.Containers;
using TensorCodec.Containers.Tcz;
using TensorCodec.Formats;
using TensorCodec.Models;
using TensorCodec.Numerics;

namespace TensorCodec.Quantization;

/// <summary>
/// Any model or tensor file we read, opened for reading tensors row by row: a Hugging Face folder or
/// index (shards), a safetensors, GGUF or llama2.c file, or a <c>.tcz</c> of one of them (read through
/// <see cref="TczOriginalStream"/>, so only the chunks of the tensors read are decoded). Rows are
/// decoded to float32 whatever their stored type (F32, F16, BF16, F64, or any ggml block type we
/// dequantize), which is what <see cref="HfExport"/> and <see cref="TensorExtractor"/> need.
/// </summary>
internal sealed class ModelSource : IDisposable
{
    readonly Stream[] _streams;
    readonly TczReader? _tcz;
    readonly IReadOnlyList<TczReader> _shardReaders;

    /// <summary>The model's files and tensors (for a .tcz: the .tcz itself, with the original file's tensor table).</summary>
    public ModelFiles Model { get; }
    /// <summary>The .tcz read, or null.</summary>
    public string? TczPath { get; }
    /// <summary>The tensor-data stream of the .tcz, for tests of random access; else null.</summary>
    internal TczOriginalStream? TczStream => _tcz is null ? null : (TczOriginalStream)_streams[0];

    ModelSource(ModelFiles model, Stream[] streams, TczReader? tcz, IReadOnlyList<TczReader>? shardReaders = null)
    {
        Model = model; _streams = streams; _tcz = tcz; _shardReaders = shardReaders ?? [];
        TczPath = tcz?.Path;
    }

    /// <summary>
    /// Opens <paramref name="path"/>. With <paramref name="withConfig"/>, a safetensors model must have its
    /// config.json (<paramref name="configPath"/>, or beside the model); without it the tensors alone are read.
    /// </summary>
    /// <param name="path">Model folder, index, model file or .tcz.</param>
    /// <param name="withConfig">Whether the model's hyperparameters are needed.</param>
    /// <param name="configPath">config.json overriding the one beside the model.</param>
    /// <param name="tczHeader">For a .tcz: read the original file's tensor table from its header (needed for the
    /// model's metadata); false takes the tensors from the .tcz index alone, decoding nothing.</param>
    public static ModelSource Open(string path, bool withConfig, string? configPath = null, bool tczHeader = true)
    {
        if (!File.Exists(path) && !Directory.Exists(path)) throw new FileNotFoundException($"{path}: no such file", path);
        if (File.Exists(path) && TczInspector.IsTcz(path)) return OpenTcz(path, withConfig, configPath, tczHeader);
        if (CompressedFolder(path) is { } compressed)
            return compressed.Index is null ? OpenTcz(compressed.Single!, withConfig, configPath, tczHeader)
                : OpenTczShards(path, compressed.Index, withConfig, configPath);

        ModelFiles model;
        if (withConfig) model = ModelFiles.Resolve(path, configPath);
        else
        {
            string file = Directory.Exists(path) ? ShardedSafetensors.FileInFolder(path) : path;
            if (ShardedSafetensors.IsIndexName(file))
            {
                var sharded = ShardedSafetensors.Open(file);
                model = new ModelFiles
                {
                    Input = path, Format = TensorFileFormat.Safetensors, Files = sharded.Shards, Layouts = sharded.Layouts,
                    Tensors = sharded.Tensors, IndexPath = file,
                };
            }
            else
            {
                var layout = TensorFileReader.Open(file);
                model = new ModelFiles
                {
                    Input = path, Format = layout.Format, Files = [file], Layouts = [layout],
                    Tensors = layout.Tensors.Select(t => new ShardTensor(t, 0)).ToList(),
                };
            }
        }
        var streams = new List<Stream>();
        try
        {
            foreach (var f in model.Files) streams.Add(new FileStream(f, FileMode.Open, FileAccess.Read, FileShare.Read, bufferSize: 1 << 16));
        }
        catch
        {
            foreach (var s in streams) s.Dispose();
            throw;
        }
        return new ModelSource(model, streams.ToArray(), null);
    }

    static ModelSource OpenTcz(string path, bool withConfig, string? configPath, bool header)
    {
        var reader = TczReader.Open(path);
        TczOriginalStream? stream = null;
        try
        {
            stream = new TczOriginalStream(reader);
            TensorFile layout;
            if (header) layout = TensorFileReader.Read(stream, path);
            else
            {
                // The index names every tensor with its type and shape: enough to read one without parsing the header.
                var tensors = reader.Index.Tensors.Select(s => new TensorInfo(s.Name, s.DType, s.Shape, s.OriginalOffset, s.Length) { GgmlType = s.GgmlType }).ToList();
                layout = new TensorFile { Format = reader.Index.SourceFormat, FileLength = reader.Index.OriginalLength, Tensors = tensors };
            }
            string? config = null;
            if (withConfig && layout.Format == TensorFileFormat.Safetensors)
            {
                config = ModelConfig.HfConfigPathFor(path, configPath);
                if (!File.Exists(config))
                    throw new FileNotFoundException($"{path}: a safetensors model needs its Hugging Face config.json ({config} does not exist; pass the config path)", config);
            }
            if (withConfig && layout.Format == TensorFileFormat.Opaque)
                throw new InvalidDataException($"{path}: the .tcz holds a file that is not a model (not safetensors, GGUF or llama2.c)");
            var model = new ModelFiles
            {
                Input = path, Format = layout.Format, Files = [path], Layouts = [layout],
                Tensors = layout.Tensors.Select(t => new ShardTensor(t, 0)).ToList(), ConfigPath = config,
            };
            return new ModelSource(model, [stream], reader);
        }
        catch
        {
            stream?.Dispose();
            reader.Dispose();
            throw;
        }
    }

    /// <summary>
    /// A model folder as <c>tcodec compress DIR</c> leaves it: <c>model.safetensors.tcz</c>, or the index with its
    /// shards as <c>NAME.tcz</c>. Null for anything else (including a folder whose shards are there uncompressed).
    /// </summary>
    static (string? Index, string? Single)? CompressedFolder(string path)
    {
        string dir = Directory.Exists(path) ? path : ShardedSafetensors.IsIndexName(path) ? Path.GetDirectoryName(Path.GetFullPath(path))! : "";
        if (dir.Length == 0) return null;
        string index = Directory.Exists(path) ? Path.Combine(dir, ShardedSafetensors.IndexFileName) : path;
        if (File.Exists(index))
        {
            var shards = IndexShards(index);
            return shards.Count > 0 && shards.All(s => !File.Exists(Path.Combine(dir, s)) && File.Exists(Path.Combine(dir, s + ".tcz"))) ? (index, null) : null;
        }
        string single = Path.Combine(dir, "model.safetensors");
        return Directory.Exists(path) && !File.Exists(single) && File.Exists(single + ".tcz") ? (null, single + ".tcz") : null;
    }

    /// <summary>The shard names an index's weight_map lists; empty when it is not readable (the regular path then reports why).</summary>
    static List<string> IndexShards(string index)
    {
        try
        {
            using var doc = System.Text.Json.JsonDocument.Parse(File.ReadAllBytes(index));
            if (!doc.RootElement.TryGetProperty("weight_map", out var map) || map.ValueKind != System.Text.Json.JsonValueKind.Object) return [];
            return map.EnumerateObject().Select(p => p.Value.ValueKind == System.Text.Json.JsonValueKind.String ? p.Value.GetString()! : "")
                .Distinct(StringComparer.Ordinal).Order(StringComparer.Ordinal).ToList();
        }
        catch (System.Text.Json.JsonException) { return []; }
    }

    /// <summary>A compressed sharded folder: each shard read from its .tcz, checked to hold what the index assigns it.</summary>
    static ModelSource OpenTczShards(string path, string index, bool withConfig, string? configPath)
    {
        string dir = Path.GetDirectoryName(Path.GetFullPath(index))!;
        var shards = IndexShards(index);
        var owner = new Dictionary<string, string>(StringComparer.Ordinal);
        using (var doc = System.Text.Json.JsonDocument.Parse(File.ReadAllBytes(index)))
            foreach (var p in doc.RootElement.GetProperty("weight_map").EnumerateObject())
                if (!owner.TryAdd(p.Name, p.Value.GetString()!))
                    throw new TensorFormatException(index, null, $"weight_map.{p.Name}", $"tensor '{p.Name}' is listed twice");
        var readers = new List<TczReader>();
        var streams = new List<TczOriginalStream>();
        try
        {
            var files = new List<string>();
            var layouts = new List<TensorFile>();
            var tensors = new List<ShardTensor>();
            for (int s = 0; s < shards.Count; s++)
            {
                if (shards[s].Length == 0 || Path.IsPathRooted(shards[s]) || shards[s].Split('/', '\\').Contains(".."))
                    throw new TensorFormatException(index, null, "weight_map", $"shard name '{shards[s]}' must be a file name inside the model folder");
                string file = Path.Combine(dir, shards[s] + ".tcz");
                var reader = TczReader.Open(file);
                readers.Add(reader);
                var stream = new TczOriginalStream(reader);
                streams.Add(stream);
                var layout = TensorFileReader.Read(stream, file);
                if (layout.Format != TensorFileFormat.Safetensors)
                    throw new TensorFormatException(file, null, null, $"shard named by {index} does not hold a safetensors file ({layout.Format})");
                foreach (var t in layout.Tensors)
                {
                    if (!owner.TryGetValue(t.Name, out var listed) || listed != shards[s])
                    {
                        string says = listed is null ? "does not list it" : $"assigns it to '{listed}'";
                        throw new TensorFormatException(file, t.Offset, t.Name, $"tensor '{t.Name}' is in this shard but {index} {says}");
                    }
                    owner.Remove(t.Name);
                    tensors.Add(new ShardTensor(t, s));
                }
                files.Add(file);
                layouts.Add(layout);
            }
            if (owner.Count > 0)
            {
                var (name, shard) = owner.First();
                throw new TensorFormatException(Path.Combine(dir, shard + ".tcz"), null, name, $"tensor '{name}' is assigned to this shard by {index} but the shard does not hold it");
            }
            string? config = null;
            if (withConfig)
            {
                config = ModelConfig.HfConfigPathFor(index, configPath);
                if (!File.Exists(config))
                    throw new FileNotFoundException($"{index}: a safetensors model needs its Hugging Face config.json ({config} does not exist; pass the config path)", config);
            }
            var model = new ModelFiles
            {
                Input = path, Format = TensorFileFormat.Safetensors, Files = files, Layouts = layouts, Tensors = tensors,
                IndexPath = index, ConfigPath = config,
            };
            return new ModelSource(model, [.. streams], null, readers);
        }
        catch
        {
            foreach (var x in streams) x.Dispose();
            foreach (var r in readers) r.Dispose();
            throw;
        }
    }

    /// <summary>The model's hyperparameters: config.json for safetensors, else the GGUF metadata or llama2.c header.</summary>
    public ModelConfig ReadConfig() => Model.Format switch
    {
        TensorFileFormat.Safetensors => ModelConfig.FromHfConfig(Model.ConfigPath
            ?? throw new InvalidOperationException("opened without its config")),
        TensorFileFormat.Gguf => ModelConfig.WithStoredFrequencies(ModelConfig.FromGguf(ReadGguf(), Model.Files[0]), ReadGguf(), Rewound(), Model.Files[0]),
        TensorFileFormat.Llama2c => ModelConfig.FromLlama2c(Llama2cFile.ReadConfig(Rewound(), Model.Files[0]), Model.Files[0]),
        _ => throw new InvalidDataException($"{Model.Input}: not a safetensors, GGUF or llama2.c model"),
    };

    /// <summary>The GGUF header (metadata and tensor table) of a GGUF source.</summary>
    public GgufFile ReadGguf() => GgufFile.Parse(Rewound(), Model.Files[0]);

    Stream Rewound()
    {
        _streams[0].Position = 0;
        return _streams[0];
    }

    /// <summary>The tensor named <paramref name="name"/>, or null.</summary>
    public ShardTensor? Find(string name) => Model.Find(name);

    /// <summary>
    /// The error for a tensor name the source does not hold: one line naming the file and a few close names
    /// (the same tensor under the file's naming first, when the name is another convention's).
    /// </summary>
    public KeyNotFoundException NoSuchTensor(string name)
    {
        var names = Model.Tensors.Select(t => t.Info.Name).ToList();
        var close = new List<string>();
        if (Model.Format is not TensorFileFormat.Opaque)
        {
            var mine = TensorNames.NamingOf(Model.Format);
            foreach (var naming in Enum.GetValues<TensorNaming>())
                if (naming != mine && TensorNames.TryParse(naming, name, out var role, out int layer)
                    && !(TensorNames.IsPerLayer(role) && layer < 0 && !TensorNames.IsStacked(mine)))
                {
                    string same = TensorNames.Name(mine, role, TensorNames.IsStacked(mine) ? -1 : layer);
                    if (names.Contains(same)) close.Add(same);
                }
        }
        close.AddRange(names.OrderBy(n => Distance(n, name)).ThenBy(n => n, StringComparer.Ordinal).Take(5));
        string file = TczPath ?? Model.IndexPath ?? Model.Files[0];
        return new KeyNotFoundException($"{file}: no tensor named '{name}' ({names.Count} tensors); close names: {string.Join(", ", close.Distinct().Take(5))}");
    }

    static int Distance(string a, string b)
    {
        var prev = new int[b.Length + 1];
        var cur = new int[b.Length + 1];
        for (int j = 0; j <= b.Length; j++) prev[j] = j;
        for (int i = 1; i <= a.Length; i++)
        {
            cur[0] = i;
            for (int j = 1; j <= b.Length; j++)
                cur[j] = Math.Min(Math.Min(cur[j - 1] + 1, prev[j] + 1), prev[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1));
            (prev, cur) = (cur, prev);
        }
        return prev[b.Length];
    }

    /// <summary>Bytes of one stored row (<paramref name="cols"/> values) of a tensor of <paramref name="info"/>'s type.</summary>
    public static long RowBytes(TensorInfo info, long cols)
    {
        if (info.DType == DType.Packed)
        {
            var type = GgmlTypes.Get(info.GgmlType);
            if (cols % type.BlockSize != 0)
                throw new InvalidDataException($"tensor '{info.Name}': rows of {cols} values are not whole {type.Name} blocks of {type.BlockSize}");
            return cols / type.BlockSize * type.TypeSize;
        }
        int size = info.DType.ElementSize();
        if (size == 0) throw new NotSupportedException($"tensor '{info.Name}' has element type {info.DType}, which cannot be read");
        return cols * size;
    }

    /// <summary>True when rows of <paramref name="info"/> can be decoded to float32.</summary>
    public static bool Decodable(TensorInfo info) =>
        info.DType is DType.F32 or DType.F16 or DType.BF16 or DType.F64
        || (info.DType == DType.Packed && BlockFormats.FromGgmlType(info.GgmlType) is not null);

    /// <summary>Reads <paramref name="dst"/>.Length bytes of file <paramref name="file"/> at <paramref name="offset"/>.</summary>
    public void Read(int file, long offset, Span<byte> dst)
    {
        var s = _streams[file];
        s.Position = offset;
        int n = s.ReadAtLeast(dst, dst.Length, throwOnEndOfStream: false);
        if (n != dst.Length)
            throw new TensorFormatException(Model.Files[file], offset + n, null, "file ends inside tensor data (truncated?)");
    }

    /// <summary>Decodes stored rows of <paramref name="info"/>'s type in <paramref name="src"/> to float32 values.</summary>
    public static void Decode(TensorInfo info, ReadOnlySpan<byte> src, Span<float> dst)
    {
        if (DecodeFloats(info.DType, src, dst)) return;
        if (info.DType != DType.Packed)
            throw new NotSupportedException($"tensor '{info.Name}' is {info.DType}; only float tensors (F32, F16, BF16, F64) and ggml block types decode to float32");
        var fmt = BlockFormats.FromGgmlType(info.GgmlType)
            ?? throw new NotSupportedException($"tensor '{info.Name}' has ggml type {GgmlTypes.Get(info.GgmlType).Name}, which cannot be decoded");
        fmt.Dequantize(src, dst);
    }

    /// <summary>Decodes F32, F16, BF16 or F64 values to float32; false (nothing written) for any other type.</summary>
    internal static bool DecodeFloats(DType dtype, ReadOnlySpan<byte> src, Span<float> dst)
    {
        switch (dtype)
        {
            case DType.F32: MemoryMarshal.Cast<byte, float>(src).CopyTo(dst); return true;
            case DType.F16: Fp16.ToFloat(MemoryMarshal.Cast<byte, ushort>(src), dst); return true;
            case DType.BF16: BFloat16.ToFloat(MemoryMarshal.Cast<byte, ushort>(src), dst); return true;
            case DType.F64:
                var d = MemoryMarshal.Cast<byte, double>(src);
                for (int i = 0; i < d.Length; i++) dst[i] = (float)d[i];
                return true;
            default: return false;
        }
    }

    /// <summary>Encodes float32 values as <paramref name="dtype"/> (F32, F16 or BF16) little-endian bytes.</summary>
    public static void Encode(ReadOnlySpan<float> src, DType dtype, Span<byte> dst)
    {
        switch (dtype)
        {
            case DType.F32: MemoryMarshal.AsBytes(src).CopyTo(dst); break;
            case DType.F16: Fp16.FromFloat(src, MemoryMarshal.Cast<byte, ushort>(dst)); break;
            case DType.BF16: BFloat16.FromFloat(src, MemoryMarshal.Cast<byte, ushort>(dst)); break;
            default: throw new ArgumentOutOfRangeException(nameof(dtype), dtype, "output dtype must be F32, F16 or BF16");
        }
    }

    /// <summary>The name a tensor's stored type goes by in the CLI and JSON: <c>f32</c>, <c>bf16</c>, <c>q8_0</c>….</summary>
    public static string TypeName(TensorInfo info) => info.DType == DType.Packed
        ? BlockFormats.FromGgmlType(info.GgmlType)?.Name ?? GgmlTypes.Get(info.GgmlType).Name.ToLower(CultureInfo.InvariantCulture)
        : info.DType.ToString().ToLower(CultureInfo.InvariantCulture);

    /// <summary>Closes the files.</summary>
    public void Dispose()
    {
        foreach (var s in _streams) s.Dispose();
        _tcz?.Dispose();
        foreach (var r in _shardReaders) r.Dispose();
    }
}
