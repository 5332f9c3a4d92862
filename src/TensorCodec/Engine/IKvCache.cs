namespace TensorCodec.Engine;

/// <summary>
/// Keys and values of past positions, per layer and KV head. Attention talks to the cache only
/// through <see cref="Scores(int, int, ReadOnlySpan{float}, int, Span{float})"/> and
/// <see cref="AccumulateValues(int, int, ReadOnlySpan{float}, int, Span{float})"/> (and their batched overloads), so a quantized cache can keep
/// its packed form and fuse the decode into those two loops.
/// </summary>
internal interface IKvCache
{
    KvGeometry Geometry { get; }

    /// <summary>
    /// Stores <paramref name="count"/> ≤ <see cref="KvGeometry.MaxBatch"/> consecutive positions from
    /// <paramref name="position"/> on: <paramref name="k"/> and <paramref name="v"/> are [count][KvHeads·HeadDim],
    /// RoPE already applied to k. Queries of those positions may attend once the call returns.
    /// </summary>
    void Store(int layer, int position, int count, ReadOnlySpan<float> k, ReadOnlySpan<float> v);

    /// <summary>scores[t] = q·k[t] for positions t &lt; count.</summary>
    void Scores(int layer, int kvHead, ReadOnlySpan<float> q, int count, Span<float> scores);

    /// <summary>output = Σ weights[t]·v[t] for t &lt; count (overwrites output).</summary>
    void AccumulateValues(int layer, int kvHead, ReadOnlySpan<float> weights, int count, Span<float> output);

    /// <summary>
    /// <see cref="Scores(int, int, ReadOnlySpan{float}, int, Span{float})"/> for several queries of one KV head:
    /// query j is q[j·HeadDim…], sees counts[j] positions, and writes scores[j·stride…]. The results are
    /// those of one call per query; a quantized cache decodes its codes once for all of them.
    /// </summary>
    void Scores(int layer, int kvHead, ReadOnlySpan<float> q, ReadOnlySpan<int> counts, Span<float> scores, int stride);

    /// <summary>
    /// <see cref="AccumulateValues(int, int, ReadOnlySpan{float}, int, Span{float})"/> for several queries:
    /// query j's weights are weights[j·stride…] over counts[j] positions, its sum goes to output[j·HeadDim…].
    /// </summary>
    void AccumulateValues(int layer, int kvHead, ReadOnlySpan<float> weights, int stride, ReadOnlySpan<int> counts, Span<float> output);

    /// <summary>Forgets every position (a new sequence).</summary>
    void Clear();

    /// <summary>Bytes of the arrays the cache owns (what it allocated for its capacity).</summary>
    long ByteSize { get; }
}
