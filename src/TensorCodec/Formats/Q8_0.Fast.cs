using System.Numerics;
using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using TensorCodec.Numerics;

namespace TensorCodec.Formats;

/// <summary>
/// Vector256 paths for Q8_0. They perform the same float operations as the reference on each
/// lane (max is order-independent, products are single roundings), so the output is identical;
/// the tests compare the two on random data.
/// </summary>
internal static class Q8_0Fast
{
    public static bool IsSupported => Vector256.IsHardwareAccelerated;

    public static void Quantize(ReadOnlySpan<float> x, Span<byte> y)
    {
        int nb = x.Length / 32;
        for (int i = 0; i < nb; i++)
        {
            var xb = x.Slice(i * 32, 32);
            var v0 = Vector256.Create(xb);
            var v1 = Vector256.Create(xb[8..]);
            var v2 = Vector256.Create(xb[16..]);
            var v3 = Vector256.Create(xb[24..]);
            var am = Vector256.Max(Vector256.Max(Vector256.Abs(v0), Vector256.Abs(v1)), Vector256.Max(Vector256.Abs(v2), Vector256.Abs(v3)));
            float amax = HorizontalMax(am);
            float d = amax / 127;
            float id = d != 0 ? 1.0f / d : 0.0f;
            var yb = y.Slice(i * 34, 34);
            Fp16.Write(yb, 0, Fp16.FromFloat(d));
            var vid = Vector256.Create(id);
            var s01 = Vector256.Narrow(RoundAwayToInt(v0 * vid), RoundAwayToInt(v1 * vid));
            var s23 = Vector256.Narrow(RoundAwayToInt(v2 * vid), RoundAwayToInt(v3 * vid));
            Vector256.Narrow(s01, s23).AsByte().CopyTo(yb[2..]);
        }
    }

    public static void Dequantize(ReadOnlySpan<byte> src, Span<float> dst)
    {
        int nb = dst.Length / 32;
        for (int i = 0; i < nb; i++)
        {
            var b = src.Slice(i * 34, 34);
            var vd = Vector256.Create(Fp16.Read(b, 0));
            var q = Vector256.Create(b.Slice(2, 32)).AsSByte();
            var (lo, hi) = Vector256.Widen(q);
            var (a, bb) = Vector256.Widen(lo);
            var (c, e) = Vector256.Widen(hi);
            var y = dst.Slice(i * 32, 32);
            (Vector256.ConvertToSingle(a) * vd).CopyTo(y);
            (Vector256.ConvertToSingle(bb) * vd).CopyTo(y[8..]);
            (Vector256.ConvertToSingle(c) * vd).CopyTo(y[16..]);
            (Vector256.ConvertToSingle(e) * vd).CopyTo(y[24..]);
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static float HorizontalMax(Vector256<float> v)
    {
        var m = Vector128.Max(v.GetLower(), v.GetUpper());
        return Math.Max(Math.Max(m[0], m[1]), Math.Max(m[2], m[3]));
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
        return Vector256.ConvertToInt32(r);
    }
}
