namespace TensorCodec.Formats;

/// <summary>
/// bitsandbytes FP4: sign + 3-bit magnitude code whose values are bnb's E2M1-with-bias-3 table
/// divided by its maximum 12 (codes 0…7 → 0, 0.0625, 8, 12, 4, 6, 2, 3, over 12). Not OCP E2M1:
/// the code order and the tiny subnormal differ. Block size 64 by default ("fp4"; "fp4_b128"…).
/// Layout and rounding: <see cref="Bnb4BitFormat"/>.
/// </summary>
internal sealed class BnbFP4(int blockSize = 64) : Bnb4BitFormat(blockSize, Pivots, RankToCode, Levels, signMagnitude: true)
{
    /// <summary>Decoded values by code, as bnb's dequantization tree returns them (sign in bit 3).</summary>
    public static readonly float[] Levels =
    [
        0f, 5.208333333e-03f, 0.66666667f, 1.0f, 0.33333333f, 0.5f, 0.16666667f, 0.25f,
        -0f, -5.208333333e-03f, -0.66666667f, -1.0f, -0.33333333f, -0.5f, -0.16666667f, -0.25f,
    ];

    /// <summary>bnb's thresholds on |v|, ascending (its tree compares with strict "&gt;").</summary>
    private static readonly float[] Pivots = [0.00260417f, 0.0859375f, 0.20833333f, 0.29166667f, 0.4166667f, 0.583333f, 0.8333333f];

    /// <summary>Magnitude rank (0 = smallest) → code.</summary>
    private static readonly byte[] RankToCode = [0, 1, 6, 7, 4, 5, 2, 3];

    public override string Name => BlockSize == 64 ? "fp4" : $"fp4_b{BlockSize}";
}
