using System.Buffers.Binary;
using System.Globalization;
using System.Text;
using TensorCodec.Numerics;

namespace TensorCodec.Containers;

/// <summary>One tensor to write: name, element type, shape (outermost first) and its bytes.</summary>
internal sealed record SafetensorsTensor(string Name, DType DType, long[] Shape, TensorByteSource Data);

/// <summary>Order in which the writer lays out tensor data.</summary>
internal enum SafetensorsTensorOrder
{
    /// <summary>
    /// The reference (Rust) implementation's order: descending dtype (8-byte types first, so
    /// every tensor is naturally aligned), then name by UTF-8 bytes. Files written by
    /// <c>safetensors.torch.save_file</c> come out byte-identical.
    /// </summary>
    Reference,
    /// <summary>The caller's order, for reproducing files written by other tools.</summary>
    AsGiven,
}

/// <summary>Layout choices of the safetensors writer.</summary>
internal sealed record SafetensorsWriteOptions
{
    /// <summary>Order of the tensor data; the header lists tensors in the same order.</summary>
    public SafetensorsTensorOrder Order { get; init; } = SafetensorsTensorOrder.Reference;

    /// <summary>The reference implementation writes <c>__metadata__</c> first; some tools write it last.</summary>
    public bool MetadataFirst { get; init; } = true;
}

/// <summary>
/// Writes safetensors files, streaming the tensor data. The header is compact JSON in the
/// reference implementation's style (serde_json: no spaces, only <c>"</c>, <c>\</c> and control
/// characters escaped) padded with spaces to a multiple of 8 bytes. Metadata entries are
/// written in the order enumerated (the reference uses a hash map, whose order is arbitrary;
/// an ordered input keeps our output deterministic).
/// </summary>
internal static class SafetensorsWriter
{
    // Strict: a name with a lone surrogate must fail here, not be silently replaced by U+FFFD.
    static readonly UTF8Encoding StrictUtf8 = new(encoderShouldEmitUTF8Identifier: false, throwOnInvalidBytes: true);

    public static void Write(Stream output, IEnumerable<SafetensorsTensor> tensors,
        IEnumerable<KeyValuePair<string, string>>? metadata = null, SafetensorsWriteOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(output);
        ArgumentNullException.ThrowIfNull(tensors);
        var ordered = Order(tensors.ToList(), (options ?? new()).Order);
        byte[] header = BuildHeader(ordered, metadata?.ToList(), options ?? new());

        Span<byte> len = stackalloc byte[8];
        BinaryPrimitives.WriteUInt64LittleEndian(len, (ulong)header.Length);
        output.Write(len);
        output.Write(header);
        var counter = new CountingWriteStream(output);
        foreach (var t in ordered) counter.WriteSource(t.Data, t.Name);
    }

    /// <summary>Convenience for tests and tools: writes to a byte array.</summary>
    public static byte[] ToBytes(IEnumerable<SafetensorsTensor> tensors,
        IEnumerable<KeyValuePair<string, string>>? metadata = null, SafetensorsWriteOptions? options = null)
    {
        var ms = new MemoryStream();
        Write(ms, tensors, metadata, options);
        return ms.ToArray();
    }

    static List<SafetensorsTensor> Order(List<SafetensorsTensor> tensors, SafetensorsTensorOrder order)
    {
        if (order == SafetensorsTensorOrder.AsGiven) return tensors;
        return tensors
            .OrderByDescending(t => ReferenceRank(t.DType))
            .ThenBy(t => StrictUtf8.GetBytes(t.Name), Utf8BytesComparer.Instance)
            .ToList();
    }

    /// <summary>Position of each dtype in the reference implementation's Dtype enum (its sort key).</summary>
    static int ReferenceRank(DType t) => t switch
    {
        DType.Bool => 0, DType.U8 => 1, DType.I8 => 2, DType.F8E5M2 => 3, DType.F8E4M3 => 4,
        DType.I16 => 5, DType.U16 => 6, DType.F16 => 7, DType.BF16 => 8, DType.I32 => 9,
        DType.U32 => 10, DType.F32 => 11, DType.F64 => 12, DType.I64 => 13, DType.U64 => 14,
        _ => throw new ArgumentException($"dtype {t} cannot be stored in safetensors"),
    };

    sealed class Utf8BytesComparer : IComparer<byte[]>
    {
        public static readonly Utf8BytesComparer Instance = new();
        public int Compare(byte[]? x, byte[]? y) => x.AsSpan().SequenceCompareTo(y);
    }

    static byte[] BuildHeader(List<SafetensorsTensor> tensors, List<KeyValuePair<string, string>>? metadata, SafetensorsWriteOptions options)
    {
        var names = new HashSet<string>(StringComparer.Ordinal);
        var sb = new StringBuilder("{");
        bool first = true;
        void Comma() { if (!first) sb.Append(','); first = false; }
        void WriteMetadata()
        {
            if (metadata is null) return;
            Comma();
            AppendString(sb, SafetensorsFile.MetadataKey);
            sb.Append(":{");
            var keys = new HashSet<string>(StringComparer.Ordinal);
            for (int i = 0; i < metadata.Count; i++)
            {
                if (!keys.Add(metadata[i].Key)) throw new ArgumentException($"duplicate metadata key '{metadata[i].Key}'");
                if (i > 0) sb.Append(',');
                AppendString(sb, metadata[i].Key);
                sb.Append(':');
                AppendString(sb, metadata[i].Value);
            }
            sb.Append('}');
        }

        if (options.MetadataFirst) WriteMetadata();
        long offset = 0;
        foreach (var t in tensors)
        {
            if (t.Name == SafetensorsFile.MetadataKey) throw new ArgumentException("a tensor cannot be named __metadata__");
            if (!names.Add(t.Name)) throw new ArgumentException($"duplicate tensor name '{t.Name}'");
            long count = 1;
            foreach (var d in t.Shape)
            {
                ArgumentOutOfRangeException.ThrowIfNegative(d, $"{t.Name} shape");
                count = checked(count * d);
            }
            long bytes = checked(count * ElementSizeOrThrow(t.DType));
            if (bytes != t.Data.Length)
                throw new ArgumentException($"tensor '{t.Name}': shape × {t.DType} is {bytes} bytes but the source has {t.Data.Length}");
            Comma();
            AppendString(sb, t.Name);
            sb.Append(":{\"dtype\":");
            AppendString(sb, t.DType.SafetensorsName());
            sb.Append(",\"shape\":[");
            sb.AppendJoin(',', t.Shape.Select(d => d.ToString(CultureInfo.InvariantCulture)));
            sb.Append("],\"data_offsets\":[")
              .Append(offset.ToString(CultureInfo.InvariantCulture)).Append(',')
              .Append((offset + bytes).ToString(CultureInfo.InvariantCulture)).Append("]}");
            offset += bytes;
        }
        if (!options.MetadataFirst) WriteMetadata();
        sb.Append('}');

        // Pad with spaces (valid JSON whitespace) so the data section starts 8-byte aligned.
        int len = StrictUtf8.GetByteCount(sb.ToString());
        sb.Append(' ', (8 - len % 8) % 8);
        return StrictUtf8.GetBytes(sb.ToString());
    }

    static int ElementSizeOrThrow(DType t)
    {
        int size = t.ElementSize();
        if (size == 0) throw new ArgumentException($"dtype {t} cannot be stored in safetensors");
        return size;
    }

    /// <summary>JSON string with serde_json's escaping, so headers match the reference byte for byte.</summary>
    static void AppendString(StringBuilder sb, string s)
    {
        sb.Append('"');
        foreach (char c in s)
        {
            switch (c)
            {
                case '"': sb.Append("\\\""); break;
                case '\\': sb.Append("\\\\"); break;
                case '\b': sb.Append("\\b"); break;
                case '\f': sb.Append("\\f"); break;
                case '\n': sb.Append("\\n"); break;
                case '\r': sb.Append("\\r"); break;
                case '\t': sb.Append("\\t"); break;
                default:
                    if (c < 0x20) sb.Append("\\u00").Append(((int)c).ToString("x2", CultureInfo.InvariantCulture));
                    else sb.Append(c);
                    break;
            }
        }
        sb.Append('"');
    }
}
