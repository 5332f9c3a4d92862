namespace TensorCodec.Coders;

/// <summary>What happened to one stream (or, summed, to all streams of one name).</summary>
/// <param name="Name">"{DType}.{stream}", e.g. "BF16.exp"; whole-chunk modes use "{DType}.raw", the tail "{DType}.tail".</param>
/// <param name="RawBytes">Bytes of the stream before coding.</param>
/// <param name="EncodedBytes">Bytes it took coded, including its method byte and length.</param>
/// <param name="Order0EntropyBits">Total order-0 information in bits (Σ −log2 p over the stream's symbols, p from each chunk's own histogram).</param>
/// <param name="Order1EntropyBits">Total order-1 information in bits (previous symbol as context); 0 unless measured.</param>
/// <param name="Method">Stored, Constant, Huffman, Rans, Zstd or RansWide; several joined by '+' once summed.</param>
public sealed record StreamStats(string Name, long RawBytes, long EncodedBytes, double Order0EntropyBits, double Order1EntropyBits, string Method);

/// <summary>Per-stream statistics summed by stream name over the chunks an encoder was given.</summary>
public sealed class ChunkStats
{
    readonly List<StreamStats> _streams = new();

    /// <summary>One entry per stream name, in the order first seen.</summary>
    public IReadOnlyList<StreamStats> Streams => _streams;

    /// <summary>Merges <paramref name="other"/> into this by stream name, summing sizes and entropies.
    /// If the same name was coded with different methods, Method lists them joined by '+'.</summary>
    public void Add(ChunkStats other)
    {
        foreach (var s in other._streams) Add(s);
    }

    internal void Add(StreamStats s)
    {
        int i = _streams.FindIndex(x => x.Name == s.Name);
        if (i < 0) { _streams.Add(s); return; }
        var mine = _streams[i];
        _streams[i] = mine with
        {
            RawBytes = mine.RawBytes + s.RawBytes,
            EncodedBytes = mine.EncodedBytes + s.EncodedBytes,
            Order0EntropyBits = mine.Order0EntropyBits + s.Order0EntropyBits,
            Order1EntropyBits = mine.Order1EntropyBits + s.Order1EntropyBits,
            Method = mine.Method.Split('+').Contains(s.Method) ? mine.Method : mine.Method + "+" + s.Method,
        };
    }
}
