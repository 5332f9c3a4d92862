using System.Numerics;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;
using TensorCodec.Numerics;

namespace TensorCodec.Formats;

/// <summary>Vector256 paths for Q4_0 without importance weights (same rule as <see cref="Q8_0Fast"/>).</summary>
internal static class Q4_0Fast
{
    public static bool IsSupported => Simd.AllowAvx2 && Vector256.IsHardwareAccelerated && BitConverter.IsLittleEndian;

    public static void Quantize(ReadOnlySpan<float> x, Span<byte> y)
    {
        int nb = BlockSpans.ForQuantize(x, y, 32, 18);
        ref float xr = ref MemoryMarshal.GetReference(x);
        ref byte yr = ref MemoryMarshal.GetReference(y);
        var half = Vector256.Create(8.5f);
        var fifteen = Vector256.Create(15);
        for (int i = 0; i < nb; i++)
        {
            nuint o = (nuint)(i * 32);
            var v0 = Vector256.LoadUnsafe(ref xr, o);
            var v1 = Vector256.LoadUnsafe(ref xr, o + 8);
            var v2 = Vector256.LoadUnsafe(ref xr, o + 16);
            var v3 = Vector256.LoadUnsafe(ref xr, o + 24);
            var a0 = Vector256.Abs(v0); var a1 = Vector256.Abs(v1);
            var a2 = Vector256.Abs(v2); var a3 = Vector256.Abs(v3);
            float amax = Q8_0Fast.HorizontalMax(Vector256.MaxNative(Vector256.MaxNative(a0, a1), Vector256.MaxNative(a2, a3)));
            // The reference keeps the first value whose magnitude is the maximum (its sign matters).
            var va = Vector256.Create(amax);
            ulong mask = Vector256.Equals(a0, va).ExtractMostSignificantBits()
                | (ulong)Vector256.Equals(a1, va).ExtractMostSignificantBits() << 8
                | (ulong)Vector256.Equals(a2, va).ExtractMostSignificantBits() << 16
                | (ulong)Vector256.Equals(a3, va).ExtractMostSignificantBits() << 24;
            float max = amax > 0 ? Unsafe.Add(ref xr, (nint)o + BitOperations.TrailingZeroCount(mask)) : 0f;
            float d = max / -8;
            float id = d != 0 ? 1.0f / d : 0.0f;
            ref byte yb = ref Unsafe.Add(ref yr, i * 18);
            Unsafe.WriteUnaligned(ref yb, Fp16Bits.FromFloat(d));
            var vid = Vector256.Create(id);
            var q0 = Vector256.Min(fifteen, Vector256.ConvertToInt32Native(Vector256.Truncate(v0 * vid + half)));
            var q1 = Vector256.Min(fifteen, Vector256.ConvertToInt32Native(Vector256.Truncate(v1 * vid + half)));
            var q2 = Vector256.Min(fifteen, Vector256.ConvertToInt32Native(Vector256.Truncate(v2 * vid + half)));
            var q3 = Vector256.Min(fifteen, Vector256.ConvertToInt32Native(Vector256.Truncate(v3 * vid + half)));
            var packed = Vector256.Narrow(q0 | (q2 << 4), q1 | (q3 << 4)); // 16 shorts, values < 256
            Vector128.Narrow(packed.GetLower(), packed.GetUpper()).AsByte().StoreUnsafe(ref Unsafe.Add(ref yb, 2));
        }
    }

    public static void Dequantize(ReadOnlySpan<byte> src, Span<float> dst)
    {
        int nb = BlockSpans.ForDequantize(src, dst, 32, 18);
        ref byte sr = ref MemoryMarshal.GetReference(src);
        ref float yr = ref MemoryMarshal.GetReference(dst);
        var eight = Vector256.Create(8);
        var mask = Vector128.Create((byte)0xF);
        for (int i = 0; i < nb; i++)
        {
            ref byte b = ref Unsafe.Add(ref sr, i * 18);
            var vd = Vector256.Create(Fp16Bits.ToFloat(Unsafe.ReadUnaligned<ushort>(ref b)));
            var q = Vector128.LoadUnsafe(ref b, 2);
            var lo = q & mask;
            var hi = Vector128.ShiftRightLogical(q, 4);
            nuint o = (nuint)(i * 32);
            (Vector256.ConvertToSingle(Widen8(lo) - eight) * vd).StoreUnsafe(ref yr, o);
            (Vector256.ConvertToSingle(Widen8(Vector128.Shuffle(lo, Upper)) - eight) * vd).StoreUnsafe(ref yr, o + 8);
            (Vector256.ConvertToSingle(Widen8(hi) - eight) * vd).StoreUnsafe(ref yr, o + 16);
            (Vector256.ConvertToSingle(Widen8(Vector128.Shuffle(hi, Upper)) - eight) * vd).StoreUnsafe(ref yr, o + 24);
        }
    }

    private static Vector128<byte> Upper => Vector128.Create((byte)8, 9, 10, 11, 12, 13, 14, 15, 0, 0, 0, 0, 0, 0, 0, 0);

    /// <summary>The low eight bytes zero-extended to int32.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<int> Widen8(Vector128<byte> v)
    {
        if (Avx2.IsSupported) return Avx2.ConvertToVector256Int32(v);
        var (w, _) = Vector128.Widen(v);
        var (a, b) = Vector128.Widen(w);
        return Vector256.Create(a, b).AsInt32();
    }
}
