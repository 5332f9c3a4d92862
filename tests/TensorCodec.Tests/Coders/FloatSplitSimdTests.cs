using TensorCodec.Coders;
using TensorCodec.Numerics;

namespace TensorCodec.Tests.Coders;

/// <summary>Split and merge at every instruction-set level against the scalar reference, at lengths around the
/// vector loops' 16- and 64-element steps.</summary>
[Collection(SimdCollection.Name)]
public class FloatSplitSimdTests
{
    public static TheoryData<string> Levels() => SimdLevels.All();

    [SkippableTheory]
    [MemberData(nameof(Levels))]
    public void Split_and_merge_give_the_scalar_bytes_at_every_level(string level)
    {
        var r = new Random(17);
        foreach (var t in new[] { SplitTransform.BF16, SplitTransform.F16, SplitTransform.F32 })
        {
            int e = FloatSplit.ElementSize(t), sc = FloatSplit.StreamCount(t);
            foreach (int n in new[] { 0, 1, 15, 16, 63, 64, 65, 127, 128, 129, 1000, 4099 })
            {
                var raw = new byte[n * e + 1];
                r.NextBytes(raw);
                raw = raw[..(n * e)];
                var expected = new byte[sc * n];
                using (Simd.Force(SimdLevel.Scalar)) FloatSplit.Split(t, raw, expected);
                var actual = new byte[sc * n];
                var back = new byte[raw.Length];
                using (SimdLevels.Force(level))
                {
                    FloatSplit.Split(t, raw, actual);
                    FloatSplit.Merge(t, expected, back);
                }
                Assert.True(expected.AsSpan().SequenceEqual(actual), $"{t} n={n}: split differs at {level}");
                Assert.True(raw.AsSpan().SequenceEqual(back), $"{t} n={n}: merge differs at {level}");
            }
        }
    }
}
