using System.Numerics.Tensors;

namespace TensorCodec.Engine;

/// <summary>
/// Keys and values rounded to IEEE half. Same layout as <see cref="F32KvCache"/> (keys transposed),
/// and the rows are widened to F32 a tile of positions at a time into scratch: TensorPrimitives
/// widens with F16C-class SIMD, and the products then run at the F32 kernel's speed.
/// </summary>
internal sealed class F16KvCache : DenseKvCache<Half>
{
    public F16KvCache(KvGeometry geometry) : base(geometry, "f16") { }

    protected override void StoreOne(int layer, int position, ReadOnlySpan<float> k, ReadOnlySpan<float> v)
    {
        int hd = HeadDim;
        for (int h = 0; h < KvHeads; h++)
        {
            int b = HeadBase(layer, h);
            for (int i = 0; i < hd; i++) Keys[b + i * Capacity + position] = (Half)k[h * hd + i];
            TensorPrimitives.ConvertToHalf(v.Slice(h * hd, hd), Values.AsSpan(b + position * hd, hd));
        }
    }

    public override void Scores(int layer, int kvHead, ReadOnlySpan<float> q, int count, Span<float> scores)
    {
        int hd = HeadDim, cap = Capacity, b = HeadBase(layer, kvHead);
        scores = scores[..count];
        scores.Clear();
        // Tiles of positions keep the scratch bounded; each score still sums its channels in order.
        for (int t0 = 0; t0 < count; t0 += KvScratch.Tile)
        {
            int n = Math.Min(KvScratch.Tile, count - t0);
            var row = KvScratch.Get(n);
            var s = scores.Slice(t0, n);
            for (int i = 0; i < hd; i++)
            {
                TensorPrimitives.ConvertToSingle(Keys.AsSpan(b + i * cap + t0, n), row);
                TensorPrimitives.MultiplyAdd(row, q[i], s, s);
            }
        }
    }

    public override void AccumulateValues(int layer, int kvHead, ReadOnlySpan<float> weights, int count, Span<float> output)
    {
        int hd = HeadDim, b = HeadBase(layer, kvHead);
        output = output[..hd];
        output.Clear();
        for (int t0 = 0; t0 < count; t0 += KvScratch.Tile)
        {
            int n = Math.Min(KvScratch.Tile, count - t0);
            var tile = KvScratch.Get(n * hd);
            TensorPrimitives.ConvertToSingle(Values.AsSpan(b + t0 * hd, n * hd), tile);
            for (int t = 0; t < n; t++) TensorPrimitives.MultiplyAdd(tile.Slice(t * hd, hd), weights[t0 + t], output, output);
        }
    }
}
