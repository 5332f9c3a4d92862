using System.Runtime.InteropServices;

namespace TensorCodec.Tests.Engine;

/// <summary>Reference data for the engine tests: copied fixtures, bundled samples, and optional shared files.</summary>
static class EngineFixtures
{
    public static string Fixture(string name) => TestFiles.Fixture(Path.Combine("engine", name));

    public static int[] Tokens(string csvFixture) =>
        File.ReadAllText(Fixture(csvFixture)).Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries)
            .Select(int.Parse).ToArray();

    public static float[] Logits(string f32Fixture) => MemoryMarshal.Cast<byte, float>(File.ReadAllBytes(Fixture(f32Fixture))).ToArray();

    /// <summary>The largest |a−b| over all elements, with where it happened.</summary>
    public static (double Max, int Index) MaxAbsDiff(ReadOnlySpan<float> a, ReadOnlySpan<float> b)
    {
        Assert.Equal(a.Length, b.Length);
        double max = 0; int at = -1;
        for (int i = 0; i < a.Length; i++)
        {
            double d = Math.Abs((double)a[i] - b[i]);
            if (!(d <= max)) { max = d; at = i; } // NaN counts as the worst
        }
        return (max, at);
    }
}
