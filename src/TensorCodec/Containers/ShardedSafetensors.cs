using System.Text.Json;

namespace TensorCodec.Containers;

/// <summary>One tensor of a sharded model and the shard that holds it.</summary>
/// <param name="Info">The tensor, with offsets into its shard.</param>
/// <param name="Shard">Index into <see cref="ShardedSafetensors.Shards"/>.</param>
internal readonly record struct ShardTensor(TensorInfo Info, int Shard);

/// <summary>
/// A Hugging Face sharded safetensors model: <c>model.safetensors.index.json</c> (whose
/// <c>weight_map</c> names, for each tensor, the shard file holding it) plus each shard's header.
/// Only headers are read here; the engine and quantizer map or read a shard when they need its
/// tensors. The index and the shards must agree exactly, because a loader that trusted one of them
/// would silently pick a tensor from the wrong file or miss one: every shard the index names must
/// exist, hold exactly the tensors the index assigns to it, and no tensor may appear twice.
/// </summary>
internal sealed class ShardedSafetensors
{
    /// <summary>The index file's name in a Hugging Face model folder.</summary>
    public const string IndexFileName = "model.safetensors.index.json";

    /// <summary>The index file.</summary>
    public required string IndexPath { get; init; }
    /// <summary>Shard files (full paths as found beside the index, not symlink-resolved), in ordinal name order.</summary>
    public required IReadOnlyList<string> Shards { get; init; }
    /// <summary>Each shard's header, parallel to <see cref="Shards"/>.</summary>
    public required IReadOnlyList<TensorFile> Layouts { get; init; }
    /// <summary>Every tensor of the model, shard by shard in file order.</summary>
    public required IReadOnlyList<ShardTensor> Tensors { get; init; }
    /// <summary>The index's <c>metadata</c> object rendered as text (e.g. <c>total_size</c>).</summary>
    public required IReadOnlyDictionary<string, string> Metadata { get; init; }

    /// <summary>The file that lists a model folder's tensors: its index if it has one, else its model.safetensors.</summary>
    /// <exception cref="FileNotFoundException">The folder has neither.</exception>
    public static string FileInFolder(string dir)
    {
        string index = Path.Combine(dir, IndexFileName), single = Path.Combine(dir, "model.safetensors");
        if (File.Exists(index)) return index;
        if (File.Exists(single)) return single;
        // Worded like InputFile's refusal, which is what a folder got before folders were models.
        throw new FileNotFoundException($"{dir} is not a regular file (directory), nor a model folder: a model folder needs {IndexFileName} or model.safetensors (with config.json)", index);
    }

    /// <summary>True when <paramref name="path"/> is named like an index (<c>*.safetensors.index.json</c>).</summary>
    public static bool IsIndexName(string path) => path.EndsWith(".safetensors.index.json", StringComparison.OrdinalIgnoreCase);

    /// <summary>Reads and cross-checks the index at <paramref name="indexPath"/> and the headers of every shard it names.</summary>
    /// <exception cref="TensorFormatException">The index is malformed or disagrees with a shard (names the file and the tensor).</exception>
    /// <exception cref="FileNotFoundException">The index names a shard that does not exist.</exception>
    public static ShardedSafetensors Open(string indexPath)
    {
        InputFile.EnsureRegular(indexPath);
        var (map, metadata) = ReadIndex(indexPath);
        string dir = Path.GetDirectoryName(Path.GetFullPath(indexPath))!;

        // Ordinal order is transformers' order (model-00001-of-00003 …), and does not depend on how weight_map is sorted.
        var shardNames = map.Values.Distinct(StringComparer.Ordinal).Order(StringComparer.Ordinal).ToList();
        var shards = new List<string>();
        var layouts = new List<TensorFile>();
        var owner = new Dictionary<string, int>(StringComparer.Ordinal); // tensor → shard that holds it
        var tensors = new List<ShardTensor>();
        for (int s = 0; s < shardNames.Count; s++)
        {
            string file = shardNames[s];
            if (file.Length == 0 || Path.IsPathRooted(file) || file.Split('/', '\\').Contains(".."))
                throw new TensorFormatException(indexPath, null, "weight_map", $"shard name '{file}' must be a file name inside the model folder");
            string shardPath = Path.Combine(dir, file);
            if (!File.Exists(shardPath))
            {
                string example = map.First(kv => kv.Value == file).Key;
                throw new FileNotFoundException($"{indexPath}: weight_map names shard '{file}' (for tensor '{example}'), but {shardPath} does not exist", shardPath);
            }
            var layout = TensorFileReader.Open(shardPath);
            if (layout.Format != TensorFileFormat.Safetensors)
                throw new TensorFormatException(shardPath, null, null, $"shard named by {indexPath} is not a safetensors file ({layout.Format})");
            foreach (var t in layout.Tensors)
            {
                if (owner.TryGetValue(t.Name, out int first))
                    throw new TensorFormatException(shardPath, t.Offset, t.Name, $"tensor '{t.Name}' is also in shard {shards[first]}; a tensor must be in one shard only");
                if (!map.TryGetValue(t.Name, out var listed))
                    throw new TensorFormatException(shardPath, t.Offset, t.Name, $"tensor '{t.Name}' is in this shard but missing from {indexPath}");
                if (listed != file)
                    throw new TensorFormatException(shardPath, t.Offset, t.Name, $"tensor '{t.Name}' is in this shard but {indexPath} assigns it to '{listed}'");
                owner[t.Name] = s;
                tensors.Add(new ShardTensor(t, s));
            }
            shards.Add(shardPath);
            layouts.Add(layout);
        }
        foreach (var (name, file) in map)
            if (!owner.ContainsKey(name))
                throw new TensorFormatException(Path.Combine(dir, file), null, name, $"tensor '{name}' is assigned to this shard by {indexPath} but the shard does not hold it");
        return new ShardedSafetensors { IndexPath = indexPath, Shards = shards, Layouts = layouts, Tensors = tensors, Metadata = metadata };
    }

    /// <summary>weight_map (tensor → shard file name), refusing a tensor listed twice; and the metadata as text.</summary>
    static (Dictionary<string, string> Map, Dictionary<string, string> Metadata) ReadIndex(string path)
    {
        JsonDocument doc;
        try { doc = JsonDocument.Parse(File.ReadAllBytes(path)); }
        catch (JsonException e)
        {
            throw new TensorFormatException(path, null, null, $"not valid JSON (line {e.LineNumber + 1}, byte {e.BytePositionInLine + 1}): {e.Message}", e);
        }
        using (doc)
        {
            var root = doc.RootElement;
            if (root.ValueKind != JsonValueKind.Object) throw new TensorFormatException(path, null, null, $"is a JSON {root.ValueKind}, not an object");
            if (!root.TryGetProperty("weight_map", out var wm) || wm.ValueKind != JsonValueKind.Object)
                throw new TensorFormatException(path, null, "weight_map", "is missing or not an object of tensor name → shard file");
            // JsonDocument keeps duplicate keys; each one is a tensor listed twice, so refuse it rather than let the last win.
            var map = new Dictionary<string, string>(StringComparer.Ordinal);
            foreach (var p in wm.EnumerateObject())
            {
                if (p.Value.ValueKind != JsonValueKind.String)
                    throw new TensorFormatException(path, null, $"weight_map.{p.Name}", $"tensor '{p.Name}': shard must be a file name string, found {p.Value.ValueKind}");
                string file = p.Value.GetString()!;
                if (map.TryGetValue(p.Name, out var other))
                    throw new TensorFormatException(path, null, $"weight_map.{p.Name}", $"tensor '{p.Name}' is listed twice (shards '{other}' and '{file}')");
                map[p.Name] = file;
            }
            if (map.Count == 0) throw new TensorFormatException(path, null, "weight_map", "is empty");
            var metadata = new Dictionary<string, string>(StringComparer.Ordinal);
            if (root.TryGetProperty("metadata", out var md) && md.ValueKind == JsonValueKind.Object)
                foreach (var p in md.EnumerateObject())
                    metadata[p.Name] = p.Value.ValueKind == JsonValueKind.String ? p.Value.GetString()! : p.Value.GetRawText();
            return (map, metadata);
        }
    }
}
