using System.Runtime.CompilerServices;

namespace TensorCodec.Coders;

/// <summary>
/// LEB128 unsigned varints (7 bits per byte, low group first, high bit = "more follows").
/// Values are limited to int.MaxValue so every length in a chunk is a valid span length.
/// </summary>
internal static class Varint
{
    public const int MaxLength = 5;

    public static int Size(uint value)
    {
        int n = 1;
        while (value >= 0x80) { value >>= 7; n++; }
        return n;
    }

    /// <summary>Writes <paramref name="value"/>; returns bytes written or 0 if it does not fit.</summary>
    public static int Write(Span<byte> dst, uint value)
    {
        int n = 0;
        while (value >= 0x80)
        {
            if ((uint)n >= (uint)dst.Length) return 0;
            dst[n++] = (byte)(value | 0x80);
            value >>= 7;
        }
        if ((uint)n >= (uint)dst.Length) return 0;
        dst[n++] = (byte)value;
        return n;
    }

    /// <summary>
    /// Reads a varint at <paramref name="pos"/>, advancing it. Fails on truncation, on more than
    /// 5 bytes, or on values above <paramref name="max"/> (untrusted input must not overflow lengths).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static bool TryRead(ReadOnlySpan<byte> src, ref int pos, out int value, int max = int.MaxValue)
    {
        value = 0;
        ulong v = 0;
        int p = pos;
        for (int shift = 0; shift < 35; shift += 7)
        {
            if ((uint)p >= (uint)src.Length) return false;
            byte b = src[p++];
            v |= (ulong)(b & 0x7F) << shift;
            if (b < 0x80)
            {
                if (v > (ulong)max) return false;
                value = (int)v;
                pos = p;
                return true;
            }
        }
        return false;
    }
}
