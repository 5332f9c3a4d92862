using System.Buffers.Binary;
using System.Runtime.InteropServices;
using System.Text;
using TensorCodec.Containers;

namespace TensorCodec.Quantization;

/// <summary>
/// Per-tensor importance weights (one per column of a weight matrix, i.e. per input feature),
/// keyed by GGUF tensor name. Two on-disk forms are read, both written by llama.cpp's
/// <c>llama-imatrix</c>:
/// <list type="bullet">
/// <item><b>legacy .dat</b> (all little-endian): int32 entry count; per entry: int32 name length,
/// name bytes (UTF-8, e.g. <c>blk.0.attn_q.weight</c>), int32 ncall, int32 nval, float32[nval]
/// values. The weight is value / ncall (ncall ≤ 0: value as is). Easy to produce by hand:
/// ncall = 1 and nval = the row length.</item>
/// <item><b>GGUF</b>: for each tensor X, an F32 tensor <c>X.in_sum2</c> [row length × n_mat] and an
/// F32 tensor <c>X.counts</c> [n_mat]; the weight is in_sum2 / count (count 0: weight 1, the
/// "never activated" convention).</item>
/// </list>
/// </summary>
internal sealed class ImportanceMatrix
{
    readonly Dictionary<string, float[]> _weights;

    public ImportanceMatrix(Dictionary<string, float[]> weights, IReadOnlyList<string>? datasets = null, int chunkCount = 0)
    {
        _weights = weights;
        Datasets = datasets ?? [];
        ChunkCount = chunkCount;
    }

    public IReadOnlyCollection<string> Names => _weights.Keys;

    /// <summary>The datasets the matrix was computed on (GGUF <c>imatrix.datasets</c>; a legacy file's trailing name), possibly none.</summary>
    public IReadOnlyList<string> Datasets { get; }

    /// <summary>How many chunks the matrix was computed on (GGUF <c>imatrix.chunk_count</c>; a legacy file's trailing count); 0 when unknown.</summary>
    public int ChunkCount { get; }

    /// <summary>Weights for a tensor, or null when the matrix has no entry for it.</summary>
    public float[]? Find(string name) => _weights.TryGetValue(name, out var w) ? w : null;

    public static ImportanceMatrix Load(string path)
    {
        InputFile.EnsureRegular(path);
        using var stream = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read);
        return GgufFile.HasMagic(stream) ? LoadGguf(stream, path) : LoadDat(File.ReadAllBytes(path), path);
    }

    static ImportanceMatrix LoadDat(byte[] b, string path)
    {
        int p = 0;
        int ReadI32(string field)
        {
            if (b.Length - p < 4) throw new TensorFormatException(path, p, field, "imatrix file is truncated");
            int v = BinaryPrimitives.ReadInt32LittleEndian(b.AsSpan(p));
            p += 4;
            return v;
        }
        int n = ReadI32("n_entries");
        if (n < 0 || n > b.Length / 12) throw new TensorFormatException(path, 0, "n_entries", $"entry count {n} cannot fit in the file");
        var map = new Dictionary<string, float[]>(StringComparer.Ordinal);
        for (int e = 0; e < n; e++)
        {
            int at = p;
            int len = ReadI32($"entry[{e}].name_length");
            if (len <= 0 || len > b.Length - p) throw new TensorFormatException(path, at, $"entry[{e}].name_length", $"name length {len} is out of range");
            string name = Encoding.UTF8.GetString(b, p, len);
            p += len;
            int ncall = ReadI32($"{name}.ncall");
            at = p;
            int nval = ReadI32($"{name}.nval");
            if (nval <= 0 || nval > (b.Length - p) / 4) throw new TensorFormatException(path, at, $"{name}.nval", $"value count {nval} cannot fit in the file");
            var values = MemoryMarshal.Cast<byte, float>(b.AsSpan(p, nval * 4)).ToArray();
            if (!BitConverter.IsLittleEndian)
                for (int i = 0; i < nval; i++) values[i] = BinaryPrimitives.ReadSingleLittleEndian(b.AsSpan(p + i * 4));
            p += nval * 4;
            if (ncall > 0) for (int i = 0; i < values.Length; i++) values[i] /= ncall;
            if (!map.TryAdd(name, values)) throw new TensorFormatException(path, at, name, $"duplicate imatrix entry '{name}'");
        }
        // Optional trailer written by llama-imatrix: int32 chunk count, int32 length, dataset name. Read as
        // llama.cpp's common_imatrix_load_legacy does: whatever part of it is present; a name ends at a NUL.
        int chunks = 0;
        var datasets = new List<string>();
        if (b.Length - p >= 4)
        {
            chunks = BinaryPrimitives.ReadInt32LittleEndian(b.AsSpan(p));
            p += 4;
            if (b.Length - p >= 4)
            {
                int len = BinaryPrimitives.ReadInt32LittleEndian(b.AsSpan(p));
                p += 4;
                if (len > 0 && len <= b.Length - p)
                {
                    var name = b.AsSpan(p, len);
                    int nul = name.IndexOf((byte)0);
                    datasets.Add(Encoding.UTF8.GetString(nul < 0 ? name : name[..nul]));
                }
            }
        }
        return new ImportanceMatrix(map, datasets, chunks);
    }

    static ImportanceMatrix LoadGguf(FileStream stream, string path)
    {
        var f = GgufFile.Parse(stream, path);
        var byName = f.Tensors.ToDictionary(t => t.Name, StringComparer.Ordinal);
        var map = new Dictionary<string, float[]>(StringComparer.Ordinal);
        foreach (var t in f.Tensors)
        {
            if (!t.Name.EndsWith(".in_sum2", StringComparison.Ordinal)) continue;
            string name = t.Name[..^".in_sum2".Length];
            if (!byName.TryGetValue(name + ".counts", out var c))
                throw new TensorFormatException(path, null, t.Name, $"imatrix has '{t.Name}' but no '{name}.counts'");
            if (t.GgmlType != GgmlTypes.F32 || c.GgmlType != GgmlTypes.F32)
                throw new TensorFormatException(path, null, t.Name, "imatrix tensors must be F32");
            var sums = ReadF32(stream, t.Offset, t.ElementCount);
            var counts = ReadF32(stream, c.Offset, c.ElementCount);
            long row = t.Dims[0];
            if (row * counts.Length != sums.Length)
                throw new TensorFormatException(path, null, t.Name, $"{sums.Length} sums do not match {counts.Length} counts of rows of {row}");
            for (int m = 0; m < counts.Length; m++)
                for (long i = 0; i < row; i++)
                {
                    long k = m * row + i;
                    sums[k] = counts[m] > 0 ? sums[k] / counts[m] : 1f;
                }
            map[name] = sums;
        }
        var datasets = f.Find("imatrix.datasets") is { Type: GgufValueType.Array } d && d.AsArray().ElementType == GgufValueType.String
            ? d.AsArray().Get<string>() : [];
        int chunks = f.Find("imatrix.chunk_count") is { Type: GgufValueType.UInt32 } c0 ? (int)Math.Min(c0.As<uint>(), int.MaxValue) : 0;
        return new ImportanceMatrix(map, datasets, chunks);
    }

    static float[] ReadF32(FileStream s, long offset, long count)
    {
        var bytes = new byte[checked(count * 4)];
        RandomAccess.Read(s.SafeFileHandle, bytes, offset);
        var r = new float[count];
        for (int i = 0; i < r.Length; i++) r[i] = BinaryPrimitives.ReadSingleLittleEndian(bytes.AsSpan(i * 4));
        return r;
    }

    /// <summary>Writes the legacy .dat form (ncall = 1), e.g. for tests and hand-made matrices.</summary>
    public static void WriteDat(Stream output, IEnumerable<KeyValuePair<string, float[]>> entries)
    {
        var list = entries.ToList();
        Span<byte> b4 = stackalloc byte[4];
        void I32(int v, Span<byte> b) { BinaryPrimitives.WriteInt32LittleEndian(b, v); output.Write(b); }
        I32(list.Count, b4);
        foreach (var (name, w) in list)
        {
            var nb = Encoding.UTF8.GetBytes(name);
            I32(nb.Length, b4);
            output.Write(nb);
            I32(1, b4);
            I32(w.Length, b4);
            foreach (var x in w) { BinaryPrimitives.WriteSingleLittleEndian(b4, x); output.Write(b4); }
        }
    }
    /// <summary>
    /// Writes raw statistics as llama-imatrix's GGUF (tools/imatrix/imatrix.cpp, save_imatrix): <c>general.type</c> =
    /// "imatrix", <c>imatrix.datasets</c> (string array), <c>imatrix.chunk_count</c> and <c>imatrix.chunk_size</c>
    /// (UInt32); then per entry in ordinal name order an F32 tensor <c>X.in_sum2</c> [row] (the sums of squares) and
    /// <c>X.counts</c> [1] (the activation rows seen), 1-D as ggml_n_dims stores a matrix of one row.
    /// </summary>
    internal static void WriteGguf(Stream output, IEnumerable<ImatrixEntry> entries, IReadOnlyList<string> datasets, int chunkCount, int chunkSize)
    {
        var meta = new List<KeyValuePair<string, GgufValue>>
        {
            new("general.type", GgufValue.String("imatrix")),
            new("imatrix.datasets", GgufValue.Array(GgufArray.Of([.. datasets]))),
            new("imatrix.chunk_count", GgufValue.UInt32((uint)Math.Max(0, chunkCount))),
            new("imatrix.chunk_size", GgufValue.UInt32((uint)Math.Max(0, chunkSize))),
        };
        var tensors = new List<GgufTensor>();
        foreach (var e in entries.OrderBy(e => e.Name, StringComparer.Ordinal))
        {
            tensors.Add(new GgufTensor(e.Name + ".in_sum2", GgmlTypes.F32, [e.SumSquares.Length], TensorByteSource.FromMemory(F32Bytes(e.SumSquares))));
            tensors.Add(new GgufTensor(e.Name + ".counts", GgmlTypes.F32, [1], TensorByteSource.FromMemory(F32Bytes([(float)e.Count]))));
        }
        GgufWriter.Write(output, meta, tensors);
    }

    /// <summary>
    /// Writes raw statistics as llama-imatrix's legacy .dat (save_imatrix_legacy): entries in ordinal name order with
    /// ncall = ⌈count / chunk size⌉ and values (sum / count)·ncall, so value / ncall is the mean square; then the
    /// trailer: int32 chunk count, int32 length and the dataset name. Entries with no rows are skipped, as there.
    /// </summary>
    internal static void WriteLegacy(Stream output, IEnumerable<ImatrixEntry> entries, string dataset, int chunkCount, int chunkSize)
    {
        var list = entries.Where(e => e.Count > 0).OrderBy(e => e.Name, StringComparer.Ordinal).ToList();
        Span<byte> b4 = stackalloc byte[4];
        void I32(int v, Span<byte> b) { BinaryPrimitives.WriteInt32LittleEndian(b, v); output.Write(b); }
        I32(list.Count, b4);
        foreach (var e in list)
        {
            var nb = Encoding.UTF8.GetBytes(e.Name);
            I32(nb.Length, b4);
            output.Write(nb);
            int ncall = checked((int)((e.Count + chunkSize - 1) / Math.Max(1, chunkSize)));
            I32(ncall, b4);
            I32(e.SumSquares.Length, b4);
            var values = new float[e.SumSquares.Length];
            for (int i = 0; i < values.Length; i++) values[i] = e.SumSquares[i] / e.Count * ncall;
            output.Write(F32Bytes(values));
        }
        I32(chunkCount, b4);
        var db = Encoding.UTF8.GetBytes(dataset);
        I32(db.Length, b4);
        output.Write(db);
    }

    /// <summary>The mean squares a calibration run measured for <paramref name="names"/> (those it has), as a matrix.</summary>
    internal static ImportanceMatrix FromCalibration(ICalibration calibration, IEnumerable<string> names)
    {
        var map = new Dictionary<string, float[]>(StringComparer.Ordinal);
        foreach (var n in names)
            if (calibration.MeanSquares(n) is { } w) map[n] = w;
        return new ImportanceMatrix(map, [calibration.Dataset], calibration.Chunks);
    }

    static byte[] F32Bytes(float[] v)
    {
        var b = new byte[v.Length * 4];
        for (int i = 0; i < v.Length; i++) BinaryPrimitives.WriteSingleLittleEndian(b.AsSpan(i * 4), v[i]);
        return b;
    }

    /// <summary>
    /// Refuses a matrix made for another model: the first entry (in ordinal name order) that names no tensor of the
    /// model, or whose length is not that tensor's row length, is named. <paramref name="rowLengths"/> maps each GGUF
    /// tensor name of the model to its row length.
    /// </summary>
    internal void CheckMatches(IReadOnlyDictionary<string, long> rowLengths, string path)
    {
        foreach (var name in _weights.Keys.Order(StringComparer.Ordinal))
        {
            if (!rowLengths.TryGetValue(name, out long row))
                throw new InvalidDataException($"{path}: entry '{name}' names no tensor of the model; the imatrix was made for another model");
            if (_weights[name].Length != row)
                throw new InvalidDataException($"{path}: entry '{name}' has {_weights[name].Length} weights but the tensor's rows have {row} columns; the imatrix was made for another model");
        }
    }
}

/// <summary>One imatrix entry's raw statistics: per column the sum of squared activations, and the rows summed.</summary>
internal sealed record ImatrixEntry(string Name, float[] SumSquares, long Count);
