using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using TensorCodec.Numerics;

namespace TensorCodec.Formats;

/// <summary>
/// Vector256 decoders for the k-quants most used in practice (Q4_K, Q5_K, Q6_K). Per lane they
/// do the reference's float operations in the reference's order (d·sc computed once as a float,
/// then ·q, then −m; never fused), so the results are bit-identical.
/// </summary>
internal static class KQuantFast
{
    public static bool IsSupported => Vector256.IsHardwareAccelerated;

    public static void DequantizeQ45(ReadOnlySpan<byte> src, Span<float> dst, int nmax, int bytes)
    {
        int nb = dst.Length / 256;
        var lowNibble = Vector256.Create((byte)0x0F);
        var one = Vector256.Create((byte)1);
        for (int i = 0; i < nb; i++)
        {
            var b = src.Slice(i * bytes, bytes);
            float d = Fp16.Read(b, 0), min = Fp16.Read(b, 2);
            var sc = b.Slice(4, 12);
            var y = dst.Slice(i * 256, 256);
            var qh = nmax == 31 ? Vector256.Create(b.Slice(16, 32)) : default;
            int qsOffset = nmax == 31 ? 48 : 16;
            for (int j = 0, is_ = 0; j < 256; j += 64, is_ += 2)
            {
                QuantMath.GetScaleMinK4(is_, sc, out byte s1, out byte m1);
                QuantMath.GetScaleMinK4(is_ + 1, sc, out byte s2, out byte m2);
                var q = Vector256.Create(b.Slice(qsOffset + j / 2, 32));
                var lo = q & lowNibble;
                var hi = Vector256.ShiftRightLogical(q, 4);
                if (nmax == 31)
                {
                    int shift = j / 32;
                    lo |= Vector256.ShiftLeft(Vector256.ShiftRightLogical(qh, shift) & one, 4);
                    hi |= Vector256.ShiftLeft(Vector256.ShiftRightLogical(qh, shift + 1) & one, 4);
                }
                StoreAffine(lo, d * s1, min * m1, y.Slice(j, 32));
                StoreAffine(hi, d * s2, min * m2, y.Slice(j + 32, 32));
            }
        }
    }

    /// <summary>y = d·q − m for 32 unsigned byte quants.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void StoreAffine(Vector256<byte> q, float d, float m, Span<float> y)
    {
        var vd = Vector256.Create(d);
        var vm = Vector256.Create(m);
        var (a, b) = Vector256.Widen(q);
        var (a0, a1) = Vector256.Widen(a);
        var (b0, b1) = Vector256.Widen(b);
        (vd * Vector256.ConvertToSingle(a0.AsInt32()) - vm).CopyTo(y);
        (vd * Vector256.ConvertToSingle(a1.AsInt32()) - vm).CopyTo(y[8..]);
        (vd * Vector256.ConvertToSingle(b0.AsInt32()) - vm).CopyTo(y[16..]);
        (vd * Vector256.ConvertToSingle(b1.AsInt32()) - vm).CopyTo(y[24..]);
    }

    public static void DequantizeQ6(ReadOnlySpan<byte> src, Span<float> dst)
    {
        int nb = dst.Length / 256;
        var lowNibble = Vector256.Create((byte)0x0F);
        var three = Vector256.Create((byte)3);
        for (int i = 0; i < nb; i++)
        {
            var b = src.Slice(i * 210, 210);
            float d = Fp16.Read(b, 208);
            for (int n = 0; n < 2; n++)
            {
                var ql0 = Vector256.Create(b.Slice(64 * n, 32));
                var ql1 = Vector256.Create(b.Slice(64 * n + 32, 32));
                var qh = Vector256.Create(b.Slice(128 + 32 * n, 32));
                var sc = b.Slice(192 + 8 * n, 8);
                var y = dst.Slice(i * 256 + 128 * n, 128);
                Store6(ql0 & lowNibble, qh & three, d, sc, 0, y);
                Store6(ql1 & lowNibble, Vector256.ShiftRightLogical(qh, 2) & three, d, sc, 2, y[32..]);
                Store6(Vector256.ShiftRightLogical(ql0, 4), Vector256.ShiftRightLogical(qh, 4) & three, d, sc, 4, y[64..]);
                Store6(Vector256.ShiftRightLogical(ql1, 4), Vector256.ShiftRightLogical(qh, 6), d, sc, 6, y[96..]);
            }
        }
    }

    /// <summary>32 values (q − 32)·(d·sc), the scale switching after 16 values.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Store6(Vector256<byte> low, Vector256<byte> high2, float d, ReadOnlySpan<byte> sc, int s, Span<float> y)
    {
        var q = low | Vector256.ShiftLeft(high2, 4);
        var (a, bb) = Vector256.Widen(q);
        var (a0, a1) = Vector256.Widen(a);
        var (b0, b1) = Vector256.Widen(bb);
        var off = Vector256.Create(32);
        var v0 = Vector256.Create(d * (sbyte)sc[s]);
        var v1 = Vector256.Create(d * (sbyte)sc[s + 1]);
        (v0 * Vector256.ConvertToSingle(a0.AsInt32() - off)).CopyTo(y);
        (v0 * Vector256.ConvertToSingle(a1.AsInt32() - off)).CopyTo(y[8..]);
        (v1 * Vector256.ConvertToSingle(b0.AsInt32() - off)).CopyTo(y[16..]);
        (v1 * Vector256.ConvertToSingle(b1.AsInt32() - off)).CopyTo(y[24..]);
    }
}
