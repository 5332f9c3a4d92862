using TensorCodec.Numerics;

namespace TensorCodec.Tests.Numerics;

public class Fp16Tests
{
    [Fact]
    public void All_halves_round_trip_through_float()
    {
        for (int h = 0; h < 65536; h++)
        {
            float f = Fp16.ToFloat((ushort)h);
            Assert.Equal((float)BitConverter.UInt16BitsToHalf((ushort)h), f);
            ushort back = Fp16.FromFloat(f);
            bool isNaN = (h & 0x7C00) == 0x7C00 && (h & 0x3FF) != 0;
            if (isNaN)
            {
                Assert.True(float.IsNaN(f));
                Assert.Equal((ushort)((h & 0x8000) | 0x7E00), back); // canonical quiet NaN, sign kept
            }
            else Assert.Equal((ushort)h, back);
        }
    }

    private static IEnumerable<float> InterestingFloats()
    {
        var rng = new Random(1234);
        for (int i = 0; i < 200_000; i++) yield return BitConverter.Int32BitsToSingle(rng.Next(int.MinValue, int.MaxValue));
        for (int i = 0; i < 200_000; i++) yield return (float)((rng.NextDouble() * 2 - 1) * Math.Pow(2, rng.Next(-30, 18)));
        // Every half, the midpoints between neighbouring halves, and one float either side of each.
        for (int h = 0; h < 0x7C00; h++)
        {
            double a = (double)BitConverter.UInt16BitsToHalf((ushort)h);
            double b = h == 0x7BFF ? 65520.0 : (double)BitConverter.UInt16BitsToHalf((ushort)(h + 1));
            float mid = (float)((a + b) / 2);
            foreach (var v in new[] { (float)a, mid, MathF.BitDecrement(mid), MathF.BitIncrement(mid) })
            {
                yield return v;
                yield return -v;
            }
        }
        foreach (var v in new[] { 0f, -0f, float.Epsilon, float.MaxValue, float.MinValue, float.PositiveInfinity, float.NegativeInfinity, 65504f, 65519.996f, 65520f, 1e-8f, 5.96e-8f })
            yield return v;
    }

    [Fact]
    public void Float_to_half_matches_System_Half_and_span_path_matches_scalar()
    {
        var all = InterestingFloats().Where(f => !float.IsNaN(f)).ToArray();
        var bulk = new ushort[all.Length];
        Fp16.FromFloat(all, bulk);
        for (int i = 0; i < all.Length; i++)
        {
            ushort expected = BitConverter.HalfToUInt16Bits((Half)all[i]);
            Assert.Equal(expected, Fp16.FromFloat(all[i]));
            Assert.Equal(expected, bulk[i]);
        }
        var back = new float[all.Length];
        Fp16.ToFloat(bulk, back);
        for (int i = 0; i < all.Length; i++) Assert.Equal(Fp16.ToFloat(bulk[i]), back[i]);
    }

    [Theory]
    [InlineData(1.0 + 1.0 / 2048, 0x3C00)]          // tie between 1 and 1+2^-10 → even (1)
    [InlineData(1.0 + 3.0 / 2048, 0x3C02)]          // tie → even (1+2^-9)
    [InlineData(65504.0, 0x7BFF)]
    [InlineData(65519.99609375, 0x7BFF)]            // just below the overflow midpoint
    [InlineData(65520.0, 0x7C00)]                   // midpoint to 2^16 rounds to even → inf
    [InlineData(2.98023223876953125e-8, 0x0000)]    // 2^-25: tie between 0 and the smallest subnormal → 0
    [InlineData(8.94069671630859375e-8, 0x0002)]    // 3·2^-25: tie between 1 and 2 subnormal units → 2
    [InlineData(-0.0, 0x8000)]
    public void Float_to_half_rounds_to_nearest_even(double value, int expected) =>
        Assert.Equal((ushort)expected, Fp16.FromFloat((float)value));

    [Fact]
    public void NaN_stays_NaN() =>
        Assert.True(float.IsNaN(Fp16.ToFloat(Fp16.FromFloat(BitConverter.Int32BitsToSingle(0x7F800001)))));
}

public class BFloat16Tests
{
    /// <summary>Independent reference: the nearer of the two neighbouring bf16 magnitudes, in double, ties to even.</summary>
    private static ushort Reference(float f)
    {
        uint u = BitConverter.SingleToUInt32Bits(f);
        uint sign = u & 0x8000_0000, mag = u & 0x7FFF_FFFF;
        uint lo = mag >> 16;
        double x = BitConverter.UInt32BitsToSingle(mag);
        double a = BitConverter.UInt32BitsToSingle(lo << 16);
        int e = (int)(lo >> 7);
        double ulp = Math.ScaleB(1.0, (e == 0 ? -126 : e - 127) - 7);
        double b = a + ulp; // the next bf16 up (2^128 stands in for infinity)
        double dLo = x - a, dHi = b - x;
        uint r = dLo < dHi || (dLo == dHi && (lo & 1) == 0) ? lo : lo + 1;
        return (ushort)((sign >> 16) | r);
    }

    [Fact]
    public void All_bf16_round_trip_through_float()
    {
        for (int b = 0; b < 65536; b++)
        {
            float f = BFloat16.ToFloat((ushort)b);
            ushort back = BFloat16.FromFloat(f);
            if (float.IsNaN(f))
            {
                Assert.True(float.IsNaN(BFloat16.ToFloat(back)));
                Assert.Equal(b | 64, back); // forced quiet, sign and payload kept
            }
            else Assert.Equal((ushort)b, back);
        }
    }

    [Fact]
    public void Bulk_conversions_match_scalar_including_NaN_and_tails()
    {
        var rng = new Random(7);
        var bits = new uint[70_001]; // odd length exercises the scalar tail
        for (int i = 0; i < bits.Length; i++) bits[i] = (uint)rng.Next(int.MinValue, int.MaxValue);
        for (int i = 0; i < 1000; i++) bits[i] = 0x7F80_0000u | (uint)i | (i % 2 == 0 ? 0x8000_0000u : 0); // NaNs and infinities
        var xs = System.Runtime.InteropServices.MemoryMarshal.Cast<uint, float>(bits).ToArray();
        var enc = new ushort[xs.Length];
        BFloat16.FromFloat(xs, enc);
        for (int i = 0; i < xs.Length; i++) Assert.Equal(BFloat16.FromFloat(xs[i]), enc[i]);
        var all = Enumerable.Range(0, 65536).Select(v => (ushort)v).ToArray();
        var dec = new float[all.Length];
        BFloat16.ToFloat(all, dec);
        for (int i = 0; i < all.Length; i++)
            Assert.Equal(BitConverter.SingleToUInt32Bits(BFloat16.ToFloat(all[i])), BitConverter.SingleToUInt32Bits(dec[i]));
    }

    [Fact]
    public void Float_to_bf16_rounds_to_nearest_even()
    {
        var rng = new Random(99);
        var xs = new float[300_000];
        for (int i = 0; i < xs.Length; i++)
        {
            uint u = (uint)rng.Next(int.MinValue, int.MaxValue);
            if (i % 3 == 0) u = (u & 0xFFFF0000) | 0x8000;         // exact ties
            if (float.IsNaN(BitConverter.UInt32BitsToSingle(u))) u &= 0x807FFFFF;
            xs[i] = BitConverter.UInt32BitsToSingle(u);
        }
        var bulk = new ushort[xs.Length];
        BFloat16.FromFloat(xs, bulk);
        for (int i = 0; i < xs.Length; i++)
        {
            Assert.Equal(Reference(xs[i]), BFloat16.FromFloat(xs[i]));
            Assert.Equal(bulk[i], BFloat16.FromFloat(xs[i]));
            // The result is one of the two neighbours and no farther than the other one.
            double x = xs[i], r = BFloat16.ToFloat(bulk[i]);
            if (!double.IsInfinity(r)) Assert.True(Math.Abs(x - r) <= Math.Max(Math.Abs(x) / 256, Math.ScaleB(1.0, -133)));
        }
        Assert.Equal(0x3F80, BFloat16.FromFloat(BitConverter.UInt32BitsToSingle(0x3F808000))); // tie → even
        Assert.Equal(0x3F82, BFloat16.FromFloat(BitConverter.UInt32BitsToSingle(0x3F818000))); // tie → even (up)
        Assert.Equal(0x7F80, BFloat16.FromFloat(BitConverter.UInt32BitsToSingle(0x7F7FFFFF))); // overflow → inf
        Assert.Equal(0x7FC1, BFloat16.FromFloat(BitConverter.UInt32BitsToSingle(0x7F810000))); // sNaN → quiet
        Assert.Equal(0x7FC0, BFloat16.FromFloat(BitConverter.UInt32BitsToSingle(0x7F800001))); // payload only in low half
    }
}
