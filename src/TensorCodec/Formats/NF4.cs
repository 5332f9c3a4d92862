namespace TensorCodec.Formats;

/// <summary>
/// bitsandbytes NF4 (QLoRA's 4-bit NormalFloat): 16 levels at quantiles of a standard normal,
/// scaled to [−1, 1] with an exact zero. Block size 64 by default ("nf4"); other sizes are
/// "nf4_b32", "nf4_b128", … Layout and rounding: <see cref="Bnb4BitFormat"/>.
/// </summary>
internal sealed class NF4(int blockSize = 64) : Bnb4BitFormat(blockSize, Pivots, Identity, Levels, signMagnitude: false)
{
    /// <summary>The NF4 code values bitsandbytes uses, code 0 … 15.</summary>
    public static readonly float[] Levels =
    [
        -1.0f, -0.6961928009986877f, -0.5250730514526367f, -0.39491748809814453f,
        -0.28444138169288635f, -0.18477343022823334f, -0.09105003625154495f, 0.0f,
        0.07958029955625534f, 0.16093020141124725f, 0.24611230194568634f, 0.33791524171829224f,
        0.44070982933044434f, 0.5626170039176941f, 0.7229568362236023f, 1.0f,
    ];

    /// <summary>bnb's decision-tree thresholds (midpoints of neighbouring levels), ascending.</summary>
    private static readonly float[] Pivots =
    [
        -0.8480964004993439f, -0.6106329262256622f, -0.4599952697753906f, -0.33967943489551544f,
        -0.23460740596055984f, -0.13791173323988914f, -0.045525018125772476f, 0.03979014977812767f,
        0.1202552504837513f, 0.2035212516784668f, 0.2920137718319893f, 0.3893125355243683f,
        0.5016634166240692f, 0.6427869200706482f, 0.8614784181118011f,
    ];

    private static readonly byte[] Identity = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15];

    public override string Name => BlockSize == 64 ? "nf4" : $"nf4_b{BlockSize}";
}
