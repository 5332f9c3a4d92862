using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;

namespace TensorCodec.Numerics;

/// <summary>
/// bfloat16 (the top half of a float32). Encoding rounds to nearest, ties to even, by adding
/// 0x7FFF plus the lsb of the kept half; NaN is forced quiet by setting bit 6 of the result so a
/// signalling NaN whose payload lives only in the low half cannot turn into infinity (ggml does
/// the same, and the golden bf16 rows were produced that way).
/// </summary>
internal static class BFloat16
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

    /// <summary>Bulk encode; the Vector256 loop is the scalar rule applied lane-wise.</summary>
    public static void FromFloat(ReadOnlySpan<float> src, Span<ushort> dst)
    {
        if (dst.Length < src.Length) throw new ArgumentException("destination too short", nameof(dst));
        int i = 0;
        if (Simd.AllowAvx2 && Vector256.IsHardwareAccelerated)
        {
            var bits = MemoryMarshal.Cast<float, uint>(src);
            var absMask = Vector256.Create(0x7FFF_FFFFu);
            var inf = Vector256.Create(0x7F80_0000u);
            var bias = Vector256.Create(0x7FFFu);
            var one = Vector256.Create(1u);
            var quiet = Vector256.Create(64u);
            for (; i + 16 <= src.Length; i += 16)
            {
                var u0 = Vector256.Create(bits.Slice(i, 8));
                var u1 = Vector256.Create(bits.Slice(i + 8, 8));
                Vector256.Narrow(Encode(u0, absMask, inf, bias, one, quiet), Encode(u1, absMask, inf, bias, one, quiet))
                    .CopyTo(dst.Slice(i, 16));
            }
        }
        for (; i < src.Length; i++) dst[i] = FromFloat(src[i]);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<uint> Encode(Vector256<uint> u, Vector256<uint> absMask, Vector256<uint> inf,
        Vector256<uint> bias, Vector256<uint> one, Vector256<uint> quiet)
    {
        var hi = Vector256.ShiftRightLogical(u, 16);
        var rounded = Vector256.ShiftRightLogical(u + bias + (hi & one), 16);
        var isNaN = Vector256.GreaterThan(u & absMask, inf);
        return Vector256.ConditionalSelect(isNaN, hi | quiet, rounded);
    }

    public static void ToFloat(ReadOnlySpan<ushort> src, Span<float> dst)
    {
        if (dst.Length < src.Length) throw new ArgumentException("destination too short", nameof(dst));
        int i = 0;
        if (Simd.AllowAvx2 && Vector256.IsHardwareAccelerated)
        {
            var outBits = MemoryMarshal.Cast<float, uint>(dst);
            for (; i + 16 <= src.Length; i += 16)
            {
                var (lo, hi) = Vector256.Widen(Vector256.Create(src.Slice(i, 16)));
                Vector256.ShiftLeft(lo, 16).CopyTo(outBits.Slice(i, 8));
                Vector256.ShiftLeft(hi, 16).CopyTo(outBits.Slice(i + 8, 8));
            }
        }
        for (; i < src.Length; i++) dst[i] = ToFloat(src[i]);
    }
}
