using System.Buffers.Binary;
using System.Globalization;
using System.Runtime.InteropServices;
using TensorCodec.Numerics;

namespace TensorCodec.Containers;

/// <summary>
/// The 7 header fields of a llama2.c "v0" checkpoint. <see cref="SharedClassifier"/> is the
/// sign of the stored vocab_size (negative on disk = a separate wcls follows).
/// </summary>
/// <param name="Dim">Model (embedding) width.</param>
/// <param name="HiddenDim">Feed-forward hidden width.</param>
/// <param name="NLayers">Number of transformer layers.</param>
/// <param name="NHeads">Number of query heads.</param>
/// <param name="NKvHeads">Number of key/value heads.</param>
/// <param name="VocabSize">Vocabulary size (the absolute value of the stored field).</param>
/// <param name="SeqLen">Maximum sequence length.</param>
/// <param name="SharedClassifier">True when the output classifier reuses the token embedding.</param>
public sealed record Llama2cConfig(int Dim, int HiddenDim, int NLayers, int NHeads, int NKvHeads, int VocabSize, int SeqLen, bool SharedClassifier = true)
{
    /// <summary>Width of one attention head: <see cref="Dim"/> / <see cref="NHeads"/> (integer division).</summary>
    public int HeadSize => Dim / NHeads;

    /// <summary>Width of the key and value projections: <see cref="HeadSize"/> × <see cref="NKvHeads"/>.</summary>
    public int KvDim => Dim / NHeads * NKvHeads;

    /// <summary>Null if the config is usable, else why not.</summary>
    public string? Problem()
    {
        if (Dim <= 0 || HiddenDim <= 0 || NLayers <= 0 || NHeads <= 0 || NKvHeads <= 0 || VocabSize <= 0 || SeqLen <= 0)
            return "all header fields must be positive (vocab_size only by absolute value)";
        if (Dim % NHeads != 0) return $"dim {Dim} is not a multiple of n_heads {NHeads}";
        if (NHeads % NKvHeads != 0) return $"n_heads {NHeads} is not a multiple of n_kv_heads {NKvHeads}";
        return null;
    }

    /// <summary>The tensors in file order with their shapes (outermost first), in float32 elements.</summary>
    public IReadOnlyList<(string Name, long[] Shape)> Layout()
    {
        long L = NLayers, d = Dim, h = HiddenDim, kv = KvDim, v = VocabSize;
        var list = new List<(string, long[])>
        {
            ("token_embedding_table", [v, d]),
            ("rms_att_weight", [L, d]),
            ("wq", [L, d, d]),
            ("wk", [L, kv, d]),
            ("wv", [L, kv, d]),
            ("wo", [L, d, d]),
            ("rms_ffn_weight", [L, d]),
            ("w1", [L, h, d]),
            ("w2", [L, d, h]),
            ("w3", [L, h, d]),
            ("rms_final_weight", [d]),
        };
        // Legacy RoPE tables: run.c skips them but every v0 export writes them. run.c skips
        // seq_len * head_size / 2 floats each; for an (unusual) odd head size that is not a
        // whole [seq_len, head_size/2] table, so the table is then exposed flat.
        long[] rope = HeadSize % 2 == 0 ? [SeqLen, HeadSize / 2] : [(long)SeqLen * HeadSize / 2];
        list.Add(("freq_cis_real", rope));
        list.Add(("freq_cis_imag", rope));
        if (!SharedClassifier) list.Add(("wcls", [v, d]));
        return list;
    }

    /// <summary>Exact file size this config implies, or null if it overflows 64 bits (three int32 factors can).</summary>
    public long? FileSize()
    {
        try
        {
            long floats = 0;
            foreach (var (_, shape) in Layout())
            {
                long n = 1;
                foreach (var x in shape) n = checked(n * x);
                floats = checked(floats + n);
            }
            return checked(Llama2cFile.HeaderSize + floats * 4);
        }
        catch (OverflowException) { return null; }
    }
}

/// <summary>
/// llama2.c "v0" checkpoints (Karpathy's run.c format): 7 int32 header fields, then float32
/// arrays back to back with no padding. There is no magic number, so a file is recognised only
/// when its exact length matches what the header implies.
/// </summary>
internal static class Llama2cFile
{
    public const int HeaderSize = 7 * 4;

    public static readonly string[] HeaderFields = ["dim", "hidden_dim", "n_layers", "n_heads", "n_kv_heads", "vocab_size", "seq_len"];

    /// <summary>
    /// True if the stream (from offset 0) holds a consistent v0 checkpoint of exactly
    /// <paramref name="length"/> bytes. Never throws for malformed input; the stream position is restored.
    /// </summary>
    public static bool TryDetect(Stream stream, long length) => TryReadConfig(stream, length, out _, out _);

    static bool TryReadConfig(Stream stream, long length, out Llama2cConfig? config, out int[] fields)
    {
        config = null;
        fields = new int[7];
        if (length < HeaderSize || !stream.CanSeek) return false;
        long pos = stream.Position;
        Span<byte> header = stackalloc byte[HeaderSize];
        try
        {
            stream.Position = 0;
            if (stream.ReadAtLeast(header, HeaderSize, throwOnEndOfStream: false) != HeaderSize) return false;
        }
        finally { stream.Position = pos; }
        for (int i = 0; i < 7; i++) fields[i] = BinaryPrimitives.ReadInt32LittleEndian(header[(i * 4)..]);
        if (fields[5] == int.MinValue) return false; // |vocab| would overflow
        var c = new Llama2cConfig(fields[0], fields[1], fields[2], fields[3], fields[4], Math.Abs(fields[5]), fields[6], fields[5] > 0);
        if (c.Problem() is not null) return false;
        config = c;
        return c.FileSize() == length;
    }

    /// <summary>Reads the header of a v0 checkpoint and maps its arrays to named tensors.</summary>
    public static TensorFile Read(Stream stream, string? pathForErrors)
    {
        ArgumentNullException.ThrowIfNull(stream);
        if (!stream.CanSeek) throw new ArgumentException("llama2.c reading needs a seekable stream", nameof(stream));
        long length = stream.Length;
        if (length < HeaderSize)
            throw new TensorFormatException(pathForErrors, 0, "header", $"file is {length} bytes, shorter than the {HeaderSize}-byte llama2.c header");
        TryReadConfig(stream, length, out var config, out var fields);
        if (config is null)
        {
            // Re-validate field by field for a precise message.
            for (int i = 0; i < 7; i++)
                if (fields[i] <= 0 && !(i == 5 && fields[i] < 0 && fields[i] != int.MinValue))
                    throw new TensorFormatException(pathForErrors, i * 4, HeaderFields[i], $"{HeaderFields[i]} = {fields[i]} must be positive");
            var c = new Llama2cConfig(fields[0], fields[1], fields[2], fields[3], fields[4], Math.Abs(fields[5]), fields[6]);
            throw new TensorFormatException(pathForErrors, 0, "header", c.Problem() ?? "inconsistent header");
        }
        long? expected = config.FileSize();
        if (expected != length)
            throw new TensorFormatException(pathForErrors, 0, "header",
                $"header implies a file of {expected?.ToString(CultureInfo.InvariantCulture) ?? "more than 2^63"} bytes (including the RoPE tables{(config.SharedClassifier ? "" : " and wcls")}) but the file is {length} bytes");

        var tensors = new List<TensorInfo>();
        long offset = HeaderSize;
        foreach (var (name, shape) in config.Layout())
        {
            long n = 1;
            foreach (var x in shape) n *= x;
            tensors.Add(new TensorInfo(name, DType.F32, shape, offset, n * 4));
            offset += n * 4;
        }
        var meta = new Dictionary<string, string>(StringComparer.Ordinal);
        for (int i = 0; i < 7; i++) meta[HeaderFields[i]] = fields[i].ToString(CultureInfo.InvariantCulture);
        meta["shared_classifier"] = config.SharedClassifier ? "true" : "false";
        return new TensorFile { Format = TensorFileFormat.Llama2c, FileLength = length, Tensors = tensors, Metadata = meta };
    }

    /// <summary>Reads the header fields as a config (throws like <see cref="Read"/>).</summary>
    public static Llama2cConfig ReadConfig(Stream stream, string? pathForErrors)
    {
        var f = Read(stream, pathForErrors).Metadata;
        int Get(string k) => int.Parse(f[k], CultureInfo.InvariantCulture);
        return new Llama2cConfig(Get("dim"), Get("hidden_dim"), Get("n_layers"), Get("n_heads"), Get("n_kv_heads"),
            Math.Abs(Get("vocab_size")), Get("seq_len"), Get("vocab_size") > 0);
    }
}

/// <summary>Writes llama2.c v0 checkpoints in <see cref="Llama2cConfig.Layout"/> order.</summary>
internal static class Llama2cWriter
{
    /// <summary>
    /// Writes the header and every tensor of <see cref="Llama2cConfig.Layout"/> from
    /// <paramref name="tensors"/> (flat float arrays, row-major). The RoPE tables may be omitted:
    /// they are then computed the way llama2.c's export does (theta 10000), since run.c ignores them.
    /// </summary>
    public static void Write(Stream output, Llama2cConfig config, IReadOnlyDictionary<string, ReadOnlyMemory<float>> tensors)
    {
        ArgumentNullException.ThrowIfNull(output);
        if (config.Problem() is string problem) throw new ArgumentException(problem, nameof(config));
        var layout = config.Layout();
        foreach (var key in tensors.Keys)
            if (!layout.Any(l => l.Name == key)) throw new ArgumentException($"'{key}' is not a tensor of this llama2.c layout");

        Span<byte> header = stackalloc byte[Llama2cFile.HeaderSize];
        int[] fields = [config.Dim, config.HiddenDim, config.NLayers, config.NHeads, config.NKvHeads,
            config.SharedClassifier ? config.VocabSize : -config.VocabSize, config.SeqLen];
        for (int i = 0; i < 7; i++) BinaryPrimitives.WriteInt32LittleEndian(header[(i * 4)..], fields[i]);
        output.Write(header);

        var (cos, sin) = RopeTables(config);
        foreach (var (name, shape) in layout)
        {
            long n = 1;
            foreach (var x in shape) n *= x;
            ReadOnlyMemory<float> data;
            if (tensors.TryGetValue(name, out var given)) data = given;
            else if (name == "freq_cis_real") data = cos;
            else if (name == "freq_cis_imag") data = sin;
            else throw new ArgumentException($"missing tensor '{name}'");
            if (data.Length != n) throw new ArgumentException($"tensor '{name}' has {data.Length} floats, expected {n}");
            WriteFloats(output, data.Span);
        }
    }

    public static byte[] ToBytes(Llama2cConfig config, IReadOnlyDictionary<string, ReadOnlyMemory<float>> tensors)
    {
        var ms = new MemoryStream();
        Write(ms, config, tensors);
        return ms.ToArray();
    }

    static (float[] Cos, float[] Sin) RopeTables(Llama2cConfig c)
    {
        if (c.HeadSize % 2 != 0)
        {
            // No meaningful table exists for an odd head size; run.c never reads it anyway.
            var zeros = new float[(long)c.SeqLen * c.HeadSize / 2];
            return (zeros, zeros);
        }
        int half = c.HeadSize / 2;
        var cos = new float[(long)c.SeqLen * half];
        var sin = new float[cos.Length];
        for (int t = 0; t < c.SeqLen; t++)
            for (int i = 0; i < half; i++)
            {
                float freq = (float)(1.0 / Math.Pow(10000.0, 2.0 * i / c.HeadSize));
                float angle = t * freq;
                cos[t * half + i] = MathF.Cos(angle);
                sin[t * half + i] = MathF.Sin(angle);
            }
        return (cos, sin);
    }

    static void WriteFloats(Stream output, ReadOnlySpan<float> data)
    {
        if (BitConverter.IsLittleEndian) { output.Write(MemoryMarshal.AsBytes(data)); return; }
        Span<byte> b = stackalloc byte[4];
        foreach (var f in data) { BinaryPrimitives.WriteSingleLittleEndian(b, f); output.Write(b); }
    }
}
