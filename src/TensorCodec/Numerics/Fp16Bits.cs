using System.Runtime.CompilerServices;

namespace TensorCodec.Numerics;

/// <summary>
/// Branch-light fp16 conversions for the quantizers' hot loops. Normal numbers are converted
/// with integer arithmetic (round to nearest even on the 13 dropped bits); everything else
/// (zero, subnormal, inf, NaN, overflow) goes through <see cref="Fp16"/>, so the results are
/// identical to it for every input (tested exhaustively).
/// </summary>
public static class Fp16Bits
{
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static ushort FromFloat(float f)
    {
        uint b = BitConverter.SingleToUInt32Bits(f);
        uint a = b & 0x7FFF_FFFF;
        // 2^-14 ≤ |f| < 2^16: a normal half, or a round-up into infinity that the carry handles
        if (a - 0x3880_0000u < 0x4780_0000u - 0x3880_0000u)
        {
            uint r = a + 0x0FFFu + ((a >> 13) & 1);
            return (ushort)(((b >> 16) & 0x8000) | ((r - 0x3800_0000u) >> 13));
        }
        return Fp16.FromFloat(f);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static float ToFloat(ushort h)
    {
        uint e = h & 0x7C00u;
        if (e != 0 && e != 0x7C00)
            return BitConverter.UInt32BitsToSingle(((uint)(h & 0x8000) << 16) | (((uint)(h & 0x7FFF) << 13) + 0x3800_0000u));
        return Fp16.ToFloat(h);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static float Read(ReadOnlySpan<byte> src, int offset) => ToFloat((ushort)(src[offset] | src[offset + 1] << 8));
}
