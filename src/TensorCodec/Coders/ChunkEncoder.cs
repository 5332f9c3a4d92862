using System.Buffers;
using TensorCodec.Numerics;
using ZstdSharp;

namespace TensorCodec.Coders;

/// <summary>
/// Encodes chunks of tensor bytes into the chunk payload format (FORMAT.md, chunk payload section). Float
/// types are split into exponent/mantissa streams (<see cref="FloatSplit"/>) and each stream gets the
/// cheapest of Stored, Constant, Huffman and rANS, chosen from the histogram without trial encoding.
/// Integers also try zstd, opaque bytes use zstd or nothing. The output never exceeds
/// <see cref="ChunkCodec.MaxEncodedLength"/>: anything that would not shrink falls back to a stored chunk.
/// </summary>
/// <remarks>
/// The encoder owns its scratch (the shape of zstd's ZSTD_CCtx): buffers grow to the largest chunk seen
/// and are reused, so after the first chunk of a size encoding allocates nothing (statistics aside).
/// They are released by <see cref="Dispose"/>. One encoder serves one thread at a time; give each
/// worker its own.
/// </remarks>
public sealed partial class ChunkEncoder : IDisposable
{
    static readonly string[] MethodNames = ["Stored", "Constant", "Huffman", "Rans", "Zstd", "RansWide"];

    readonly ChunkCodecOptions _options;
    readonly int _zstdLevel;
    Compressor? _zstd;
    byte[] _best = [], _other = [], _streams = [], _zstdStream = [];
    ushort[] _ransWords = [];
    uint[] _pairCounts = [];
    readonly List<StreamStats> _chunkStats = new();
    bool _disposed;

    /// <summary>Creates an encoder with <paramref name="options"/> (default: <see cref="ChunkCodecOptions.Default"/>).</summary>
    public ChunkEncoder(ChunkCodecOptions? options = null)
    {
        _options = options ?? ChunkCodecOptions.Default;
        _zstdLevel = Math.Clamp(_options.ZstdLevel, Compressor.MinCompressionLevel, Compressor.MaxCompressionLevel);
    }

    /// <summary>The options this encoder was created with.</summary>
    public ChunkCodecOptions Options => _options;

    /// <summary>
    /// Encodes one chunk of raw little-endian elements of <paramref name="dtype"/> into <paramref name="destination"/>.
    /// Returns <see cref="OperationStatus.Done"/>, or <see cref="OperationStatus.DestinationTooSmall"/> (nothing
    /// usable written) if the result does not fit; <see cref="ChunkCodec.MaxEncodedLength"/> bytes always suffice.
    /// When <paramref name="stats"/> is given, this chunk's per-stream statistics are added to it.
    /// </summary>
    public OperationStatus Encode(ReadOnlySpan<byte> source, DType dtype, Span<byte> destination, out int bytesWritten, ChunkStats? stats = null) =>
        Encode(source, dtype, -1, destination, out bytesWritten, stats);

    /// <summary>As above, for a tensor of ggml type <paramref name="ggmlType"/> (−1: none), whose whole blocks may be
    /// coded field by field (mode 3) where that is smaller.</summary>
    internal OperationStatus Encode(ReadOnlySpan<byte> source, DType dtype, int ggmlType, Span<byte> destination, out int bytesWritten, ChunkStats? stats = null) =>
        Encode(source, dtype, ggmlType, 0, destination, out bytesWritten, stats);

    /// <summary>As above, also given the tensor's row length (its last dimension; ≤ 0: unknown), which the context-mixed
    /// transforms use to find the same column in the previous row.</summary>
    internal OperationStatus Encode(ReadOnlySpan<byte> source, DType dtype, int ggmlType, int rowLength, Span<byte> destination, out int bytesWritten, ChunkStats? stats = null)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        bytesWritten = 0;
        int n = source.Length;
        byte[] best = Scratch.Grow(ref _best, SplitBound(n));
        List<StreamStats>? bestStats = null;
        if (stats is not null) { bestStats = _chunkStats; bestStats.Clear(); }

        int bestLen = int.MaxValue;
        bool isOpaque = dtype is DType.U8 or DType.Packed or DType.Unknown || dtype.ElementSize() == 0;
        bool isInt = !isOpaque && !dtype.IsFloat();

        if (!isOpaque && n > 0)
            bestLen = EncodeSplit(source, dtype, best, isInt, bestStats);

        if ((isOpaque || isInt) && n > 0)
        {
            byte[] other = Scratch.Grow(ref _other, 1 + Compressor.GetCompressBound(n));
            int z = TryZstd(source, other.AsSpan(1));
            if (z >= 0 && z + 1 < Math.Min(bestLen, n + 1))
            {
                other[0] = ChunkCodec.ModeZstd;
                best = other;
                bestLen = z + 1;
                if (bestStats is not null) { bestStats.Clear(); bestStats.Add(WholeStats(source, dtype, bestLen, "Zstd")); }
            }
        }

        if (ggmlType >= 0 && n > 0 && _options.GgmlTables)
            TryGgml(source, dtype, ggmlType, ChunkCodec.ModeGgmlTables, ref best, ref bestLen, bestStats);
        if (ggmlType >= 0 && n > 0 && _options.GgmlFields)
            TryGgml(source, dtype, ggmlType, ChunkCodec.ModeGgml, ref best, ref bestLen, bestStats);

        if (_options.ContextMix && n > 0)
            TryContextMix(source, dtype, rowLength, ref best, ref bestLen, bestStats);

        if (bestLen > n)
        {
            // Coding did not pay: store the chunk verbatim behind one mode byte.
            if (destination.Length < n + 1) return OperationStatus.DestinationTooSmall;
            destination[0] = ChunkCodec.ModeStored;
            source.CopyTo(destination[1..]);
            bestLen = n + 1;
            if (bestStats is not null) { bestStats.Clear(); bestStats.Add(WholeStats(source, dtype, bestLen, "Stored")); }
        }
        else
        {
            if (destination.Length < bestLen) return OperationStatus.DestinationTooSmall;
            best.AsSpan(0, bestLen).CopyTo(destination);
        }
        if (stats is not null)
            foreach (var s in bestStats!) stats.Add(s);
        bytesWritten = bestLen;
        return OperationStatus.Done;
    }

    StreamStats WholeStats(ReadOnlySpan<byte> raw, DType dtype, int encoded, string method) =>
        new($"{dtype}.raw", raw.Length, encoded, FrequencyTable.Order0Bits(raw), Order1(raw), method);

    double Order1(ReadOnlySpan<byte> data) =>
        _options.MeasureOrder1 ? FrequencyTable.Order1Bits(data, Scratch.Grow(ref _pairCounts, 65536)) : 0;

    /// <summary>Room for a split chunk: every stream is at most its raw size plus method byte and varint.</summary>
    static int SplitBound(int n) => checked(n + 2 + Varint.MaxLength + 8 * (1 + Varint.MaxLength) + 64);

    int TryZstd(ReadOnlySpan<byte> src, Span<byte> dst)
    {
        _zstd ??= new Compressor(_zstdLevel);
        return _zstd.TryWrap(src, dst, out int written) ? written : -1;
    }

    int EncodeSplit(ReadOnlySpan<byte> raw, DType dtype, byte[] outBuf, bool tryZstdStreams, List<StreamStats>? stats)
    {
        Span<uint> hist = stackalloc uint[256];
        var t = _options.Fp8Fields && Fp8Split.Is(Fp8Split.ForDType(dtype)) ? Fp8Split.Choose(raw, dtype, hist) : FloatSplit.ForDType(dtype);
        int e = FloatSplit.ElementSize(t), sc = FloatSplit.StreamCount(t);
        int n = raw.Length / e, tail = raw.Length % e;
        Span<byte> output = outBuf;
        output[0] = ChunkCodec.ModeSplit;
        output[1] = (byte)t;
        int pos = 2 + Varint.Write(output[2..], (uint)raw.Length);

        byte[] streams = Scratch.Grow(ref _streams, Math.Max(1, sc * n));
        FloatSplit.Split(t, raw, streams);
        Span<byte> lengths = stackalloc byte[256];
        Span<ushort> freqs = stackalloc ushort[256];
        for (int k = 0; k < sc; k++)
        {
            int sn = FloatSplit.StreamLength(t, k, n);
            ReadOnlySpan<byte> s = streams.AsSpan(k * n, sn);
            bool random = !tryZstdStreams && stats is null && LooksRandom(s, hist);
            if (!random) FrequencyTable.Histogram(s, hist);
            int used = random ? 256 : FrequencyTable.UsedSymbols(hist);
            int start = pos;
            byte method = ChunkCodec.MethodStored;
            int payloadLen = sn;
            // Payload goes after a worst-case varint; it is moved down once its length is known.
            Span<byte> payload = output.Slice(pos + 1 + Varint.MaxLength, sn);
            if (sn > 0 && used == 1)
            {
                method = ChunkCodec.MethodConstant;
                payload[0] = s[0];
                payloadLen = 1;
            }
            else if (sn > 0)
            {
                // Coding must beat storing by a margin; a near-random stream is faster to copy.
                long limit = sn - (sn >> 7) - 8;
                OperationStatus st = OperationStatus.DestinationTooSmall;
                int w = 0;
                Span<byte> room = payload[..(int)Math.Max(0, limit)];
                // Neither coder goes below the order-0 entropy (Huffman's lengths and rANS's quantised
                // frequencies only add to it), so when that alone misses the limit the stream is stored
                // without building either table: the same decision, minus the package-merge and the
                // frequency normalisation of a 256-symbol alphabet, which cost as much as coding the exponent.
                bool mayPay = !random && FrequencyTable.Order0Bits(hist) / 8 < limit + 1;
                long hSize = long.MaxValue, rSize = long.MaxValue;
                if (mayPay)
                {
                    HuffmanCoder.BuildCodeLengths(hist, lengths);
                    hSize = HuffmanCoder.EstimateSize(hist, lengths);
                    RansCoder.NormalizeFrequencies(hist, freqs);
                    rSize = RansCoder.EstimateSize(hist, freqs);
                }
                if (Math.Min(hSize, rSize) < limit)
                {
                    // Long streams take the 32-state coder (method 5) when it still beats Huffman: it decodes faster.
                    if (sn >= RansWideCoder.MinimumLength && RansWideCoder.EstimateSize(hist, freqs) <= hSize)
                    { st = RansWideCoder.Encode(s, freqs, room, out w, Scratch.Grow(ref _ransWords, RansWideCoder.WordScratchLength(sn))); method = ChunkCodec.MethodRansWide; }
                    if (st != OperationStatus.Done && rSize <= hSize) { st = RansCoder.Encode(s, freqs, room, out w, Scratch.Grow(ref _ransWords, RansCoder.WordScratchLength(sn))); method = ChunkCodec.MethodRans; }
                    else if (st != OperationStatus.Done) { st = HuffmanCoder.Encode(s, lengths, room, out w); method = ChunkCodec.MethodHuffman; }
                }
                if (st == OperationStatus.Done) payloadLen = w;
                else { method = ChunkCodec.MethodStored; payloadLen = sn; }

                if (tryZstdStreams)
                {
                    byte[] zbuf = Scratch.Grow(ref _zstdStream, Compressor.GetCompressBound(sn));
                    int z = TryZstd(s, zbuf);
                    if (z > 0 && z < payloadLen && z < limit)
                    {
                        method = ChunkCodec.MethodZstd;
                        payloadLen = z;
                        zbuf.AsSpan(0, z).CopyTo(payload);
                    }
                }
                if (method == ChunkCodec.MethodStored) s.CopyTo(payload);
            }
            output[pos++] = method;
            int vl = Varint.Write(output[pos..], (uint)payloadLen);
            pos += vl;
            if (vl != Varint.MaxLength) payload[..payloadLen].CopyTo(output[pos..]);
            pos += payloadLen;

            stats?.Add(new StreamStats($"{dtype}.{FloatSplit.StreamName(t, k)}", sn, pos - start,
                FrequencyTable.Order0Bits(hist), Order1(s), MethodNames[method]));
        }
        raw[(n * e)..].CopyTo(output[pos..]);
        pos += tail;
        if (stats is not null && tail > 0)
            stats.Add(new StreamStats($"{dtype}.tail", tail, tail, 0, 0, "Stored"));
        return pos;
    }

    /// <summary>Streams shorter than this are always counted in full: a small sample's entropy estimate is too low to trust.</summary>
    internal const int SampleMinimum = 128 << 10;

    /// <summary>
    /// Whether a stream is so close to random that neither coder could reach the storing limit, judged from a
    /// quarter of it (16 bytes of every 64). A near-random mantissa byte is the common case, and counting it in
    /// full costs as much as the exponent's histogram. The sample's order-0 entropy is an estimate biased low
    /// (by about 255 / (2·m·ln 2) bits, under 0.006 for m ≥ 32 Ki samples), so it errs towards "may pay", after
    /// which the stream is counted in full and decided exactly; "random" needs the estimate to clear the limit by
    /// <c>0.015</c> bits a symbol on top. Only for statistics-free float streams: integers also try zstd, and
    /// statistics report every stream's exact entropy.
    /// </summary>
    static bool LooksRandom(ReadOnlySpan<byte> s, Span<uint> hist)
    {
        int n = s.Length;
        if (n < SampleMinimum) return false;
        int m = FrequencyTable.SampleHistogram(s, hist);
        double limitBits = 8.0 * (n - (n >> 7) - 8) / n;
        return FrequencyTable.Order0Bits(hist) / m >= limitBits + 0.015;
    }

    /// <summary>Releases the scratch buffers and the zstd context. The encoder cannot be used afterwards.</summary>
    public void Dispose()
    {
        if (_disposed) return;
        _disposed = true;
        _zstd?.Dispose();
        _zstd = null;
        _best = _other = _streams = _zstdStream = [];
        _ransWords = [];
        _pairCounts = [];
        _ggmlOut = [];
        _ggml = null;
        _mixOut = [];
        _mixTop = [];
        _mix = null;
    }
}
