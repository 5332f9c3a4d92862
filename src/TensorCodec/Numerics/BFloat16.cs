using System.Runtime.CompilerServices;

namespace TensorCodec.Numerics;

/// <summary>
/// bfloat16 (the top half of a float32). Encoding rounds to nearest, ties to even, by adding
/// 0x7FFF plus the lsb of the kept half; NaN is forced quiet by setting bit 6 of the result so a
/// signalling NaN whose payload lives only in the low half cannot turn into infinity (ggml does
/// the same, and the golden bf16 rows were produced that way).
/// </summary>
public static class BFloat16
{
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static ushort FromFloat(float f)
    {
        uint u = BitConverter.SingleToUInt32Bits(f);
        if ((u & 0x7FFF_FFFF) > 0x7F80_0000)
            return (ushort)((u >> 16) | 64);
        return (ushort)((u + (0x7FFF + ((u >> 16) & 1))) >> 16);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static float ToFloat(ushort b) => BitConverter.UInt32BitsToSingle((uint)b << 16);

    public static void FromFloat(ReadOnlySpan<float> src, Span<ushort> dst)
    {
        if (dst.Length < src.Length) throw new ArgumentException("destination too short", nameof(dst));
        for (int i = 0; i < src.Length; i++) dst[i] = FromFloat(src[i]);
    }

    public static void ToFloat(ReadOnlySpan<ushort> src, Span<float> dst)
    {
        if (dst.Length < src.Length) throw new ArgumentException("destination too short", nameof(dst));
        for (int i = 0; i < src.Length; i++) dst[i] = ToFloat(src[i]);
    }
}
