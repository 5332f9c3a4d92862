using TensorCodec.Numerics;

namespace TensorCodec.Tests;

/// <summary>
/// Tests that lower <see cref="Simd"/>'s process-wide level. xunit runs a collection with parallelization
/// disabled after all parallel collections, so no other test sees the lowered level.
/// </summary>
[CollectionDefinition(Name, DisableParallelization = true)]
public sealed class SimdCollection
{
    public const string Name = "SIMD levels (not parallel)";
}

/// <summary>Runs a test at each instruction-set level, skipping (with the reason) the levels this machine lacks.</summary>
public static class SimdLevels
{
    /// <summary>Every level, lowest first, as theory data (level names: the enum is internal).</summary>
    public static TheoryData<string> All()
    {
        var d = new TheoryData<string>();
        foreach (var l in Enum.GetNames<SimdLevel>()) d.Add(l);
        return d;
    }

    /// <summary>The levels that select a vector path in the Formats/ kernels (AVX2 and AVX-512).</summary>
    public static TheoryData<string> Vector()
    {
        var d = new TheoryData<string>();
        d.Add(nameof(SimdLevel.Avx2));
        d.Add(nameof(SimdLevel.Avx512));
        return d;
    }

    /// <summary>Caps the level at <paramref name="level"/> until disposed; skips the test when the hardware lacks it.</summary>
    public static IDisposable Force(string level)
    {
        var l = Enum.Parse<SimdLevel>(level);
        Skip.If(l > Simd.Hardware, $"this machine has no {level} (its highest SIMD level is {Simd.Hardware})");
        return Simd.Force(l);
    }

    /// <summary>A skip reason for a test whose kernel needs <paramref name="what"/>.</summary>
    public static string Lacks(string what) => $"needs {what}; this machine's highest SIMD level is {Simd.Hardware}";
}
