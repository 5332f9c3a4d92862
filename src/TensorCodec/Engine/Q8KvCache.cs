using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;
using TensorCodec.Formats;

namespace TensorCodec.Engine;

/// <summary>
/// llama.cpp's q8_0 applied to the cache: per position and head, ggml q8_0 blocks (an F16 scale
/// and 32 int8 codes, 34 bytes per 32 values), quantized by <see cref="Q8_0"/>. Scores and the
/// value sum run on the int8 codes directly; the block scale is applied once per block.
/// </summary>
internal sealed unsafe class Q8KvCache : KvCacheBase
{
    public const int Block = Q8_0.QK;
    const int BlockBytes = 34;
    readonly byte[] _k, _v;     // [layer·head][position][HeadDim/32 blocks of 34 bytes]

    public override long ByteSize => 2L * _k.Length;

    public Q8KvCache(KvGeometry geometry) : base(geometry, "q8_0")
    {
        if (HeadDim % Block != 0) throw new ArgumentException($"q8_0 KV cache needs a head size divisible by {Block} (this model's is {HeadDim})");
        long n = (long)Layers * KvHeads * Capacity * (HeadDim / Block) * BlockBytes;
        if (n > Array.MaxLength) throw new ArgumentOutOfRangeException(nameof(geometry), $"q8_0 KV cache of {n} bytes is too large");
        _k = new byte[n]; _v = new byte[n];
    }

    int RowBytes => HeadDim / Block * BlockBytes;

    /// <summary>Byte offset of (layer, head, position)'s blocks.</summary>
    int Row(int layer, int head, int position) => ((layer * KvHeads + head) * Capacity + position) * RowBytes;

    protected override void StoreOne(int layer, int position, ReadOnlySpan<float> k, ReadOnlySpan<float> v)
    {
        int hd = HeadDim;
        for (int h = 0; h < KvHeads; h++)
        {
            int r = Row(layer, h, position);
            Q8_0.Quantize(k.Slice(h * hd, hd), _k.AsSpan(r, RowBytes));
            Q8_0.Quantize(v.Slice(h * hd, hd), _v.AsSpan(r, RowBytes));
        }
    }

    static Vector256<float> Load8(byte* p) => Avx.ConvertToVector256Single(Avx2.ConvertToVector256Int32((sbyte*)p));

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static float Scale(byte* block) => (float)Unsafe.ReadUnaligned<Half>(block);

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public override void Scores(int layer, int kvHead, ReadOnlySpan<float> q, int count, Span<float> scores)
    {
        int hd = HeadDim, rb = RowBytes;
        if ((uint)count > (uint)Capacity || scores.Length < count || q.Length < hd) throw new ArgumentOutOfRangeException(nameof(count));
        fixed (byte* pk0 = _k) fixed (float* pq = q)
        {
            byte* pk = pk0 + Row(layer, kvHead, 0);
            for (int t = 0; t < count; t++)
            {
                float s = 0;
                for (int j = 0; j < hd; j += Block)
                {
                    byte* blk = pk + t * rb + j / Block * BlockBytes;
                    byte* c = blk + 2;
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
                        for (int i = 0; i < Block; i++) dot += (sbyte)c[i] * pq[j + i];
                    }
                    s += Scale(blk) * dot;
                }
                scores[t] = s;
            }
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public override void AccumulateValues(int layer, int kvHead, ReadOnlySpan<float> weights, int count, Span<float> output)
    {
        int hd = HeadDim, rb = RowBytes;
        output = output[..hd];
        output.Clear();
        fixed (byte* pv0 = _v) fixed (float* po = output)
        {
            byte* pv = pv0 + Row(layer, kvHead, 0);
            for (int t = 0; t < count; t++)
                for (int j = 0; j < hd; j += Block)
                {
                    byte* blk = pv + t * rb + j / Block * BlockBytes;
                    float a = weights[t] * Scale(blk);
                    byte* c = blk + 2;
                    if (Avx2.IsSupported)
                    {
                        var va = Vector256.Create(a);
                        for (int i = 0; i < Block; i += 8)
                            Vector256.FusedMultiplyAdd(va, Load8(c + i), Vector256.Load(po + j + i)).Store(po + j + i);
                    }
                    else
                        for (int i = 0; i < Block; i++) po[j + i] += a * (sbyte)c[i];
                }
        }
    }
}
