using System.Buffers;
using TensorCodec.Numerics;
using ZstdSharp;

namespace TensorCodec.Coders;

public sealed class ChunkCodecOptions
{
    /// <summary>zstd level for data without float structure (U8, Packed, Unknown, and as the integer alternative).</summary>
    public int ZstdLevel { get; init; } = 3;
    /// <summary>Reserved for an order-1 exponent model; not implemented yet, so it is ignored.</summary>
    public bool UseContextModel { get; init; } = false;
    /// <summary>
    /// Also measure each stream's order-1 entropy (previous symbol as context) in the statistics.
    /// Off by default: the 64K-entry pair histogram costs about as much as coding the chunk.
    /// </summary>
    public bool MeasureOrder1 { get; init; } = false;
    public static ChunkCodecOptions Default { get; } = new();
}

/// <summary>What happened to one stream (or, summed, to all streams of one name).</summary>
public sealed class StreamStats
{
    public string Name = "";
    public long RawBytes;
    public long EncodedBytes;
    /// <summary>Total order-0 information in bits (Σ −log2 p over the stream's symbols).</summary>
    public double Order0EntropyBits;
    /// <summary>Total order-1 information in bits (previous symbol as context).</summary>
    public double Order1EntropyBits;
    public string Method = "";
}

public sealed class ChunkStats
{
    public List<StreamStats> Streams { get; } = new();

    /// <summary>Merges <paramref name="other"/> into this by stream name, summing sizes and entropies.
    /// If the same name was coded with different methods, Method lists them joined by '+'.</summary>
    public void Add(ChunkStats other)
    {
        foreach (var s in other.Streams)
        {
            var mine = Streams.Find(x => x.Name == s.Name);
            if (mine is null)
            {
                Streams.Add(new StreamStats
                {
                    Name = s.Name, RawBytes = s.RawBytes, EncodedBytes = s.EncodedBytes,
                    Order0EntropyBits = s.Order0EntropyBits, Order1EntropyBits = s.Order1EntropyBits, Method = s.Method,
                });
                continue;
            }
            mine.RawBytes += s.RawBytes;
            mine.EncodedBytes += s.EncodedBytes;
            mine.Order0EntropyBits += s.Order0EntropyBits;
            mine.Order1EntropyBits += s.Order1EntropyBits;
            if (!mine.Method.Split('+').Contains(s.Method)) mine.Method += "+" + s.Method;
        }
    }
}

/// <summary>
/// Lossless coding of one chunk of tensor bytes; byte layout in FORMAT.md (chunk payload section). Float types are
/// split into exponent/mantissa streams (<see cref="FloatSplit"/>) and each stream gets the
/// cheapest of Stored, Constant, Huffman and rANS, chosen from the histogram without trial
/// encoding. Integers also try zstd, opaque bytes use zstd or nothing. The output never exceeds
/// <see cref="MaxEncodedLength"/>: anything that would not shrink falls back to a stored chunk.
/// </summary>
public static class ChunkCodec
{
    internal const byte ModeStored = 0, ModeZstd = 1, ModeSplit = 2;
    internal const byte MethodStored = 0, MethodConstant = 1, MethodHuffman = 2, MethodRans = 3, MethodZstd = 4;
    static readonly string[] MethodNames = ["Stored", "Constant", "Huffman", "Rans", "Zstd"];

    [ThreadStatic] static Compressor? t_compressor;
    [ThreadStatic] static Decompressor? t_decompressor;
    // Per-thread scratch of exact size: ArrayPool would round a 1 MiB + ε request up to 2 MiB
    // and cache it per thread and per core, which doubles the codec's share of peak memory.
    [ThreadStatic] static byte[]? t_best, t_other, t_encodeStreams, t_zstd, t_decodeStreams;

    /// <summary>Upper bound of Encode's output for rawLength input bytes.</summary>
    public static int MaxEncodedLength(int rawLength)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(rawLength);
        return checked(rawLength + 1);
    }

    /// <summary>
    /// Encodes one chunk of raw little-endian elements of <paramref name="dtype"/>; returns bytes written.
    /// <paramref name="destination"/> should hold <see cref="MaxEncodedLength"/> bytes (ArgumentException if
    /// the result does not fit). <paramref name="rowLength"/> is reserved for a context model and unused.
    /// </summary>
    public static int Encode(ReadOnlySpan<byte> raw, DType dtype, long rowLength, Span<byte> destination,
        ChunkCodecOptions? options = null, ChunkStats? stats = null)
    {
        options ??= ChunkCodecOptions.Default;
        int n = raw.Length;
        byte[] best = ThreadScratch.Get(ref t_best, SplitBound(n));
        byte[]? other = null;
        List<StreamStats>? bestStats = stats is null ? null : new();
        {
            int bestLen = int.MaxValue;
            bool isOpaque = dtype is DType.U8 or DType.Packed or DType.Unknown || dtype.ElementSize() == 0;
            bool isInt = !isOpaque && !dtype.IsFloat();

            if (!isOpaque && n > 0)
                bestLen = EncodeSplit(raw, dtype, best, isInt, options, bestStats);

            if ((isOpaque || isInt) && n > 0)
            {
                other = ThreadScratch.Get(ref t_other, 1 + Compressor.GetCompressBound(n));
                int z = TryZstd(raw, other.AsSpan(1), options.ZstdLevel);
                if (z >= 0 && z + 1 < Math.Min(bestLen, n + 1))
                {
                    other[0] = ModeZstd;
                    (best, other) = (other, best);
                    bestLen = z + 1;
                    if (bestStats is not null) { bestStats.Clear(); bestStats.Add(WholeStats(raw, dtype, bestLen, "Zstd", options.MeasureOrder1)); }
                }
            }

            if (bestLen > n)
            {
                // Coding did not pay: store the chunk verbatim behind one mode byte.
                if (destination.Length < n + 1) throw new ArgumentException("destination is smaller than the encoded chunk", nameof(destination));
                destination[0] = ModeStored;
                raw.CopyTo(destination[1..]);
                bestLen = n + 1;
                if (bestStats is not null) { bestStats.Clear(); bestStats.Add(WholeStats(raw, dtype, bestLen, "Stored", options.MeasureOrder1)); }
            }
            else
            {
                if (destination.Length < bestLen) throw new ArgumentException("destination is smaller than the encoded chunk", nameof(destination));
                best.AsSpan(0, bestLen).CopyTo(destination);
            }
            if (stats is not null)
            {
                var mine = new ChunkStats();
                mine.Streams.AddRange(bestStats!);
                stats.Add(mine);
            }
            return bestLen;
        }
    }

    static StreamStats WholeStats(ReadOnlySpan<byte> raw, DType dtype, int encoded, string method, bool measureOrder1) => new()
    {
        Name = $"{dtype}.raw", RawBytes = raw.Length, EncodedBytes = encoded,
        Order0EntropyBits = FrequencyTable.Order0Bits(raw), Order1EntropyBits = measureOrder1 ? FrequencyTable.Order1Bits(raw) : 0, Method = method,
    };

    /// <summary>Room for a split chunk: every stream is at most its raw size plus method byte and varint.</summary>
    static int SplitBound(int n) => checked(n + 2 + Varint.MaxLength + 8 * (1 + Varint.MaxLength) + 64);

    static int TryZstd(ReadOnlySpan<byte> src, Span<byte> dst, int level)
    {
        level = Math.Clamp(level, Compressor.MinCompressionLevel, Compressor.MaxCompressionLevel);
        var c = t_compressor;
        if (c is null) t_compressor = c = new Compressor(level);
        else if (c.Level != level) c.Level = level;
        return c.TryWrap(src, dst, out int written) ? written : -1;
    }

    static int EncodeSplit(ReadOnlySpan<byte> raw, DType dtype, byte[] outBuf, bool tryZstdStreams, ChunkCodecOptions options, List<StreamStats>? stats)
    {
        var t = FloatSplit.ForDType(dtype);
        int e = FloatSplit.ElementSize(t), sc = FloatSplit.StreamCount(t);
        int n = raw.Length / e, tail = raw.Length % e;
        Span<byte> output = outBuf;
        output[0] = ModeSplit;
        output[1] = (byte)t;
        int pos = 2 + Varint.Write(output[2..], (uint)raw.Length);

        byte[] streams = ThreadScratch.Get(ref t_encodeStreams, Math.Max(1, sc * n));
        byte[]? zbuf = null;
        {
            FloatSplit.Split(t, raw, streams);
            Span<uint> hist = stackalloc uint[256];
            Span<byte> lengths = stackalloc byte[256];
            Span<ushort> freqs = stackalloc ushort[256];
            for (int k = 0; k < sc; k++)
            {
                ReadOnlySpan<byte> s = streams.AsSpan(k * n, n);
                FrequencyTable.Histogram(s, hist);
                int used = FrequencyTable.UsedSymbols(hist);
                int start = pos;
                byte method = MethodStored;
                int payloadLen = n;
                // Payload goes after a worst-case varint; it is moved down once its length is known.
                Span<byte> payload = output.Slice(pos + 1 + Varint.MaxLength, n);
                if (n > 0 && used == 1)
                {
                    method = MethodConstant;
                    payload[0] = s[0];
                    payloadLen = 1;
                }
                else if (n > 0)
                {
                    HuffmanCoder.BuildCodeLengths(hist, lengths);
                    long hSize = HuffmanCoder.EstimateSize(hist, lengths);
                    RansCoder.NormalizeFrequencies(hist, freqs);
                    long rSize = RansCoder.EstimateSize(hist, freqs);
                    // Coding must beat storing by a margin; a near-random stream is faster to copy.
                    long limit = n - (n >> 7) - 8;
                    OperationStatus st = OperationStatus.DestinationTooSmall;
                    int w = 0;
                    Span<byte> room = payload[..(int)Math.Max(0, limit)];
                    if (Math.Min(hSize, rSize) < limit)
                    {
                        if (rSize <= hSize) { st = RansCoder.Encode(s, freqs, room, out w); method = MethodRans; }
                        else { st = HuffmanCoder.Encode(s, lengths, room, out w); method = MethodHuffman; }
                    }
                    if (st == OperationStatus.Done) payloadLen = w;
                    else { method = MethodStored; payloadLen = n; }

                    if (tryZstdStreams)
                    {
                        zbuf ??= ThreadScratch.Get(ref t_zstd, Compressor.GetCompressBound(n));
                        int z = TryZstd(s, zbuf, options.ZstdLevel);
                        if (z > 0 && z < payloadLen && z < limit)
                        {
                            method = MethodZstd;
                            payloadLen = z;
                            zbuf.AsSpan(0, z).CopyTo(payload);
                        }
                    }
                    if (method == MethodStored) s.CopyTo(payload);
                }
                output[pos++] = method;
                int vl = Varint.Write(output[pos..], (uint)payloadLen);
                pos += vl;
                if (vl != Varint.MaxLength) payload[..payloadLen].CopyTo(output[pos..]);
                pos += payloadLen;

                if (stats is not null)
                    stats.Add(new StreamStats
                    {
                        Name = $"{dtype}.{FloatSplit.StreamName(t, k)}", RawBytes = n, EncodedBytes = pos - start,
                        Order0EntropyBits = FrequencyTable.Order0Bits(hist), Order1EntropyBits = options.MeasureOrder1 ? FrequencyTable.Order1Bits(s) : 0,
                        Method = MethodNames[method],
                    });
            }
            raw[(n * e)..].CopyTo(output[pos..]);
            pos += tail;
            if (stats is not null && tail > 0)
                stats.Add(new StreamStats { Name = $"{dtype}.tail", RawBytes = tail, EncodedBytes = tail, Method = "Stored" });
            return pos;
        }
    }

    /// <summary>
    /// Decodes a chunk produced by <see cref="Encode"/> into exactly <c>raw.Length</c> bytes.
    /// InvalidData on malformed input (never throws on it, never reads or writes out of bounds);
    /// DestinationTooSmall if the chunk describes a different raw length than <c>raw.Length</c>.
    /// </summary>
    public static OperationStatus Decode(ReadOnlySpan<byte> encoded, Span<byte> raw, DType dtype)
    {
        if (encoded.IsEmpty) return OperationStatus.InvalidData;
        ReadOnlySpan<byte> body = encoded[1..];
        switch (encoded[0])
        {
            case ModeStored:
                if (body.Length != raw.Length) return OperationStatus.DestinationTooSmall;
                body.CopyTo(raw);
                return OperationStatus.Done;
            case ModeZstd:
                return Unzstd(body, raw);
            case ModeSplit:
                return DecodeSplit(body, raw);
            default:
                return OperationStatus.InvalidData;
        }
    }

    static OperationStatus Unzstd(ReadOnlySpan<byte> src, Span<byte> dst)
    {
        try
        {
            ulong size = Decompressor.GetDecompressedSize(src);
            if (size != (ulong)dst.Length) return size == 0 ? OperationStatus.InvalidData : OperationStatus.DestinationTooSmall;
            var d = t_decompressor ??= new Decompressor();
            if (!d.TryUnwrap(src, dst, out int written)) return OperationStatus.InvalidData;
            return written == dst.Length ? OperationStatus.Done : OperationStatus.InvalidData;
        }
        catch (Exception ex) when (ex is not OutOfMemoryException)
        {
            // A failed decompression may leave the context mid-frame; start the next call clean.
            t_decompressor?.Dispose();
            t_decompressor = null;
            return OperationStatus.InvalidData;
        }
    }

    static unsafe OperationStatus DecodeSplit(ReadOnlySpan<byte> src, Span<byte> raw)
    {
        if (src.Length < 2 || !FloatSplit.IsDefined(src[0])) return OperationStatus.InvalidData;
        var t = (SplitTransform)src[0];
        int pos = 1;
        if (!Varint.TryRead(src, ref pos, out int rawLen)) return OperationStatus.InvalidData;
        if (rawLen != raw.Length) return OperationStatus.DestinationTooSmall;
        int e = FloatSplit.ElementSize(t), sc = FloatSplit.StreamCount(t);
        int n = raw.Length / e, tail = raw.Length % e;

        byte[] streams = ThreadScratch.Get(ref t_decodeStreams, Math.Max(1, sc * n));
        {
            fixed (byte* s0 = src)
            fixed (byte* scratch = streams)
            fixed (byte* r = raw)
            {
                // Stored streams are merged straight from the chunk; only coded ones go through scratch.
                byte** sp = stackalloc byte*[8];
                for (int k = 0; k < sc; k++)
                {
                    if (pos >= src.Length) return OperationStatus.InvalidData;
                    byte method = src[pos++];
                    if (!Varint.TryRead(src, ref pos, out int len) || len > src.Length - pos) return OperationStatus.InvalidData;
                    ReadOnlySpan<byte> payload = src.Slice(pos, len);
                    Span<byte> s = streams.AsSpan(k * n, n);
                    sp[k] = scratch + (long)k * n;
                    OperationStatus st;
                    switch (method)
                    {
                        case MethodStored:
                            if (len != n) return OperationStatus.InvalidData;
                            sp[k] = s0 + pos;
                            st = OperationStatus.Done;
                            break;
                        case MethodConstant:
                            if (len != 1) return OperationStatus.InvalidData;
                            s.Fill(payload[0]);
                            st = OperationStatus.Done;
                            break;
                        case MethodHuffman: st = HuffmanCoder.Decode(payload, s); break;
                        case MethodRans: st = RansCoder.Decode(payload, s); break;
                        case MethodZstd: st = Unzstd(payload, s); break;
                        default: return OperationStatus.InvalidData;
                    }
                    if (st != OperationStatus.Done) return OperationStatus.InvalidData;
                    pos += len;
                }
                if (src.Length - pos != tail) return OperationStatus.InvalidData;
                FloatSplit.MergeCore(t, sp, r, n);
                src[pos..].CopyTo(raw[(n * e)..]);
            }
            return OperationStatus.Done;
        }
    }
}
