using System.Buffers.Binary;
using System.Runtime.InteropServices;
using TensorCodec.Numerics;

namespace TensorCodec.Containers;

/// <summary>
/// One tensor of a GGUF file as stored: <see cref="Dims"/> are innermost-first (ggml's ne[0] is
/// the row length), <see cref="RelativeOffset"/> is relative to the data section,
/// <see cref="Offset"/> is the absolute file offset.
/// </summary>
/// <param name="Name">Tensor name as stored (e.g. <c>blk.0.attn_q.weight</c>).</param>
/// <param name="Dims">Dimensions, innermost first (1 to <see cref="GgufFile.MaxDims"/> entries).</param>
/// <param name="GgmlType">ggml type id (<c>ggml_type</c>: 0 = F32, 1 = F16, 8 = Q8_0, …).</param>
/// <param name="RelativeOffset">Byte offset of the data from the start of the data section.</param>
/// <param name="Offset">Absolute byte offset of the data in the file.</param>
/// <param name="ByteSize">Bytes of data, as implied by the type and dims.</param>
public sealed record GgufTensorInfo(string Name, long[] Dims, int GgmlType, long RelativeOffset, long Offset, long ByteSize)
{
    /// <summary>Number of elements: the product of <see cref="Dims"/>.</summary>
    public long ElementCount { get { long n = 1; foreach (var d in Dims) n *= d; return n; } }
}

/// <summary>
/// GGUF v2/v3 reader (v1, with 32-bit counts, is refused). Everything is validated against the
/// file length before allocation: counts, string lengths and array lengths that the remaining
/// bytes could not possibly hold are errors, as are unknown ggml types, misaligned or
/// out-of-bounds tensor offsets and overlapping tensors.
/// </summary>
public sealed class GgufFile
{
    internal const uint DefaultAlignment = 32;
    internal const string AlignmentKey = "general.alignment";
    /// <summary>ggml's GGML_MAX_DIMS: ggml cannot represent a tensor with more.</summary>
    public const int MaxDims = 4;
    /// <summary>Array nesting beyond this is refused (ggml itself never nests more than one level).</summary>
    public const int MaxNesting = 8;

    static ReadOnlySpan<byte> Magic => "GGUF"u8;

    /// <summary>GGUF format version: 2 or 3.</summary>
    public required uint Version { get; init; }
    /// <summary>Key/value pairs in file order.</summary>
    public required IReadOnlyList<KeyValuePair<string, GgufValue>> Metadata { get; init; }
    /// <summary>Tensor infos in header order.</summary>
    public required IReadOnlyList<GgufTensorInfo> Tensors { get; init; }
    /// <summary>Data alignment in bytes: <c>general.alignment</c> if present (a power of two), else 32.</summary>
    public required uint Alignment { get; init; }
    /// <summary>Absolute offset of the (aligned) data section.</summary>
    public required long DataOffset { get; init; }
    /// <summary>Length of the parsed stream in bytes.</summary>
    public required long FileLength { get; init; }

    /// <summary>The value of metadata key <paramref name="key"/> (exact, case-sensitive match), or null if absent.</summary>
    public GgufValue? Find(string key)
    {
        foreach (var kv in Metadata) if (kv.Key == key) return kv.Value;
        return null;
    }

    /// <summary>True if the stream starts with the GGUF magic (position is restored).</summary>
    public static bool HasMagic(Stream stream)
    {
        long pos = stream.Position;
        try
        {
            stream.Position = 0;
            Span<byte> b = stackalloc byte[4];
            return stream.ReadAtLeast(b, 4, throwOnEndOfStream: false) == 4 && b.SequenceEqual(Magic);
        }
        finally { stream.Position = pos; }
    }

    internal static TensorFile Read(Stream stream, string? pathForErrors) => Parse(stream, pathForErrors).ToTensorFile();

    /// <summary>Parses the header and tensor infos of a seekable stream (tensor data is not read).</summary>
    public static GgufFile Parse(Stream stream, string? pathForErrors)
    {
        ArgumentNullException.ThrowIfNull(stream);
        if (!stream.CanSeek) throw new ArgumentException("GGUF reading needs a seekable stream", nameof(stream));
        long fileLength = stream.Length;
        var r = new BoundedReader(stream, 0, fileLength, pathForErrors);

        var magic = r.ReadBytes(4, "magic");
        if (!magic.AsSpan().SequenceEqual(Magic)) throw r.Error(0, "magic", "not a GGUF file (magic is not \"GGUF\")");

        uint version = r.ReadU32("version");
        if (version == 1)
            throw r.Error(4, "version", "GGUF v1 (32-bit counts) is not supported; re-convert the model with a current llama.cpp");
        if (version is not (2 or 3))
        {
            uint swapped = BinaryPrimitives.ReverseEndianness(version);
            throw r.Error(4, "version", swapped is 2 or 3
                ? $"big-endian GGUF v{swapped} is not supported"
                : $"unsupported GGUF version {version}");
        }

        // Smallest possible encodings: a tensor info is name length (8) + n_dims (4) + type (4) +
        // offset (8); a key/value is key length (8) + type (4) + a 1-byte value.
        const int minTensorInfo = 24, minKv = 13;
        long countsAt = r.Position;
        ulong tensorCount = r.ReadU64("tensor_count");
        ulong kvCount = r.ReadU64("metadata_kv_count");
        if (tensorCount > (ulong)(r.Remaining / minTensorInfo))
            throw r.Error(countsAt, "tensor_count", $"tensor_count {tensorCount} cannot fit in the {r.Remaining} remaining bytes");
        if (kvCount > (ulong)((r.Remaining - (long)tensorCount * minTensorInfo) / minKv))
            throw r.Error(countsAt + 8, "metadata_kv_count", $"metadata_kv_count {kvCount} cannot fit in the {r.Remaining} remaining bytes");

        // Counts were bounded by the file length, but a huge file could still pass; never
        // pre-size a list from a declared count beyond a small cap, let it grow with real data.
        var metadata = new List<KeyValuePair<string, GgufValue>>((int)Math.Min(kvCount, 1024));
        var keys = new HashSet<string>(StringComparer.Ordinal);
        for (ulong i = 0; i < kvCount; i++)
        {
            long keyAt = r.Position;
            string key = ReadString(r, $"kv[{i}].key");
            if (!keys.Add(key)) throw r.Error(keyAt, key, $"duplicate metadata key '{key}'");
            long typeAt = r.Position;
            uint type = r.ReadU32($"{key}.type");
            if (type > (uint)GgufValueType.Float64) throw r.Error(typeAt, key, $"metadata '{key}' has unknown value type {type}");
            metadata.Add(new(key, ReadValue(r, (GgufValueType)type, key, 0)));
        }

        uint alignment = DefaultAlignment;
        if (keys.Contains(AlignmentKey))
        {
            var v = metadata.First(kv => kv.Key == AlignmentKey).Value;
            if (v.Type != GgufValueType.UInt32)
                throw r.Error(null, AlignmentKey, $"general.alignment must be uint32, found {v.Type}");
            alignment = v.As<uint>();
            if (alignment == 0 || (alignment & (alignment - 1)) != 0)
                throw r.Error(null, AlignmentKey, $"general.alignment {alignment} is not a non-zero power of two");
        }

        var infos = new List<(string Name, long At, long[] Dims, int Type, ulong Offset, long Size)>((int)Math.Min(tensorCount, 1024));
        var names = new HashSet<string>(StringComparer.Ordinal);
        for (ulong i = 0; i < tensorCount; i++)
        {
            long at = r.Position;
            string name = ReadString(r, $"tensor[{i}].name");
            if (!names.Add(name)) throw r.Error(at, "name", $"duplicate tensor name '{name}'");
            long dimsAt = r.Position;
            uint nDims = r.ReadU32($"{name}.n_dims");
            if (nDims > MaxDims) throw r.Error(dimsAt, "n_dims", $"tensor '{name}': n_dims {nDims} exceeds ggml's limit of {MaxDims}");
            var dims = new long[nDims];
            long elements = 1;
            for (int d = 0; d < nDims; d++)
            {
                long dimAt = r.Position;
                ulong dim = r.ReadU64($"{name}.dims[{d}]");
                if (dim > long.MaxValue) throw r.Error(dimAt, "dims", $"tensor '{name}': dims[{d}] = {dim} is out of range");
                dims[d] = (long)dim;
                try { elements = checked(elements * dims[d]); }
                catch (OverflowException) { throw r.Error(dimAt, "dims", $"tensor '{name}': element count overflows 64 bits"); }
            }
            long typeAt = r.Position;
            uint type = r.ReadU32($"{name}.type");
            if (!GgmlTypes.TryGet(type, out var info))
                throw r.Error(typeAt, "type", $"tensor '{name}': unknown ggml type id {type}");
            // ggml rows are whole blocks: ne[0] must be a multiple of the block size.
            if (nDims > 0 && dims[0] % info.BlockSize != 0)
                throw r.Error(dimsAt, "dims", $"tensor '{name}': row length {dims[0]} is not a multiple of {info.Name}'s block size {info.BlockSize}");
            if (info.ByteSize(elements) is not long size)
                throw r.Error(dimsAt, "dims", $"tensor '{name}': {elements} elements of {info.Name} do not form a valid byte size");
            long offsetAt = r.Position;
            ulong offset = r.ReadU64($"{name}.offset");
            infos.Add((name, offsetAt, dims, (int)type, offset, size));
        }

        long dataOffset = AlignUp(r.Position, alignment);
        var tensors = new List<GgufTensorInfo>(infos.Count);
        foreach (var t in infos)
        {
            if (t.Offset % alignment != 0)
                throw r.Error(t.At, "offset", $"tensor '{t.Name}': offset {t.Offset} is not a multiple of the alignment {alignment}");
            if (t.Offset > (ulong)fileLength || dataOffset + (long)t.Offset > fileLength - t.Size)
                throw r.Error(t.At, "offset", $"tensor '{t.Name}': [{t.Offset}, +{t.Size}) relative to the data section at {dataOffset} lies beyond the end of the {fileLength}-byte file");
            tensors.Add(new GgufTensorInfo(t.Name, t.Dims, t.Type, (long)t.Offset, dataOffset + (long)t.Offset, t.Size));
        }

        GgufTensorInfo? prev = null;
        foreach (var t in tensors.OrderBy(t => t.Offset).ThenBy(t => t.ByteSize))
        {
            if (prev is not null && t.Offset < prev.Offset + prev.ByteSize)
                throw r.Error(t.Offset, "offset", $"tensor '{t.Name}' overlaps tensor '{prev.Name}'");
            prev = t;
        }

        return new GgufFile
        {
            Version = version, Metadata = metadata, Tensors = tensors, Alignment = alignment,
            DataOffset = dataOffset, FileLength = fileLength,
        };
    }

    internal static long AlignUp(long x, uint alignment) => (x + alignment - 1) / alignment * alignment;

    static string ReadString(BoundedReader r, string field)
    {
        long at = r.Position;
        ulong len = r.ReadU64(field);
        if (len > (ulong)r.Remaining)
            throw r.Error(at, field, $"string length {len} exceeds the {r.Remaining} remaining bytes");
        return r.ReadUtf8((long)len, field);
    }

    static GgufValue ReadValue(BoundedReader r, GgufValueType type, string field, int depth) => type switch
    {
        GgufValueType.UInt8 => GgufValue.UInt8(r.ReadU8(field)),
        GgufValueType.Int8 => GgufValue.Int8((sbyte)r.ReadU8(field)),
        GgufValueType.UInt16 => GgufValue.UInt16(r.ReadU16(field)),
        GgufValueType.Int16 => GgufValue.Int16((short)r.ReadU16(field)),
        GgufValueType.UInt32 => GgufValue.UInt32(r.ReadU32(field)),
        GgufValueType.Int32 => GgufValue.Int32(r.ReadI32(field)),
        GgufValueType.Float32 => GgufValue.Float32(BitConverter.UInt32BitsToSingle(r.ReadU32(field))),
        GgufValueType.Bool => GgufValue.Bool(ReadBool(r, field)),
        GgufValueType.String => GgufValue.String(ReadString(r, field)),
        GgufValueType.Array => GgufValue.Array(ReadArray(r, field, depth + 1)),
        GgufValueType.UInt64 => GgufValue.UInt64(r.ReadU64(field)),
        GgufValueType.Int64 => GgufValue.Int64((long)r.ReadU64(field)),
        GgufValueType.Float64 => GgufValue.Float64(BitConverter.UInt64BitsToDouble(r.ReadU64(field))),
        _ => throw r.Error(r.Position, field, $"unknown value type {(uint)type}"),
    };

    static bool ReadBool(BoundedReader r, string field)
    {
        long at = r.Position;
        byte b = r.ReadU8(field);
        // Only 0 and 1 survive a rewrite unchanged; anything else is corruption.
        if (b > 1) throw r.Error(at, field, $"bool value {b} is neither 0 nor 1");
        return b == 1;
    }

    static GgufArray ReadArray(BoundedReader r, string field, int depth)
    {
        long at = r.Position;
        if (depth > MaxNesting) throw r.Error(at, field, $"arrays nested deeper than {MaxNesting} levels");
        uint et = r.ReadU32(field + ".element_type");
        if (et > (uint)GgufValueType.Float64) throw r.Error(at, field, $"array has unknown element type {et}");
        var type = (GgufValueType)et;
        ulong count = r.ReadU64(field + ".count");
        // Minimum on-disk size per element: fixed types their size, a string its 8-byte length,
        // a nested array its 4-byte type and 8-byte count.
        int min = GgufArray.FixedSize(type) is int s and > 0 ? s : type == GgufValueType.String ? 8 : 12;
        if (count > (ulong)(r.Remaining / min) || count > (ulong)System.Array.MaxLength)
            throw r.Error(at, field, $"array of {count} {type} elements cannot fit in the {r.Remaining} remaining bytes");
        int n = (int)count;
        long elementsAt = r.Position;
        switch (type)
        {
            case GgufValueType.String:
            {
                var items = new string[n];
                for (int i = 0; i < n; i++) items[i] = ReadString(r, $"{field}[{i}]");
                return new GgufArray(type, items);
            }
            case GgufValueType.Array:
            {
                var items = new GgufArray[n];
                for (int i = 0; i < n; i++)
                {
                    // Each nested element carries its own element type and count.
                    items[i] = ReadArray(r, $"{field}[{i}]", depth + 1);
                }
                return new GgufArray(type, items);
            }
            case GgufValueType.Bool:
            {
                var raw = r.ReadBytes(n, field);
                var items = new bool[n];
                for (int i = 0; i < n; i++)
                {
                    if (raw[i] > 1) throw r.Error(elementsAt + i, $"{field}[{i}]", $"bool value {raw[i]} is neither 0 nor 1");
                    items[i] = raw[i] == 1;
                }
                return new GgufArray(type, items);
            }
            default:
            {
                var raw = r.ReadBytes((long)n * min, field);
                var items = System.Array.CreateInstance(GgufArray.ClrType(type), n);
                CopyLittleEndian(raw, items, type);
                return new GgufArray(type, items);
            }
        }
    }

    static void CopyLittleEndian(byte[] raw, System.Array dest, GgufValueType type)
    {
        switch (dest)
        {
            case byte[] a: raw.CopyTo(a, 0); return;
            case sbyte[] a: MemoryMarshal.Cast<byte, sbyte>(raw).CopyTo(a); return;
        }
        for (int i = 0; i < dest.Length; i++)
        {
            var s = raw.AsSpan(i * GgufArray.FixedSize(type));
            switch (dest)
            {
                case ushort[] a: a[i] = BinaryPrimitives.ReadUInt16LittleEndian(s); break;
                case short[] a: a[i] = BinaryPrimitives.ReadInt16LittleEndian(s); break;
                case uint[] a: a[i] = BinaryPrimitives.ReadUInt32LittleEndian(s); break;
                case int[] a: a[i] = BinaryPrimitives.ReadInt32LittleEndian(s); break;
                case float[] a: a[i] = BitConverter.UInt32BitsToSingle(BinaryPrimitives.ReadUInt32LittleEndian(s)); break;
                case ulong[] a: a[i] = BinaryPrimitives.ReadUInt64LittleEndian(s); break;
                case long[] a: a[i] = BinaryPrimitives.ReadInt64LittleEndian(s); break;
                case double[] a: a[i] = BitConverter.UInt64BitsToDouble(BinaryPrimitives.ReadUInt64LittleEndian(s)); break;
            }
        }
    }

    /// <summary>
    /// The format-neutral model. GGUF dims are innermost-first (ne[0] = row length); TensorFile
    /// shapes are outermost-first like safetensors/PyTorch, so the dims are reversed here.
    /// </summary>
    public TensorFile ToTensorFile()
    {
        var tensors = Tensors
            .OrderBy(t => t.Offset).ThenBy(t => t.ByteSize)
            .Select(t => new TensorInfo(t.Name, GgmlTypes.ToDType(t.GgmlType), t.Dims.Reverse().ToArray(), t.Offset, t.ByteSize)
            {
                GgmlType = t.GgmlType,
            })
            .ToList();
        var meta = new Dictionary<string, string>(StringComparer.Ordinal) { ["GGUF.version"] = Version.ToString() };
        foreach (var kv in Metadata) meta[kv.Key] = kv.Value.ToString();
        return new TensorFile { Format = TensorFileFormat.Gguf, FileLength = FileLength, Tensors = tensors, Metadata = meta };
    }

    /// <summary>Writer inputs that reproduce this file's tensors, reading the data from <paramref name="source"/>.</summary>
    internal IEnumerable<GgufTensor> TensorsFrom(Stream source) =>
        Tensors.Select(t => new GgufTensor(t.Name, t.GgmlType, t.Dims, TensorByteSource.FromStream(source, t.Offset, t.ByteSize)));
}
