using System.Diagnostics;
using System.Runtime.InteropServices;
using Microsoft.Win32.SafeHandles;
using TensorCodec.Containers;
using TensorCodec.Formats;
using TensorCodec.Models;
using TensorCodec.Numerics;
using TensorCodec.Tokenizers;

namespace TensorCodec.Quantization;

/// <summary>Settings of <see cref="ModelQuantizer.Quantize"/>.</summary>
public sealed class ModelQuantizeOptions
{
    /// <summary>The llama.cpp mix that chooses each tensor's type.</summary>
    public required QuantMix Mix { get; init; }
    /// <summary>Hugging Face config.json; default: config.json beside the safetensors file (in the model folder, beside the index).</summary>
    public string? ConfigPath { get; init; }
    /// <summary>Tokenizer to embed: llama2.c tokenizer.bin or a Hugging Face tokenizer.json (for GGUF input it replaces
    /// the file's tokenizer); default: the tokenizer.json beside a safetensors model.</summary>
    public string? TokenizerPath { get; init; }
    /// <summary>Refuse to write a GGUF without a tokenizer (llama.cpp cannot load one).</summary>
    public bool RequireTokenizer { get; init; }
    /// <summary>Importance matrix written by llama.cpp's <c>llama-imatrix</c> (GGUF or legacy .dat), used
    /// by the types that weight their rounding error by it; default: none.</summary>
    public string? ImatrixPath { get; init; }
    /// <summary>general.name; default: derived from the input path.</summary>
    public string? ModelName { get; init; }
    /// <summary>How codes are chosen (default <see cref="QuantMethod.Rtn"/>: llama-quantize's bytes).</summary>
    public QuantMethod Method { get; init; }
    /// <summary>Calibration statistics for <see cref="QuantMethod.Gptq"/> (required) and <see cref="QuantMethod.Imatrix"/> (when no
    /// <see cref="ImatrixPath"/> is given).</summary>
    public ICalibration? Calibration { get; init; }
    /// <summary>Threads quantizing the rows of one tensor in parallel; values below 1 mean 1.</summary>
    public int Threads { get; init; } = 1;

    /// <summary>Quantize weights that hold NaN or ±infinity instead of refusing them.</summary>
    public bool AllowNonFinite { get; init; }

    /// <summary>llama-quantize's <c>--pure</c>: every quantized tensor gets the mix's base type (only the row-length fallback applies).</summary>
    public bool Pure { get; init; }
    /// <summary>llama-quantize's <c>--output-tensor-type</c>: ggml type name (e.g. <c>q8_0</c>) for output.weight; default: the mix's choice.</summary>
    public string? OutputTensorType { get; init; }
    /// <summary>llama-quantize's <c>--token-embedding-type</c>: ggml type name for token_embd.weight; default: the mix's choice.</summary>
    public string? TokenEmbeddingType { get; init; }
    /// <summary>llama-quantize's <c>--tensor-type PATTERN=TYPE</c>, in order: the first pattern (a regular expression, lower-cased,
    /// searched in the GGUF tensor name) that matches a quantized tensor gives its type, instead of the mix's rules.</summary>
    public IReadOnlyList<string> TensorTypes { get; init; } = [];
    /// <summary>llama-quantize's <c>--leave-output-tensor</c>: output.weight is not quantized (it keeps its F32/F16/BF16 source type).</summary>
    public bool LeaveOutputTensor { get; init; }

    /// <summary>Mixed precision (<c>--bpw</c>): choose each quantizable tensor's type so the whole file has at most this many bits
    /// per weight (every stored byte over every weight). <c>general.file_type</c> then names the file's dominant type, as llama.cpp's
    /// loader guesses it (<see cref="LlamaFileTypes"/>), not the mix. See <see cref="MixedPrecision"/>.</summary>
    public double? TargetBitsPerWeight { get; init; }
    /// <summary>Mixed precision (<c>--size</c>): as <see cref="TargetBitsPerWeight"/>, with the budget in bytes of the whole file.</summary>
    public long? TargetBytes { get; init; }
    /// <summary>How mixed precision predicts each (tensor, type)'s damage.</summary>
    public DamageMode Damage { get; init; }
    /// <summary>Measures KL divergence for <see cref="DamageMode.Measured"/> and <see cref="DamageMode.Scaled"/>.</summary>
    public IQuantDamageMeter? DamageMeter { get; init; }
    /// <summary>Restricts mixed precision's candidate types (ggml ids) where the row length allows any of them (tests).</summary>
    internal IReadOnlyList<int>? CandidateTypes { get; init; }

    /// <summary>Replace an existing output file.</summary>
    public bool Overwrite { get; init; }
    /// <summary>Reports each tensor as it starts and the values done so far.</summary>
    public IProgress<QuantizeProgress>? Progress { get; init; }
    /// <summary>Checked before each tensor and between row chunks; on cancellation no output file is left.</summary>
    public CancellationToken Cancellation { get; init; }
}

/// <summary>Progress of <see cref="ModelQuantizer.Quantize"/>, reported when a tensor starts and when it is done.</summary>
/// <param name="TensorIndex">Number of tensors finished so far (0-based index of the current tensor when it starts).</param>
/// <param name="TensorCount">Number of output tensors.</param>
/// <param name="Tensor">GGUF name of the current tensor.</param>
/// <param name="ValuesDone">Weights quantized so far, over all tensors.</param>
/// <param name="ValuesTotal">Weights in all output tensors.</param>
public readonly record struct QuantizeProgress(int TensorIndex, int TensorCount, string Tensor, long ValuesDone, long ValuesTotal);

/// <summary>One output tensor: where it came from and what it became.</summary>
/// <param name="Name">GGUF tensor name in the output.</param>
/// <param name="SourceName">Tensor name in the input file.</param>
/// <param name="Type">ggml type name it was written as (e.g. <c>q4_K</c>).</param>
/// <param name="Dims">GGUF dims, innermost first.</param>
/// <param name="Elements">Number of weights.</param>
/// <param name="Bytes">Bytes of quantized data.</param>
/// <param name="FallbackFrom">The type the mix asked for when the row length did not fit it, else null.</param>
public sealed record QuantizedTensor(string Name, string SourceName, string Type, long[] Dims, long Elements, long Bytes, string? FallbackFrom)
{
    /// <summary>Stored bits per weight: <see cref="Bytes"/> × 8 / <see cref="Elements"/> (0 for an empty tensor).</summary>
    public double BitsPerWeight => Elements == 0 ? 0 : Bytes * 8.0 / Elements;
}

/// <summary>What <see cref="ModelQuantizer.Quantize"/> wrote.</summary>
/// <param name="Input">The input path as given.</param>
/// <param name="Output">The output path as given.</param>
/// <param name="InputFormat">The container format the input was read as.</param>
/// <param name="Mix">The mix used.</param>
/// <param name="Tensors">Every output tensor, in file order.</param>
/// <param name="OutputBytes">Size of the written GGUF file in bytes.</param>
/// <param name="TokenizerEmbedded">Whether the output carries a tokenizer.</param>
/// <param name="ImatrixUsed">Whether an importance matrix was given.</param>
/// <param name="Notes">Remarks on choices made while converting (for display).</param>
/// <param name="Elapsed">Wall-clock time of the whole run.</param>
public sealed record QuantizeResult(
    string Input, string Output, TensorFileFormat InputFormat, QuantMix Mix, IReadOnlyList<QuantizedTensor> Tensors,
    long OutputBytes, bool TokenizerEmbedded, bool ImatrixUsed, IReadOnlyList<string> Notes, TimeSpan Elapsed)
{
    /// <summary>The per-tensor choice under <see cref="ModelQuantizeOptions.TargetBitsPerWeight"/> / <see cref="ModelQuantizeOptions.TargetBytes"/>, else null.</summary>
    public MixedPrecisionReport? MixedPrecision { get; init; }

    /// <summary>Bytes of tensor data, without header and padding.</summary>
    public long TensorBytes => Tensors.Sum(t => t.Bytes);

    /// <summary>Number of weights over all tensors.</summary>
    public long Elements => Tensors.Sum(t => t.Elements);

    /// <summary>Average stored bits per weight: <see cref="TensorBytes"/> × 8 / <see cref="Elements"/>.</summary>
    public double BitsPerWeight => Elements == 0 ? 0 : TensorBytes * 8.0 / Elements;
}

/// <summary>
/// Whole-model quantization to a GGUF that llama.cpp loads: reads a Hugging Face Llama
/// safetensors (+ config.json), a llama2.c checkpoint or a GGUF (dequantized first), maps names
/// to llama.cpp's, permutes Q/K rows for HF's RoPE convention, chooses each tensor's type by
/// llama.cpp's mix rules (<see cref="TensorTypeRules"/>), and writes GGUF v3 atomically.
/// Tensors are streamed a batch of rows at a time (about a million values, whole RoPE heads for
/// Q/K; the rows of a batch quantized in parallel) through buffers reused for the whole model, so
/// memory holds neither the model nor its largest tensor.
/// </summary>
public static class ModelQuantizer
{
    /// <summary>
    /// Writes rows [<paramref name="row0"/>, <paramref name="row0"/> + <paramref name="rows"/>) of a tensor, in GGUF
    /// row order, as float32 into <paramref name="dst"/>; <paramref name="buffers"/> lends the scratch it needs.
    /// </summary>
    internal delegate void RowReader(long row0, int rows, Span<float> dst, RowBuffers buffers);

    /// <summary>Scratch arrays grown to the largest request and reused for every tensor: reading never allocates per tensor.</summary>
    internal sealed class RowBuffers
    {
        byte[] _bytes = [];
        float[] _floats = [];
        public Span<byte> Bytes(int n) => (_bytes.Length >= n ? _bytes : _bytes = new byte[n]).AsSpan(0, n);
        public Span<float> Floats(int n) => (_floats.Length >= n ? _floats : _floats = new float[n]).AsSpan(0, n);
    }

    /// <summary>A planned output tensor; <see cref="Read"/> produces rows of its float32 values in GGUF row order.</summary>
    internal sealed record PlannedTensor(string Name, string SourceName, long[] Dims, TypeChoice Choice, float[]? Importance)
    {
        internal RowReader Read { get; init; } = (_, _, _, _) => throw new InvalidOperationException();
        /// <summary>Reads start and end on a multiple of this many rows: a RoPE head for Q/K, whose rows are reordered within the head.</summary>
        internal int RowGroup { get; init; } = 1;
        /// <summary>The tensor's importance weights when any were given, whatever its type (mixed precision re-types tensors).</summary>
        internal float[]? ImportanceWeights { get; init; }
        public long Elements { get { long n = 1; foreach (var d in Dims) n *= d; return n; } }
        public long Bytes => GgmlTypes.Get(Choice.Type).ByteSize(Elements)!.Value;
        /// <summary>Values per GGUF row (the innermost dimension).</summary>
        public long RowLength => Dims.Length == 0 ? 1 : Dims[0];
        public long Rows => RowLength == 0 ? 0 : Elements / RowLength;

        /// <summary>The whole tensor in memory (for callers that keep it, like the sweep; the quantizer streams rows instead).</summary>
        internal float[] Load()
        {
            var v = new float[Elements];
            if (v.Length > 0) Read(0, checked((int)Rows), v, new RowBuffers());
            return v;
        }
    }

    internal sealed record Plan(TensorFileFormat InputFormat, List<KeyValuePair<string, GgufValue>> Metadata,
        List<PlannedTensor> Tensors, bool TokenizerEmbedded, List<string> Notes, ModelFiles Model, IReadOnlyList<SafeFileHandle> Handles) : IDisposable
    {
        public void Dispose()
        {
            foreach (var h in Handles) h.Dispose();
        }
    }

    /// <summary>Quantizes the model at <paramref name="inputPath"/> (a Hugging Face folder or index, safetensors +
    /// config.json, llama2.c or GGUF; see <see cref="Engine.LlamaModel.Load(string, Engine.LlamaLoadOptions?)"/>) into a GGUF v3 at <paramref name="outputPath"/>, written atomically: on any error no output is left.</summary>
    /// <exception cref="IOException">The output is the input, or exists and <see cref="ModelQuantizeOptions.Overwrite"/> is false.</exception>
    /// <exception cref="FileNotFoundException">A file it needs (input, config.json, tokenizer, imatrix) is missing.</exception>
    /// <exception cref="TensorFormatException">The input, config, tokenizer or imatrix is malformed.</exception>
    /// <exception cref="InvalidDataException">The model cannot be converted: unknown format, missing or misshapen
    /// tensors, a tokenizer or imatrix that does not match it, or non-finite weights without
    /// <see cref="ModelQuantizeOptions.AllowNonFinite"/>.</exception>
    /// <exception cref="NotSupportedException">A tensor's type cannot be decoded or quantized.</exception>
    /// <exception cref="ArgumentException">A per-tensor type option is malformed or names a type that cannot be written.</exception>
    /// <exception cref="OperationCanceledException"><see cref="ModelQuantizeOptions.Cancellation"/> was signalled.</exception>
    public static QuantizeResult Quantize(string inputPath, string outputPath, ModelQuantizeOptions options)
    {
        var sw = Stopwatch.StartNew();
        if (FileIdentity.Same(inputPath, outputPath))
            throw new IOException($"{outputPath}: output would overwrite the input");
        using var plan = CreatePlan(inputPath, options);
        foreach (var f in plan.Model.Files)
            if (FileIdentity.Same(f, outputPath))
                throw new IOException($"{outputPath}: output would overwrite the input");

        if (options.TargetBitsPerWeight is not null && options.TargetBytes is not null)
            throw new ArgumentException("give --bpw or --size, not both");
        var mixed = options.TargetBitsPerWeight is not null || options.TargetBytes is not null ? MixedPrecision.Apply(plan, options, inputPath) : null;
        if (mixed is not null && LlamaFileTypes.Guess(plan.Tensors.Select(t => (t.Name, t.Choice.Type, t.Dims.Length))) is int ftype)
        {
            // No mix chose these types: label the file by its dominant type, as llama.cpp's loader would (same size: the header stays as planned).
            int at = plan.Metadata.FindIndex(kv => kv.Key == "general.file_type");
            if (at >= 0) plan.Metadata[at] = new("general.file_type", GgufValue.UInt32((uint)ftype));
        }
        int threads = Math.Max(1, options.Threads);
        var gptq = options.Method == QuantMethod.Gptq ? new GptqTensorEncoder(options.Calibration!, threads) : null;
        long total = plan.Tensors.Sum(t => t.Elements);
        long done = 0;
        int index = 0;
        var buffers = new StreamBuffers();
        var sources = plan.Tensors.Select(t => new GgufTensor(t.Name, t.Choice.Type, t.Dims,
            TensorByteSource.FromCallback(t.Bytes, stream =>
            {
                options.Cancellation.ThrowIfCancellationRequested();
                options.Progress?.Report(new QuantizeProgress(index, plan.Tensors.Count, t.Name, done, total));
                if (gptq?.Handles(t) == true) gptq.Encode(t, stream, options.Cancellation);
                else Encode(t, stream, buffers, threads, options.Cancellation);
                done += t.Elements;
                index++;
                options.Progress?.Report(new QuantizeProgress(index, plan.Tensors.Count, t.Name, done, total));
            }))).ToList();

        long outBytes;
        using (var writer = new AtomicFileWriter(outputPath, options.Overwrite))
        {
            GgufWriter.Write(writer.Stream, plan.Metadata, sources);
            outBytes = writer.TempPath is null ? writer.BytesWritten : writer.Stream.Length; // /dev/null has length 0
            // The budget is a promise: a file over it is never committed.
            if (mixed is not null && (outBytes > mixed.BudgetBytes || outBytes != mixed.PlannedBytes))
                throw new InvalidOperationException($"{outputPath}: wrote {outBytes} bytes, planned {mixed.PlannedBytes} within the budget of {mixed.BudgetBytes}; nothing written");
            writer.Commit();
        }
        if (gptq is not null)
            plan.Notes.Add($"gptq: {gptq.Encoded} of {plan.Tensors.Count(t => t.Dims.Length == 2)} weight matrices rounded with GPTQ; the others with importance-weighted round-to-nearest");
        var tensors = plan.Tensors.Select(t => new QuantizedTensor(t.Name, t.SourceName, TypeName(t.Choice.Type), t.Dims, t.Elements, t.Bytes,
            t.Choice.FallbackFrom is int f ? TypeName(f) : null)).ToList();
        return new QuantizeResult(inputPath, outputPath, plan.InputFormat, options.Mix, tensors, outBytes,
            plan.TokenizerEmbedded, options.ImatrixPath is not null || (options.Method != QuantMethod.Rtn && options.Calibration is not null), plan.Notes, sw.Elapsed)
        { MixedPrecision = mixed };
    }

    internal static string TypeName(int ggmlType) => GgmlTypes.Get(ggmlType).Name;

    /// <summary>
    /// The keys llama-quantize (tools/quantize/quantize.cpp) writes when it uses an imatrix, as its kv overrides:
    /// the path as given and the first dataset (strings cut to 127 bytes), the entry count, and the chunk count
    /// when positive (integers as UInt32). Each replaces a carried key of the same name and goes last, as
    /// gguf_set_val does; nothing is written for an empty matrix.
    /// </summary>
    internal static void SetImatrixMetadata(List<KeyValuePair<string, GgufValue>> meta, ImportanceMatrix imatrix, string path)
    {
        if (imatrix.Names.Count == 0) return;
        void Set(string key, GgufValue v)
        {
            meta.RemoveAll(kv => kv.Key == key);
            meta.Add(new(key, v));
        }
        Set("quantize.imatrix.file", GgufValue.String(Cut127(path)));
        if (imatrix.Datasets.Count > 0) Set("quantize.imatrix.dataset", GgufValue.String(Cut127(imatrix.Datasets[0])));
        Set("quantize.imatrix.entries_count", GgufValue.UInt32((uint)imatrix.Names.Count));
        if (imatrix.ChunkCount > 0) Set("quantize.imatrix.chunks_count", GgufValue.UInt32((uint)imatrix.ChunkCount));
    }

    /// <summary>llama_model_kv_override holds 127 bytes of a string; cut there, backing off to a whole UTF-8 character.</summary>
    static string Cut127(string s)
    {
        var bytes = System.Text.Encoding.UTF8.GetBytes(s);
        if (bytes.Length <= 127) return s;
        int n = 127;
        while (n > 0 && (bytes[n] & 0xC0) == 0x80) n--;
        return System.Text.Encoding.UTF8.GetString(bytes, 0, n);
    }

    /// <summary>
    /// Reads the input's layout and metadata and decides every output tensor (name, dims, type)
    /// without touching tensor data, so every refusal (unknown type, missing tensor, bad shape)
    /// happens before any output is written.
    /// </summary>
    internal static Plan CreatePlan(string inputPath, ModelQuantizeOptions options)
    {
        var model = ModelFiles.Resolve(inputPath, options.ConfigPath);
        var handles = new List<SafeFileHandle>();
        try
        {
            // Read through handles, which follow symlinks; each shard is read only where its tensors lie.
            foreach (var f in model.Files) handles.Add(File.OpenHandle(f, FileMode.Open, FileAccess.Read, FileShare.Read));
            string file = model.Files[0];
            var notes = new List<string>();
            var imatrix = options.ImatrixPath is string ip ? ImportanceMatrix.Load(ip) : null;
            if (options.Method == QuantMethod.Gptq && options.Calibration is null)
                throw new ArgumentException("--method gptq needs calibration data (--calibration FILE)");
            if (options.Method == QuantMethod.Imatrix && imatrix is null && options.Calibration is null)
                throw new ArgumentException("--method imatrix needs --imatrix FILE or --calibration FILE");
            ModelConfig hp;
            List<RawTensor> raw;
            List<KeyValuePair<string, GgufValue>>? carried = null;
            string? name = options.ModelName;
            switch (model.Format)
            {
                case TensorFileFormat.Safetensors:
                    hp = model.ReadConfig();
                    model.CheckShapes(hp);
                    raw = FromHf(model, hp, handles, notes);
                    if (hp.SlidingWindow is int window)
                        notes.Add($"sliding_window {window} not written: llama.cpp's converter drops it and its llama graph attends to the whole context");
                    // llama.cpp's converter stores Llama 3's per-pair RoPE divisors as a tensor, written first.
                    if (hp.RopeScaling is { Type: RopeScalingType.Llama3 } && hp.FrequencyFactors() is float[] factors)
                        raw.Insert(0, new(ModelConfig.RopeFreqsTensor, "rope_scaling", [factors.Length], (_, _, dst, _) => factors.CopyTo(dst)));
                    name ??= DefaultName(inputPath);
                    break;
                case TensorFileFormat.Llama2c:
                    hp = model.ReadConfig();
                    raw = FromLlama2c(model.SingleLayout, handles[0], file);
                    name ??= DefaultName(inputPath);
                    break;
                case TensorFileFormat.Gguf:
                {
                    GgufFile g;
                    using (var s = new FileStream(file, FileMode.Open, FileAccess.Read, FileShare.Read)) g = GgufFile.Parse(s, file);
                    hp = ModelConfig.FromGguf(g, file);
                    raw = FromGguf(g, handles[0], file); // refuses an undecodable type first: the more useful message
                    model.CheckShapes(hp);
                    carried = g.Metadata.Where(kv => kv.Key is not ("general.file_type" or "general.quantization_version" or GgufFile.AlignmentKey)
                        && !(options.TokenizerPath is not null && kv.Key.StartsWith("tokenizer.", StringComparison.Ordinal))).ToList();
                    break;
                }
                default:
                    throw new InvalidDataException($"{inputPath}: not a safetensors, GGUF or llama2.c model");
            }

            if (model.Format != TensorFileFormat.Gguf) CheckComplete(raw.Select(r => r.Name), hp, inputPath);
            // Stable: within a block, keep the input's order.
            raw = raw.OrderBy(r => SortKey(r.Name)).ToList();
            if (imatrix is null && options.Method != QuantMethod.Rtn) imatrix = ImportanceMatrix.FromCalibration(options.Calibration!, raw.Select(r => r.Name));
            imatrix?.CheckMatches(raw.ToDictionary(r => r.Name, r => r.Dims.Length == 0 ? 1 : r.Dims[0], StringComparer.Ordinal), options.ImatrixPath!);

            var ctx = new MixContext(hp.Layers, hp.Heads, hp.KvHeads,
                HasOutput: raw.Any(r => r.Name == TensorNames.Name(TensorNaming.Gguf, TensorRole.Output)), HasImatrix: imatrix is not null)
            {
                // llama.cpp's LLM_TYPE_70B: 80 layers (llama: with GQA).
                Is70B = hp.Layers == 80 && (hp.Architecture == ModelArchitecture.Qwen2 || (hp.Architecture == ModelArchitecture.Llama && hp.Heads != hp.KvHeads)),
            };
            var planner = new TensorTypePlanner(options.Mix, ctx, TypeOverridesOf(options), raw.Select(r => r.Name));
            var planned = new List<PlannedTensor>();
            foreach (var r in raw)
            {
                var choice = planner.Next(r.Name, r.Dims, r.SourceType);
                if (options.LeaveOutputTensor && r.Name == "output.weight" && r.SourceType == GgmlTypes.F32 && r.PackedSource)
                    notes.Add($"{r.Name}: left unquantized as F32 (its source type cannot be copied as is)");
                if (GgmlTypes.Get(choice.Type).ByteSize(r.Dims[0]) is null)
                    throw new InvalidDataException($"{r.Name}: row length {r.Dims[0]} is not a multiple of {TypeName(choice.Type)}'s block size {GgmlTypes.Get(choice.Type).BlockSize}");
                float[]? imp = null;
                if (imatrix?.Find(r.Name) is float[] w && BlockFormats.FromGgmlType(choice.Type) is { UsesImportance: true })
                {
                    if (w.Length != r.Dims[0])
                        throw new InvalidDataException($"{options.ImatrixPath}: entry '{r.Name}' has {w.Length} weights but the tensor's rows have {r.Dims[0]} columns");
                    imp = w;
                }
                // llama-quantize's refusals (tensor_requires_imatrix): the very low-bit types need importance weights.
                if (TensorTypeRules.RequiresImatrix(r.Name, choice.Type, options.Mix))
                {
                    if (imatrix is null)
                        throw new InvalidDataException($"{inputPath}: this quantization requires an importance matrix (--imatrix): " +
                            $"tensor {r.Name} gets {TypeName(choice.Type)}, which llama-quantize refuses without one");
                    if (imp is null)
                        throw new InvalidDataException($"{options.ImatrixPath}: missing importance matrix for tensor {r.Name} in a very low-bit quantization " +
                            $"({TypeName(choice.Type)}); llama-quantize refuses it: the result would be garbage");
                }
                if (choice.FallbackFrom is int from)
                    notes.Add($"{r.Name}: row length {r.Dims[0]} is not a multiple of {TypeName(from)}'s block size {GgmlTypes.Get(from).BlockSize}; using {TypeName(choice.Type)}");
                planned.Add(new PlannedTensor(r.Name, r.Source, r.Dims, choice, imp)
                {
                    ImportanceWeights = imatrix?.Find(r.Name) is { } iw && iw.Length == r.Dims[0] ? iw : null,
                    Read = Checked(r.Read, r.Dims[0], r.Source, r.Name, options.AllowNonFinite), RowGroup = r.RowGroup,
                });
            }
            if (imatrix is not null)
            {
                int used = planned.Count(p => p.Importance is not null);
                notes.Add($"imatrix: {used} of {planned.Count(p => BlockFormats.FromGgmlType(p.Choice.Type) is { UsesImportance: true })} quantized tensors have importance weights");
            }

            var meta = new List<KeyValuePair<string, GgufValue>>();
            if (carried is not null)
            {
                meta.AddRange(carried.Where(kv => !(name is not null && kv.Key == "general.name")));
                if (name is not null) meta.Insert(Math.Min(1, meta.Count), new("general.name", GgufValue.String(name)));
            }
            else
            {
                meta.Add(new("general.architecture", GgufValue.String(hp.GgufArchitecture)));
                meta.Add(new("general.name", GgufValue.String(name!)));
                meta.AddRange(hp.ToGgufMetadata());
            }
            meta.Add(new("general.file_type", GgufValue.UInt32((uint)options.Mix.FileType)));
            meta.Add(new("general.quantization_version", GgufValue.UInt32(2)));
            bool tokenizer = carried?.Any(kv => kv.Key == "tokenizer.ggml.model") ?? false;
            string? tp = options.TokenizerPath;
            if (tp is null && model.Format == TensorFileFormat.Safetensors
                && Path.Combine(Path.GetDirectoryName(Path.GetFullPath(file))!, "tokenizer.json") is var beside && File.Exists(beside))
                tp = beside;
            string? why = null;
            if (tp is not null)
            {
                if (TokenizerMetadata.For(TokenizerLoader.Load(tp), tp, hp.VocabSize, out why) is { } tokMeta)
                {
                    meta.AddRange(tokMeta);
                    tokenizer = true;
                }
            }
            if (!tokenizer)
            {
                string warning = why is null ? "no tokenizer embedded (use --tokenizer): llama.cpp needs one to load the model"
                    : $"no tokenizer embedded ({why}): llama.cpp needs one to load the model";
                if (options.RequireTokenizer) throw new InvalidDataException($"{inputPath}: {warning}");
                notes.Add(warning);
            }

            if (imatrix is not null) SetImatrixMetadata(meta, imatrix, options.ImatrixPath ?? options.Calibration!.Dataset);

            return new Plan(model.Format, meta, planned, tokenizer, notes, model, handles);
        }
        catch
        {
            foreach (var h in handles) h.Dispose();
            throw;
        }
    }

    static string DefaultName(string path)
    {
        var full = Path.TrimEndingDirectorySeparator(Path.GetFullPath(path));
        if (Directory.Exists(full)) full = Path.Combine(full, "model.safetensors");
        string stem = Path.GetFileNameWithoutExtension(full);
        string? folder = Path.GetDirectoryName(full);
        string? dir = Path.GetFileName(folder);
        // The Hugging Face cache: models--org--name/snapshots/<rev>/ — the revision hash names nothing.
        if (folder is not null && Path.GetFileName(Path.GetDirectoryName(folder)) == "snapshots"
            && Path.GetFileName(Path.GetDirectoryName(Path.GetDirectoryName(folder))) is { } repo && repo.StartsWith("models--", StringComparison.Ordinal))
            dir = repo[(repo.LastIndexOf("--", StringComparison.Ordinal) + 2)..];
        // HF checkpoints are all called model.safetensors: the folder names the model.
        return stem.StartsWith("model", StringComparison.OrdinalIgnoreCase) && !string.IsNullOrEmpty(dir) ? dir : stem;
    }

    /// <summary>
    /// Order llama.cpp's converter writes tensors in: token_embd, then each block, then
    /// output_norm and output. Readers do not care, but the mix rules count layers in this order.
    /// </summary>
    static int SortKey(string ggufName)
    {
        if (ggufName == ModelConfig.RopeFreqsTensor) return -2;
        if (ggufName == TensorNames.Name(TensorNaming.Gguf, TensorRole.TokenEmbedding)) return -1;
        int layer = TensorTypeRules.LayerOf(ggufName);
        return layer >= 0 ? layer : int.MaxValue;
    }

    /// <summary>llama.cpp refuses a llama model missing any of these, so refuse it here with a clear message.</summary>
    static void CheckComplete(IEnumerable<string> names, ModelConfig hp, string path)
    {
        var have = names.ToHashSet(StringComparer.Ordinal);
        var need = new List<string> { TensorNames.Name(TensorNaming.Gguf, TensorRole.TokenEmbedding), TensorNames.Name(TensorNaming.Gguf, TensorRole.OutputNorm) };
        for (int l = 0; l < hp.Layers; l++)
            foreach (var role in TensorNames.LayerRolesOf(hp))
                need.Add(TensorNames.Name(TensorNaming.Gguf, role, l));
        var missing = need.Where(n => !have.Contains(n)).ToList();
        if (missing.Count > 0)
            throw new InvalidDataException($"{path}: model lacks {missing.Count} tensor(s) llama.cpp needs, e.g. {string.Join(", ", missing.Take(4))}");
    }

    /// <summary>An input tensor under its GGUF name and dims, read <see cref="RowGroup"/> rows at a time or more.</summary>
    sealed record RawTensor(string Name, string Source, long[] Dims, RowReader Read, int RowGroup = 1)
    {
        /// <summary>The ggml type the tensor is stored as when it is F32, F16 or BF16, else F32: what it keeps when left unquantized.</summary>
        public int SourceType { get; init; } = GgmlTypes.F32;
        /// <summary>Stored as ggml blocks (or another type that cannot be kept as is).</summary>
        public bool PackedSource { get; init; }
    }

    static (int Type, bool Kept) KeptType(DType dtype) => dtype switch
    {
        DType.F32 => (GgmlTypes.F32, true), DType.F16 => (GgmlTypes.F16, true), DType.BF16 => (GgmlTypes.BF16, true), _ => (GgmlTypes.F32, false),
    };

    /// <summary>The llama-quantize options of <paramref name="o"/> as ggml type ids and compiled patterns; unknown or unencodable types are refused.</summary>
    internal static TypeOverrides TypeOverridesOf(ModelQuantizeOptions o)
    {
        if (!o.Pure && o.OutputTensorType is null && o.TokenEmbeddingType is null && o.TensorTypes.Count == 0 && !o.LeaveOutputTensor)
            return TypeOverrides.None;
        var patterns = new List<(System.Text.RegularExpressions.Regex, int)>();
        foreach (var spec in o.TensorTypes)
        {
            int eq = spec.IndexOf('=');
            if (eq < 0) throw new ArgumentException($"--tensor-type '{spec}': malformed, expected PATTERN=TYPE");
            if (eq == 0) throw new ArgumentException($"--tensor-type '{spec}': missing tensor name");
            if (eq == spec.Length - 1) throw new ArgumentException($"--tensor-type '{spec}': missing quantization type");
            // llama-quantize lower-cases the pattern and searches it (std::regex, ECMAScript) in each tensor name.
            string pattern = spec[..eq].ToLowerInvariant();
            System.Text.RegularExpressions.Regex re;
            try { re = new(pattern, System.Text.RegularExpressions.RegexOptions.ECMAScript | System.Text.RegularExpressions.RegexOptions.CultureInvariant); }
            catch (ArgumentException e) { throw new ArgumentException($"--tensor-type '{spec}': bad pattern: {e.Message}"); }
            patterns.Add((re, ParseType(spec[(eq + 1)..], "--tensor-type")));
        }
        return new TypeOverrides(o.Pure,
            o.OutputTensorType is { } ot ? ParseType(ot, "--output-tensor-type") : null,
            o.TokenEmbeddingType is { } te ? ParseType(te, "--token-embedding-type") : null,
            patterns, o.LeaveOutputTensor);
    }

    /// <summary>A ggml type name, case-insensitive as llama-quantize's parse_ggml_type, that we can encode.</summary>
    static int ParseType(string name, string option)
    {
        if (!GgmlTypes.TryGetByName(name, out var t))
            throw new ArgumentException($"{option}: invalid ggml type '{name}'");
        if (t.Id != GgmlTypes.F32 && BlockFormats.FromGgmlType(t.Id) is null)
            throw new ArgumentException($"{option}: ggml type {t.Name} cannot be written (no encoder)");
        return t.Id;
    }

    static List<RawTensor> FromHf(ModelFiles model, ModelConfig hp, IReadOnlyList<SafeFileHandle> handles, List<string> notes)
    {
        var list = new List<RawTensor>();
        foreach (var (t, shard) in model.Tensors)
        {
            var h = handles[shard];
            string path = model.Files[shard];
            if (!TensorNames.TryParse(TensorNaming.HuggingFace, t.Name, out var role, out int layer))
            {
                notes.Add($"{t.Name}: not a llama.cpp tensor, skipped");
                continue;
            }
            if (TensorNames.IsPerLayer(role) && !TensorNames.LayerRolesOf(hp).Contains(role))
                throw new InvalidDataException($"{path}: tensor '{t.Name}' is not part of the architecture {model.ConfigPath} describes (check attention_bias and model_type)");
            string gguf = TensorNames.Name(TensorNaming.Gguf, role, layer);
            var dims = t.Shape.Reverse().ToArray();
            var load = StoredRows(h, t.Offset, dims.Length == 0 ? 1 : dims[0], t.DType, 0, t.Name, path);
            int group = 1;
            int heads = TensorNames.RopeHeads(role, hp);
            if (heads > 0)
            {
                // Biases permute like their rows (llama.cpp's converter permutes q_proj.bias and k_proj.bias too).
                if (t.Shape.Length is not (1 or 2) || t.Shape[0] % heads != 0 || t.Shape[0] / heads % 2 != 0)
                    throw new InvalidDataException($"{path}: {t.Name} has shape [{string.Join(", ", t.Shape)}], which is not {heads} heads of an even size");
                int rows = (int)t.Shape[0];
                var inner = load;
                if (t.Shape.Length == 1)
                    load = (row0, n, dst, b) => { inner(row0, n, dst, b); RopePermutation.ToGguf(dst, rows, 1, heads).CopyTo(dst); };
                else
                {
                    int headRows = group = rows / heads, cols = (int)t.Shape[1];
                    load = (row0, n, dst, b) => { inner(row0, n, dst, b); PermuteHeads(dst, headRows, cols, b); };
                }
            }
            var (kept, ok) = KeptType(t.DType);
            list.Add(new(gguf, t.Name, dims, load, group) { SourceType = kept, PackedSource = !ok });
        }
        return list;
    }

    static List<RawTensor> FromLlama2c(TensorFile f, SafeFileHandle h, string path)
    {
        var list = new List<RawTensor>();
        foreach (var t in f.Tensors)
        {
            if (!TensorNames.TryParse(TensorNaming.Llama2c, t.Name, out var role, out _)) continue; // the RoPE tables, which llama.cpp recomputes
            if (TensorNames.IsPerLayer(role))
            {
                long layers = t.Shape[0];
                var inner = t.Shape[1..];
                long per = 1;
                foreach (var d in inner) per *= d;
                for (int l = 0; l < layers; l++)
                {
                    long offset = t.Offset + l * per * 4;
                    var dims = inner.Reverse().ToArray();
                    list.Add(new(TensorNames.Name(TensorNaming.Gguf, role, l), $"{t.Name}[{l}]", dims,
                        StoredRows(h, offset, dims[0], DType.F32, 0, t.Name, path)));
                }
            }
            else
            {
                var dims = t.Shape.Reverse().ToArray();
                list.Add(new(TensorNames.Name(TensorNaming.Gguf, role), t.Name, dims, StoredRows(h, t.Offset, dims[0], DType.F32, 0, t.Name, path)));
            }
        }
        return list;
    }

    static List<RawTensor> FromGguf(GgufFile g, SafeFileHandle h, string path)
    {
        var list = new List<RawTensor>();
        foreach (var t in g.Tensors)
        {
            DType dtype = t.GgmlType switch { GgmlTypes.F32 => DType.F32, GgmlTypes.F16 => DType.F16, GgmlTypes.BF16 => DType.BF16, _ => DType.Packed };
            if (dtype == DType.Packed && BlockFormats.FromGgmlType(t.GgmlType) is null)
                throw new NotSupportedException($"{path}: tensor '{t.Name}' has ggml type {GgmlTypes.Get(t.GgmlType).Name}, which cannot be decoded");
            var (kept, ok) = KeptType(dtype);
            list.Add(new(t.Name, t.Name, t.Dims, StoredRows(h, t.Offset, t.Dims[0], dtype, t.GgmlType, t.Name, path)) { SourceType = kept, PackedSource = !ok });
        }
        return list;
    }

    /// <summary>
    /// Rows of <paramref name="rowLength"/> values stored from <paramref name="offset"/> as <paramref name="dtype"/>
    /// (<see cref="DType.Packed"/>: ggml blocks of <paramref name="ggmlType"/>), read with positioned reads into the
    /// reused buffer and decoded to float32.
    /// </summary>
    static RowReader StoredRows(SafeFileHandle h, long offset, long rowLength, DType dtype, int ggmlType, string name, string path)
    {
        var fmt = dtype == DType.Packed ? BlockFormats.FromGgmlType(ggmlType)! : null;
        long rowBytes = fmt is null ? rowLength * dtype.ElementSize() : rowLength / fmt.BlockSize * fmt.BlockBytes;
        return (row0, rows, dst, buffers) =>
        {
            var bytes = buffers.Bytes(checked((int)(rows * rowBytes)));
            ReadExactly(h, bytes, offset + row0 * rowBytes, path);
            if (fmt is not null) fmt.Dequantize(bytes, dst);
            else if (!ModelSource.DecodeFloats(dtype, bytes, dst))
                throw new NotSupportedException($"{path}: tensor '{name}' is {dtype}; only F32, F16, BF16 and F64 weights can be quantized");
        };
    }

    /// <summary>HF → GGUF RoPE order within each head of <paramref name="headRows"/> rows (see <see cref="RopePermutation"/>).</summary>
    static void PermuteHeads(Span<float> rows, int headRows, int cols, RowBuffers buffers)
    {
        var head = buffers.Floats(headRows * cols);
        for (int h0 = 0; h0 < rows.Length; h0 += headRows * cols)
        {
            var dst = rows.Slice(h0, headRows * cols);
            dst.CopyTo(head);
            for (int r = 0; r < headRows; r++)
                head.Slice(RopePermutation.SourceRow(r, headRows) * cols, cols).CopyTo(dst.Slice(r * cols, cols));
        }
    }

    static void ReadExactly(SafeFileHandle h, Span<byte> dst, long offset, string path)
    {
        while (!dst.IsEmpty)
        {
            int n = RandomAccess.Read(h, dst, offset);
            if (n <= 0) throw new EndOfStreamException($"{path}: file ended inside tensor data at offset {offset}");
            dst = dst[n..];
            offset += n;
        }
    }

    static RowReader Checked(RowReader read, long rowLength, string source, string name, bool allowNonFinite) => allowNonFinite ? read : (row0, rows, dst, buffers) =>
    {
        read(row0, rows, dst, buffers);
        int i = FirstNonFinite(dst);
        if (i >= 0)
            throw new InvalidDataException($"tensor '{source}' ({name}): non-finite value {dst[i]} at index {row0 * rowLength + i}; refusing to quantize (use --allow-nonfinite to override)");
    };

    static int FirstNonFinite(ReadOnlySpan<float> v)
    {
        // Bits with an all-ones exponent are NaN or ±Inf.
        var bits = MemoryMarshal.Cast<float, uint>(v);
        for (int i = 0; i < bits.Length; i++)
            if ((bits[i] & 0x7F80_0000u) == 0x7F80_0000u) return i;
        return -1;
    }

    /// <summary>The float rows and encoded bytes of one batch, reused for every tensor.</summary>
    internal sealed class StreamBuffers
    {
        public readonly RowBuffers Rows = new();
        float[] _values = [];
        byte[] _encoded = [];
        public float[] Values(long n) => _values.Length >= n ? _values : _values = new float[n];
        public byte[] Encoded(long n) => _encoded.Length >= n ? _encoded : _encoded = new byte[n];
    }

    /// <summary>Values per batch of rows read, encoded and written together.</summary>
    const int BatchValues = 1 << 20;

    /// <summary>Encodes one tensor to its chosen type a batch of rows at a time, splitting each batch's rows across threads.</summary>
    internal static void Encode(PlannedTensor t, Stream output, StreamBuffers buffers, int threads, CancellationToken ct)
    {
        long rows = t.Rows;
        if (rows == 0) return;
        int row = checked((int)t.RowLength);
        var fmt = t.Choice.Type == GgmlTypes.F32 ? null
            : BlockFormats.FromGgmlType(t.Choice.Type) ?? throw new NotSupportedException($"no encoder for {TypeName(t.Choice.Type)}");
        int rowBytes = fmt is null ? checked(row * 4) : checked((int)(row / fmt.BlockSize * fmt.BlockBytes));
        int group = t.RowGroup;
        long perBatch = Math.Max(group, BatchValues / row / group * group);
        var values = buffers.Values(Math.Min(rows, perBatch) * row);
        var encoded = fmt is null ? [] : buffers.Encoded(Math.Min(rows, perBatch) * rowBytes);
        // Chunks of ~64k values: big enough to amortise scheduling, small enough to balance.
        int rowsPerChunk = Math.Max(1, 65536 / row);
        var imp = t.Importance;
        for (long r0 = 0; r0 < rows; r0 += perBatch)
        {
            ct.ThrowIfCancellationRequested();
            int n = (int)Math.Min(perBatch, rows - r0);
            t.Read(r0, n, values.AsSpan(0, n * row), buffers.Rows);
            if (fmt is null)
            {
                output.Write(MemoryMarshal.AsBytes(values.AsSpan(0, n * row)));
                continue;
            }
            int chunks = (n + rowsPerChunk - 1) / rowsPerChunk;
            Parallel.For(0, chunks, new ParallelOptions { MaxDegreeOfParallelism = threads, CancellationToken = ct }, c =>
            {
                int c0 = c * rowsPerChunk, c1 = Math.Min(n, c0 + rowsPerChunk);
                fmt.Quantize(values.AsSpan(c0 * row, (c1 - c0) * row), encoded.AsSpan(c0 * rowBytes, (c1 - c0) * rowBytes), row, imp);
            });
            output.Write(encoded, 0, n * rowBytes);
        }
    }
}
