using TensorCodec.Engine;
using TensorCodec.Numerics;

namespace TensorCodec.Tests.Engine;

/// <summary>The activation rounding of <see cref="LinearArithmetic.LikeLlamaCpp"/>: ggml's q8_0 and q8_K, value for value.</summary>
public class GgmlActivationTests
{
    static float[] Random(int n, int seed)
    {
        var rng = new Random(seed);
        var x = new float[n];
        for (int i = 0; i < n; i++) x[i] = (float)((rng.NextDouble() - 0.5) * Math.Exp(4 * rng.NextDouble()));
        return x;
    }

    [Fact]
    public void Q8_K_is_one_scale_per_256_from_the_signed_largest_value()
    {
        var x = Random(512, 1);
        x[300] = -100f; // the largest magnitude of block 1 is negative: its codes flip sign, the values do not
        var r = new float[x.Length];
        GgmlActivations.Round(GgmlActivation.Q8_K, x, r);
        for (int b = 0; b < 2; b++)
        {
            var xb = x.AsSpan(b * 256, 256);
            float max = 0, amax = 0;
            foreach (float v in xb) if (Math.Abs(v) > amax) { amax = Math.Abs(v); max = v; }
            float iscale = -127f / max, d = 1 / iscale;
            for (int i = 0; i < 256; i++)
            {
                float q = r[b * 256 + i] / d;
                Assert.Equal(Math.Round(q), q, 3);
                Assert.InRange(Math.Abs(q), 0, 127.001);
                Assert.InRange(Math.Abs(r[b * 256 + i] - xb[i]), 0, Math.Abs(d) * 0.5001 + 1e-7);
            }
        }
        Assert.Equal(-100f, r[300], 4);
    }

    [Fact]
    public void Q8_0_has_an_fp16_scale_per_32()
    {
        var x = Random(96, 2);
        var r = new float[x.Length];
        GgmlActivations.Round(GgmlActivation.Q8_0, x, r);
        for (int b = 0; b < 3; b++)
        {
            float amax = 0;
            for (int i = 0; i < 32; i++) amax = Math.Max(amax, Math.Abs(x[b * 32 + i]));
            float d = Fp16Bits.ToFloat(Fp16Bits.FromFloat(amax / 127f));
            for (int i = 0; i < 32; i++)
            {
                float q = MathF.Round(x[b * 32 + i] * (127f / amax), MidpointRounding.ToEven);
                Assert.Equal(d * q, r[b * 32 + i]);
            }
        }
    }

    [Theory]
    [InlineData("q4_K", "Q8_K")]
    [InlineData("q6_K", "Q8_K")]
    [InlineData("iq4_xs", "Q8_K")]
    [InlineData("q8_0", "Q8_0")]
    [InlineData("iq4_nl", "Q8_0")]
    [InlineData("f16", "F16")]
    [InlineData("f32", "None")]
    [InlineData("nf4", "None")]
    public void Vec_dot_types_follow_ggml(string type, string expected) => Assert.Equal(expected, GgmlActivations.For(type).ToString());

    [Fact]
    public void F32_weights_see_exact_activations()
    {
        using var model = LlamaModel.Load(TestFiles.Sample("stories260K.bin"));
        var tokens = EngineFixtures.Tokens("random.tokens.csv")[..20];
        int vocab = model.Config.VocabSize;
        var a = new float[tokens.Length * vocab];
        var b = new float[a.Length];
        using (var s = model.CreateSession()) s.Forward(tokens, a);
        using (var s = model.CreateSession(new LlamaSessionOptions { Arithmetic = LinearArithmetic.LikeLlamaCpp })) s.Forward(tokens, b);
        Assert.Equal(a, b);
    }
}
