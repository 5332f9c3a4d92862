using TensorCodec.Engine;
using TensorCodec.Eval;
using TensorCodec.Tests.Engine;
using TensorCodec.Models;

namespace TensorCodec.Tests.Kv;

/// <summary>Quantized KV caches: reconstruction bounds, the KIVI residual window, and batch/decode equivalence.</summary>
public class KvCacheTests
{
    const int Layers = 2, Heads = 2, Hd = 32;

    static (float[][] K, float[][] V) RandomKv(int positions, int seed)
    {
        var rng = new Random(seed);
        float[][] Make(float outlier) => Enumerable.Range(0, positions).Select(_ => Enumerable.Range(0, Heads * Hd)
            // A few large channels, as real keys have, plus a per-channel offset.
            .Select(i => (float)((rng.NextDouble() * 2 - 1) * (i % 16 == 3 ? outlier : 1) + 0.25 * (i % 5))).ToArray()).ToArray();
        return (Make(8), Make(1));
    }

    static void StoreAll(IKvCache c, float[][] k, float[][] v, int count)
    {
        for (int p = 0; p < count; p++)
            for (int l = 0; l < Layers; l++) c.Store(l, p, 1, k[p], v[p]);
    }

    /// <summary>Reconstructed key channel i of every position (scores against a unit query).</summary>
    static float[,] ReadKeys(IKvCache c, int layer, int head, int count) =>
        OneHotProbe(Hd, count, (q, s) => c.Scores(layer, head, q, count, s), probeIndexFirst: false);

    /// <summary>Reconstructed value of every position (one-hot attention weights).</summary>
    static float[,] ReadValues(IKvCache c, int layer, int head, int count) =>
        OneHotProbe(count, Hd, (w, o) => c.AccumulateValues(layer, head, w, count, o), probeIndexFirst: true);

    /// <summary>Runs <paramref name="probe"/> on each unit vector of length <paramref name="probes"/>;
    /// result [j, t] (or [t, j]) is output t of probe j.</summary>
    static float[,] OneHotProbe(int probes, int outputs, Action<float[], float[]> probe, bool probeIndexFirst)
    {
        var r = probeIndexFirst ? new float[probes, outputs] : new float[outputs, probes];
        var unit = new float[probes];
        var o = new float[outputs];
        for (int j = 0; j < probes; j++)
        {
            Array.Clear(unit); unit[j] = 1;
            probe(unit, o);
            for (int t = 0; t < outputs; t++)
                if (probeIndexFirst) r[j, t] = o[t]; else r[t, j] = o[t];
        }
        return r;
    }

    [Theory]
    [InlineData("f32")]
    [InlineData("f16")]
    [InlineData("q8_0")]
    public void Baseline_types_round_trip_within_their_bounds(string type)
    {
        const int n = 70;
        var (k, v) = RandomKv(n, 1);
        var cache = KvSpec.Parse(type).Create(KvGeometry.Of(Layers, Heads, Hd, n));
        StoreAll(cache, k, v, n);
        for (int l = 0; l < Layers; l++)
            for (int h = 0; h < Heads; h++)
            {
                var kk = ReadKeys(cache, l, h, n);
                var vv = ReadValues(cache, l, h, n);
                for (int t = 0; t < n; t++)
                {
                    float kMax = k[t].Skip(h * Hd).Take(Hd).Max(MathF.Abs), vMax = v[t].Skip(h * Hd).Take(Hd).Max(MathF.Abs);
                    for (int i = 0; i < Hd; i++)
                    {
                        float xk = k[t][h * Hd + i], xv = v[t][h * Hd + i];
                        (double bk, double bv) = type switch
                        {
                            "f32" => (1e-6 * Math.Abs(xk), 1e-6 * Math.Abs(xv)),
                            "f16" => (Math.Abs(xk) / 2048 + 1e-7, Math.Abs(xv) / 2048 + 1e-7),
                            // Half the step d = max|x|/127, plus the F16 rounding of d applied to 127 steps.
                            _ => (kMax / 127.0 * (0.5 + 127.0 / 2048) + 1e-6, vMax / 127.0 * (0.5 + 127.0 / 2048) + 1e-6),
                        };
                        Assert.True(Math.Abs(kk[t, i] - xk) <= bk, $"{type} key l{l} h{h} t{t} c{i}: {kk[t, i]} vs {xk}");
                        Assert.True(Math.Abs(vv[t, i] - xv) <= bv, $"{type} value l{l} h{h} t{t} c{i}: {vv[t, i]} vs {xv}");
                    }
                }
            }
    }

    /// <summary>Half a step, plus what F16 rounding of zero and scale can add (codes are computed against the rounded pair).</summary>
    static double KiviBound(IEnumerable<float> group, int bits)
    {
        float lo = group.Min(), hi = group.Max();
        int levels = (1 << bits) - 1;
        double step = (hi - lo) / levels;
        return step / 2 + Math.Abs(lo) / 2048 + levels * step / 2048 + 1e-6;
    }

    [Theory]
    [InlineData("kivi2")]
    [InlineData("kivi4")]
    [InlineData("kvmix")]
    [InlineData("kivi:k=3,v=3,g=16,r=8")]
    [InlineData("kivi:k=8,v=1,g=32,r=0")]
    public void Kivi_round_trip_within_bounds_and_residual_exact(string type)
    {
        const int n = 100;
        var spec = KvSpec.Parse(type);
        var (k, v) = RandomKv(n, 2);
        var cache = spec.Create(KvGeometry.Of(Layers, Heads, Hd, n));
        StoreAll(cache, k, v, n);
        int q = KiviKvCache.QuantizedCount(n, spec.Group, spec.Residual);
        int vg = KiviKvCache.ValueGroup(spec.Group, Hd);
        Assert.True(q > 0 && n - q >= spec.Residual && n - q < spec.Residual + spec.Group);
        for (int l = 0; l < Layers; l++)
            for (int h = 0; h < Heads; h++)
            {
                var kk = ReadKeys(cache, l, h, n);
                var vv = ReadValues(cache, l, h, n);
                for (int t = 0; t < n; t++)
                    for (int i = 0; i < Hd; i++)
                    {
                        float xk = k[t][h * Hd + i], xv = v[t][h * Hd + i];
                        if (t >= q)
                        {
                            Assert.Equal(xk, kk[t, i]);
                            Assert.Equal(xv, vv[t, i]);
                            continue;
                        }
                        int g0 = t / spec.Group * spec.Group;
                        double bk = KiviBound(Enumerable.Range(g0, spec.Group).Select(p => k[p][h * Hd + i]), spec.KeyBits);
                        int c0 = i / vg * vg;
                        double bv = KiviBound(Enumerable.Range(c0, vg).Select(j => v[t][h * Hd + j]), spec.ValueBits);
                        Assert.True(Math.Abs(kk[t, i] - xk) <= bk, $"{type} key t{t} c{i}: {kk[t, i]} vs {xk} (bound {bk})");
                        Assert.True(Math.Abs(vv[t, i] - xv) <= bv, $"{type} value t{t} c{i}: {vv[t, i]} vs {xv} (bound {bv})");
                    }
            }
    }

    [Fact]
    public void Kivi_residual_window_boundaries()
    {
        const int g = 16, r = 32;
        Assert.Equal(0, KiviKvCache.QuantizedCount(1, g, r));
        Assert.Equal(0, KiviKvCache.QuantizedCount(r, g, r));
        Assert.Equal(0, KiviKvCache.QuantizedCount(r + 1, g, r));
        Assert.Equal(0, KiviKvCache.QuantizedCount(r + g - 1, g, r));
        Assert.Equal(g, KiviKvCache.QuantizedCount(r + g, g, r));
        Assert.Equal(g, KiviKvCache.QuantizedCount(r + 2 * g - 1, g, r));
        Assert.Equal(2 * g, KiviKvCache.QuantizedCount(r + 2 * g, g, r));
        Assert.Equal(0, KiviKvCache.QuantizedCount(g - 1, g, 0));
        Assert.Equal(g, KiviKvCache.QuantizedCount(g, g, 0));

        var (k, v) = RandomKv(r + g + 1, 3);
        foreach (int count in new[] { 1, 2, 3, r, r + 1, r + g - 1, r + g, r + g + 1 })
        {
            var cache = KvSpec.Parse($"kivi:k=2,v=2,g={g},r={r}").Create(KvGeometry.Of(Layers, Heads, Hd, 128));
            StoreAll(cache, k, v, count);
            var kk = ReadKeys(cache, 1, 1, count);
            var vv = ReadValues(cache, 1, 1, count);
            int q = KiviKvCache.QuantizedCount(count, g, r);
            for (int t = 0; t < count; t++)
            {
                bool exactK = Enumerable.Range(0, Hd).All(i => kk[t, i] == k[t][Hd + i]);
                bool exactV = Enumerable.Range(0, Hd).All(i => vv[t, i] == v[t][Hd + i]);
                // The newest R (and up to G−1 more) are exact; older ones are 2-bit (random data is never exactly on the grid).
                Assert.True(exactK == (t >= q), $"count {count}: key {t} exact={exactK}, quantized below {q}");
                Assert.True(exactV == (t >= q), $"count {count}: value {t} exact={exactV}, quantized below {q}");
            }
        }
    }

    [Theory]
    [InlineData("kivi2")]
    [InlineData("kivi:k=4,v=2,g=8,r=0")]
    [InlineData("kivi2:p=1,s=3,g=16")]
    [InlineData("kivi2:c=1")]
    public void Kivi_batch_sees_exactly_what_token_by_token_decoding_sees(string type)
    {
        const int n = 120;
        var spec = KvSpec.Parse(type);
        var (k, v) = RandomKv(n, 4);
        var q = Enumerable.Range(0, Hd).Select(i => MathF.Sin(i)).ToArray();
        var w = Enumerable.Range(0, n).Select(i => 1f / (1 + i)).ToArray();
        var one = spec.Create(KvGeometry.Of(Layers, Heads, Hd, n, maxBatch: 1));
        var batched = spec.Create(KvGeometry.Of(Layers, Heads, Hd, n, maxBatch: 64));
        var s1 = new float[n]; var s2 = new float[n]; var o1 = new float[Hd]; var o2 = new float[Hd];
        for (int b = 0; b < n; b += 64)
        {
            int end = Math.Min(n, b + 64);
            batched.Store(0, b, end - b, k[b..end].SelectMany(x => x).ToArray(), v[b..end].SelectMany(x => x).ToArray());
            for (int p = b; p < end; p++)
            {
                one.Store(0, p, 1, k[p], v[p]);
                one.Scores(0, 1, q, p + 1, s1); batched.Scores(0, 1, q, p + 1, s2);
                Assert.Equal(s1.AsSpan(0, p + 1).ToArray(), s2.AsSpan(0, p + 1).ToArray());
                one.AccumulateValues(0, 1, w, p + 1, o1); batched.AccumulateValues(0, 1, w, p + 1, o2);
                Assert.Equal(o1, o2);
            }
        }
        // A batch larger than the ring was sized for is refused, not silently wrong.
        var small = spec.Create(KvGeometry.Of(Layers, Heads, Hd, n, maxBatch: 1));
        for (int p = 0; p < n; p++) small.Store(0, p, 1, k[p], v[p]);
        Assert.Throws<InvalidOperationException>(() => small.Scores(0, 0, q, spec.Residual + 1, s1));
    }

    [Fact]
    public void Sink_positions_stay_exact()
    {
        const int n = 90;
        var (k, v) = RandomKv(n, 6);
        var cache = KvSpec.Parse("kivi2:s=5,r=8,g=16").Create(KvGeometry.Of(Layers, Heads, Hd, n));
        StoreAll(cache, k, v, n);
        var kk = ReadKeys(cache, 0, 1, n);
        var vv = ReadValues(cache, 0, 1, n);
        for (int t = 0; t < n; t++)
        {
            bool exact = Enumerable.Range(0, Hd).All(i => kk[t, i] == k[t][Hd + i] && vv[t, i] == v[t][Hd + i]);
            Assert.True(exact == (t < 5 || t >= KiviKvCache.QuantizedCount(n, 16, 8)), $"position {t} exact={exact}");
        }
    }

    [Fact]
    public void Pre_rope_keys_quantize_a_rotating_key_better()
    {
        // A steady pre-RoPE key with a little noise, rotated per position as the engine does.
        const int n = 96, half = Hd / 2;
        var rng = new Random(7);
        var k0 = Enumerable.Range(0, Heads * Hd).Select(i => (float)(rng.NextDouble() * 4 - 2)).ToArray();
        var k = new float[n][]; var v = new float[n][];
        for (int p = 0; p < n; p++)
        {
            var x = k0.Select(a => a + (float)(rng.NextDouble() - 0.5) * 0.05f).ToArray();
            for (int h = 0; h < Heads; h++)
                for (int i = 0; i < half; i++)
                {
                    float ang = p * (1f / MathF.Pow(10000f, 2 * i / (float)Hd)), c = MathF.Cos(ang), sn = MathF.Sin(ang);
                    float a = x[h * Hd + 2 * i], b = x[h * Hd + 2 * i + 1];
                    x[h * Hd + 2 * i] = a * c - b * sn; x[h * Hd + 2 * i + 1] = a * sn + b * c;
                }
            k[p] = x; v[p] = new float[Heads * Hd];
        }
        double Err(string type)
        {
            var cache = KvSpec.Parse(type).Create(KvGeometry.Of(Layers, Heads, Hd, n));
            StoreAll(cache, k, v, n);
            var kk = ReadKeys(cache, 0, 0, n);
            double e = 0;
            for (int t = 0; t < 64; t++) for (int i = 0; i < Hd; i++) e = Math.Max(e, Math.Abs(kk[t, i] - k[t][i]));
            return e;
        }
        double post = Err("kivi2:r=0"), pre = Err("kivi2:r=0,p=1");
        // Pre-RoPE the channel only spans the noise (0.05 + F16 rounding of values up to ±2); post-RoPE it spans ±|pair|.
        Assert.True(pre < 0.05, $"pre-RoPE max error {pre}");
        Assert.True(pre * 5 < post, $"pre-RoPE {pre} vs post-RoPE {post}");
    }

    [Fact]
    public void Byte_accounting_is_exact()
    {
        var c = new ModelConfig { Dim = 256, HiddenDim = 768, Layers = 4, Heads = 8, KvHeads = 4, VocabSize = 1024, MaxSeqLen = 256 };
        Assert.Equal(4096L * 255, KvSpec.F32.BytesFor(c, 255));
        Assert.Equal(2048L * 255, KvSpec.Parse("f16").BytesFor(c, 255));
        Assert.Equal(4L * 4 * 255 * 2 * 34, KvSpec.Parse("q8_0").BytesFor(c, 255));
        // kivi2 at 255 tokens, g 32, r 32: 192 quantized, 63 exact.
        long perHead = 192 / 32 * 32 * (32 * 2 / 8 + 4) + 192 * (32 * 2 / 8 + 4) + 63 * 32 * 8;
        Assert.Equal(16 * perHead, KvSpec.Parse("kivi2").BytesFor(c, 255));
        // The allocated caches hold exactly their capacity's worth (no residual for the fixed types).
        Assert.Equal(KvSpec.Parse("f16").BytesFor(c, 100), KvSpec.Parse("f16").Create(KvGeometry.For(c, 100)).ByteSize);
        Assert.Equal(KvSpec.Parse("q8_0").BytesFor(c, 100), KvSpec.Parse("q8_0").Create(KvGeometry.For(c, 100)).ByteSize);
    }

    [Fact]
    public void Spec_parsing()
    {
        Assert.Equal(new KvSpec(KvKind.Kivi, 4, 2, 32, 32), KvSpec.Parse("kvmix"));
        Assert.Equal(new KvSpec(KvKind.Kivi, 2, 2, 32, 128), KvSpec.Parse("kivi2:r=128"));
        Assert.Equal(KvSpec.Parse("kivi:k=3,v=2,g=16,r=64"), KvSpec.Parse(KvSpec.Parse("kivi:k=3,v=2,g=16,r=64").Name));
        Assert.Throws<ArgumentException>(() => KvSpec.Parse("kivi2:g=12"));
        Assert.Throws<ArgumentException>(() => KvSpec.Parse("q4_0"));
        Assert.Throws<ArgumentException>(() => KvSpec.Parse("f16:r=3"));
        Assert.Equal(new KvSpec(KvKind.Kivi, 2, 2, 8, 32, 4, true), KvSpec.Parse("kivi2:g=8,s=4,p=1"));
        Assert.Equal("kivi:k=2,v=2,g=8,r=32,s=4,p=1", KvSpec.Parse("kivi2:g=8,s=4,p=1").Name);
        Assert.True(KvSpec.Parse("kvmix:c=1").Clip);
    }

    [Fact]
    public void Eval_with_quantized_caches_on_the_bundled_model()
    {
        using var model = LlamaModel.Load(TestFiles.Sample("bard-3m-bf16.safetensors"), new LlamaLoadOptions { ConfigPath = EngineFixtures.Fixture("config.json") });
        var tokens = EngineFixtures.Tokens("val.first128.tokens.csv");
        var o = new EvalOptions { Ctx = 128, ScoreFrom = 32 };
        var f32 = Perplexity.Run(model, tokens, o);
        Assert.Equal(f32.Ppl, Perplexity.Run(model, tokens, o with { Kv = KvSpec.F32 }).Ppl);
        Assert.Equal(4096L * 127, f32.KvBytes);
        foreach (var (type, maxRel) in new[] { ("f16", 1e-3), ("q8_0", 0.01), ("kivi8", 0.01), ("kivi4", 0.1), ("kvmix", 0.2), ("kivi2", 0.3), ("kivi2:p=1,g=8,s=1", 0.3) })
        {
            var r = Perplexity.Run(model, tokens, o with { Kv = KvSpec.Parse(type) });
            Assert.True(Math.Abs(r.Ppl / f32.Ppl - 1) <= maxRel, $"{type}: PPL {r.Ppl} vs f32 {f32.Ppl}");
            Assert.Equal(KvSpec.Parse(type).BytesFor(model.Config, 127), r.KvBytes);
        }
    }
}
