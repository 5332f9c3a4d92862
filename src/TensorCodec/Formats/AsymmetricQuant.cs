using System.Numerics.Tensors;
using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace TensorCodec.Formats;

/// <summary>
/// Asymmetric min/max quantization, x ≈ zero + scale·c with c ∈ [0, 2^b − 1] (KIVI's per-group
/// quantizer, and the per-channel quantizer of .tkv sections). zero and scale are F16 and the
/// codes are computed against the rounded pair, which is what reconstructs.
/// <see cref="Range"/>, <see cref="Quantize"/>, <see cref="Pack"/> and <see cref="Unpack"/> are the
/// scalar reference; <see cref="Codes8"/> is the AVX2 fast path of code extraction (cross-checked in tests).
/// </summary>
internal static class AsymmetricQuant
{
    static readonly Vector256<uint>[] s_shifts = [.. Enumerable.Range(0, 9).Select(b => Vector256.Create(0u, (uint)b, 2u * (uint)b, 3u * (uint)b, 4u * (uint)b, 5u * (uint)b, 6u * (uint)b, 7u * (uint)b))];

    /// <summary>zero = min, scale = (max − min)/(2^b − 1), both rounded to F16. With <paramref name="clip"/>,
    /// the pair with the least squared error among ends trimmed by 0…30 % of the range.</summary>
    public static void Range(ReadOnlySpan<float> x, int bits, out Half scale, out Half zero, bool clip = false)
    {
        float min = TensorPrimitives.Min(x), max = TensorPrimitives.Max(x);
        int levels = (1 << bits) - 1;
        zero = (Half)min;
        scale = (Half)((max - (float)zero) / levels);
        if (!clip || max <= min) return;
        // With few levels, one outlier stretches the grid for the whole group.
        double best = SquaredError(x, scale, zero, levels);
        float range = max - min;
        for (int lo = 0; lo <= 3; lo++)
            for (int hi = 0; hi <= 3; hi++)
            {
                if (lo == 0 && hi == 0) continue;
                var z = (Half)(min + 0.1f * lo * range);
                var sc = (Half)((max - 0.1f * hi * range - (float)z) / levels);
                if ((float)sc <= 0) continue;
                double e = SquaredError(x, sc, z, levels);
                if (e < best) { best = e; scale = sc; zero = z; }
            }
    }

    static double SquaredError(ReadOnlySpan<float> x, Half scale, Half zero, int levels)
    {
        float s = (float)scale, z = (float)zero, inv = s == 0 ? 0 : 1f / s;
        double e = 0;
        foreach (float v in x)
        {
            float d = v - (z + s * Math.Clamp(MathF.Round((v - z) * inv), 0, levels));
            e += d * d;
        }
        return e;
    }

    /// <summary>The code of one value: round((x − zero)/scale) clamped to [0, 2^b − 1] (ties to even).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static int Code(float x, float zero, float inverseScale, int levels) => Math.Clamp((int)MathF.Round((x - zero) * inverseScale), 0, levels);

    /// <summary>1 / scale, or 0 for a zero scale (a constant group codes as 0).</summary>
    public static float InverseScale(Half scale) => (float)scale == 0 ? 0 : 1 / (float)scale;

    /// <summary>One code per byte.</summary>
    public static void Quantize(ReadOnlySpan<float> x, Half scale, Half zero, int bits, Span<byte> codes)
    {
        float z = (float)zero, inv = InverseScale(scale);
        int levels = (1 << bits) - 1;
        for (int t = 0; t < x.Length; t++) codes[t] = (byte)Code(x[t], z, inv, levels);
    }

    /// <summary>Codes packed little-endian, code t at bit t·b.</summary>
    public static void Pack(ReadOnlySpan<float> x, Half scale, Half zero, int bits, Span<byte> dst)
    {
        dst.Clear();
        float z = (float)zero, inv = InverseScale(scale);
        int levels = (1 << bits) - 1;
        for (int t = 0; t < x.Length; t++)
        {
            int c = Code(x[t], z, inv, levels);
            int bit = t * bits;
            // A code may straddle a byte boundary (3 bits): write both bytes it touches.
            int v = c << (bit & 7);
            dst[bit >> 3] |= (byte)v;
            if ((bit & 7) + bits > 8) dst[(bit >> 3) + 1] |= (byte)(v >> 8);
        }
    }

    /// <summary>Packed code <paramref name="index"/> (reference).</summary>
    public static int CodeAt(ReadOnlySpan<byte> src, int index, int bits)
    {
        int bit = index * bits;
        int w = src[bit >> 3] | ((bit >> 3) + 1 < src.Length ? src[(bit >> 3) + 1] << 8 : 0);
        return (w >> (bit & 7)) & ((1 << bits) - 1);
    }

    /// <summary>The value of code <paramref name="code"/>: zero + scale·c.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static float Value(int code, Half scale, Half zero) => (float)zero + (float)scale * code;

    /// <summary>Inverse of <see cref="Pack"/>: zero + scale·c.</summary>
    public static void Unpack(ReadOnlySpan<byte> src, Half scale, Half zero, int bits, Span<float> x)
    {
        float s = (float)scale, z = (float)zero;
        for (int t = 0; t < x.Length; t++) x[t] = z + s * CodeAt(src, t, bits);
    }

    /// <summary>Fast path: AVX2 is what <see cref="Codes8"/> needs.</summary>
    public static bool FastSupported => Avx2.IsSupported;

    /// <summary>8 consecutive packed codes starting at a byte boundary <paramref name="p"/>, as floats
    /// (reads a whole 32-bit word: buffers are padded by 8 bytes).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static unsafe Vector256<float> Codes8(byte* p, int bits)
    {
        if (bits == 8) return Avx.ConvertToVector256Single(Avx2.ConvertToVector256Int32(p));
        var w = Vector256.Create(Unsafe.ReadUnaligned<uint>(p));
        var shifted = Avx2.ShiftRightLogicalVariable(w, s_shifts[bits]);
        return Vector256.ConvertToSingle((shifted & Vector256.Create((1u << bits) - 1)).AsInt32());
    }
}
