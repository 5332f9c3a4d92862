using System.Numerics;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;
using TensorCodec.Numerics;

namespace TensorCodec.Formats;

/// <summary>
/// Vector256 paths for Q8_0. They perform the same float operations as the reference on each
/// lane (max is order-independent, products are single roundings), so the output is identical;
/// the tests compare the two on random data.
/// </summary>
internal static class Q8_0Fast
{
    public static bool IsSupported => Vector256.IsHardwareAccelerated && BitConverter.IsLittleEndian;

    public static void Quantize(ReadOnlySpan<float> x, Span<byte> y)
    {
        int nb = x.Length / 32;
        if (y.Length < nb * 34) throw new ArgumentException("destination too short", nameof(y));
        // Raw refs: per-block slicing and bounds checks cost more than the arithmetic here.
        ref float xr = ref MemoryMarshal.GetReference(x);
        ref byte yr = ref MemoryMarshal.GetReference(y);
        for (int i = 0; i < nb; i++)
        {
            nuint o = (nuint)(i * 32);
            var v0 = Vector256.LoadUnsafe(ref xr, o);
            var v1 = Vector256.LoadUnsafe(ref xr, o + 8);
            var v2 = Vector256.LoadUnsafe(ref xr, o + 16);
            var v3 = Vector256.LoadUnsafe(ref xr, o + 24);
            var am = Vector256.MaxNative(Vector256.MaxNative(Vector256.Abs(v0), Vector256.Abs(v1)), Vector256.MaxNative(Vector256.Abs(v2), Vector256.Abs(v3)));
            float amax = HorizontalMax(am);
            float d = amax / 127;
            float id = d != 0 ? 1.0f / d : 0.0f;
            ref byte yb = ref Unsafe.Add(ref yr, i * 34);
            Unsafe.WriteUnaligned(ref yb, Fp16Bits.FromFloat(d));
            var vid = Vector256.Create(id);
            var s01 = Vector256.Narrow(RoundAwayToInt(v0 * vid), RoundAwayToInt(v1 * vid));
            var s23 = Vector256.Narrow(RoundAwayToInt(v2 * vid), RoundAwayToInt(v3 * vid));
            Vector256.Narrow(s01, s23).AsByte().StoreUnsafe(ref Unsafe.Add(ref yb, 2));
        }
    }

    public static void Dequantize(ReadOnlySpan<byte> src, Span<float> dst)
    {
        int nb = dst.Length / 32;
        if (src.Length < nb * 34) throw new ArgumentException("source too short", nameof(src));
        ref byte sr = ref MemoryMarshal.GetReference(src);
        ref float yr = ref MemoryMarshal.GetReference(dst);
        for (int i = 0; i < nb; i++)
        {
            ref byte b = ref Unsafe.Add(ref sr, i * 34);
            var vd = Vector256.Create(Fp16Bits.ToFloat(Unsafe.ReadUnaligned<ushort>(ref b)));
            nuint o = (nuint)(i * 32);
            (Vector256.ConvertToSingle(Load8(ref b, 2)) * vd).StoreUnsafe(ref yr, o);
            (Vector256.ConvertToSingle(Load8(ref b, 10)) * vd).StoreUnsafe(ref yr, o + 8);
            (Vector256.ConvertToSingle(Load8(ref b, 18)) * vd).StoreUnsafe(ref yr, o + 16);
            (Vector256.ConvertToSingle(Load8(ref b, 26)) * vd).StoreUnsafe(ref yr, o + 24);
        }
    }

    /// <summary>Eight int8 at <paramref name="b"/>+<paramref name="at"/>, sign-extended (never reads past them).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<int> Load8(ref byte b, int at)
    {
        var v = Vector128.CreateScalarUnsafe(Unsafe.ReadUnaligned<long>(ref Unsafe.Add(ref b, at))).AsSByte();
        if (Avx2.IsSupported) return Avx2.ConvertToVector256Int32(v);
        var (w, _) = Vector128.Widen(v);
        var (lo, hi) = Vector128.Widen(w);
        return Vector256.Create(lo, hi);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static float HorizontalMax(Vector256<float> v)
    {
        // Only used on |x| lanes: for finite input, max is order-independent and MaxNative (bare
        // maxps) equals Math.Max. NaN input is out of contract here as in ggml (the CLI refuses it).
        var m = Vector128.MaxNative(v.GetLower(), v.GetUpper());
        m = Vector128.MaxNative(m, Vector128.Shuffle(m, Vector128.Create(2, 3, 0, 1)));
        m = Vector128.MaxNative(m, Vector128.Shuffle(m, Vector128.Create(1, 0, 3, 2)));
        return m.ToScalar();
    }

    /// <summary>
    /// C roundf per lane, exactly: truncate, then add one if the (exactly computed) fraction is at
    /// least one half. Adding 0.5 before truncating would misround 0.49999997.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static Vector256<int> RoundAwayToInt(Vector256<float> t)
    {
        var a = Vector256.Abs(t);
        var r = Vector256.Truncate(a);
        var up = Vector256.GreaterThanOrEqual(a - r, Vector256.Create(0.5f));
        r += up & Vector256.Create(1f);
        r |= t & Vector256.Create(-0f); // copy the sign of t
        return Vector256.ConvertToInt32Native(r); // |r| ≤ 2^23 here, so the native (non-saturating) conversion is exact
    }
}
