using System.Buffers;
using System.Buffers.Binary;
using System.IO.Hashing;
using System.Text;
using TensorCodec.Coders;
using TensorCodec.Numerics;

namespace TensorCodec.Containers.Tcz;

/// <summary>Fixed numbers of the .tcz format (see FORMAT.md, the contract).</summary>
public static class TczConstants
{
    /// <summary>PNG-style magic: a high byte and CR/LF/EOF characters catch text-mode transfers.</summary>
    public static ReadOnlySpan<byte> Magic => ContainerSniff.TczMagic;
    /// <summary>The last 8 bytes of every .tcz file; a file without them is truncated.</summary>
    public static ReadOnlySpan<byte> TrailerMagic => [(byte)'T', (byte)'C', (byte)'Z', (byte)'-', (byte)'E', (byte)'N', (byte)'D', 0x00];
    /// <summary>Format major version this build writes and reads; a reader refuses any other major version.</summary>
    public const ushort VersionMajor = 1;
    /// <summary>Format minor version this build writes (minor versions only add what older readers may ignore).</summary>
    public const ushort VersionMinor = 0;
    /// <summary>Bytes of the fixed header: magic, version, feature flags.</summary>
    public const int HeaderSize = 16;
    /// <summary>Bytes of the fixed trailer: index offset, index length, index hash, trailer magic.</summary>
    public const int TrailerSize = 32;
    /// <summary>Raw bytes per chunk when the caller does not choose (1 MiB).</summary>
    public const int DefaultChunkSize = 1 << 20;
    /// <summary>Upper bound on any chunk's raw size a reader accepts, so a corrupt index cannot make it allocate gigabytes.</summary>
    public const int MaxChunkSize = 64 << 20;
    /// <summary>Smallest chunk size the writer accepts (smaller chunks would cost more in index than they hold).</summary>
    public const int MinChunkSize = 64;
    /// <summary>Longest tensor name, in UTF-8 bytes, an index may hold.</summary>
    public const int MaxNameBytes = 64 * 1024;
    /// <summary>Most dimensions a tensor's shape may have in an index.</summary>
    public const int MaxRank = 16;
    /// <summary>Largest ggml type id an index may record (ids are small; the bound keeps a corrupt one from passing as a type).</summary>
    public const int MaxGgmlType = 1023;
}

/// <summary>What a segment of the original file holds.</summary>
public enum TczSegmentKind : byte
{
    /// <summary>Bytes outside any tensor: headers, padding, trailers, or a whole unrecognised file.</summary>
    Opaque = 0,
    /// <summary>One tensor's data, coded with the transform its dtype selects.</summary>
    Tensor = 1,
}

/// <summary>One independently decodable chunk: sizes and checksums.</summary>
public readonly record struct TczChunk(int RawLength, int EncodedLength, ulong EncodedHash, ulong RawHash)
{
    /// <summary>Offset of the encoded bytes in the .tcz file (derived, not stored).</summary>
    public long FileOffset { get; init; }
    /// <summary>Offset of the raw bytes in the original file (derived, not stored).</summary>
    public long OriginalOffset { get; init; }
}

/// <summary>A contiguous range of the original file: one tensor's data or an opaque gap.</summary>
public sealed class TczSegment
{
    /// <summary>Tensor data or opaque bytes.</summary>
    public required TczSegmentKind Kind { get; init; }
    /// <summary>The tensor's name as the source file spells it; empty for opaque segments.</summary>
    public required string Name { get; init; }
    /// <summary>Element type the codec split the bytes by (<see cref="DType.U8"/> for opaque bytes and block-quantized data).</summary>
    public required DType DType { get; init; }
    /// <summary>The GGUF tensor's ggml type id, or −1 when the source is not GGUF.</summary>
    public int GgmlType { get; init; } = -1;
    /// <summary>Dimensions as the source file lists them (empty for opaque segments).</summary>
    public long[] Shape { get; init; } = [];
    /// <summary>Raw length in bytes.</summary>
    public required long Length { get; init; }
    /// <summary>Offset of the segment's first byte in the original file.</summary>
    public long OriginalOffset { get; init; }
    readonly List<TczChunk> _chunks = new();
    /// <summary>The segment's chunks in file order.</summary>
    public IReadOnlyList<TczChunk> Chunks => _chunks;
    internal void AddChunk(TczChunk chunk) => _chunks.Add(chunk);

    /// <summary>Bytes the segment's chunks take in the .tcz file.</summary>
    public long EncodedLength => _chunks.Sum(c => (long)c.EncodedLength);
    /// <summary>Values held: the shape's product (right for block-quantized tensors too), else bytes / element size.</summary>
    public long ElementCount => Kind != TczSegmentKind.Tensor ? 0
        : Shape.Length > 0 ? Shape.Aggregate(1L, (a, d) => a * d)
        : DType.ElementSize() is var s and > 0 ? Length / s : 0;

    /// <summary>Human label for messages: the tensor name, or "opaque bytes at offset N".</summary>
    public string Label => Kind == TczSegmentKind.Tensor ? $"tensor '{Name}'" : $"opaque segment at original offset {OriginalOffset}";
}

/// <summary>The index (table of contents) stored at the end of a .tcz file.</summary>
public sealed class TczIndex
{
    internal TczIndex(TensorFileFormat sourceFormat, long originalLength, ulong originalHash, int nominalChunkSize, IReadOnlyList<TczSegment> segments)
    {
        SourceFormat = sourceFormat;
        OriginalLength = originalLength;
        OriginalHash = originalHash;
        NominalChunkSize = nominalChunkSize;
        Segments = segments;
    }

    /// <summary>Format of the original file.</summary>
    public TensorFileFormat SourceFormat { get; }
    /// <summary>Length of the original file in bytes.</summary>
    public long OriginalLength { get; }
    /// <summary>XXH3-64 of the whole original file.</summary>
    public ulong OriginalHash { get; }
    /// <summary>Chunk size the writer used (every chunk's raw length is at most this).</summary>
    public int NominalChunkSize { get; }
    /// <summary>Segments tiling the original file, in file order.</summary>
    public IReadOnlyList<TczSegment> Segments { get; }

    /// <summary>The reference section after the segments (present only when header flags are set), unparsed.</summary>
    internal byte[]? Extension { get; init; }
    /// <summary>File offset of <see cref="Extension"/>.</summary>
    internal long ExtensionOffset { get; init; }

    /// <summary>The tensor segments, in file order.</summary>
    public IEnumerable<TczSegment> Tensors => Segments.Where(s => s.Kind == TczSegmentKind.Tensor);

    /// <summary>The largest raw length of any chunk (0 for an empty file). Readers size their buffers from the
    /// chunks a file has, not from <see cref="NominalChunkSize"/>: a small file may declare the largest chunk size.</summary>
    internal int MaxChunkRawLength => Segments.SelectMany(s => s.Chunks).Select(c => c.RawLength).DefaultIfEmpty(0).Max();

    /// <summary>The largest encoded length of any chunk (0 for an empty file).</summary>
    internal int MaxChunkEncodedLength => Segments.SelectMany(s => s.Chunks).Select(c => c.EncodedLength).DefaultIfEmpty(0).Max();

    internal byte[] Serialize()
    {
        var w = new ArrayBufferWriter<byte>();
        w.WriteByte((byte)SourceFormat);
        w.WriteVarUInt((ulong)OriginalLength);
        w.WriteUInt64(OriginalHash);
        w.WriteVarUInt((ulong)NominalChunkSize);
        w.WriteVarUInt((ulong)Segments.Count);
        foreach (var s in Segments)
        {
            w.WriteByte((byte)s.Kind);
            var name = Encoding.UTF8.GetBytes(s.Name);
            w.WriteVarUInt((ulong)name.Length);
            w.Write(name);
            w.WriteByte((byte)s.DType);
            w.WriteVarUInt((ulong)(s.GgmlType + 1));
            w.WriteVarUInt((ulong)s.Shape.Length);
            foreach (var d in s.Shape) w.WriteVarUInt((ulong)d);
            w.WriteVarUInt((ulong)s.Length);
            w.WriteVarUInt((ulong)s.Chunks.Count);
            foreach (var c in s.Chunks)
            {
                w.WriteVarUInt((ulong)c.RawLength);
                w.WriteVarUInt((ulong)c.EncodedLength);
                w.WriteUInt64(c.EncodedHash);
                w.WriteUInt64(c.RawHash);
            }
        }
        if (Extension is not null) w.Write(Extension);
        return w.WrittenSpan.ToArray();
    }

    /// <summary>
    /// Why <paramref name="shape"/> cannot describe a tensor of <paramref name="length"/> bytes, or null: a
    /// negative dimension, a product that overflows, or more values than the bytes have bits (no format
    /// stores a value in under one bit). Keeps every value count derived from an index finite.
    /// </summary>
    internal static string? ShapeProblem(ReadOnlySpan<long> shape, long length)
    {
        if (shape.IsEmpty) return null;
        long values = 1;
        for (int d = 0; d < shape.Length; d++)
        {
            if (shape[d] < 0) return $"shape dimension {d} is negative ({shape[d]})";
            if (shape[d] != 0 && values > long.MaxValue / shape[d]) return $"shape: the product of the dimensions overflows at dimension {d} ({shape[d]})";
            values *= shape[d];
        }
        long bytesNeeded = values / 8 + (values % 8 != 0 ? 1 : 0);
        return bytesNeeded > length ? $"shape holds {values} values, more than {length} bytes can store" : null;
    }

    /// <summary>
    /// The writer's half of the limits <see cref="Parse(ReadOnlySpan{byte}, long, long, string?)"/> enforces: a segment the reader would refuse
    /// is refused before anything is written, naming the tensor and the limit.
    /// </summary>
    internal static void CheckWritable(TczSegment s, string? path)
    {
        // A name too long to store is also too long to print whole: the message stays one bounded line.
        string? field = s.Kind != TczSegmentKind.Tensor ? null : s.Name.Length > 120 ? s.Name[..120] + "…" : s.Name;
        void Fail(string message) => throw new TensorFormatException(path, s.OriginalOffset, field, $"{s.Kind.ToString().ToLowerInvariant()} segment cannot be stored in .tcz: {message}");
        int nameBytes = Encoding.UTF8.GetByteCount(s.Name);
        if (nameBytes > TczConstants.MaxNameBytes) Fail($"name length {nameBytes} bytes exceeds the limit of {TczConstants.MaxNameBytes}");
        if (s.Shape.Length > TczConstants.MaxRank) Fail($"rank {s.Shape.Length} exceeds the limit of {TczConstants.MaxRank}");
        if (s.Kind == TczSegmentKind.Tensor && ShapeProblem(s.Shape, s.Length) is { } shapeProblem) Fail(shapeProblem);
        if (s.GgmlType < -1 || s.GgmlType > TczConstants.MaxGgmlType) Fail($"ggml type {s.GgmlType} outside -1..{TczConstants.MaxGgmlType}");
        if (!Enum.IsDefined(s.DType)) Fail($"unknown dtype {(int)s.DType}");
        if (s.Length < 0) Fail($"negative length {s.Length}");
    }

    /// <summary>Refuses, before any chunk is planned or written, a file whose index could outgrow what
    /// <see cref="TczReader"/> reads (<see cref="int.MaxValue"/> bytes): an upper bound with every varint at full width.</summary>
    internal static void CheckIndexSize(IReadOnlyList<TczSegment> segments, int chunkSize, string? path)
    {
        long bound = 1 + 10 + 8 + 10 + 10, chunks = 0;
        foreach (var s in segments)
        {
            long step = TczChunking.Step(s, chunkSize);
            long n = (s.Length + step - 1) / step;
            chunks += n;
            bound += 1 + 10 + Encoding.UTF8.GetByteCount(s.Name) + 1 + 10 + 10 + 10L * s.Shape.Length + 10 + 10 + n * (5 + 5 + 8 + 8);
        }
        if (bound > int.MaxValue)
            throw new TensorFormatException(path, null, "chunk_size", $"{chunks} chunks of at most {chunkSize} bytes need an index of up to {bound} bytes, more than the {int.MaxValue} a .tcz reader accepts; use a larger chunk size");
    }

    /// <summary>
    /// Parses and validates an index. Every count is checked against the bytes that remain
    /// before anything is allocated from it, and the chunks must tile the payload region
    /// [HeaderSize, payloadEnd) exactly.
    /// </summary>
    public static TczIndex Parse(ReadOnlySpan<byte> data, long indexFileOffset, long payloadEnd, string? path) =>
        Parse(data, indexFileOffset, payloadEnd, path, extended: false);

    /// <summary>As above; with <paramref name="extended"/> (header flags set) the bytes after the last segment are the
    /// reference section, kept in <see cref="Extension"/> (and required).</summary>
    internal static TczIndex Parse(ReadOnlySpan<byte> data, long indexFileOffset, long payloadEnd, string? path, bool extended)
    {
        var r = new IndexReader(data, indexFileOffset, path);
        var format = (TensorFileFormat)r.Byte("source_format");
        if (!Enum.IsDefined(format)) r.Fail("source_format", $"unknown source format {(int)format}");
        long originalLength = r.Long("original_length");
        ulong originalHash = r.UInt64("original_hash");
        long chunkSize = r.Long("chunk_size");
        if (chunkSize < 1 || chunkSize > TczConstants.MaxChunkSize) r.Fail("chunk_size", $"chunk size {chunkSize} outside 1..{TczConstants.MaxChunkSize}");
        long segmentCount = r.Count("segment_count", minBytesEach: 7);
        var segments = new List<TczSegment>();

        long original = 0, payload = TczConstants.HeaderSize;
        for (long i = 0; i < segmentCount; i++)
        {
            string f = $"segment[{i}]";
            var kind = (TczSegmentKind)r.Byte(f + ".kind");
            if (kind is not (TczSegmentKind.Opaque or TczSegmentKind.Tensor)) r.Fail(f + ".kind", $"unknown segment kind {(int)kind}");
            long nameLen = r.Long(f + ".name_length");
            if (nameLen > TczConstants.MaxNameBytes) r.Fail(f + ".name_length", $"name length {nameLen} exceeds {TczConstants.MaxNameBytes}");
            string name = r.Utf8(f + ".name", (int)nameLen);
            var dtype = (DType)r.Byte(f + ".dtype");
            if (!Enum.IsDefined(dtype)) r.Fail(f + ".dtype", $"unknown dtype {(int)dtype}");
            long ggml = r.Long(f + ".ggml_type") - 1;
            if (ggml > TczConstants.MaxGgmlType) r.Fail(f + ".ggml_type", $"ggml type {ggml} out of range");
            long rank = r.Long(f + ".rank");
            if (rank > TczConstants.MaxRank) r.Fail(f + ".rank", $"rank {rank} exceeds {TczConstants.MaxRank}");
            var shape = new long[rank];
            for (int d = 0; d < rank; d++) shape[d] = r.Long($"{f}.shape[{d}]");
            long length = r.Long(f + ".length");
            if (kind == TczSegmentKind.Tensor && ShapeProblem(shape, length) is { } shapeProblem) r.Fail(f + ".shape", shapeProblem);
            long chunkCount = r.Count(f + ".chunk_count", minBytesEach: 18);
            var seg = new TczSegment { Kind = kind, Name = name, DType = dtype, GgmlType = (int)ggml, Shape = shape, Length = length, OriginalOffset = original };
            long sum = 0;
            for (long c = 0; c < chunkCount; c++)
            {
                string cf = $"{f}.chunk[{c}]";
                long raw = r.Long(cf + ".raw_length");
                long enc = r.Long(cf + ".encoded_length");
                ulong eh = r.UInt64(cf + ".encoded_hash");
                ulong rh = r.UInt64(cf + ".raw_hash");
                if (raw < 1 || raw > chunkSize) r.Fail(cf + ".raw_length", $"raw length {raw} outside 1..{chunkSize}");
                if (enc < 1 || enc > ChunkCodec.MaxEncodedLength((int)raw)) r.Fail(cf + ".encoded_length", $"encoded length {enc} impossible for raw length {raw}");
                if (payload + enc > payloadEnd) r.Fail(cf + ".encoded_length", $"chunk extends past the payload region (ends at {payload + enc}, index starts at {payloadEnd})");
                seg.AddChunk(new TczChunk((int)raw, (int)enc, eh, rh) { FileOffset = payload, OriginalOffset = original + sum });
                payload += enc;
                sum += raw;
            }
            if (sum != length) r.Fail(f + ".length", $"{seg.Label}: chunks hold {sum} bytes but the segment declares {length}");
            original += length;
            segments.Add(seg);
        }
        if (original != originalLength) r.Fail("original_length", $"segments cover {original} bytes but the original length is {originalLength}");
        if (payload != payloadEnd) r.Fail("segment_count", $"chunks cover the payload up to {payload} but the index starts at {payloadEnd}");
        if (extended)
        {
            if (r.AtEnd) r.Fail("index", "header flags announce a reference section, but the index ends after the last segment");
            long at = indexFileOffset + data.Length - r.Remaining;
            return new TczIndex(format, originalLength, originalHash, (int)chunkSize, segments) { Extension = data[^r.Remaining..].ToArray(), ExtensionOffset = at };
        }
        if (!r.AtEnd) r.Fail("index", $"{r.Remaining} unexpected bytes after the last segment");
        return new TczIndex(format, originalLength, originalHash, (int)chunkSize, segments);
    }

    /// <summary>Reads the index's fields with bounds checks; every failure names the field and file offset
    /// (also used for the reference section, with its own <paramref name="what"/>).</summary>
    internal ref struct IndexReader(ReadOnlySpan<byte> data, long baseOffset, string? path, string what = "corrupt .tcz index: ")
    {
        readonly ReadOnlySpan<byte> _data = data;
        int _pos;
        public readonly bool AtEnd => _pos == _data.Length;
        public readonly int Remaining => _data.Length - _pos;

        [System.Diagnostics.CodeAnalysis.DoesNotReturn]
        public readonly void Fail(string field, string message) =>
            throw new TensorFormatException(path, baseOffset + _pos, field, what + message);

        public byte Byte(string field)
        {
            if (_pos >= _data.Length) Fail(field, "index ends early");
            return _data[_pos++];
        }

        public ulong UInt64(string field)
        {
            if (_data.Length - _pos < 8) Fail(field, "index ends early");
            ulong v = BinaryPrimitives.ReadUInt64LittleEndian(_data[_pos..]);
            _pos += 8;
            return v;
        }

        /// <summary>LEB128 value that must fit a non-negative long.</summary>
        public long Long(string field)
        {
            ulong v = 0;
            for (int shift = 0; ; shift += 7)
            {
                if (shift > 63) Fail(field, "varint longer than 10 bytes");
                byte b = Byte(field);
                v |= (ulong)(b & 0x7F) << shift;
                if ((b & 0x80) == 0) break;
            }
            if (v > long.MaxValue) Fail(field, $"value {v} too large");
            return (long)v;
        }

        /// <summary>A count whose items take at least minBytesEach bytes: refuse counts the remaining bytes cannot hold.</summary>
        public long Count(string field, int minBytesEach)
        {
            long n = Long(field);
            if (n > Remaining / minBytesEach) Fail(field, $"count {n} cannot fit in the {Remaining} remaining index bytes");
            return n;
        }

        public string Utf8(string field, int length)
        {
            if (length > Remaining) Fail(field, $"string of {length} bytes runs past the index end");
            try
            {
                var s = new UTF8Encoding(false, true).GetString(_data.Slice(_pos, length));
                _pos += length;
                return s;
            }
            catch (DecoderFallbackException) { Fail(field, "invalid UTF-8"); return ""; }
        }
    }
}

internal static class BufferWriterExtensions
{
    public static void WriteByte(this ArrayBufferWriter<byte> w, byte b) { w.GetSpan(1)[0] = b; w.Advance(1); }
    public static void WriteUInt64(this ArrayBufferWriter<byte> w, ulong v) { BinaryPrimitives.WriteUInt64LittleEndian(w.GetSpan(8), v); w.Advance(8); }
    public static void WriteVarUInt(this ArrayBufferWriter<byte> w, ulong v)
    {
        var span = w.GetSpan(10);
        int n = 0;
        while (v >= 0x80) { span[n++] = (byte)(v | 0x80); v >>= 7; }
        span[n++] = (byte)v;
        w.Advance(n);
    }
}

/// <summary>XXH3-64 (seed 0) over a span: the one hash .tcz uses everywhere.</summary>
internal static class TczHash
{
    public static ulong Of(ReadOnlySpan<byte> data) => XxHash3.HashToUInt64(data);
}
