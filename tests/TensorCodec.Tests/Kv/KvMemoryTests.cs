using System.Runtime.Intrinsics.X86;
using TensorCodec.Engine;
using TensorCodec.Formats;

namespace TensorCodec.Tests.Kv;

/// <summary>KV caches allocate what they report, and their quantizers are the Formats routines.</summary>
public class KvMemoryTests
{
    // bard-3m: 4 layers × 4 KV heads × 32, sessions store up to 64 positions at a time.
    const int Layers = 4, KvHeads = 4, HeadDim = 32, MaxBatch = 64;

    /// <summary>Object headers and per-layer counters, not counted in <see cref="IKvCache.ByteSize"/>.</summary>
    const long HeaderSlack = 1024;

    [Theory]
    [InlineData("f32")]
    [InlineData("f16")]
    [InlineData("q8_0")]
    [InlineData("kivi2")]
    [InlineData("kivi4")]
    [InlineData("kvmix")]
    [InlineData("kivi2:p=1,g=8")]
    [InlineData("kivi4:p=1")]
    [InlineData("kivi2:s=4")]
    [InlineData("kivi:k=3,v=3,g=16,p=1")]
    public void Allocated_bytes_are_the_reported_bytes_plus_the_stated_constant(string type)
    {
        var spec = KvSpec.Parse(type);
        long overhead256 = 0;
        foreach (int capacity in new[] { 256, 4096 })
        {
            var g = KvGeometry.Of(Layers, KvHeads, HeadDim, capacity, MaxBatch); // the RoPE table is the session's, made outside the count
            var rng = new Random(capacity);
            var k = Enumerable.Range(0, MaxBatch * KvHeads * HeadDim).Select(_ => (float)rng.NextDouble() - 0.5f).ToArray();
            var v = k.Reverse().ToArray();
            // The least of three runs: the first pays for JIT tiers and static initialisers, which only add.
            long allocated = long.MaxValue;
            IKvCache cache = null!;
            for (int run = 0; run < 3; run++)
            {
                long before = GC.GetAllocatedBytesForCurrentThread();
                cache = spec.Create(g);
                Fill(cache, k, v);
                allocated = Math.Min(allocated, GC.GetAllocatedBytesForCurrentThread() - before);
            }

            long reported = spec.BytesFor(Layers, KvHeads, HeadDim, capacity), overhead = spec.OverheadBytes(g);
            Assert.Equal(reported + overhead, cache.ByteSize);
            Assert.True(allocated >= reported + overhead && allocated <= reported + overhead + HeaderSlack,
                $"{type} at {capacity}: allocated {allocated:N0} bytes, reported {reported:N0} + overhead {overhead:N0}");
            if (capacity == 256) overhead256 = overhead;
            else Assert.Equal(overhead256, overhead); // a constant, not a per-position cost
            GC.KeepAlive(cache);
        }
    }

    static void Fill(IKvCache cache, float[] k, float[] v)
    {
        var g = cache.Geometry;
        for (int p = 0; p < g.Capacity; p += g.MaxBatch)
            for (int l = 0; l < g.Layers; l++)
                cache.Store(l, p, Math.Min(g.MaxBatch, g.Capacity - p), k, v);
    }

    [Fact]
    public void Q8_cache_holds_ggml_q8_0_blocks()
    {
        var g = KvGeometry.Of(1, 1, 64, 4, 1);
        var cache = new Q8KvCache(g);
        var rng = new Random(3);
        var x = Enumerable.Range(0, 64).Select(_ => (float)(rng.NextDouble() * 6 - 3)).ToArray();
        cache.Store(0, 2, 1, x, x);
        var blocks = new byte[68];
        Q8_0.QuantizeReference(x, blocks);
        var expected = new float[64];
        Q8_0.DequantizeReference(blocks, expected);
        // One-hot weights read back one position's values exactly as the blocks decode.
        var w = new float[3]; w[2] = 1;
        var o = new float[64];
        cache.AccumulateValues(0, 0, w, 3, o);
        Assert.Equal(expected, o);
    }

    [SkippableFact]
    public unsafe void Asymmetric_fast_code_extraction_matches_the_reference()
    {
        Skip.IfNot(AsymmetricQuant.FastSupported, "AVX2 is not available: only the scalar reference runs on this machine");
        var rng = new Random(12);
        foreach (int bits in new[] { 1, 2, 3, 4, 8 })
        {
            var x = Enumerable.Range(0, 64).Select(_ => (float)(rng.NextDouble() * 10 - 4)).ToArray();
            AsymmetricQuant.Range(x, bits, out var scale, out var zero);
            var packed = new byte[64 * bits / 8 + 8];
            AsymmetricQuant.Pack(x, scale, zero, bits, packed.AsSpan(0, 64 * bits / 8));
            fixed (byte* p = packed)
                for (int t = 0; t < 64; t += 8)
                {
                    var fast = AsymmetricQuant.Codes8(p + t / 8 * bits, bits);
                    for (int j = 0; j < 8; j++) Assert.Equal(AsymmetricQuant.CodeAt(packed.AsSpan(0, 64 * bits / 8), t + j, bits), (int)fast[j]);
                }
            // The reference round trip is within half a step (plus F16 rounding of the pair).
            var back = new float[64];
            AsymmetricQuant.Unpack(packed.AsSpan(0, 64 * bits / 8), scale, zero, bits, back);
            double step = (x.Max() - x.Min()) / ((1 << bits) - 1);
            for (int i = 0; i < 64; i++) Assert.True(Math.Abs(back[i] - x[i]) <= step / 2 + step / 100 + 0.01, $"{bits} bits, {i}: {back[i]} vs {x[i]}");
        }
    }
}

/// <summary>The several-query calls give exactly what one call per query gives.</summary>
public class KvBatchQueryTests
{
    [Theory]
    [InlineData("f32")]
    [InlineData("q8_0")]
    [InlineData("kivi2")]
    [InlineData("kivi:k=4,v=2,g=8,r=0")]
    [InlineData("kivi2:p=1,s=3,g=16")]
    [InlineData("kivi:k=3,v=8,g=16,r=8,s=20")]
    public void Several_queries_at_once_equal_one_at_a_time(string type)
    {
        const int layers = 2, heads = 2, hd = 32, n = 150, batch = 64;
        var spec = KvSpec.Parse(type);
        var cache = spec.Create(KvGeometry.Of(layers, heads, hd, n, batch));
        var rng = new Random(21);
        float R() => (float)(rng.NextDouble() * 2 - 1);
        for (int p = 0; p < n; p += batch)
        {
            int m = Math.Min(batch, n - p);
            var k = Enumerable.Range(0, m * heads * hd).Select(_ => R() * 3).ToArray();
            var v = Enumerable.Range(0, m * heads * hd).Select(_ => R()).ToArray();
            for (int l = 0; l < layers; l++) cache.Store(l, p, m, k, v);
        }
        // Queries of the last batch (positions 128…149), as a session asks for them.
        int[] counts = [129, 129, 130, 137, 140, 150, 150];
        int nq = counts.Length;
        var q = Enumerable.Range(0, nq * hd).Select(_ => R()).ToArray();
        var w = Enumerable.Range(0, nq * n).Select(_ => (float)rng.NextDouble()).ToArray();
        var scores = new float[nq * n];
        var outs = new float[nq * hd];
        cache.Scores(1, 1, q, counts, scores, n);
        cache.AccumulateValues(1, 1, w, n, counts, outs);
        for (int j = 0; j < nq; j++)
        {
            var s1 = new float[counts[j]];
            var o1 = new float[hd];
            cache.Scores(1, 1, q.AsSpan(j * hd, hd), counts[j], s1);
            cache.AccumulateValues(1, 1, w.AsSpan(j * n, counts[j]), counts[j], o1);
            Assert.Equal(s1, scores.AsSpan(j * n, counts[j]).ToArray());
            Assert.Equal(o1, outs.AsSpan(j * hd, hd).ToArray());
        }
    }
}
