using System.Numerics.Tensors;
using System.Runtime.CompilerServices;

namespace TensorCodec.Numerics;

/// <summary>
/// IEEE binary16 conversions. System.Half is exactly round-to-nearest-even in both directions,
/// so it is the reference; the span paths go through TensorPrimitives, which vectorises the same
/// conversion. Only NaN is canonicalised (sign | 0x7E00), matching ggml's fp32→fp16, so a
/// quantizer's bytes do not depend on the NaN payload.
/// </summary>
internal static class Fp16
{
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static ushort FromFloat(float f)
    {
        if (float.IsNaN(f))
            return (ushort)((BitConverter.SingleToUInt32Bits(f) >> 16 & 0x8000) | 0x7E00);
        return BitConverter.HalfToUInt16Bits((Half)f);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static float ToFloat(ushort h) => (float)BitConverter.UInt16BitsToHalf(h);

    /// <summary>Reads a little-endian fp16 at <paramref name="offset"/>.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static float Read(ReadOnlySpan<byte> src, int offset) =>
        ToFloat((ushort)(src[offset] | src[offset + 1] << 8));

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void Write(Span<byte> dst, int offset, ushort h)
    {
        dst[offset] = (byte)h;
        dst[offset + 1] = (byte)(h >> 8);
    }

    /// <summary>Rounds through fp16 and back (what a value looks like after being stored as a block scale).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static float Round(float f) => ToFloat(FromFloat(f));

    public static void FromFloat(ReadOnlySpan<float> src, Span<ushort> dst)
    {
        if (dst.Length < src.Length) throw new ArgumentException("destination too short", nameof(dst));
        var halves = System.Runtime.InteropServices.MemoryMarshal.Cast<ushort, Half>(dst);
        TensorPrimitives.ConvertToHalf(src, halves[..src.Length]);
        // TensorPrimitives keeps NaN payloads; canonicalise them like the scalar path.
        for (int i = 0; i < src.Length; i++)
            if ((dst[i] & 0x7C00) == 0x7C00 && (dst[i] & 0x3FF) != 0)
                dst[i] = FromFloat(src[i]);
    }

    public static void ToFloat(ReadOnlySpan<ushort> src, Span<float> dst)
    {
        if (dst.Length < src.Length) throw new ArgumentException("destination too short", nameof(dst));
        var halves = System.Runtime.InteropServices.MemoryMarshal.Cast<ushort, Half>(src);
        TensorPrimitives.ConvertToSingle(halves, dst[..src.Length]);
    }
}
