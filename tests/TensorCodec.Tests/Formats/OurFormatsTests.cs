using CsCheck;
using TensorCodec.Formats;
using TensorCodec.Numerics;

namespace TensorCodec.Tests.Formats;

/// <summary>The non-ggml formats: round-trip bounds, exact values, edge blocks, fast = reference.</summary>
public class OurFormatsTests
{
    private static float[] Gaussian(int n, int seed, float scale = 1f)
    {
        var rng = new Random(seed);
        var x = new float[n];
        for (int i = 0; i < n; i++)
            x[i] = (float)(Math.Sqrt(-2 * Math.Log(1 - rng.NextDouble())) * Math.Cos(2 * Math.PI * rng.NextDouble())) * scale;
        return x;
    }

    private static float[] RoundTrip(IMatrixFormat f, float[] x, int nPerRow, out int bytes)
    {
        var buf = new byte[f.GetEncodedLength(x, nPerRow)];
        // iq2_xxs, iq2_xs and iq1_s refuse to run without importance weights (as ggml does); give them uniform ones.
        bool needs = f is BlockMatrixFormat b && BlockFormats.RequiresImportance(b.Format);
        bytes = f.Encode(x, nPerRow, buf, needs ? Enumerable.Repeat(1f, nPerRow).ToArray() : default);
        Assert.Equal(buf.Length, bytes);
        Assert.Equal(x.Length, f.GetDecodedLength(buf, nPerRow));
        var y = new float[x.Length];
        f.Decode(buf, nPerRow, y);
        return y;
    }

    public static TheoryData<string> AllNames()
    {
        var d = new TheoryData<string>();
        foreach (var n in QuantFormats.KnownNames) d.Add(n);
        foreach (var n in new[] { "nf4_b128", "fp4_b32", "int8_block_b256", "nf4_b128_dq", "llm_int8_t3.5" }) d.Add(n);
        return d;
    }

    [Theory]
    [MemberData(nameof(AllNames))]
    public void Every_format_round_trips_with_small_error(string name)
    {
        var f = QuantFormats.Get(name);
        Assert.Equal(name, f.Name, ignoreCase: true);
        const int cols = 512, rows = 32;
        var x = Gaussian(rows * cols, Seeds.Of(name), 0.02f);
        var y = RoundTrip(f, x, cols, out int bytes);
        var s = QuantMetrics.Compare(name, x, y, bytes);
        double bound = MinSqnrDb(name);
        Assert.True(s.SqnrDb >= bound, $"{name}: SQNR {s.SqnrDb:F2} dB < {bound:F2} dB, the least its grid allows on Gaussian data");
        Assert.True(s.BitsPerWeight is > 1.5 and < 33 || name == "q1_0" && s.BitsPerWeight == 1.125, $"{name}: {s.BitsPerWeight} bpw");
        // zeros stay zeros
        var z = RoundTrip(f, new float[rows * cols], cols, out _);
        Assert.All(z, v => Assert.Equal(0f, v));
    }

    /// <summary>
    /// The least SQNR a correct format reaches on Gaussian data, from its grid alone:
    /// <list type="bullet">
    /// <item>Minifloat elements with M mantissa bits (fp8, mxfp, nvfp4, fp4, f16, bf16): rounding to
    ///   nearest keeps every normal value within 2^−(M+1) of itself, so SQNR ≥ 6.02·(M + 1) dB.</item>
    /// <item>Integer grids of L levels per scaled block (q*, iq4, int*, nf4, int8_block, llm_int8):
    ///   the levels span ±amax and a Gaussian block's amax stays within 4σ, so the step is at most
    ///   8σ/(L − 1) and the rounding noise step²/12: SQNR ≥ 20·log10(L − 1) − 7.27 dB (40.8 dB for
    ///   8 bits, 16.2 for 4). A power-of-two block scale (mxint8) can double the step: 6.02 dB less.</item>
    /// <item>Ternary (tq1_0, tq2_0): that bound is vacuous (−1.3 dB); the ideal ternary absmax
    ///   quantizer reaches 2.1 dB on Gaussian blocks of 256 and an all-zero output 0 dB, so 1 dB.</item>
    /// <item>Signs of the mean magnitude (q1_0): on Gaussian data E|x|² = 2σ²/π, so the error is
    ///   σ²(1 − 2/π) and SQNR = −10·log10(1 − 2/π) = 4.4 dB; 3 dB leaves room for blocks of 128.</item>
    /// </list>
    /// A format that lost a bit of precision falls about 6 dB short of its bound.
    /// </summary>
    internal static double MinSqnrDb(string name)
    {
        string n = name.ToLowerInvariant();
        double Float(int mantissa) => 20 * Math.Log10(2) * (mantissa + 1);
        double Grid(int bits) => 20 * Math.Log10((1 << bits) - 1) + 10 * Math.Log10(12.0 / 64);
        var minifloat = System.Text.RegularExpressions.Regex.Match(n, @"e\dm(\d)");
        if (minifloat.Success) return Float(minifloat.Groups[1].Value[0] - '0');
        if (n == "f16") return Float(10);
        if (n == "bf16") return Float(7);
        if (n.Contains("fp4")) return Float(1); // e2m1: mxfp4, ocp_mxfp4, nvfp4, nvfp4_16, fp4*
        if (n.StartsWith("tq")) return 1.0;
        if (n == "q1_0") return 3.0;
        if (n == "mxint8") return Grid(8) - 20 * Math.Log10(2);
        if (n.StartsWith("nf4")) return Grid(4);
        if (n.StartsWith("llm_int8") || n.StartsWith("int8_block")) return Grid(8);
        var integer = System.Text.RegularExpressions.Regex.Match(n, @"^(?:q|iq|int)(\d)");
        Assert.True(integer.Success, $"{name}: no SQNR bound for this format");
        return Grid(integer.Groups[1].Value[0] - '0');
    }

    [Fact]
    public void Unknown_type_lists_the_known_ones()
    {
        var e = Assert.Throws<KeyNotFoundException>(() => QuantFormats.Get("q9_9"));
        Assert.Contains("q4_K", e.Message);
        Assert.Contains("nf4", e.Message);
        Assert.Contains("int4_g128", e.Message);
        Assert.False(QuantFormats.TryGet("nf4_b7", out _));
    }

    [Fact]
    public void Bits_per_weight_counts_scales()
    {
        var x = Gaussian(64 * 256, 1);
        Assert.Equal(4.5, QuantMetrics.Measure(QuantFormats.Get("q4_0"), x, 256).BitsPerWeight, 6);
        Assert.Equal(4.5, QuantMetrics.Measure(QuantFormats.Get("nf4"), x, 256).BitsPerWeight, 6);        // 4 + 32/64
        Assert.Equal(8.5, QuantMetrics.Measure(QuantFormats.Get("int8_block"), x, 256).BitsPerWeight, 6); // 8 + 32/64
        Assert.Equal(8.25, QuantMetrics.Measure(QuantFormats.Get("mxfp8_e4m3"), x, 256).BitsPerWeight, 6);
        Assert.Equal(6.25, QuantMetrics.Measure(QuantFormats.Get("mxfp6_e2m3"), x, 256).BitsPerWeight, 6);
        Assert.Equal(4.25, QuantMetrics.Measure(QuantFormats.Get("ocp_mxfp4"), x, 256).BitsPerWeight, 6);
        var nv = QuantMetrics.Measure(QuantFormats.Get("nvfp4_16"), x, 256);
        Assert.InRange(nv.BitsPerWeight, 4.5, 4.52); // 4 + 8/16 + tensor scale + header
        var dq = QuantMetrics.Measure(QuantFormats.Get("nf4_dq"), x, 256);
        Assert.InRange(dq.BitsPerWeight, 4.125, 4.15); // 4 + 8/64 + chunk scales + header
    }

    [Fact]
    public void Metrics_are_exact_on_known_values()
    {
        float[] x = [1, 2, 3, 4];
        float[] y = [1, 2, 3, 5];
        var s = QuantMetrics.Compare("t", x, y, 2);
        Assert.Equal(0.25, s.Mse);
        Assert.Equal(1, s.MaxAbsError);
        Assert.Equal(10 * Math.Log10(30.0), s.SqnrDb, 10);
        Assert.Equal(34 / Math.Sqrt(30 * 39.0), s.Cosine, 12);
        Assert.Equal(4.0, s.BitsPerWeight);
        Assert.True(double.IsPositiveInfinity(QuantMetrics.Compare("t", x, x, 1).SqnrDb));
    }

    // ---- uniform formats: |x − dq| ≤ step/2 ----

    [Fact]
    public void Int8_block_error_is_at_most_half_a_step()
    {
        Gen.Float[-1e4f, 1e4f].Array[64 * 4].Sample(x =>
        {
            var f = new Int8Block();
            var q = new byte[4 * f.BlockBytes];
            f.Quantize(x, q, 64);
            var y = new float[x.Length];
            f.Dequantize(q, y);
            for (int b = 0; b < 4; b++)
            {
                float d = Bnb4BitFormat.AbsMax(x.AsSpan(b * 64, 64)) / 127f;
                for (int j = 0; j < 64; j++)
                    Assert.True(Math.Abs(x[b * 64 + j] - y[b * 64 + j]) <= d * 0.5001 + 1e-30, $"{x[b * 64 + j]} → {y[b * 64 + j]} (d {d})");
            }
        }, iter: 300);
    }

    [Theory]
    [InlineData(2, 32)]
    [InlineData(3, 64)]
    [InlineData(4, 128)]
    [InlineData(8, 32)]
    public void Gptq_error_is_at_most_half_a_step(int bits, int group)
    {
        var f = new IntNGroupwise(bits, group);
        Gen.Float[-100f, 100f].Array[32 * group * 2].Sample(x =>
        {
            var y = RoundTrip(f, x, group * 2, out _);
            for (int r = 0; r < 32; r++)
                for (int g = 0; g < 2; g++)
                {
                    var xs = x.AsSpan(r * group * 2 + g * group, group);
                    float s = Fp16.ToFloat(f.GroupParams(xs).Scale);
                    for (int j = 0; j < group; j++)
                    {
                        int i = r * group * 2 + g * group + j;
                        Assert.True(Math.Abs(x[i] - y[i]) <= s * 0.5001, $"int{bits}: {x[i]} → {y[i]} (s {s})");
                    }
                }
        }, iter: 40);
    }

    [Fact]
    public void Gptq_packs_like_gptq()
    {
        // 8 rows × 32 cols, 4-bit, group 32: q = column index mod 16 pattern, zero point via lo = 0.
        const int rows = 8, cols = 32;
        var x = new float[rows * cols];
        for (int r = 0; r < rows; r++)
            for (int c = 0; c < cols; c++) x[r * cols + c] = c % 16; // lo 0, hi 15 → s = 1, z = 0, q = x
        var f = new IntNGroupwise(4, 32);
        var buf = new byte[f.GetEncodedLength(x, cols)];
        f.Encode(x, cols, buf);
        int o = MatrixHeader.Size(f.Name) + 8;
        // qweight[0][r] packs cols 0..7 of row r: 0x76543210
        Assert.Equal(0x76543210u, BitConverter.ToUInt32(buf, o));
        Assert.Equal(0x76543210u, BitConverter.ToUInt32(buf, o + 4 * (rows - 1)));
        // qweight[1][0] packs cols 8..15: 0xFEDCBA98
        Assert.Equal(0xFEDCBA98u, BitConverter.ToUInt32(buf, o + 4 * rows));
        int zAt = o + 4 * rows * 4;
        Assert.Equal(0u, BitConverter.ToUInt32(buf, zAt)); // zeros of 8 rows in one word
        Assert.Equal((ushort)0x3C00, BitConverter.ToUInt16(buf, zAt + 4)); // scale 1.0 in fp16
        Assert.Equal(x, RoundTrip(f, x, cols, out _));
    }

    [Fact]
    public void Llm_int8_keeps_outlier_columns_in_fp16()
    {
        const int rows = 4, cols = 16;
        var x = Gaussian(rows * cols, 5, 0.5f);
        x[2 * cols + 3] = 9.5f;   // column 3 becomes an outlier column
        x[1 * cols + 11] = -6f;   // ≥ threshold counts too
        var f = new LlmInt8();
        Assert.Equal([3, 11], f.OutlierColumns(x, cols));
        var y = RoundTrip(f, x, cols, out _);
        for (int r = 0; r < rows; r++)
        {
            Assert.Equal(Fp16.Round(x[r * cols + 3]), y[r * cols + 3]);
            Assert.Equal(Fp16.Round(x[r * cols + 11]), y[r * cols + 11]);
            float absmax = 0;
            for (int c = 0; c < cols; c++) if (c != 3 && c != 11) absmax = Math.Max(absmax, Math.Abs(x[r * cols + c]));
            for (int c = 0; c < cols; c++)
                if (c != 3 && c != 11) Assert.True(Math.Abs(x[r * cols + c] - y[r * cols + c]) <= absmax / 127 * 0.5001);
        }
        Assert.Empty(new LlmInt8(100f).OutlierColumns(x, cols).ToArray());
    }

    // ---- bitsandbytes 4-bit ----

    [Fact]
    public void Nf4_and_fp4_levels_are_exact_and_nearest()
    {
        foreach (Bnb4BitFormat f in new Bnb4BitFormat[] { new NF4(), new BnbFP4() })
        {
            var lv = f.CodeValues;
            for (int c = 0; c < 16; c++)
            {
                int got = f.EncodeNormalized(lv[c]);
                Assert.Equal(lv[c], lv[got]); // −0 and +0 are the same value
            }
            // nearest level for a sweep of normalized values
            for (float v = -1f; v <= 1f; v += 0.00037f)
            {
                float best = float.MaxValue;
                for (int c = 0; c < 16; c++) best = Math.Min(best, Math.Abs(lv[c] - v));
                Assert.True(Math.Abs(lv[f.EncodeNormalized(v)] - v) <= best + 2e-7f, $"{f.Name} {v}");
            }
        }
        Assert.Equal(-1f, NF4.Levels[0]);
        Assert.Equal(0f, NF4.Levels[7]);
        Assert.Equal(1f, NF4.Levels[15]);
    }

    [Fact]
    public void Nf4_block_with_max_and_equal_values_is_exact()
    {
        var f = new NF4();
        var x = new float[64];
        Array.Fill(x, -3.25f);
        var y = RoundTrip(new BlockMatrixFormat(f), x, 64, out _);
        Assert.Equal(x, y);
        x = Gaussian(64, 9);
        x[17] = 7.5f; x[40] = -7.5f; // ±absmax map to ±1 exactly
        y = RoundTrip(new BlockMatrixFormat(f), x, 64, out _);
        Assert.Equal(7.5f, y[17]);
        Assert.Equal(-7.5f, y[40]);
    }

    [SkippableTheory]
    [InlineData("nf4")]
    [InlineData("fp4")]
    [InlineData("nf4_b32")]
    [InlineData("fp4_b256")]
    public void Bnb_fast_paths_match_reference(string name)
    {
        Skip.IfNot(Bnb4BitFast.IsSupported, SimdLevels.Lacks("AVX2"));
        var f = (Bnb4BitFormat)BlockFormats.Get(name);
        int bs = f.BlockSize;
        Gen.Float[-1e3f, 1e3f].Array[bs * 3].Sample(x =>
        {
            x[5] = 0f; x[6] = -0f;
            FastPathChecks.FastMatchesReference(x, 3 * f.BlockBytes, f.QuantizeReference, f.QuantizeFast, f.DequantizeReference, f.DequantizeFast);
        }, iter: 500);
        // blocks of zeros and of one repeated value
        var z = new float[bs * 2];
        Array.Fill(z, 0.3f, bs, bs);
        var r = new byte[2 * f.BlockBytes];
        var s = new byte[r.Length];
        f.QuantizeReference(z, r);
        f.QuantizeFast(z, s);
        Assert.Equal(r, s);
    }

    [Fact]
    public void Int8_block_fast_path_matches_reference()
    {
        foreach (int bs in new[] { 16, 64, 96 })
        {
            var f = new Int8Block(bs);
            Gen.Float[-1e5f, 1e5f].Array[bs * 3].Sample(x =>
                FastPathChecks.FastMatchesReference(x, 3 * f.BlockBytes, f.QuantizeReference, f.QuantizeFast, f.DequantizeReference, f.DequantizeFast), iter: 300);
        }
    }

    [Fact]
    public void Double_quant_stays_close_to_single()
    {
        var x = Gaussian(64 * 1024, 3, 0.05f);
        var single = QuantMetrics.Measure(QuantFormats.Get("nf4"), x, 1024);
        var dq = QuantMetrics.Measure(QuantFormats.Get("nf4_dq"), x, 1024);
        Assert.True(dq.BitsPerWeight < single.BitsPerWeight - 0.3);
        Assert.True(dq.SqnrDb > single.SqnrDb - 0.5, $"{dq.SqnrDb} vs {single.SqnrDb}");
        Assert.Equal(256, Bnb4BitDoubleQuant.DynamicMap.Length);
        Assert.InRange(Bnb4BitDoubleQuant.DynamicMap[0], -1f, -0.99f);
        Assert.Equal(1f, Bnb4BitDoubleQuant.DynamicMap[255]);
        Assert.Contains(0f, Bnb4BitDoubleQuant.DynamicMap);
    }

    // ---- OCP MX and NVFP4 ----

    public static TheoryData<string> MxNames() => ["mxfp8_e4m3", "mxfp8_e5m2", "mxfp6_e3m2", "mxfp6_e2m3", "ocp_mxfp4", "mxint8"];

    [Theory]
    [MemberData(nameof(MxNames))]
    public void Mx_represents_grid_values_exactly(string name)
    {
        var f = (OcpMxFormat)BlockFormats.Get(name);
        var rng = new Random(name.Length);
        var all = Enumerable.Range(0, 1 << f.ElementBits).Select(f.DecodeElement).Where(float.IsFinite).ToArray();
        float maxElem = all.Max();
        var codes = all.Where(v => Math.Abs(v) <= maxElem).ToArray(); // mxint8's −2 saturates to −127/64
        for (int trial = 0; trial < 200; trial++)
        {
            int s = rng.Next(-100, 100);
            var x = new float[32];
            for (int j = 0; j < 32; j++) x[j] = MathF.ScaleB(codes[rng.Next(codes.Length)], s);
            x[rng.Next(32)] = MathF.ScaleB(rng.Next(2) == 0 ? maxElem : -maxElem, s); // ±max pins the scale to 2^s
            var y = RoundTrip(new BlockMatrixFormat(f), x, 32, out _);
            for (int j = 0; j < 32; j++) Assert.Equal(x[j], y[j]);
        }
    }

    [Theory]
    [MemberData(nameof(MxNames))]
    public void Mx_scale_follows_the_spec_and_saturates(string name)
    {
        var f = (OcpMxFormat)BlockFormats.Get(name);
        var x = Gaussian(32, 11, 3f);
        var q = new byte[f.BlockBytes];
        f.Quantize(x, q, 32);
        float amax = x.Max(MathF.Abs);
        Assert.Equal((int)Math.Floor(Math.Log2(amax)) - f.ElementEmax + 127, q[0]);
        var y = new float[32];
        f.Dequantize(q, y);
        float maxElem = Enumerable.Range(0, 1 << f.ElementBits).Select(f.DecodeElement).Where(float.IsFinite).Max();
        float X = MathF.ScaleB(1f, q[0] - 127);
        for (int j = 0; j < 32; j++) Assert.True(Math.Abs(y[j]) <= maxElem * X);
        // all-zero block: zero elements; NaN in a block: NaN scale
        Array.Clear(x);
        f.Quantize(x, q, 32);
        Assert.Equal(0, q[0]);
        x[3] = float.NaN;
        f.Quantize(x, q, 32);
        Assert.Equal(0xFF, q[0]);
        f.Dequantize(q, y);
        Assert.All(y, v => Assert.True(float.IsNaN(v)));
    }

    [Fact]
    public void Mx_elements_round_to_nearest_even()
    {
        var f = new OCP_MXFP4();
        // scale 2^0 (amax 6 → floor(log2 6) − 2 = 0); 2.5 is a tie between 2 and 3 → 2 (even mantissa), 5 → 4, 0.25 → 0
        float[] x = [6f, 2.5f, 5f, 0.25f, -0.75f, 1.25f, .. new float[26]];
        var y = RoundTrip(new BlockMatrixFormat(f), x, 32, out _);
        Assert.Equal([6f, 2f, 4f, 0f, -1f, 1f], y[..6]);
    }

    [Fact]
    public void Nvfp4_16_uses_the_tensor_scale()
    {
        var f = new NVFP4_16();
        var x = Gaussian(16 * 64, 4, 0.1f);
        var y = RoundTrip(f, x, 64, out int bytes);
        Assert.Equal(MatrixHeader.Size("nvfp4_16") + 4 + 64 * 9, bytes);
        var s = QuantMetrics.Compare("nvfp4_16", x, y, bytes);
        Assert.True(s.SqnrDb > 15, $"{s.SqnrDb}");
        // ±amax of the tensor survives exactly: block scale 448 (E4M3 max) × element 6 × g
        float amax = x.Max(MathF.Abs);
        int at = Array.FindIndex(x, v => MathF.Abs(v) == amax);
        Assert.Equal(x[at], y[at], 5);
    }

    [Fact]
    public void Headers_refuse_the_wrong_format_and_row_length()
    {
        var x = Gaussian(32 * 128, 2);
        var f = QuantFormats.Get("int4_g128");
        var buf = new byte[f.GetEncodedLength(x, 128)];
        f.Encode(x, 128, buf);
        Assert.Throws<InvalidDataException>(() => QuantFormats.Get("llm_int8").GetDecodedLength(buf, 128));
        Assert.Throws<ArgumentException>(() => f.GetDecodedLength(buf, 64));
        Assert.Throws<InvalidDataException>(() => f.GetDecodedLength(buf.AsSpan(0, buf.Length - 1), 128));
        Assert.Throws<ArgumentException>(() => f.GetEncodedLength(x, 100));
    }
}

public class Fp16BitsTests
{
    [Fact]
    public void Fast_half_conversions_match_System_Half_everywhere()
    {
        for (int h = 0; h < 65536; h++)
        {
            float a = Fp16.ToFloat((ushort)h), b = Fp16Bits.ToFloat((ushort)h);
            Assert.Equal(BitConverter.SingleToInt32Bits(a), BitConverter.SingleToInt32Bits(b));
        }
        // every float whose top 19 bits vary, plus the neighbours of each rounding boundary
        for (long u = 0; u <= 0xFFFF_FFFFL; u += 0x1000)
        {
            foreach (long d in new long[] { 0, 1, 0xFFF, 0x1000 - 1, 0x800 - 1, 0x800, 0x801 })
            {
                uint bits = (uint)((u + d) & 0xFFFF_FFFF);
                float f = BitConverter.UInt32BitsToSingle(bits);
                Assert.Equal(Fp16.FromFloat(f), Fp16Bits.FromFloat(f));
            }
        }
    }
}
