using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace TensorCodec.Numerics;

/// <summary>Instruction-set levels the fast paths dispatch on, lowest first.</summary>
internal enum SimdLevel
{
    /// <summary>Scalar reference code only.</summary>
    Scalar,
    /// <summary>128-bit vectors (SSE2 / AdvSimd).</summary>
    Vector128,
    /// <summary>256-bit vectors with AVX2 and FMA.</summary>
    Avx2,
    /// <summary>AVX-512 instructions where a kernel has them.</summary>
    Avx512,
}

/// <summary>
/// The highest level the dispatchers may use: the hardware's, unless a test lowers it, so that every
/// branch of a kernel is cross-checked on one machine (an AVX-512 machine otherwise runs only the
/// AVX-512 branch). Each dispatcher keeps its own hardware check (a JIT constant) and also asks this
/// cap: one static field read per call, never inside an inner loop.
/// </summary>
internal static class Simd
{
    /// <summary>What this machine has.</summary>
    public static readonly SimdLevel Hardware = Detect();

    static SimdLevel cap = Hardware;

    /// <summary>The level in force: <see cref="Hardware"/> unless lowered by <see cref="Force"/>.</summary>
    public static SimdLevel Level => cap;

    public static bool AllowVector128 => cap >= SimdLevel.Vector128;
    public static bool AllowAvx2 => cap >= SimdLevel.Avx2;
    public static bool AllowAvx512 => cap >= SimdLevel.Avx512;

    /// <summary>
    /// Caps the level (at most the hardware's) until the result is disposed. Process-wide: tests that
    /// call it run in one non-parallel collection, and other code keeps producing the same results on
    /// the lower level, only slower.
    /// </summary>
    public static IDisposable Force(SimdLevel level)
    {
        var previous = cap;
        cap = level < Hardware ? level : Hardware;
        return new Restore(previous);
    }

    sealed class Restore(SimdLevel previous) : IDisposable
    {
        public void Dispose() => cap = previous;
    }

    static SimdLevel Detect() =>
        Avx512F.IsSupported && Avx512BW.IsSupported && Avx512DQ.VL.IsSupported && Avx2.IsSupported && Fma.IsSupported ? SimdLevel.Avx512
        : Avx2.IsSupported && Fma.IsSupported && Vector256.IsHardwareAccelerated ? SimdLevel.Avx2
        : Vector128.IsHardwareAccelerated ? SimdLevel.Vector128
        : SimdLevel.Scalar;
}
