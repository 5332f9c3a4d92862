using TensorCodec.Numerics;

namespace TensorCodec.Engine;

/// <summary>How a session's linear layers treat their input activations.</summary>
public enum LinearArithmetic : byte
{
    /// <summary>
    /// The engine's own: batches multiply the exact F32 activations with the decoded weights (evaluation
    /// measures the weight format alone); single tokens use the per-32 8-bit codes of the fused kernels.
    /// </summary>
    Default = 0,
    /// <summary>
    /// As llama.cpp's CPU backend: before every product the activations are rounded to the weight type's
    /// ggml <c>vec_dot_type</c> (q8_K for k-quants, iq*, tq*; q8_0 for q8_0, q4_0, q5_0, iq4_nl, mxfp4,
    /// q4_1/q5_1's q8_1; f16 for f16; bf16 for bf16; F32 weights see the exact input), then multiplied exactly.
    /// </summary>
    LikeLlamaCpp = 1,
}

/// <summary>The activation types ggml's CPU matmuls quantize their input to (<c>vec_dot_type</c>).</summary>
internal enum GgmlActivation : byte { None, Q8_0, Q8_K, F16, BF16 }

/// <summary>
/// ggml's activation rounding, reproduced value for value: the matrix product then runs on the
/// rounded F32 values with the exact kernels, so the only difference from llama.cpp left is float
/// summation order. q8_0 (and q8_1, whose values are the same): per 32, d = amax/127 stored as
/// fp16, codes round-half-even(x·127/amax) (ggml's AVX2 quantize_row_q8_0). q8_K: per 256, the
/// element of largest magnitude m, iscale = −127/m, codes min(127, round-half-even(iscale·x)),
/// d = 1/iscale in float (quantize_row_q8_K_ref, which x86 uses).
/// </summary>
internal static class GgmlActivations
{
    /// <summary>The vec_dot_type ggml's CPU backend uses for weights stored as <paramref name="typeName"/>.</summary>
    public static GgmlActivation For(string typeName) => typeName.ToLowerInvariant() switch
    {
        "f32" => GgmlActivation.None,
        "f16" => GgmlActivation.F16,
        "bf16" => GgmlActivation.BF16,
        "q4_0" or "q4_1" or "q5_0" or "q5_1" or "q8_0" or "iq4_nl" or "mxfp4" or "nvfp4" or "q1_0" or "q2_0" => GgmlActivation.Q8_0,
        "q2_k" or "q3_k" or "q4_k" or "q5_k" or "q6_k" or "iq4_xs" or "iq2_xxs" or "iq2_xs" or "iq2_s" or "iq3_xxs" or "iq3_s"
            or "iq1_s" or "iq1_m" or "tq1_0" or "tq2_0" => GgmlActivation.Q8_K,
        // Formats llama.cpp does not run (decoded to F32 by the engine) see exact activations.
        _ => GgmlActivation.None,
    };

    /// <summary>Block length of the rounding (the row length must be a multiple of it).</summary>
    public static int BlockOf(GgmlActivation a) => a switch { GgmlActivation.Q8_0 => 32, GgmlActivation.Q8_K => 256, _ => 1 };

    /// <summary>Writes the rounded values of <paramref name="x"/> to <paramref name="dst"/> (may be the same span).</summary>
    public static void Round(GgmlActivation a, ReadOnlySpan<float> x, Span<float> dst)
    {
        if (dst.Length < x.Length) throw new ArgumentException("destination too short", nameof(dst));
        int block = BlockOf(a);
        if (x.Length % block != 0) throw new ArgumentException($"row of {x.Length} is not a multiple of the {a} block {block}");
        switch (a)
        {
            case GgmlActivation.None: x.CopyTo(dst); break;
            case GgmlActivation.F16: for (int i = 0; i < x.Length; i++) dst[i] = (float)(Half)x[i]; break;
            case GgmlActivation.BF16: for (int i = 0; i < x.Length; i++) dst[i] = BitConverter.Int32BitsToSingle(Bf16Round(x[i]) << 16); break;
            case GgmlActivation.Q8_0: for (int b = 0; b < x.Length; b += 32) Q8_0(x.Slice(b, 32), dst.Slice(b, 32)); break;
            case GgmlActivation.Q8_K: for (int b = 0; b < x.Length; b += 256) Q8_K(x.Slice(b, 256), dst.Slice(b, 256)); break;
        }
    }

    static void Q8_0(ReadOnlySpan<float> x, Span<float> dst)
    {
        float amax = 0;
        foreach (float v in x) amax = MathF.Max(amax, MathF.Abs(v));
        float d = Fp16Bits.ToFloat(Fp16Bits.FromFloat(amax / 127f));
        float id = amax != 0 ? 127f / amax : 0f;
        for (int i = 0; i < x.Length; i++) dst[i] = d * MathF.Round(x[i] * id, MidpointRounding.ToEven);
    }

    static void Q8_K(ReadOnlySpan<float> x, Span<float> dst)
    {
        float max = 0, amax = 0;
        foreach (float v in x)
            if (MathF.Abs(v) > amax) { amax = MathF.Abs(v); max = v; }
        if (amax == 0) { dst[..x.Length].Clear(); return; }
        float iscale = -127f / max, d = 1 / iscale;
        for (int i = 0; i < x.Length; i++) dst[i] = d * MathF.Min(127f, MathF.Round(iscale * x[i], MidpointRounding.ToEven));
    }

    /// <summary>ggml's fp32 → bf16 (round to nearest even; NaN kept quiet).</summary>
    static int Bf16Round(float f)
    {
        uint u = BitConverter.SingleToUInt32Bits(f);
        if ((u & 0x7fffffff) > 0x7f800000) return (int)((u >> 16) | 64);
        return (int)((u + (0x7fff + ((u >> 16) & 1))) >> 16);
    }
}
