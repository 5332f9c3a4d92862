using System.Buffers;
using System.Diagnostics;
using System.Globalization;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using TensorCodec.Containers;
using TensorCodec.Models;
using TensorCodec.Numerics;

namespace TensorCodec.Quantization;

/// <summary>Settings of <see cref="HfExport.Convert"/>.</summary>
public sealed class HfExportOptions
{
    /// <summary>Element type of the output's float tensors (F32, F16 or BF16); null: the input's float type when
    /// all its matrices have the same plain one (F32, F16 or BF16; 1-D norms may differ), else BF16.</summary>
    public DType? DType { get; init; }
    /// <summary>Largest shard in bytes (tensor data; a tensor larger than this gets a shard of its own). Default 5 GB, as transformers.</summary>
    public long MaxShardBytes { get; init; } = 5_000_000_000;
    /// <summary>Hugging Face config.json of a safetensors input; default: beside the model.</summary>
    public string? ConfigPath { get; init; }
    /// <summary>Replace existing output files.</summary>
    public bool Overwrite { get; init; }
    /// <summary>Checked between tensors and row groups; on cancellation no output file is left.</summary>
    public CancellationToken Cancellation { get; init; }
}

/// <summary>What <see cref="HfExport.Convert"/> wrote.</summary>
/// <param name="Input">The input path as given.</param>
/// <param name="Output">The output path as given.</param>
/// <param name="InputFormat">Container format of the model's tensors (for a .tcz: of the file it holds).</param>
/// <param name="DType">Element type of the float tensors written.</param>
/// <param name="Tensors">Tensors written.</param>
/// <param name="Values">Values in all tensors written.</param>
/// <param name="TensorBytes">Bytes of tensor data written (the index's <c>total_size</c>).</param>
/// <param name="Shards">Safetensors files written (1: no index).</param>
/// <param name="Files">Every file written, in the order written.</param>
/// <param name="Notes">Tensors skipped and other remarks (for display).</param>
/// <param name="Elapsed">Wall-clock time of the whole run.</param>
public sealed record HfExportResult(string Input, string Output, TensorFileFormat InputFormat, DType DType, int Tensors, long Values,
    long TensorBytes, int Shards, IReadOnlyList<string> Files, IReadOnlyList<string> Notes, TimeSpan Elapsed);

/// <summary>
/// Converts any model we read (a Hugging Face folder or shards, GGUF of any type we decode, llama2.c, or
/// a .tcz of one of them) to a Hugging Face model: safetensors with transformers' tensor names, Q/K rows
/// back in rotate_half order, config.json for <c>LlamaForCausalLM</c>, the tokenizer files found beside
/// the input, and <c>model.safetensors.index.json</c> when sharded. Tensors are streamed a few rows at a
/// time (one head's rows for Q/K), so memory does not grow with the model. Every file is written to a
/// temporary name and all are renamed only once all are complete; on failure or interruption none is left.
/// </summary>
public static class HfExport
{
    /// <summary>One tensor of the output and where its rows come from.</summary>
    internal sealed record ExportTensor(string Name, string SourceName, long[] Shape, DType DType, ShardTensor Source,
        long Offset, long Rows, long Cols, int RopeHeadDim)
    {
        public long Values => Rows * Cols;
        public long Bytes => Values * DType.ElementSize();
    }

    /// <summary>Files beside a model that belong to its tokenizer or generation settings, copied as they are.</summary>
    internal static readonly string[] TokenizerFiles =
        ["tokenizer.json", "tokenizer.model", "tokenizer_config.json", "special_tokens_map.json", "added_tokens.json", "generation_config.json", "tokenizer.bin"];

    /// <summary>Converts the model at <paramref name="inputPath"/> to Hugging Face safetensors at <paramref name="outputPath"/>:
    /// <c>NAME.safetensors</c> (config.json beside it; shards <c>NAME-00001-of-0000N.safetensors</c> and
    /// <c>NAME.safetensors.index.json</c> when larger than <see cref="HfExportOptions.MaxShardBytes"/>), or a folder
    /// (created if missing), which receives <c>model.safetensors</c> or its shards.</summary>
    /// <exception cref="ArgumentException">The output is neither a .safetensors name nor a folder, or the dtype is not F32, F16 or BF16.</exception>
    /// <exception cref="IOException">An output exists and <see cref="HfExportOptions.Overwrite"/> is false, or would overwrite an input.</exception>
    /// <exception cref="FileNotFoundException">The input (or a safetensors model's config.json) does not exist.</exception>
    /// <exception cref="TensorFormatException">The input is malformed.</exception>
    /// <exception cref="InvalidDataException">The input is not a Llama model we read, or its tensors disagree with its config.</exception>
    /// <exception cref="NotSupportedException">A tensor's type cannot be decoded, or the model asks for what the engine does not implement.</exception>
    /// <exception cref="OperationCanceledException"><see cref="HfExportOptions.Cancellation"/> was signalled.</exception>
    public static HfExportResult Convert(string inputPath, string outputPath, HfExportOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        var sw = Stopwatch.StartNew();
        if (options.DType is { } want && want is not (DType.F32 or DType.F16 or DType.BF16))
            throw new ArgumentException($"--dtype must be f32, f16 or bf16, not {want.ToString().ToLowerInvariant()}");
        if (options.MaxShardBytes <= 0) throw new ArgumentException($"--max-shard-size must be positive, got {options.MaxShardBytes}");
        var (dir, stem, folder) = OutputLayout(outputPath);

        using var source = ModelSource.Open(inputPath, withConfig: true, options.ConfigPath);
        var model = source.Model;
        var config = source.ReadConfig();
        model.CheckShapes(config);
        var notes = new List<string>();
        var plan = Plan(model, config, options.DType, notes, out DType dtype);
        if (plan.Count == 0) throw new InvalidDataException($"{inputPath}: no tensors to convert");

        var shards = Shard(plan, options.MaxShardBytes);
        var names = shards.Count == 1 ? [stem + ".safetensors"]
            : Enumerable.Range(1, shards.Count).Select(i => string.Create(CultureInfo.InvariantCulture, $"{stem}-{i:D5}-of-{shards.Count:D5}.safetensors")).ToList();

        // Everything to write, decided before anything is created: so an existing output is refused up front.
        var outputs = new List<(string Path, Action<Stream> Write)>();
        for (int s = 0; s < shards.Count; s++)
        {
            var shard = shards[s];
            outputs.Add((Path.Combine(dir, names[s]), stream => WriteShard(source, shard, stream, options)));
        }
        if (shards.Count > 1)
        {
            var index = IndexJson(shards, names);
            outputs.Add((Path.Combine(dir, stem + ".safetensors.index.json"), s => s.Write(index)));
        }
        var configJson = ConfigJson(model, config, dtype, source);
        outputs.Add((Path.Combine(dir, "config.json"), s => s.Write(configJson)));
        string inputDir = Directory.Exists(inputPath) ? Path.GetFullPath(inputPath) : Path.GetDirectoryName(Path.GetFullPath(inputPath))!;
        foreach (var name in TokenizerFiles)
        {
            string from = Path.Combine(inputDir, name);
            if (!File.Exists(from) || FileIdentity.Same(from, Path.Combine(dir, name))) continue; // converting into the input's folder
            outputs.Add((Path.Combine(dir, name), s => { using var f = File.OpenRead(from); f.CopyTo(s); }));
        }

        var inputs = model.Files.Concat(model.ConfigPath is { } c ? [c] : []).Concat(model.IndexPath is { } ix ? [ix] : [])
            .Concat(TokenizerFiles.Select(n => Path.Combine(inputDir, n)).Where(File.Exists)).ToList();
        foreach (var (path, _) in outputs)
            if (inputs.Any(i => FileIdentity.Same(i, path)))
                throw new IOException($"{path}: output would overwrite the input");

        // One file where an index already lists shards: loaders would follow the stale index, so it goes (with -f only).
        string staleIndex = Path.Combine(dir, stem + ".safetensors.index.json");
        bool removeIndex = shards.Count == 1 && File.Exists(staleIndex);
        if (removeIndex && !options.Overwrite)
            throw new IOException($"{staleIndex}: already exists (use -f to overwrite; it would point loaders at the old shards)");

        bool created = folder && !Directory.Exists(dir);
        if (created) Directory.CreateDirectory(dir);
        var writers = new List<AtomicFileWriter>();
        try
        {
            foreach (var (path, _) in outputs) writers.Add(new AtomicFileWriter(path, options.Overwrite));
            for (int i = 0; i < outputs.Count; i++)
            {
                options.Cancellation.ThrowIfCancellationRequested();
                outputs[i].Write(writers[i].Stream);
            }
            // All complete: only now do the final names appear.
            foreach (var w in writers) w.Commit();
            if (removeIndex) File.Delete(staleIndex);
        }
        catch
        {
            foreach (var w in writers) w.Dispose();
            if (created) try { Directory.Delete(dir); } catch (IOException) { } // only if still empty
            throw;
        }
        finally
        {
            foreach (var w in writers) w.Dispose();
        }

        return new HfExportResult(inputPath, outputPath, model.Format, dtype, plan.Count, plan.Sum(t => t.Values), plan.Sum(t => t.Bytes),
            shards.Count, outputs.Select(o => o.Path).ToList(), notes, sw.Elapsed);
    }

    /// <summary>Where the output goes: the folder, the file stem, and whether the output names a folder.</summary>
    internal static (string Dir, string Stem, bool Folder) OutputLayout(string output)
    {
        const string ext = ".safetensors";
        if (output.EndsWith(ext, StringComparison.OrdinalIgnoreCase) && !Directory.Exists(output))
        {
            string full = Path.GetFullPath(output);
            string dir = Path.GetDirectoryName(full)!;
            if (!Directory.Exists(dir)) throw new DirectoryNotFoundException($"{output}: folder {dir} does not exist");
            return (dir, Path.GetFileName(full)[..^ext.Length], false);
        }
        if (Directory.Exists(output) || (Path.GetExtension(Path.TrimEndingDirectorySeparator(output)).Length == 0 && !File.Exists(output)))
            return (Path.GetFullPath(output), "model", true);
        throw new ArgumentException($"{output}: convert writes Hugging Face safetensors; name the output NAME.safetensors or a folder");
    }

    /// <summary>Each output tensor, in transformers' state-dict order; the float type chosen is returned in <paramref name="dtype"/>.</summary>
    internal static List<ExportTensor> Plan(ModelFiles model, ModelConfig config, DType? requested, List<string> notes, out DType dtype)
    {
        var naming = TensorNames.NamingOf(model.Format);
        // Stored Q/K rows in adjacent-pair order (GGUF, llama2.c) go back to rotate_half order.
        bool permute = config.Rope != TensorNames.Rope(TensorNaming.HuggingFace);
        // The matrices say what the model is: llama.cpp keeps norms in F32 even in an F16 or BF16 GGUF.
        var floats = model.Tensors.Where(t => ModelSource.Decodable(t.Info) && t.Info.Shape.Length >= 2).Select(t => t.Info.DType).Distinct().ToList();
        dtype = requested ?? (floats is [var only] && only is DType.F32 or DType.F16 or DType.BF16 ? floats[0] : DType.BF16);

        var list = new List<(int Group, int Layer, int Role, ExportTensor T)>();
        foreach (var st in model.Tensors)
        {
            var t = st.Info;
            bool known = TensorNames.TryParse(naming, t.Name, out var role, out int layer);
            if (!known && naming != TensorNaming.HuggingFace)
            {
                // llama2.c's RoPE tables are recomputed by every loader; say what else is left out.
                if (naming != TensorNaming.Llama2c) notes.Add($"{t.Name}: not a Llama tensor transformers loads, skipped");
                continue;
            }
            bool decodable = ModelSource.Decodable(t);
            if (!decodable && t.DType == DType.Packed)
                throw new NotSupportedException($"{model.Files[st.Shard]}: tensor '{t.Name}' has ggml type {GgmlTypes.Get(t.GgmlType).Name}, which cannot be decoded");
            DType outType = decodable ? dtype : t.DType; // integer and FP8 tensors are copied as stored
            if (!decodable) notes.Add($"{t.Name}: {t.DType} copied as stored");

            int heads = known ? TensorNames.RopeHeads(role, config) : 0;
            var slices = known && TensorNames.IsPerLayer(role) && TensorNames.IsStacked(naming)
                ? Enumerable.Range(0, (int)t.Shape[0]).Select(l => (Layer: l, Shape: t.Shape[1..])).ToList()
                : [(Layer: layer, Shape: t.Shape)];
            foreach (var (l, shape) in slices)
            {
                long cols = shape.Length == 0 ? 1 : shape[^1];
                // A q/k bias is one vector whose elements are what the RoPE permutation moves: rows of one value.
                if (shape.Length == 1 && permute && heads > 0 && t.DType != DType.Packed) cols = 1;
                long rows = cols == 0 ? 0 : ElementCount(shape) / cols;
                long rowBytes = ModelSource.RowBytes(t, cols);
                long sliceBytes = rows * rowBytes;
                long offset = t.Offset + (slices.Count > 1 ? l * sliceBytes : 0);
                if (sliceBytes * slices.Count != t.Length)
                    throw new InvalidDataException($"{model.Files[st.Shard]}: tensor '{t.Name}' holds {t.Length} bytes, not the {sliceBytes * slices.Count} its type and shape need");
                int headDim = 0;
                if (permute && heads > 0)
                {
                    if (rows % heads != 0 || rows / heads % 2 != 0)
                        throw new InvalidDataException($"{model.Files[st.Shard]}: tensor '{t.Name}' has {rows} rows, not {heads} heads of an even size");
                    headDim = (int)(rows / heads);
                }
                string name = known ? TensorNames.Name(TensorNaming.HuggingFace, role, l) : t.Name;
                string sourceName = slices.Count > 1 ? $"{t.Name}[{l}]" : t.Name;
                var e = new ExportTensor(name, sourceName, shape, outType, st, offset, rows, cols, headDim);
                list.Add((!known ? 3 : !TensorNames.IsPerLayer(role) ? (role == TensorRole.TokenEmbedding ? 0 : 2) : 1,
                    known ? l : 0, known ? HfOrder(role) : 0, e));
            }
        }
        // transformers' state-dict order: embedding, each layer's modules, final norm, lm_head; anything else after.
        return list.OrderBy(x => x.Group).ThenBy(x => x.Layer).ThenBy(x => x.Role).Select(x => x.T).ToList();
    }

    /// <summary>The order of a Llama block's tensors in transformers' state dict (module registration order).</summary>
    static int HfOrder(TensorRole role) => role switch
    {
        TensorRole.Query => 0, TensorRole.Key => 1, TensorRole.Value => 2, TensorRole.AttentionOutput => 3,
        TensorRole.FfnGate => 4, TensorRole.FfnUp => 5, TensorRole.FfnDown => 6,
        TensorRole.AttentionNorm => 7, TensorRole.FfnNorm => 8,
        TensorRole.OutputNorm => 0, TensorRole.Output => 1,
        _ => 0,
    };

    static long ElementCount(long[] shape)
    {
        long n = 1;
        foreach (var d in shape) n = checked(n * d);
        return n;
    }

    /// <summary>transformers' greedy split: tensors in order, a new shard when the next would pass the limit.</summary>
    internal static List<List<ExportTensor>> Shard(List<ExportTensor> tensors, long maxBytes)
    {
        var shards = new List<List<ExportTensor>> { new() };
        long size = 0;
        foreach (var t in tensors)
        {
            if (shards[^1].Count > 0 && size + t.Bytes > maxBytes)
            {
                shards.Add([]);
                size = 0;
            }
            shards[^1].Add(t);
            size += t.Bytes;
        }
        return shards;
    }

    static void WriteShard(ModelSource source, List<ExportTensor> shard, Stream stream, HfExportOptions options)
    {
        var tensors = shard.Select(t => new SafetensorsTensor(t.Name, t.DType, t.Shape,
            TensorByteSource.FromCallback(t.Bytes, s => WriteRows(source, t, s, options.Cancellation))));
        // transformers refuses a safetensors file whose metadata lacks format=pt.
        SafetensorsWriter.Write(stream, tensors, [new("format", "pt")]);
    }

    /// <summary>
    /// Streams one tensor's rows in output order: read a group of stored rows (one head for Q/K, else about
    /// 1 MiB), reorder Q/K rows within each head, and copy (same type) or decode and re-encode each row.
    /// </summary>
    internal static void WriteRows(ModelSource source, ExportTensor t, Stream output, CancellationToken ct)
    {
        var info = t.Source.Info;
        if (t.Rows == 0) return;
        int rowBytes = checked((int)ModelSource.RowBytes(info, t.Cols));
        int cols = checked((int)t.Cols);
        bool raw = info.DType == t.DType;
        int group = t.RopeHeadDim > 0 ? t.RopeHeadDim : (int)Math.Clamp((1 << 20) / Math.Max(1, rowBytes), 1, t.Rows);
        int[]? fromRow = null;
        if (t.RopeHeadDim > 0)
        {
            // Output row h of a head is stored row g with SourceRow(g) = h.
            fromRow = new int[t.RopeHeadDim];
            for (int g = 0; g < t.RopeHeadDim; g++) fromRow[RopePermutation.SourceRow(g, t.RopeHeadDim)] = g;
        }
        // Pooled: the same few buffers serve every tensor, so allocations do not grow with the tensor count.
        var inputArray = ArrayPool<byte>.Shared.Rent(checked(group * rowBytes));
        var valuesArray = raw ? [] : ArrayPool<float>.Shared.Rent(cols);
        var encodedArray = raw ? [] : ArrayPool<byte>.Shared.Rent(checked(cols * t.DType.ElementSize()));
        try
        {
            var values = valuesArray.AsSpan(0, raw ? 0 : cols);
            var encoded = encodedArray.AsSpan(0, raw ? 0 : cols * t.DType.ElementSize());
            for (long r0 = 0; r0 < t.Rows; r0 += group)
            {
                ct.ThrowIfCancellationRequested();
                int n = (int)Math.Min(group, t.Rows - r0);
                source.Read(t.Source.Shard, t.Offset + r0 * rowBytes, inputArray.AsSpan(0, n * rowBytes));
                for (int r = 0; r < n; r++)
                {
                    int from = fromRow is null ? r : fromRow[r];
                    var row = inputArray.AsSpan(from * rowBytes, rowBytes);
                    if (raw) { output.Write(row); continue; }
                    ModelSource.Decode(info, row, values);
                    ModelSource.Encode(values, t.DType, encoded);
                    output.Write(encoded);
                }
            }
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(inputArray);
            if (!raw)
            {
                ArrayPool<float>.Shared.Return(valuesArray);
                ArrayPool<byte>.Shared.Return(encodedArray);
            }
        }
    }

    /// <summary>The index transformers writes: metadata.total_size and weight_map sorted by name, indent 2.</summary>
    static byte[] IndexJson(List<List<ExportTensor>> shards, List<string> names)
    {
        var map = new SortedDictionary<string, string>(StringComparer.Ordinal);
        for (int s = 0; s < shards.Count; s++)
            foreach (var t in shards[s]) map[t.Name] = names[s];
        var root = new JsonObject
        {
            ["metadata"] = new JsonObject { ["total_size"] = shards.Sum(s => s.Sum(t => t.Bytes)) },
            ["weight_map"] = new JsonObject(map.Select(kv => KeyValuePair.Create(kv.Key, (JsonNode?)JsonValue.Create(kv.Value)))),
        };
        return Json(root);
    }

    static byte[] Json(JsonNode node) => Encoding.UTF8.GetBytes(node.ToJsonString(new JsonSerializerOptions { WriteIndented = true }) + "\n");

    /// <summary>transformers' name of a dtype in <c>torch_dtype</c>.</summary>
    internal static string TorchDType(DType t) => t switch
    {
        DType.F32 => "float32", DType.F16 => "float16", DType.BF16 => "bfloat16",
        _ => throw new ArgumentOutOfRangeException(nameof(t), t, "not an output dtype"),
    };

    /// <summary>
    /// config.json: a safetensors input's own config with torch_dtype updated (so fields we do not model, such as
    /// rope_scaling, survive), else one built from <paramref name="config"/> that transformers' LlamaForCausalLM loads.
    /// </summary>
    static byte[] ConfigJson(ModelFiles model, ModelConfig config, DType dtype, ModelSource source)
    {
        if (model.Format == TensorFileFormat.Safetensors && model.ConfigPath is { } path
            && JsonNode.Parse(File.ReadAllBytes(path)) is JsonObject original)
        {
            original["torch_dtype"] = TorchDType(dtype);
            return Json(original);
        }
        // Shortest float text, so 1e-5f is written 1e-05, not 9.999999747378752e-06.
        static double Decimal(float f) => double.Parse(f.ToString("R", CultureInfo.InvariantCulture), CultureInfo.InvariantCulture);
        var (hfClass, modelType) = config.Architecture switch
        {
            ModelArchitecture.Qwen2 => ("Qwen2ForCausalLM", "qwen2"),
            ModelArchitecture.Qwen3 => ("Qwen3ForCausalLM", "qwen3"),
            _ => ("LlamaForCausalLM", "llama"), // a Mistral GGUF is arch llama: it loads as Llama with the same weights
        };
        var root = new JsonObject
        {
            ["architectures"] = new JsonArray(hfClass),
            ["model_type"] = modelType,
            ["hidden_size"] = config.Dim,
            ["intermediate_size"] = config.HiddenDim,
            ["num_hidden_layers"] = config.Layers,
            ["num_attention_heads"] = config.Heads,
            ["num_key_value_heads"] = config.KvHeads,
            ["head_dim"] = config.HeadDim,
            ["hidden_act"] = "silu",
            ["max_position_embeddings"] = config.MaxSeqLen,
            ["rms_norm_eps"] = Decimal(config.NormEps),
            ["rope_theta"] = Decimal(config.RopeTheta),
            ["vocab_size"] = config.VocabSize,
            ["tie_word_embeddings"] = config.TiedEmbeddings,
            ["torch_dtype"] = TorchDType(dtype),
        };
        if (config.Architecture == ModelArchitecture.Llama)
        {
            // transformers' Llama has one switch for q/k/v/o bias; a file with only some of them cannot be described.
            if (config.QkvBias != config.OutputBias)
                throw new NotSupportedException($"{model.Input}: q/k/v bias {(config.QkvBias ? "present" : "absent")} but output bias {(config.OutputBias ? "present" : "absent")}: transformers' LlamaConfig.attention_bias sets both");
            root["attention_bias"] = config.QkvBias;
            root["mlp_bias"] = false;
        }
        var ropeScaling = config.RopeScaling ?? (config.StoredFrequencyFactors is { } stored ? InferLlama3Scaling(model.Input, stored, config) : null);
        if (ropeScaling is { } scaling)
            root["rope_scaling"] = scaling.Type switch
            {
                RopeScalingType.Linear => new JsonObject { ["rope_type"] = "linear", ["factor"] = Decimal(scaling.Factor) },
                RopeScalingType.Llama3 => new JsonObject
                {
                    ["rope_type"] = "llama3", ["factor"] = Decimal(scaling.Factor), ["low_freq_factor"] = Decimal(scaling.LowFreqFactor),
                    ["high_freq_factor"] = Decimal(scaling.HighFreqFactor), ["original_max_position_embeddings"] = scaling.OriginalContext,
                },
                _ => null,
            };
        // Token ids only where the file says them: a GGUF's tokenizer keys, llama2.c's fixed 1 and 2.
        bool known = model.Format == TensorFileFormat.Llama2c;
        if (model.Format == TensorFileFormat.Gguf)
        {
            var g = source.ReadGguf();
            if (g.Find("tokenizer.ggml.bos_token_id") is not null) root["bos_token_id"] = config.BosId;
            if (g.Find("tokenizer.ggml.eos_token_id") is not null) root["eos_token_id"] = config.EosId;
        }
        if (known)
        {
            root["bos_token_id"] = config.BosId;
            root["eos_token_id"] = config.EosId;
        }
        return Json(root);
    }

    /// <summary>
    /// The Llama 3 <c>rope_scaling</c> behind a GGUF's <c>rope_freqs.weight</c>: llama.cpp's converter stores only the
    /// factors, so the parameters are searched over the values Llama 3.x configs use (and powers of two for the
    /// original context), and accepted only if they reproduce every stored factor exactly.
    /// </summary>
    /// <exception cref="NotSupportedException">No candidate reproduces the factors.</exception>
    internal static RopeScaling InferLlama3Scaling(string path, float[] stored, ModelConfig config)
    {
        float largest = stored.Max();
        var factors = new[] { largest, 8f, 16f, 32f }.Distinct();
        foreach (float factor in factors)
            foreach (float low in new[] { 1f, 2f })
                foreach (float high in new[] { 4f, 2f, 8f })
                    for (int original = 16; original <= 1 << 20; original *= 2)
                    {
                        var candidate = new RopeScaling(RopeScalingType.Llama3, factor, low, high, original);
                        if (candidate.Llama3Factors(config.HeadDim, config.RopeTheta).AsSpan().SequenceEqual(stored)) return candidate;
                    }
        throw new NotSupportedException($"{path}: {ModelConfig.RopeFreqsTensor} holds RoPE factors that no Llama 3 rope_scaling " +
            "(factor, low_freq_factor, high_freq_factor, original_max_position_embeddings) tried reproduces exactly, so config.json cannot describe them");
    }

    /// <summary>Parses a size such as <c>5GB</c>, <c>500MB</c>, <c>2GiB</c> or <c>1000000</c> (bytes); GB = 10^9 bytes, GiB = 2^30, as transformers.</summary>
    /// <exception cref="ArgumentException">Not a positive size.</exception>
    public static long ParseSize(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        string s = text.Trim();
        int i = 0;
        while (i < s.Length && (char.IsAsciiDigit(s[i]) || s[i] == '.')) i++;
        string unit = s[i..].Trim().ToUpperInvariant();
        long scale = unit switch
        {
            "" or "B" => 1, "KB" => 1000, "MB" => 1000_000, "GB" => 1000_000_000, "TB" => 1000_000_000_000,
            "KIB" => 1L << 10, "MIB" => 1L << 20, "GIB" => 1L << 30, "TIB" => 1L << 40,
            _ => 0,
        };
        if (scale == 0 || !double.TryParse(s[..i], NumberStyles.AllowDecimalPoint, CultureInfo.InvariantCulture, out double v) || !(v > 0) || v * scale >= long.MaxValue)
            throw new ArgumentException($"size '{text}' is not a positive number of bytes with an optional unit (B, KB, MB, GB, KiB, MiB, GiB)");
        return (long)(v * scale);
    }
}
