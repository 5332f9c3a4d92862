namespace TensorCodec.Formats;

/// <summary>
/// E2M1 (FP4) codes as ggml stores them: doubled, so they are small integers
/// (0, 0.5, 1, 1.5, 2, 3, 4, 6 → 0, 1, 2, 3, 4, 6, 8, 12, sign in bit 3), paired with a scale
/// decoded at half weight. Nearest code by exhaustive search; the first (lowest) index wins ties.
/// </summary>
internal static class Fp4
{
    public static ReadOnlySpan<sbyte> Values => [0, 1, 2, 3, 4, 6, 8, 12, 0, -1, -2, -3, -4, -6, -8, -12];

    public static int BestIndex(float x, float e)
    {
        var v = Values;
        int best = 0;
        float bestErr = MathF.Abs(v[0] * e - x);
        for (int i = 1; i < 16; i++)
        {
            float err = MathF.Abs(v[i] * e - x);
            if (err < bestErr) { best = i; bestErr = err; }
        }
        return best;
    }
}
