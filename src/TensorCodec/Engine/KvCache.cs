using System.Numerics.Tensors;
using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using TensorCodec.Models;

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

/// <summary>
/// The plain F32 cache. Values are [layer][kvHead][position][headDim]; keys are stored transposed,
/// [layer][kvHead][headDim][position], so the scores of 8 positions are headDim vertical FMAs with
/// no horizontal sums, which is what makes attention cheap for small heads (stories260K: 8).
/// </summary>
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

    public F32KvCache(ModelConfig c, int capacity) : this(c.Layers, c.KvHeads, c.HeadDim, capacity) { }

    int Base(int layer, int head) => (layer * KvHeads + head) * Capacity * HeadDim;

    public void Store(int layer, int position, ReadOnlySpan<float> k, ReadOnlySpan<float> v)
    {
        if ((uint)position >= (uint)Capacity)
            throw new ArgumentOutOfRangeException(nameof(position), $"position {position} is beyond the KV cache capacity {Capacity}");
        int hd = HeadDim;
        for (int h = 0; h < KvHeads; h++)
        {
            int b = Base(layer, h);
            var kh = k.Slice(h * hd, hd);
            for (int i = 0; i < hd; i++) _k[b + i * Capacity + position] = kh[i];
            v.Slice(h * hd, hd).CopyTo(_v.AsSpan(b + position * hd, hd));
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public unsafe void Scores(int layer, int kvHead, ReadOnlySpan<float> q, int count, Span<float> scores)
    {
        int hd = HeadDim, cap = Capacity;
        if ((uint)count > (uint)cap || scores.Length < count || q.Length < hd) throw new ArgumentOutOfRangeException(nameof(count));
        fixed (float* pk0 = _k, pq = q, ps = scores)
        {
            float* kt = pk0 + Base(layer, kvHead);
            int t = 0;
            if (Vector256.IsHardwareAccelerated)
            {
                // Two blocks of 8 positions at once: independent FMA chains hide the FMA latency.
                for (; t + 16 <= count; t += 16)
                {
                    Vector256<float> a0 = default, a1 = default;
                    for (int i = 0; i < hd; i++)
                    {
                        var qi = Vector256.Create(pq[i]);
                        float* row = kt + i * cap + t;
                        a0 = Vector256.FusedMultiplyAdd(qi, Vector256.Load(row), a0);
                        a1 = Vector256.FusedMultiplyAdd(qi, Vector256.Load(row + 8), a1);
                    }
                    a0.Store(ps + t);
                    a1.Store(ps + t + 8);
                }
                for (; t + 8 <= count; t += 8)
                {
                    var acc = Vector256<float>.Zero;
                    for (int i = 0; i < hd; i++) acc = Vector256.FusedMultiplyAdd(Vector256.Create(pq[i]), Vector256.Load(kt + i * cap + t), acc);
                    acc.Store(ps + t);
                }
            }
            for (; t < count; t++)
            {
                float sum = 0;
                for (int i = 0; i < hd; i++) sum += pq[i] * kt[i * cap + t];
                ps[t] = sum;
            }
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public unsafe void AccumulateValues(int layer, int kvHead, ReadOnlySpan<float> weights, int count, Span<float> output)
    {
        int hd = HeadDim;
        var values = _v.AsSpan(Base(layer, kvHead), count * hd);
        output = output[..hd];
        weights = weights[..count];
        output.Clear();
        if (!Vector256.IsHardwareAccelerated || hd % 8 != 0)
        {
            for (int t = 0; t < count; t++) TensorPrimitives.MultiplyAdd(values.Slice(t * hd, hd), weights[t], output, output);
            return;
        }
        // The output chunk stays in a register while positions stream past.
        fixed (float* pv = values, po = output, pw = weights)
            for (int i = 0; i < hd; i += 8)
            {
                // Four independent chains over alternating positions, summed at the end.
                Vector256<float> a0 = default, a1 = default, a2 = default, a3 = default;
                int t = 0;
                for (; t + 4 <= count; t += 4)
                {
                    float* row = pv + t * hd + i;
                    a0 = Vector256.FusedMultiplyAdd(Vector256.Create(pw[t]), Vector256.Load(row), a0);
                    a1 = Vector256.FusedMultiplyAdd(Vector256.Create(pw[t + 1]), Vector256.Load(row + hd), a1);
                    a2 = Vector256.FusedMultiplyAdd(Vector256.Create(pw[t + 2]), Vector256.Load(row + 2 * hd), a2);
                    a3 = Vector256.FusedMultiplyAdd(Vector256.Create(pw[t + 3]), Vector256.Load(row + 3 * hd), a3);
                }
                for (; t < count; t++) a0 = Vector256.FusedMultiplyAdd(Vector256.Create(pw[t]), Vector256.Load(pv + t * hd + i), a0);
                ((a0 + a1) + (a2 + a3)).Store(po + i);
            }
    }

    public void Clear() { } // positions are overwritten before they are read
}
