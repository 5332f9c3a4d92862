using System.Numerics.Tensors;
using System.Runtime.Intrinsics;

namespace TensorCodec.Engine;

/// <summary>
/// Keys and values of past positions, per layer and KV head. Attention talks to the cache only
/// through <see cref="Scores"/> and <see cref="AccumulateValues"/>, so a quantized cache can keep
/// its packed form and fuse the decode into those two loops.
/// </summary>
public interface IKvCache
{
    int Layers { get; }
    int KvHeads { get; }
    int HeadDim { get; }
    /// <summary>Positions the cache can hold.</summary>
    int Capacity { get; }

    /// <summary>Stores the keys and values ([KvHeads][HeadDim] each, RoPE already applied to k) of one position.</summary>
    void Store(int layer, int position, ReadOnlySpan<float> k, ReadOnlySpan<float> v);

    /// <summary>scores[t] = q·k[t] for positions t &lt; count.</summary>
    void Scores(int layer, int kvHead, ReadOnlySpan<float> q, int count, Span<float> scores);

    /// <summary>output = Σ weights[t]·v[t] for t &lt; count (overwrites output).</summary>
    void AccumulateValues(int layer, int kvHead, ReadOnlySpan<float> weights, int count, Span<float> output);

    /// <summary>Forgets every position (a new sequence).</summary>
    void Clear();

    /// <summary>Bytes held, for reports.</summary>
    long ByteSize { get; }
}

/// <summary>The plain F32 cache: [layer][kvHead][position][headDim], so one head's keys are contiguous.</summary>
public sealed class F32KvCache : IKvCache
{
    readonly float[] _k, _v;

    public int Layers { get; }
    public int KvHeads { get; }
    public int HeadDim { get; }
    public int Capacity { get; }
    public long ByteSize => 8L * _k.Length;

    public F32KvCache(int layers, int kvHeads, int headDim, int capacity)
    {
        Layers = layers; KvHeads = kvHeads; HeadDim = headDim; Capacity = capacity;
        long n = (long)layers * kvHeads * capacity * headDim;
        if (n > Array.MaxLength) throw new ArgumentOutOfRangeException(nameof(capacity), $"KV cache of {n} floats is too large");
        _k = new float[n];
        _v = new float[n];
    }

    public F32KvCache(LlamaConfig c, int capacity) : this(c.Layers, c.KvHeads, c.HeadDim, capacity) { }

    int Base(int layer, int head) => (layer * KvHeads + head) * Capacity * HeadDim;

    public void Store(int layer, int position, ReadOnlySpan<float> k, ReadOnlySpan<float> v)
    {
        if ((uint)position >= (uint)Capacity)
            throw new ArgumentOutOfRangeException(nameof(position), $"position {position} is beyond the KV cache capacity {Capacity}");
        for (int h = 0; h < KvHeads; h++)
        {
            int at = Base(layer, h) + position * HeadDim;
            k.Slice(h * HeadDim, HeadDim).CopyTo(_k.AsSpan(at, HeadDim));
            v.Slice(h * HeadDim, HeadDim).CopyTo(_v.AsSpan(at, HeadDim));
        }
    }

    // Heads are short (32–128 floats), so per-position library calls would dominate; these loops
    // keep q (or the output) in registers across positions when the head is a multiple of 8.
    public unsafe void Scores(int layer, int kvHead, ReadOnlySpan<float> q, int count, Span<float> scores)
    {
        int hd = HeadDim;
        var keys = _k.AsSpan(Base(layer, kvHead), count * hd);
        q = q[..hd];
        scores = scores[..count];
        if (!Vector256.IsHardwareAccelerated || hd % 8 != 0 || hd > 256)
        {
            for (int t = 0; t < count; t++) scores[t] = TensorPrimitives.Dot(q, keys.Slice(t * hd, hd));
            return;
        }
        fixed (float* pk = keys, pq = q, ps = scores)
            for (int t = 0; t < count; t++)
            {
                float* k = pk + t * hd;
                var acc = Vector256<float>.Zero;
                for (int i = 0; i < hd; i += 8) acc = Vector256.FusedMultiplyAdd(Vector256.Load(pq + i), Vector256.Load(k + i), acc);
                ps[t] = Vector256.Sum(acc);
            }
    }

    public unsafe void AccumulateValues(int layer, int kvHead, ReadOnlySpan<float> weights, int count, Span<float> output)
    {
        int hd = HeadDim;
        var values = _v.AsSpan(Base(layer, kvHead), count * hd);
        output = output[..hd];
        weights = weights[..count];
        output.Clear();
        if (!Vector256.IsHardwareAccelerated || hd % 8 != 0 || hd > 256)
        {
            for (int t = 0; t < count; t++) TensorPrimitives.MultiplyAdd(values.Slice(t * hd, hd), weights[t], output, output);
            return;
        }
        fixed (float* pv = values, po = output, pw = weights)
            for (int i = 0; i < hd; i += 8)
            {
                var acc = Vector256<float>.Zero;
                for (int t = 0; t < count; t++) acc = Vector256.FusedMultiplyAdd(Vector256.Create(pw[t]), Vector256.Load(pv + t * hd + i), acc);
                acc.Store(po + i);
            }
    }

    public void Clear() { } // positions are overwritten before they are read
}
