using System.Buffers.Binary;
using System.Text;
using System.Text.Json;
using TensorCodec.Numerics;

namespace TensorCodec.Containers;

/// <summary>
/// Reader for Hugging Face safetensors: an 8-byte little-endian header length, a UTF-8 JSON
/// header, then the data section. Validation follows the reference implementation's rules
/// (tensors tile the data section exactly, no holes, no overlaps, no trailing bytes) so a file
/// we accept is one every other safetensors loader accepts too.
/// </summary>
internal static class SafetensorsFile
{
    /// <summary>The reference implementation's cap; it also bounds what we allocate for the header.</summary>
    public const long MaxHeaderLength = 100_000_000;

    public const string MetadataKey = "__metadata__";

    /// <summary>
    /// Reads the header of a safetensors file from a seekable stream (tensor data is not read).
    /// Tensor offsets in the result are absolute file offsets.
    /// </summary>
    public static TensorFile Read(Stream stream, string? pathForErrors)
    {
        ArgumentNullException.ThrowIfNull(stream);
        if (!stream.CanSeek) throw new ArgumentException("safetensors reading needs a seekable stream", nameof(stream));
        long fileLength = stream.Length;
        if (fileLength < 8)
            throw new TensorFormatException(pathForErrors, 0, "header_length", $"file is {fileLength} bytes, shorter than the 8-byte header length");

        Span<byte> lenBytes = stackalloc byte[8];
        stream.Position = 0;
        stream.ReadExactly(lenBytes);
        ulong headerLen = BinaryPrimitives.ReadUInt64LittleEndian(lenBytes);
        if (headerLen > MaxHeaderLength)
            throw new TensorFormatException(pathForErrors, 0, "header_length", $"header length {headerLen} exceeds the {MaxHeaderLength}-byte limit");
        if (headerLen > (ulong)(fileLength - 8))
            throw new TensorFormatException(pathForErrors, 0, "header_length", $"header length {headerLen} exceeds the {fileLength - 8} bytes after the length field");
        if (headerLen < 2)
            throw new TensorFormatException(pathForErrors, 0, "header_length", $"header length {headerLen} is too short for a JSON object");

        var header = new byte[headerLen];
        stream.ReadExactly(header);
        return ParseHeader(header, fileLength, pathForErrors);
    }

    /// <summary>Parses and validates a header given the total file length.</summary>
    internal static TensorFile ParseHeader(byte[] header, long fileLength, string? path)
    {
        const long headerStart = 8;
        long dataStart = headerStart + header.Length;
        long dataLength = fileLength - dataStart;

        if (header[0] != (byte)'{')
            throw new TensorFormatException(path, headerStart, "header", "header does not start with '{'");
        if (!System.Text.Unicode.Utf8.IsValid(header))
            throw new TensorFormatException(path, headerStart + FirstInvalidUtf8(header), "header", "header is not valid UTF-8");

        var entries = new List<Entry>();
        var metadata = new Dictionary<string, string>(StringComparer.Ordinal);
        bool sawMetadata = false;
        var names = new HashSet<string>(StringComparer.Ordinal);

        var reader = new Utf8JsonReader(header, new JsonReaderOptions { CommentHandling = JsonCommentHandling.Disallow, MaxDepth = 64 });
        try
        {
            reader.Read(); // StartObject, guaranteed by the '{' check
            while (true)
            {
                Next(ref reader);
                if (reader.TokenType == JsonTokenType.EndObject) break;
                long keyAt = headerStart + reader.TokenStartIndex;
                string name = reader.GetString()!;
                if (name == MetadataKey)
                {
                    if (sawMetadata) throw new TensorFormatException(path, keyAt, MetadataKey, "duplicate __metadata__ entry");
                    sawMetadata = true;
                    ReadMetadata(ref reader, metadata, path);
                    continue;
                }
                if (!names.Add(name))
                    throw new TensorFormatException(path, keyAt, name, $"tensor '{name}' appears twice in the header");
                entries.Add(ReadEntry(ref reader, name, keyAt, path));
            }
            // Anything after the top-level object other than whitespace (the padding) is an error;
            // Utf8JsonReader throws on it here.
            if (reader.Read())
                throw new TensorFormatException(path, headerStart + reader.TokenStartIndex, "header", "extra data after the header's JSON object");
        }
        // GetString throws InvalidOperationException for escapes that decode to lone surrogates.
        catch (Exception e) when (e is JsonException or InvalidOperationException)
        {
            throw new TensorFormatException(path, headerStart + reader.BytesConsumed, "header", $"header is not valid JSON: {e.Message}", e);
        }

        var tensors = Validate(entries, dataStart, dataLength, path);
        return new TensorFile
        {
            Format = TensorFileFormat.Safetensors,
            FileLength = fileLength,
            Tensors = tensors,
            Metadata = metadata,
        };
    }

    readonly record struct Entry(string Name, long KeyOffset, DType DType, long[] Shape, long Begin, long End);

    /// <summary>Reads the next token; running out of header inside the object is malformed JSON.</summary>
    static void Next(ref Utf8JsonReader reader)
    {
        if (!reader.Read()) throw new JsonException("unexpected end of header");
    }

    static void ReadMetadata(ref Utf8JsonReader reader, Dictionary<string, string> metadata, string? path)
    {
        Next(ref reader);
        if (reader.TokenType != JsonTokenType.StartObject)
            throw new TensorFormatException(path, 8 + reader.TokenStartIndex, MetadataKey, "__metadata__ must be an object of string values");
        while (true)
        {
            Next(ref reader);
            if (reader.TokenType == JsonTokenType.EndObject) return;
            long keyAt = 8 + reader.TokenStartIndex;
            string key = reader.GetString()!;
            Next(ref reader);
            if (reader.TokenType != JsonTokenType.String)
                throw new TensorFormatException(path, 8 + reader.TokenStartIndex, $"{MetadataKey}.{key}", $"__metadata__ value for '{key}' must be a string, found {reader.TokenType}");
            if (!metadata.TryAdd(key, reader.GetString()!))
                throw new TensorFormatException(path, keyAt, $"{MetadataKey}.{key}", $"__metadata__ key '{key}' appears twice");
        }
    }

    static Entry ReadEntry(ref Utf8JsonReader reader, string name, long keyAt, string? path)
    {
        Next(ref reader);
        if (reader.TokenType != JsonTokenType.StartObject)
            throw new TensorFormatException(path, 8 + reader.TokenStartIndex, name, $"tensor '{name}': entry must be an object, found {reader.TokenType}");

        string? dtypeName = null;
        long dtypeAt = keyAt;
        long[]? shape = null;
        long[]? offsets = null;
        while (true)
        {
            Next(ref reader);
            if (reader.TokenType == JsonTokenType.EndObject) break;
            long fieldAt = 8 + reader.TokenStartIndex;
            string field = reader.GetString()!;
            switch (field)
            {
                case "dtype":
                    if (dtypeName is not null) throw Dup(path, fieldAt, name, field);
                    Next(ref reader);
                    if (reader.TokenType != JsonTokenType.String)
                        throw new TensorFormatException(path, 8 + reader.TokenStartIndex, "dtype", $"tensor '{name}': dtype must be a string");
                    dtypeAt = 8 + reader.TokenStartIndex;
                    dtypeName = reader.GetString()!;
                    break;
                case "shape":
                    if (shape is not null) throw Dup(path, fieldAt, name, field);
                    shape = ReadIntArray(ref reader, name, "shape", path);
                    break;
                case "data_offsets":
                    if (offsets is not null) throw Dup(path, fieldAt, name, field);
                    offsets = ReadIntArray(ref reader, name, "data_offsets", path);
                    if (offsets.Length != 2)
                        throw new TensorFormatException(path, fieldAt, "data_offsets", $"tensor '{name}': data_offsets must have exactly 2 elements, found {offsets.Length}");
                    break;
                default:
                    // The reference implementation ignores unknown fields; so do we, so that every
                    // file it loads we load too. The bytes are preserved either way.
                    Next(ref reader);
                    reader.Skip();
                    break;
            }
        }

        if (dtypeName is null) throw Missing(path, keyAt, name, "dtype");
        if (shape is null) throw Missing(path, keyAt, name, "shape");
        if (offsets is null) throw Missing(path, keyAt, name, "data_offsets");
        if (!DTypeInfo.TryParseSafetensorsName(dtypeName, out var dtype))
            throw new TensorFormatException(path, dtypeAt, "dtype", $"tensor '{name}': unknown dtype '{dtypeName}'");
        return new Entry(name, keyAt, dtype, shape, offsets[0], offsets[1]);
    }

    static long[] ReadIntArray(ref Utf8JsonReader reader, string name, string field, string? path)
    {
        Next(ref reader);
        if (reader.TokenType != JsonTokenType.StartArray)
            throw new TensorFormatException(path, 8 + reader.TokenStartIndex, field, $"tensor '{name}': {field} must be an array of integers");
        var values = new List<long>();
        while (true)
        {
            Next(ref reader);
            if (reader.TokenType == JsonTokenType.EndArray) return values.ToArray();
            // TryGetUInt64 refuses negatives, fractions and exponents: only plain integers are sizes.
            if (reader.TokenType != JsonTokenType.Number || !reader.TryGetUInt64(out ulong v) || v > long.MaxValue)
                throw new TensorFormatException(path, 8 + reader.TokenStartIndex, field, $"tensor '{name}': {field}[{values.Count}] is not a non-negative 64-bit integer");
            values.Add((long)v);
        }
    }

    static TensorFormatException Dup(string? path, long at, string name, string field) =>
        new(path, at, field, $"tensor '{name}': field '{field}' appears twice");

    static TensorFormatException Missing(string? path, long at, string name, string field) =>
        new(path, at, field, $"tensor '{name}': missing required field '{field}'");

    static List<TensorInfo> Validate(List<Entry> entries, long dataStart, long dataLength, string? path)
    {
        foreach (var e in entries)
        {
            if (e.Begin > e.End)
                throw new TensorFormatException(path, e.KeyOffset, "data_offsets", $"tensor '{e.Name}': data_offsets begin {e.Begin} is after end {e.End}");
            if (e.End > dataLength)
                throw new TensorFormatException(path, e.KeyOffset, "data_offsets", $"tensor '{e.Name}': data_offsets end {e.End} is beyond the {dataLength}-byte data section");
            long bytes;
            try
            {
                long count = 1;
                foreach (var d in e.Shape) count = checked(count * d);
                bytes = checked(count * e.DType.ElementSize());
            }
            catch (OverflowException)
            {
                throw new TensorFormatException(path, e.KeyOffset, "shape", $"tensor '{e.Name}': shape [{string.Join(",", e.Shape)}] × {e.DType} overflows 64 bits");
            }
            if (bytes != e.End - e.Begin)
                throw new TensorFormatException(path, e.KeyOffset, "shape",
                    $"tensor '{e.Name}': shape [{string.Join(",", e.Shape)}] of {e.DType} needs {bytes} bytes but data_offsets span {e.End - e.Begin}");
        }

        // Stable sort: zero-length tensors sharing an offset keep their header order.
        var sorted = entries.OrderBy(e => e.Begin).ThenBy(e => e.End).ToList();
        long expected = 0;
        Entry? previous = null;
        foreach (var e in sorted)
        {
            if (e.Begin < expected)
                throw new TensorFormatException(path, e.KeyOffset, "data_offsets",
                    $"tensor '{e.Name}' [{e.Begin},{e.End}) overlaps tensor '{previous!.Value.Name}' [{previous.Value.Begin},{previous.Value.End})");
            if (e.Begin > expected)
                throw new TensorFormatException(path, e.KeyOffset, "data_offsets",
                    $"tensor '{e.Name}' starts at data offset {e.Begin}, leaving a hole [{expected},{e.Begin}) no tensor covers");
            expected = e.End;
            previous = e;
        }
        if (expected != dataLength)
            throw new TensorFormatException(path, dataStart + expected, "data_offsets",
                $"the data section has {dataLength - expected} trailing bytes [{expected},{dataLength}) no tensor covers");

        return sorted.Select(e => new TensorInfo(e.Name, e.DType, e.Shape, dataStart + e.Begin, e.End - e.Begin)).ToList();
    }

    static long FirstInvalidUtf8(ReadOnlySpan<byte> bytes)
    {
        long pos = 0;
        while (!bytes.IsEmpty)
        {
            if (Rune.DecodeFromUtf8(bytes, out _, out int consumed) != System.Buffers.OperationStatus.Done) return pos;
            bytes = bytes[consumed..];
            pos += consumed;
        }
        return pos;
    }
}
