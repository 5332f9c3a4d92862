namespace TensorCodec.Engine;

/// <summary>Geometry, bounds checks and the per-position loop shared by the caches.</summary>
internal abstract class KvCacheBase : IKvCache
{
    public KvGeometry Geometry { get; }
    protected int Layers => Geometry.Layers;
    protected int KvHeads => Geometry.KvHeads;
    protected int HeadDim => Geometry.HeadDim;
    protected int Capacity => Geometry.Capacity;

    protected KvCacheBase(KvGeometry geometry, string name)
    {
        Geometry = geometry;
        long n = (long)geometry.Layers * geometry.KvHeads * geometry.Capacity * geometry.HeadDim;
        if (geometry.Capacity <= 0 || geometry.Layers <= 0 || geometry.KvHeads <= 0 || geometry.HeadDim <= 0)
            throw new ArgumentOutOfRangeException(nameof(geometry), $"{name} KV cache geometry must be positive");
        if (n > Array.MaxLength) throw new ArgumentOutOfRangeException(nameof(geometry), $"{name} KV cache of {n} values is too large");
    }

    /// <summary>Values of one kind (keys or values) at full capacity: Layers·KvHeads·Capacity·HeadDim.</summary>
    protected long Elements => (long)Layers * KvHeads * Capacity * HeadDim;

    /// <summary>Offset of (layer, head)'s block of Capacity·HeadDim elements.</summary>
    protected int HeadBase(int layer, int head) => (layer * KvHeads + head) * Capacity * HeadDim;

    public void Store(int layer, int position, int count, ReadOnlySpan<float> k, ReadOnlySpan<float> v)
    {
        if (count < 1 || count > Geometry.MaxBatch)
            throw new ArgumentOutOfRangeException(nameof(count), $"{count} positions in one store; the cache was made for batches of 1…{Geometry.MaxBatch}");
        if (position < 0 || position + count > Capacity)
            throw new ArgumentOutOfRangeException(nameof(position), $"positions {position}…{position + count - 1} are beyond the KV cache capacity {Capacity}");
        if ((uint)layer >= (uint)Layers) throw new ArgumentOutOfRangeException(nameof(layer));
        int d = Geometry.KvDim;
        if (k.Length < count * d || v.Length < count * d) throw new ArgumentException($"keys and values of {count} positions need {count * d} floats each");
        for (int t = 0; t < count; t++) StoreOne(layer, position + t, k.Slice(t * d, d), v.Slice(t * d, d));
    }

    /// <summary>Stores one position (bounds already checked).</summary>
    protected abstract void StoreOne(int layer, int position, ReadOnlySpan<float> k, ReadOnlySpan<float> v);

    public abstract void Scores(int layer, int kvHead, ReadOnlySpan<float> q, int count, Span<float> scores);
    public abstract void AccumulateValues(int layer, int kvHead, ReadOnlySpan<float> weights, int count, Span<float> output);
    public abstract long ByteSize { get; }

    /// <summary>One query at a time, unless a cache has something to share between them.</summary>
    public virtual void Scores(int layer, int kvHead, ReadOnlySpan<float> q, ReadOnlySpan<int> counts, Span<float> scores, int stride)
    {
        for (int j = 0; j < counts.Length; j++) Scores(layer, kvHead, q.Slice(j * HeadDim, HeadDim), counts[j], scores.Slice(j * stride, counts[j]));
    }

    public virtual void AccumulateValues(int layer, int kvHead, ReadOnlySpan<float> weights, int stride, ReadOnlySpan<int> counts, Span<float> output)
    {
        for (int j = 0; j < counts.Length; j++) AccumulateValues(layer, kvHead, weights.Slice(j * stride, counts[j]), counts[j], output.Slice(j * HeadDim, HeadDim));
    }

    /// <summary>Positions are overwritten before they are read, so most caches have nothing to forget.</summary>
    public virtual void Clear() { }
}

/// <summary>
/// Caches of one stored element per channel (f32, f16): values [layer][kvHead][position][headDim],
/// keys transposed, [layer][kvHead][headDim][position], so the scores of 8 positions are
/// headDim vertical FMAs with no horizontal sums.
/// </summary>
internal abstract unsafe class DenseKvCache<T> : KvCacheBase where T : unmanaged
{
    protected readonly T[] Keys, Values;

    protected DenseKvCache(KvGeometry geometry, string name) : base(geometry, name)
    {
        Keys = new T[Elements];
        Values = new T[Elements];
    }

    public override long ByteSize => 2L * sizeof(T) * Keys.Length;
}

/// <summary>Per-thread float scratch for caches that widen before they multiply. Callers ask for at
/// most <see cref="Tile"/> positions' worth, so it is bounded by the head size, not the capacity.</summary>
static class KvScratch
{
    /// <summary>Positions processed per tile by the widening loops.</summary>
    public const int Tile = 256;

    [ThreadStatic] static float[]? t_a;

    public static Span<float> Get(int n)
    {
        var a = t_a;
        if (a is null || a.Length < n) t_a = a = new float[Math.Max(n, 1024)];
        return a.AsSpan(0, n);
    }
}
