using System.Numerics.Tensors;
using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;

namespace TensorCodec.Engine;

/// <summary>
/// The plain F32 cache. Values are [layer][kvHead][position][headDim]; keys are stored transposed,
/// [layer][kvHead][headDim][position], so the scores of 8 positions are headDim vertical FMAs with
/// no horizontal sums, which is what makes attention cheap for small heads (stories260K: 8).
/// </summary>
internal sealed class F32KvCache : DenseKvCache<float>
{
    public F32KvCache(KvGeometry geometry) : base(geometry, "f32") { }

    /// <summary>Copies position <paramref name="position"/>'s keys and values ([KvHeads·HeadDim] each) out, exactly as stored.</summary>
    internal void Read(int layer, int position, Span<float> k, Span<float> v)
    {
        int hd = HeadDim;
        for (int h = 0; h < KvHeads; h++)
        {
            int b = HeadBase(layer, h);
            for (int i = 0; i < hd; i++) k[h * hd + i] = Keys[b + i * Capacity + position];
            Values.AsSpan(b + position * hd, hd).CopyTo(v.Slice(h * hd, hd));
        }
    }

    protected override void StoreOne(int layer, int position, ReadOnlySpan<float> k, ReadOnlySpan<float> v)
    {
        int hd = HeadDim;
        for (int h = 0; h < KvHeads; h++)
        {
            int b = HeadBase(layer, h);
            var kh = k.Slice(h * hd, hd);
            for (int i = 0; i < hd; i++) Keys[b + i * Capacity + position] = kh[i];
            v.Slice(h * hd, hd).CopyTo(Values.AsSpan(b + position * hd, hd));
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public override unsafe void Scores(int layer, int kvHead, ReadOnlySpan<float> q, int count, Span<float> scores)
    {
        int hd = HeadDim, cap = Capacity;
        if ((uint)count > (uint)cap || scores.Length < count || q.Length < hd) throw new ArgumentOutOfRangeException(nameof(count));
        fixed (float* pk0 = Keys, pq = q, ps = scores)
        {
            float* kt = pk0 + HeadBase(layer, kvHead);
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
    public override unsafe void AccumulateValues(int layer, int kvHead, ReadOnlySpan<float> weights, int count, Span<float> output)
    {
        int hd = HeadDim;
        var values = Values.AsSpan(HeadBase(layer, kvHead), count * hd);
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
}
