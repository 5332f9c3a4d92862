using System.Numerics.Tensors;
using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace TensorCodec.Engine;

/// <summary>Per-thread float scratch for caches that widen before they multiply; grows once, then never allocates.</summary>
static class KvScratch
{
    [ThreadStatic] static float[]? t_a;

    public static Span<float> Get(int n)
    {
        var a = t_a;
        if (a is null || a.Length < n) t_a = a = new float[Math.Max(n, 1024)];
        return a.AsSpan(0, n);
    }
}

/// <summary>
/// Keys and values rounded to IEEE half. Same layout as <see cref="F32KvCache"/> (keys transposed),
/// and the rows are widened to F32 a channel at a time into scratch: TensorPrimitives widens with
/// F16C-class SIMD, and the products then run at the F32 kernel's speed.
/// </summary>
public sealed class F16KvCache : IKvCache
{
    readonly Half[] _k, _v;

    public int Layers { get; }
    public int KvHeads { get; }
    public int HeadDim { get; }
    public int Capacity { get; }
    public long ByteSize => 4L * _k.Length;

    public F16KvCache(int layers, int kvHeads, int headDim, int capacity)
    {
        Layers = layers; KvHeads = kvHeads; HeadDim = headDim; Capacity = capacity;
        long n = (long)layers * kvHeads * capacity * headDim;
        if (n > Array.MaxLength) throw new ArgumentOutOfRangeException(nameof(capacity), $"KV cache of {n} values is too large");
        _k = new Half[n];
        _v = new Half[n];
    }

    int Base(int layer, int head) => (layer * KvHeads + head) * Capacity * HeadDim;

    public void Store(int layer, int position, ReadOnlySpan<float> k, ReadOnlySpan<float> v)
    {
        if ((uint)position >= (uint)Capacity)
            throw new ArgumentOutOfRangeException(nameof(position), $"position {position} is beyond the KV cache capacity {Capacity}");
        int hd = HeadDim;
        for (int h = 0; h < KvHeads; h++)
        {
            int b = Base(layer, h);
            for (int i = 0; i < hd; i++) _k[b + i * Capacity + position] = (Half)k[h * hd + i];
            TensorPrimitives.ConvertToHalf(v.Slice(h * hd, hd), _v.AsSpan(b + position * hd, hd));
        }
    }

    public void Scores(int layer, int kvHead, ReadOnlySpan<float> q, int count, Span<float> scores)
    {
        int hd = HeadDim, cap = Capacity, b = Base(layer, kvHead);
        scores = scores[..count];
        scores.Clear();
        var row = KvScratch.Get(count);
        for (int i = 0; i < hd; i++)
        {
            TensorPrimitives.ConvertToSingle(_k.AsSpan(b + i * cap, count), row);
            TensorPrimitives.MultiplyAdd(row, q[i], scores, scores);
        }
    }

    public void AccumulateValues(int layer, int kvHead, ReadOnlySpan<float> weights, int count, Span<float> output)
    {
        int hd = HeadDim;
        output = output[..hd];
        output.Clear();
        var all = KvScratch.Get(count * hd);
        TensorPrimitives.ConvertToSingle(_v.AsSpan(Base(layer, kvHead), count * hd), all);
        for (int t = 0; t < count; t++) TensorPrimitives.MultiplyAdd(all.Slice(t * hd, hd), weights[t], output, output);
    }

    public void Clear() { }
}

/// <summary>
/// llama.cpp's q8_0 applied to the cache: per position and head, blocks of 32 channels as int8
/// with one F16 scale (34 bytes per 32 values). Scores and the value sum run on the int8 codes
/// directly; the block scale is applied once per block, never per element.
/// </summary>
public sealed unsafe class Q8KvCache : IKvCache
{
    public const int Block = 32;
    readonly sbyte[] _k, _v;
    readonly Half[] _kd, _vd;

    public int Layers { get; }
    public int KvHeads { get; }
    public int HeadDim { get; }
    public int Capacity { get; }
    public long ByteSize => 2L * _k.Length + 4L * _kd.Length;

    public Q8KvCache(int layers, int kvHeads, int headDim, int capacity)
    {
        if (headDim % Block != 0) throw new ArgumentException($"q8_0 KV cache needs a head size divisible by {Block} (this model's is {headDim})");
        Layers = layers; KvHeads = kvHeads; HeadDim = headDim; Capacity = capacity;
        long n = (long)layers * kvHeads * capacity * headDim;
        if (n > Array.MaxLength) throw new ArgumentOutOfRangeException(nameof(capacity), $"KV cache of {n} values is too large");
        _k = new sbyte[n]; _v = new sbyte[n];
        _kd = new Half[n / Block]; _vd = new Half[n / Block];
    }

    int Base(int layer, int head) => (layer * KvHeads + head) * Capacity * HeadDim;

    /// <summary>Round-to-nearest with d = max|x|/127, as ggml's quantize_row_q8_0.</summary>
    public static void QuantizeBlock(ReadOnlySpan<float> x, Span<sbyte> codes, out Half scale)
    {
        float amax = TensorPrimitives.MaxMagnitude(x);
        amax = MathF.Abs(amax);
        float d = amax / 127f;
        scale = (Half)d;
        float id = d == 0 ? 0 : 1f / d;
        for (int i = 0; i < x.Length; i++) codes[i] = (sbyte)Math.Clamp(MathF.Round(x[i] * id), -127, 127);
    }

    public void Store(int layer, int position, ReadOnlySpan<float> k, ReadOnlySpan<float> v)
    {
        if ((uint)position >= (uint)Capacity)
            throw new ArgumentOutOfRangeException(nameof(position), $"position {position} is beyond the KV cache capacity {Capacity}");
        int hd = HeadDim;
        for (int h = 0; h < KvHeads; h++)
        {
            int b = Base(layer, h) + position * hd;
            for (int j = 0; j < hd; j += Block)
            {
                QuantizeBlock(k.Slice(h * hd + j, Block), _k.AsSpan(b + j, Block), out _kd[(b + j) / Block]);
                QuantizeBlock(v.Slice(h * hd + j, Block), _v.AsSpan(b + j, Block), out _vd[(b + j) / Block]);
            }
        }
    }

    static Vector256<float> Load8(sbyte* p) => Avx.ConvertToVector256Single(Avx2.ConvertToVector256Int32(p));

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public void Scores(int layer, int kvHead, ReadOnlySpan<float> q, int count, Span<float> scores)
    {
        int hd = HeadDim, b = Base(layer, kvHead);
        if ((uint)count > (uint)Capacity || scores.Length < count || q.Length < hd) throw new ArgumentOutOfRangeException(nameof(count));
        fixed (sbyte* pk0 = _k) fixed (Half* pd0 = _kd) fixed (float* pq = q)
        {
            sbyte* pk = pk0 + b;
            Half* pd = pd0 + b / Block;
            for (int t = 0; t < count; t++)
            {
                float s = 0;
                for (int j = 0; j < hd; j += Block)
                {
                    sbyte* c = pk + t * hd + j;
                    float dot;
                    if (Avx2.IsSupported)
                    {
                        var a = Vector256.Multiply(Load8(c), Vector256.Load(pq + j));
                        a = Vector256.FusedMultiplyAdd(Load8(c + 8), Vector256.Load(pq + j + 8), a);
                        a = Vector256.FusedMultiplyAdd(Load8(c + 16), Vector256.Load(pq + j + 16), a);
                        a = Vector256.FusedMultiplyAdd(Load8(c + 24), Vector256.Load(pq + j + 24), a);
                        dot = Vector256.Sum(a);
                    }
                    else
                    {
                        dot = 0;
                        for (int i = 0; i < Block; i++) dot += c[i] * pq[j + i];
                    }
                    s += (float)pd[(t * hd + j) / Block] * dot;
                }
                scores[t] = s;
            }
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public void AccumulateValues(int layer, int kvHead, ReadOnlySpan<float> weights, int count, Span<float> output)
    {
        int hd = HeadDim, b = Base(layer, kvHead);
        output = output[..hd];
        output.Clear();
        fixed (sbyte* pv0 = _v) fixed (Half* pd0 = _vd) fixed (float* po = output)
        {
            sbyte* pv = pv0 + b;
            Half* pd = pd0 + b / Block;
            for (int t = 0; t < count; t++)
                for (int j = 0; j < hd; j += Block)
                {
                    float a = weights[t] * (float)pd[(t * hd + j) / Block];
                    sbyte* c = pv + t * hd + j;
                    if (Avx2.IsSupported)
                    {
                        var va = Vector256.Create(a);
                        for (int i = 0; i < Block; i += 8)
                            Vector256.FusedMultiplyAdd(va, Load8(c + i), Vector256.Load(po + j + i)).Store(po + j + i);
                    }
                    else
                        for (int i = 0; i < Block; i++) po[j + i] += a * c[i];
                }
        }
    }

    public void Clear() { }
}
