using CsCheck;
using TensorCodec.Formats;

namespace TensorCodec.Tests.Formats;

/// <summary>
/// The Vector256 paths must produce exactly the reference bytes and float bits; the ones with an
/// AVX-512 branch are run at both the AVX2 and the AVX-512 level.
/// </summary>
[Collection(SimdCollection.Name)]
public class FastPathTests
{
    /// <summary>Blocks of 32 with the awkward cases mixed in: zeros, constants, tiny values, ties, ±max duplicates.</summary>
    private static float[] MakeBlocks(int seed, int blocks)
    {
        var rng = new Random(seed);
        var x = new float[blocks * 32];
        for (int b = 0; b < blocks; b++)
        {
            var s = x.AsSpan(b * 32, 32);
            int kind = b % 8;
            float scale = (float)Math.Pow(2, rng.Next(-20, 20));
            for (int j = 0; j < 32; j++)
            {
                s[j] = kind switch
                {
                    0 => 0f,
                    1 => scale,
                    2 => (float)(rng.NextDouble() - 0.5) * 1e-30f,
                    3 => (rng.Next(-254, 255) / 2f) * scale / 127f,        // land on x·id ≈ k + ½
                    4 => j % 2 == 0 ? scale : -scale,                     // equal magnitudes, first one wins
                    5 => BitConverter.Int32BitsToSingle(rng.Next(0, 0x7F000000)) % 1e6f * (j % 3 == 0 ? -1 : 1), // finite only: NaN input is undefined in ggml too
                    _ => (float)(rng.NextDouble() * 2 - 1) * scale,
                };
            }
        }
        return x;
    }

    private static void AssertSame(Quantizer refQ, Quantizer fastQ, Dequantizer refD, Dequantizer fastD, float[] x, int blockBytes) =>
        FastPathChecks.FastMatchesReference(x, x.Length / 32 * blockBytes, refQ, fastQ, refD, fastD);

    [SkippableTheory]
    [MemberData(nameof(SimdLevels.Vector), MemberType = typeof(SimdLevels))]
    public void Q8_0_fast_matches_reference(string level)
    {
        using var _ = SimdLevels.Force(level);
        for (int seed = 0; seed < 20; seed++)
            AssertSame(Q8_0.QuantizeReference, Q8_0Fast.Quantize, Q8_0.DequantizeReference, Q8_0Fast.Dequantize, MakeBlocks(seed, 64), 34);
    }

    [SkippableFact]
    public void Q4_0_fast_matches_reference()
    {
        Skip.IfNot(Q4_0Fast.IsSupported, NoVector256);
        for (int seed = 0; seed < 20; seed++)
            AssertSame(Q4_0.QuantizeReference, Q4_0Fast.Quantize, Q4_0.DequantizeReference, Q4_0Fast.Dequantize, MakeBlocks(seed, 64), 18);
    }

    [SkippableTheory]
    [MemberData(nameof(SimdLevels.Vector), MemberType = typeof(SimdLevels))]
    public void Fast_paths_match_reference_on_generated_floats(string level)
    {
        using var _ = SimdLevels.Force(level);
        Gen.Float[-1e6f, 1e6f].Array[32].Sample(x =>
        {
            AssertSame(Q8_0.QuantizeReference, Q8_0Fast.Quantize, Q8_0.DequantizeReference, Q8_0Fast.Dequantize, x, 34);
            AssertSame(Q4_0.QuantizeReference, Q4_0Fast.Quantize, Q4_0.DequantizeReference, Q4_0Fast.Dequantize, x, 18);
        }, iter: 2000);
    }

    [SkippableFact]
    public void Dequantize_of_random_bytes_matches_reference()
    {
        Skip.IfNot(Vector256IsOn(), NoVector256);
        var rng = new Random(3);
        var q8 = new byte[34 * 100];
        var q4 = new byte[18 * 100];
        rng.NextBytes(q8);
        rng.NextBytes(q4);
        // keep the fp16 scales finite so NaN bit patterns cannot differ in payload
        for (int i = 0; i < 100; i++) { q8[i * 34 + 1] &= 0x3F; q4[i * 18 + 1] &= 0x3F; }
        var a = new float[3200];
        var b = new float[3200];
        Q8_0.DequantizeReference(q8, a); Q8_0Fast.Dequantize(q8, b);
        Assert.Equal(a, b);
        Q4_0.DequantizeReference(q4, a); Q4_0Fast.Dequantize(q4, b);
        Assert.Equal(a, b);
    }

    [SkippableTheory]
    [InlineData("q4_K")]
    [InlineData("q5_K")]
    [InlineData("q6_K")]
    [InlineData("q3_K")]
    [InlineData("q2_K")]
    public void KQuant_fast_dequantize_matches_reference_on_random_blocks(string name)
    {
        Skip.IfNot(KQuantFast.IsSupported, NoVector256);
        var f = BlockFormats.Get(name);
        var rng = new Random(Seeds.Of(name));
        const int blocks = 200;
        var q = new byte[blocks * f.BlockBytes];
        rng.NextBytes(q);
        // finite fp16 super-scales (d, dmin) so NaN payloads cannot differ
        int[] halves = name switch { "q6_K" => [208], "q3_K" => [108], "q2_K" => [80, 82], _ => [0, 2] };
        for (int i = 0; i < blocks; i++)
            foreach (int o in halves) q[i * f.BlockBytes + o + 1] &= 0x3F;
        var a = new float[blocks * 256];
        var b = new float[blocks * 256];
        if (name == "q6_K") { Q6_K.DequantizeReference(q, a); KQuantFast.DequantizeQ6(q, b); }
        else if (name == "q3_K") { Q3_K.DequantizeReference(q, a); KQuantFast.DequantizeQ3(q, b); }
        else if (name == "q2_K") { Q2_K.DequantizeReference(q, a); KQuantFast.DequantizeQ2(q, b); }
        else
        {
            int nmax = name == "q4_K" ? 15 : 31;
            KQuant45.DequantizeReference(q, a, nmax, f.BlockBytes);
            KQuantFast.DequantizeQ45(q, b, nmax, f.BlockBytes);
            // both Q4_K decoders, whichever one the dispatcher picked
            if (nmax == 15 && KQuantFast.Q4KTableIsSupported)
            {
                var c = new float[a.Length];
                KQuantFast.DequantizeQ4Table(q, c);
                for (int i = 0; i < a.Length; i++)
                    Assert.Equal(BitConverter.SingleToInt32Bits(a[i]), BitConverter.SingleToInt32Bits(c[i]));
            }
            var e = new float[a.Length];
            KQuantFast.DequantizeQ45Vector256(q, e, nmax, f.BlockBytes);
            for (int i = 0; i < a.Length; i++)
                Assert.Equal(BitConverter.SingleToInt32Bits(a[i]), BitConverter.SingleToInt32Bits(e[i]));
        }
        for (int i = 0; i < a.Length; i++)
            Assert.Equal(BitConverter.SingleToInt32Bits(a[i]), BitConverter.SingleToInt32Bits(b[i]));
    }

    [SkippableFact]
    public void RoundAway_matches_C_roundf()
    {
        Skip.IfNot(Vector256IsOn(), NoVector256);
        float[] t = [0.49999997f, 0.5f, 1.5f, 2.5f, -0.5f, -0.49999997f, -2.5f, 126.5f, -127f, 8388607.5f, 0f, -0f];
        var v = new float[8];
        for (int i = 0; i < t.Length; i += 8)
        {
            Array.Clear(v);
            t.AsSpan(i, Math.Min(8, t.Length - i)).CopyTo(v);
            var r = Q8_0Fast.RoundAwayToInt(System.Runtime.Intrinsics.Vector256.Create(v));
            for (int k = 0; k < 8; k++) Assert.Equal((int)MathF.Round(v[k], MidpointRounding.AwayFromZero), r[k]);
        }
    }

    [SkippableTheory]
    [MemberData(nameof(SimdLevels.Vector), MemberType = typeof(SimdLevels))]
    public void Q8_0_fast_matches_reference_with_partial_groups(string level)
    {
        using var _ = SimdLevels.Force(level);
        // 8-block groups plus a remainder, across the 64-block chunk boundaries; a group mixing zero, tiny and normal scales exercises the
        // vector fp16 conversion's scalar fallback lanes
        foreach (int blocks in new[] { 1, 7, 8, 9, 15, 63, 64, 65, 67, 72, 129, 200 })
            for (int seed = 0; seed < 5; seed++)
                AssertSame(Q8_0.QuantizeReference, Q8_0Fast.Quantize, Q8_0.DequantizeReference, Q8_0Fast.Dequantize, MakeBlocks(seed * 31 + blocks, blocks), 34);
    }

    [SkippableFact]
    public void RoundAway_matches_C_roundf_on_every_float_up_to_256()
    {
        Skip.IfNot(Vector256IsOn(), NoVector256);
        // every float in [2^-2, 2^8) (below 2^-2 the result is 0 with a margin), both signs
        var v = new float[8];
        for (uint bits = 0x3E80_0000; bits < 0x4380_0000; bits += 8)
        {
            for (int k = 0; k < 8; k++) v[k] = BitConverter.UInt32BitsToSingle(bits + (uint)k);
            var t = System.Runtime.Intrinsics.Vector256.Create(v);
            var r = Q8_0Fast.RoundAwayToInt(t);
            var rn = Q8_0Fast.RoundAwayToInt(-t);
            for (int k = 0; k < 8; k++)
            {
                int e = (int)MathF.Round(v[k], MidpointRounding.AwayFromZero);
                if (r[k] != e || rn[k] != -e) Assert.Fail($"{v[k]:R}: {r[k]}, {rn[k]}, expected ±{e}");
            }
        }
        // boundaries beyond: 2^22..2^24 halves and tiny values
        float[] more = [4194304.5f, 4194305.5f, 8388607.5f, 8388608f, 16777215f, 1e-40f, 0.2499999f, 1e-8f];
        foreach (float f in more)
        {
            var r = Q8_0Fast.RoundAwayToInt(System.Runtime.Intrinsics.Vector256.Create(f));
            Assert.Equal((int)MathF.Round(f, MidpointRounding.AwayFromZero), r[0]);
        }
    }

    [SkippableFact]
    public void Vector_fp16_conversion_matches_scalar()
    {
        Skip.IfNot(Vector256IsOn(), NoVector256);
        var v = new float[8];
        var rng = new Random(5);
        for (long u = 0; u <= 0xFFFF_FFFFL; u += 0x1000)
        {
            for (int k = 0; k < 8; k++)
            {
                // neighbours of rounding boundaries, and a random lane mix so fallback lanes sit among fast ones
                long d = k switch { 0 => 0, 1 => 0xFFF, 2 => 0x800, 3 => 0x7FF, 4 => 0x801, _ => rng.Next() };
                v[k] = BitConverter.UInt32BitsToSingle((uint)((u + d) & 0xFFFF_FFFF));
            }
            var h = TensorCodec.Numerics.Fp16Bits.FromFloat(System.Runtime.Intrinsics.Vector256.Create(v));
            for (int k = 0; k < 8; k++)
                if (h[k] != TensorCodec.Numerics.Fp16.FromFloat(v[k])) Assert.Fail($"{v[k]:R}: {h[k]:X4}");
        }
    }

    /// <summary>
    /// Super-blocks for the k-quant searches: sub-blocks of 32 whose kinds (from <see cref="MakeBlocks"/>)
    /// are shuffled so each lane of the vector search sees different cases, plus whole super-blocks
    /// that are zero, constant, tiny or Gaussian-like.
    /// </summary>
    private static float[] MakeSuperBlocks(int seed, int superBlocks)
    {
        var rng = new Random(seed);
        var src = MakeBlocks(seed, superBlocks * 8);
        var x = new float[superBlocks * 256];
        for (int sb = 0; sb < superBlocks; sb++)
        {
            var dst = x.AsSpan(sb * 256, 256);
            switch (sb % 5)
            {
                case 0: break; // all zero
                case 1: dst.Fill(-0.75f); break;
                case 2: for (int i = 0; i < 256; i++) dst[i] = (float)(rng.NextDouble() - 0.5) * 1e-20f; break;
                case 3:
                    for (int i = 0; i < 256; i++)
                        dst[i] = (float)((rng.NextDouble() + rng.NextDouble() + rng.NextDouble() - 1.5) * 0.05);
                    break;
                default:
                    for (int j = 0; j < 8; j++)
                        src.AsSpan(rng.Next(superBlocks * 8) * 32, 32).CopyTo(dst.Slice(32 * j, 32));
                    break;
            }
        }
        return x;
    }

    [SkippableTheory]
    [InlineData("q4_K", false)]
    [InlineData("q4_K", true)]
    [InlineData("q5_K", false)]
    [InlineData("q5_K", true)]
    [InlineData("q6_K", false)]
    [InlineData("q6_K", true)]
    public void KQuant_fast_quantize_matches_reference(string name, bool withImportance)
    {
        Skip.IfNot(KQuantQuantizeFast.IsSupported, NoVector256);
        var f = BlockFormats.Get(name);
        for (int seed = 0; seed < 6; seed++)
        {
            const int sbs = 20;
            var x = MakeSuperBlocks(seed, sbs);
            float[]? imp = null;
            if (withImportance)
            {
                var rng = new Random(seed + 100);
                imp = new float[x.Length];
                for (int i = 0; i < imp.Length; i++)
                    imp[i] = (i / 32 + seed) % 7 == 0 ? 0f : (i / 64 + seed) % 5 == 0 ? 1f : (float)rng.NextDouble() * 4;
            }
            var a = new byte[sbs * f.BlockBytes];
            var b = new byte[a.Length];
            // one row of all super-blocks; importance is one weight per column
            if (name == "q6_K")
            {
                Q6_K.QuantizeReference(x, a, imp);
                KQuantQuantizeFast.QuantizeQ6(x, b, imp);
            }
            else
            {
                int nmax = name == "q4_K" ? 15 : 31;
                float rmin = name == "q4_K" ? -1f : -0.5f;
                int nstep = name == "q4_K" ? 20 : 15;
                KQuant45.QuantizeReference(x, a, imp, nmax, f.BlockBytes, rmin, nstep);
                KQuantQuantizeFast.QuantizeQ45(x, b, imp, nmax, f.BlockBytes, rmin, nstep);
            }
            for (int i = 0; i < a.Length; i++)
                if (a[i] != b[i]) Assert.Fail($"seed {seed}: byte {i} (super-block {i / f.BlockBytes}, offset {i % f.BlockBytes}): {a[i]} vs {b[i]}");
            // and through the public entry point (which picks the fast path)
            var c = new byte[a.Length];
            f.Quantize(x, c, x.Length, imp);
            Assert.Equal(a, c);
        }
    }

    private static bool Vector256IsOn() => System.Runtime.Intrinsics.Vector256.IsHardwareAccelerated;

    private static string NoVector256 => SimdLevels.Lacks("hardware Vector256 (AVX2)");
}
