using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;
using TensorCodec.Numerics;

namespace TensorCodec.Engine;

/// <summary>
/// A <see cref="GgmlQ8"/> row's values d·q back in F32: the activations as llama.cpp rounds them to the
/// vec_dot_type, equal value for value to <see cref="GgmlActivations.Round"/> (the same float product
/// of the same scale and code; ±0 may differ). An F32 product with them then has llama.cpp's rounding up
/// to summation order, which is how <see cref="IQuantMatrix"/> runs <c>--like-llama-cpp</c> batches
/// through decoded weight tiles.
/// </summary>
internal static unsafe class GgmlQ8Values
{
    /// <summary>Writes the <paramref name="cols"/> values of the row at <paramref name="xq"/> (layout <paramref name="kind"/>) to <paramref name="dst"/>.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void Dequantize(GgmlActivation kind, byte* xq, int cols, float* dst)
    {
        int block = GgmlActivations.BlockOf(kind);
        if (kind is not (GgmlActivation.Q8_0 or GgmlActivation.Q8_K) || cols % block != 0)
            throw new ArgumentException($"a {kind} row of {cols} values is not a GgmlQ8 layout");
        sbyte* q = (sbyte*)xq;
        float* d = (float*)(xq + cols);
        int i = 0;
        if (Simd.AllowAvx2 && Avx2.IsSupported)
            // Both block lengths are multiples of 32, so this covers the row; vpmovsxbd, then one exact int→float and one multiply.
            for (; i < cols; i += 8)
                (Avx.ConvertToVector256Single(Avx2.ConvertToVector256Int32(q + i)) * Vector256.Create(d[i / block])).Store(dst + i);
        for (; i < cols; i++) dst[i] = d[i / block] * q[i];
    }
}
