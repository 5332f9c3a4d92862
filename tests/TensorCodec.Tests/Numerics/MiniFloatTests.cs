using TensorCodec.Numerics;

namespace TensorCodec.Tests.Numerics;

public class MiniFloatTests
{
    public static TheoryData<string> Formats => new() { "e4m3", "e5m2", "e3m2", "e2m3", "e2m1" };

    private static MiniFloat Get(string name) => name switch
    {
        "e4m3" => MiniFloat.E4M3, "e5m2" => MiniFloat.E5M2, "e3m2" => MiniFloat.E3M2,
        "e2m3" => MiniFloat.E2M3, _ => MiniFloat.E2M1,
    };

    [Theory]
    [InlineData("e4m3", 448.0, 0x7E, 0x7F, 0.001953125)]
    [InlineData("e5m2", 57344.0, 0x7B, 0x7E, 1.52587890625e-5)]
    [InlineData("e3m2", 28.0, 0x1F, -1, 0.0625)]
    [InlineData("e2m3", 7.5, 0x1F, -1, 0.125)]
    [InlineData("e2m1", 6.0, 0x7, -1, 0.5)]
    public void Format_constants(string name, double max, int maxCode, int nanCode, double minSubnormal)
    {
        var f = Get(name);
        Assert.Equal((float)max, f.MaxFinite);
        Assert.Equal(maxCode, f.MaxFiniteCode);
        Assert.Equal(nanCode, f.NaNCode);
        Assert.Equal((float)minSubnormal, f.Decode(1));
    }

    [Theory]
    [MemberData(nameof(Formats))]
    public void Every_code_round_trips(string name)
    {
        var f = Get(name);
        for (int c = 0; c < 1 << f.Bits; c++)
        {
            float v = f.Decode((byte)c);
            byte sat = f.Encode(v, saturate: true), nonSat = f.Encode(v, saturate: false);
            if (float.IsNaN(v))
            {
                Assert.True(float.IsNaN(f.Decode(sat)));
                Assert.True(float.IsNaN(f.Decode(nonSat)));
            }
            else if (float.IsInfinity(v))
            {
                Assert.Equal(c, nonSat);
                Assert.Equal(f.MaxFinite * MathF.Sign(v), f.Decode(sat));
            }
            else
            {
                Assert.Equal(c, sat);
                Assert.Equal(c, nonSat);
            }
        }
    }

    [Fact]
    public void E4M3_and_E5M2_decode_known_values()
    {
        Assert.Equal(1f, MiniFloat.E4M3.Decode(0x38));
        Assert.Equal(-2.25f, MiniFloat.E4M3.Decode(0xC1));
        Assert.Equal(0.015625f, MiniFloat.E4M3.Decode(0x08)); // smallest normal 2^-6
        Assert.Equal(0.013671875f, MiniFloat.E4M3.Decode(0x07)); // largest subnormal 7·2^-9
        Assert.True(float.IsNaN(MiniFloat.E4M3.Decode(0xFF)));
        Assert.Equal(256f, MiniFloat.E4M3.Decode(0x78)); // S.1111.000 is finite in E4M3
        Assert.Equal(1f, MiniFloat.E5M2.Decode(0x3C));
        Assert.Equal(float.PositiveInfinity, MiniFloat.E5M2.Decode(0x7C));
        Assert.Equal(float.NegativeInfinity, MiniFloat.E5M2.Decode(0xFC));
        Assert.True(float.IsNaN(MiniFloat.E5M2.Decode(0x7D)));
        Assert.Equal(-0f, MiniFloat.E5M2.Decode(0x80));
        Assert.True(float.IsNegative(MiniFloat.E5M2.Decode(0x80)));
    }

    [Theory]
    [MemberData(nameof(Formats))]
    public void Midpoints_round_to_even_and_neighbours_round_to_nearest(string name)
    {
        var f = Get(name);
        for (int c = 0; c < f.MaxFiniteCode; c++)
        {
            double a = f.Decode((byte)c), b = f.Decode((byte)(c + 1));
            float mid = (float)((a + b) / 2); // exact: the formats have ≤ 3 mantissa bits
            int even = (c & 1) == 0 ? c : c + 1;
            Assert.Equal(even, f.Encode(mid));
            Assert.Equal(c, f.Encode(MathF.BitDecrement(mid)));
            Assert.Equal(c + 1, f.Encode(MathF.BitIncrement(mid)));
            int signBit = 1 << (f.Bits - 1);
            Assert.Equal(even | signBit, f.Encode(-mid));
        }
    }

    [Fact]
    public void Overflow_saturates_or_goes_to_inf_or_NaN()
    {
        var e4 = MiniFloat.E4M3;
        Assert.Equal(0x7E, e4.Encode(464f, saturate: false));  // midpoint 448/480 ties to even (448)
        Assert.Equal(0x7F, e4.Encode(465f, saturate: false));  // rounds past max → NaN
        Assert.Equal(0x7E, e4.Encode(465f, saturate: true));
        Assert.Equal(0xFE, e4.Encode(-1e9f, saturate: true));
        Assert.Equal(0xFF, e4.Encode(float.NegativeInfinity, saturate: false));
        Assert.Equal(0x7F, e4.Encode(float.NaN) & 0x7F); // .NET's float.NaN has the sign bit set
        var e5 = MiniFloat.E5M2;
        Assert.Equal(0x7B, e5.Encode(61439f, saturate: false));
        Assert.Equal(0x7C, e5.Encode(61440f, saturate: false)); // midpoint ties to even → inf (IEEE)
        Assert.Equal(0x7B, e5.Encode(61440f, saturate: true));
        Assert.Equal(0xFC, e5.Encode(float.NegativeInfinity, saturate: false));
        Assert.Equal(0xFB, e5.Encode(float.NegativeInfinity, saturate: true));
        Assert.True(float.IsNaN(e5.Decode(e5.Encode(float.NaN))));
        Assert.Equal(0x07, MiniFloat.E2M1.Encode(100f, saturate: false)); // no specials: always saturate
        Assert.Equal(0x00, MiniFloat.E4M3.Encode(0.0009765625f));          // 2^-10: tie between 0 and 2^-9 → 0
        Assert.Equal(0x80, MiniFloat.E4M3.Encode(-1e-30f));
    }

    [Fact]
    public void Span_conversions_match_scalar()
    {
        var rng = new Random(5);
        var xs = Enumerable.Range(0, 10_000).Select(_ => (float)((rng.NextDouble() * 2 - 1) * Math.Pow(2, rng.Next(-12, 12)))).ToArray();
        foreach (var f in new[] { MiniFloat.E4M3, MiniFloat.E5M2, MiniFloat.E3M2, MiniFloat.E2M3, MiniFloat.E2M1 })
        {
            var codes = new byte[xs.Length];
            f.Encode(xs, codes, saturate: true);
            var back = new float[xs.Length];
            f.Decode(codes, back);
            for (int i = 0; i < xs.Length; i++)
            {
                Assert.Equal(f.Encode(xs[i]), codes[i]);
                Assert.Equal(f.Decode(codes[i]), back[i]);
                if (MathF.Abs(xs[i]) <= f.MaxFinite)
                {
                    // nearest: no other code is strictly closer
                    float err = MathF.Abs(back[i] - xs[i]);
                    for (int c = 0; c < 1 << f.Bits; c++)
                    {
                        float v = f.Decode((byte)c);
                        if (float.IsFinite(v)) Assert.True(err <= MathF.Abs(v - xs[i]));
                    }
                }
            }
        }
    }
}

public class ScaleFormatTests
{
    [Fact]
    public void E8M0_half_is_exact_power_of_two()
    {
        for (int e = 0; e < 255; e++)
        {
            Assert.Equal((float)Math.ScaleB(1.0, e - 128), ScaleFormats.E8M0ToFloatHalf((byte)e));
            Assert.Equal((float)Math.ScaleB(1.0, e - 127), ScaleFormats.E8M0ToFloat((byte)e));
        }
        Assert.True(float.IsNaN(ScaleFormats.E8M0ToFloat(0xFF)));
        Assert.Equal(127, ScaleFormats.E8M0FromFloatFloor(1.5f));
    }

    [Fact]
    public void UE4M3_decodes_as_half_of_E4M3_and_round_trips()
    {
        for (int c = 1; c < 0x7F; c++)
        {
            float half = ScaleFormats.UE4M3ToFloatHalf((byte)c);
            Assert.Equal(MiniFloat.E4M3.Decode((byte)c) * 0.5f, half);
            // ggml never emits the top exponent: 256 and above encode as 0x7E.
            Assert.Equal(c < 0x78 ? c : 0x7E, ScaleFormats.FloatToUE4M3(half * 2));
        }
        Assert.Equal(0f, ScaleFormats.UE4M3ToFloatHalf(0x7F));
        Assert.Equal(0, ScaleFormats.FloatToUE4M3(-1f));
        Assert.Equal(0, ScaleFormats.FloatToUE4M3(float.NaN));
        Assert.Equal(0x7E, ScaleFormats.FloatToUE4M3(1e9f));
    }

    [Fact]
    public void UE4M3_encode_rounds_half_up_like_ggml()
    {
        // 1.0625 lies halfway between 1.0 (0x38) and 1.125 (0x39): ggml rounds up, RNE would not.
        Assert.Equal(0x39, ScaleFormats.FloatToUE4M3(1.0625f));
        Assert.Equal(0x38, MiniFloat.E4M3.Encode(1.0625f));
        Assert.Equal(0x01, ScaleFormats.FloatToUE4M3(0.0009765625f)); // subnormal half: (int)(0.5 + 0.5)
        Assert.Equal(0x40, ScaleFormats.FloatToUE4M3(1.9999f));       // mantissa carry into the exponent
    }
}
