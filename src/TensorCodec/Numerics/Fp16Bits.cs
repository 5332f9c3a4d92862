using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;

namespace TensorCodec.Numerics;

/// <summary>
/// Branch-light fp16 conversions for the quantizers' hot loops. Normal numbers are converted
/// with integer arithmetic (round to nearest even on the 13 dropped bits); everything else
/// (zero, subnormal, inf, NaN, overflow) goes through <see cref="Fp16"/>, so the results are
/// identical to it for every input (tested exhaustively).
/// </summary>
internal static class Fp16Bits
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

    /// <summary>
    /// Eight lanes of <see cref="FromFloat(float)"/> (result in the low 16 bits of each lane): the
    /// same integer rounding for normal halves, the scalar path for any other lane (rare: zero or
    /// tiny block scales), so every lane equals the scalar conversion.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<uint> FromFloat(Vector256<float> f)
    {
        var b = f.AsUInt32();
        var a = b & Vector256.Create(0x7FFF_FFFFu);
        var r = a + Vector256.Create(0x0FFFu) + (Vector256.ShiftRightLogical(a, 13) & Vector256.Create(1u));
        var h = (Vector256.ShiftRightLogical(b, 16) & Vector256.Create(0x8000u)) | Vector256.ShiftRightLogical(r - Vector256.Create(0x3800_0000u), 13);
        // signed compare on the offset value: a − 2^-14 in [0, range) ⇔ a normal-range half
        var inRange = Vector256.LessThan((a - Vector256.Create(0x3880_0000u)).AsInt32(), Vector256.Create(0x4780_0000 - 0x3880_0000))
            & Vector256.GreaterThanOrEqual((a - Vector256.Create(0x3880_0000u)).AsInt32(), Vector256<int>.Zero);
        if (inRange.AsUInt32() != Vector256<uint>.AllBitsSet) h = FixLanes(f, h, inRange.AsUInt32());
        return h;
    }

    [MethodImpl(MethodImplOptions.NoInlining)]
    private static Vector256<uint> FixLanes(Vector256<float> f, Vector256<uint> h, Vector256<uint> ok)
    {
        for (int k = 0; k < 8; k++)
            if (ok.GetElement(k) == 0) h = h.WithElement(k, (uint)Fp16.FromFloat(f.GetElement(k)));
        return h;
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
