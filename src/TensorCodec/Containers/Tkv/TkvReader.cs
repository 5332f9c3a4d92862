using TensorCodec.Coders;
using System.Buffers.Binary;
using System.IO.Hashing;
using System.Runtime.InteropServices;

namespace TensorCodec.Containers.Tkv;

/// <summary>
/// Reads and verifies a <c>.tkv</c> file from a seekable stream: the header at construction (so a
/// caller can refuse a wrong model before anything is decoded), the sections on
/// <see cref="ReadSections"/>. Every length is checked against the bytes that remain before it is
/// trusted, and every failure is a <see cref="TensorFormatException"/> naming the file, the field and its offset.
/// </summary>
internal sealed class TkvReader
{
    readonly BoundedReader _r;
    readonly XxHash3 _file = new();
    bool _sectionsRead;

    /// <summary>The verified header.</summary>
    public TkvHeader Header { get; }

    /// <param name="stream">A seekable stream positioned anywhere; the file is read from its start.</param>
    /// <param name="path">Name used in error messages.</param>
    public TkvReader(Stream stream, string? path)
    {
        _r = new BoundedReader(stream, 0, stream.Length, path);
        Header = ReadHeader();
    }

    byte[] Take(long n, string field)
    {
        var b = _r.ReadBytes(n, field);
        _file.Append(b);
        return b;
    }

    TensorFormatException Error(long offset, string field, string message) => _r.Error(offset, field, message);

    TkvHeader ReadHeader()
    {
        long length = _r.Length;
        var fixedPart = Take(TkvHeader.FixedSize, "header");
        if (!fixedPart.AsSpan(0, 8).SequenceEqual(TkvHeader.Magic)) throw Error(0, "magic", "not a TensorCodec KV context (magic is not \"TCODECKV\")");
        int version = BinaryPrimitives.ReadUInt16LittleEndian(fixedPart.AsSpan(8));
        if (version != TkvHeader.Version) throw Error(8, "version", $"version {version} is not supported (this reader knows version {TkvHeader.Version})");
        int headerSize = BinaryPrimitives.ReadInt32LittleEndian(fixedPart.AsSpan(12));
        int layers = BinaryPrimitives.ReadInt32LittleEndian(fixedPart.AsSpan(32));
        int kvHeads = BinaryPrimitives.ReadInt32LittleEndian(fixedPart.AsSpan(36));
        int headDim = BinaryPrimitives.ReadInt32LittleEndian(fixedPart.AsSpan(40));
        int vocab = BinaryPrimitives.ReadInt32LittleEndian(fixedPart.AsSpan(44));
        int count = BinaryPrimitives.ReadInt32LittleEndian(fixedPart.AsSpan(48));
        // Bound every count by what the file could hold before trusting it for an allocation.
        if (layers is < 1 or > 4096 || kvHeads is < 1 or > 4096 || headDim is < 1 or > 65536 || vocab < 1 || count < 2
            || (long)count * 4 > length || (long)headerSize != TkvHeader.FixedSize + 2L * layers + 4L * count + 8)
            throw Error(12, "header", $"corrupted (layers {layers}, KV heads {kvHeads}, head size {headDim}, tokens {count}, header size {headerSize})");
        // The decoded size must be plausible for the file (a checksum is no defence against a crafted file).
        long perLayer = (long)(count - 1) * kvHeads * headDim;
        if (perLayer > Array.MaxLength || 2 * 4 * perLayer * layers > 1024L * length)
            throw Error(32, "layers", $"describes {2 * perLayer * layers} values, implausible for a file of {length} bytes");
        var rest = Take(headerSize - TkvHeader.FixedSize - 8, "header bit depths and tokens");
        long checksumAt = _r.Position;
        ulong stored = BinaryPrimitives.ReadUInt64LittleEndian(Take(8, "header checksum"));
        var h = new XxHash3();
        h.Append(fixedPart); h.Append(rest);
        if (h.GetCurrentHashAsUInt64() != stored)
            throw Error(checksumAt, "header checksum", $"mismatch over bytes 0…{headerSize - 9}: the file is corrupted");
        var kind = (KvCodecKind)fixedPart[52];
        var delta = (KvDelta)fixedPart[53];
        int anchor = BinaryPrimitives.ReadUInt16LittleEndian(fixedPart.AsSpan(54));
        if (kind > KvCodecKind.Quant || delta > KvDelta.Previous || (delta == KvDelta.Anchor && anchor < 1))
            throw Error(52, "codec", $"invalid (codec {fixedPart[52]}, delta {fixedPart[53]}, anchor {anchor})");
        var codec = new KvCodecSpec(kind, rest[..layers], rest[layers..(2 * layers)], delta, Math.Max(1, anchor));
        if (kind == KvCodecKind.Quant && codec.KeyBits.Concat(codec.ValueBits).Any(b => b is < 1 or > 8))
            throw Error(TkvHeader.FixedSize, "bit depths", "outside 1…8");
        int[] tokens = MemoryMarshal.Cast<byte, int>(rest.AsSpan(2 * layers)).ToArray();
        int bad = Array.FindIndex(tokens, t => (uint)t >= (uint)vocab);
        if (bad >= 0) throw Error(TkvHeader.FixedSize + 2 * layers + 4 * bad, "tokens", $"token id {tokens[bad]} is outside the vocabulary {vocab}");
        return new TkvHeader(fixedPart[16..32], layers, kvHeads, headDim, vocab, tokens, codec);
    }

    /// <summary>Reads, verifies and decodes every section and the file checksum: per layer, [positions][kvDim].</summary>
    public (float[][] Keys, float[][] Values) ReadSections()
    {
        if (_sectionsRead) throw new InvalidOperationException("the sections were already read");
        _sectionsRead = true;
        var hd = Header;
        var keys = new float[hd.Layers][];
        var values = new float[hd.Layers][];
        using var decoder = new ChunkDecoder();
        for (int l = 0; l < hd.Layers; l++)
            for (int k = 0; k < 2; k++)
            {
                string field = $"layer {l} {(k == 0 ? "keys" : "values")}";
                long sectionAt = _r.Position;
                var sh = Take(12, field + " section header");
                int len = BinaryPrimitives.ReadInt32LittleEndian(sh);
                ulong hash = BinaryPrimitives.ReadUInt64LittleEndian(sh.AsSpan(4));
                var payload = Take(len, field);
                if (XxHash3.HashToUInt64(payload) != hash)
                    throw Error(sectionAt, field, $"checksum mismatch over the section's {len} bytes: the file is corrupted");
                var x = TkvSection.Decode(decoder, payload, hd.Positions, hd.KvDim, hd.Codec, k == 0 ? hd.Codec.KeyBits[l] : hd.Codec.ValueBits[l],
                    message => Error(sectionAt, field, message));
                if (k == 0) keys[l] = x; else values[l] = x;
            }
        long end = _r.Position;
        ulong fileHash = _file.GetCurrentHashAsUInt64();
        if (BinaryPrimitives.ReadUInt64LittleEndian(_r.ReadBytes(8, "file checksum")) != fileHash)
            throw Error(end, "file checksum", "does not match: the file is corrupted");
        if (_r.Remaining != 0) throw Error(_r.Position, "end of file", $"{_r.Remaining} unexpected bytes after the file checksum");
        return (keys, values);
    }
}
