using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;
using TensorCodec.Numerics;

namespace TensorCodec.Formats;

/// <summary>
/// Vector256 decoders for the k-quants (Q2_K … Q6_K). Per lane they
/// do the reference's float operations in the reference's order (d·sc computed once as a float,
/// then ·q, then −m; never fused), so the results are bit-identical.
/// </summary>
internal static class KQuantFast
{
    public static bool IsSupported => Simd.AllowAvx2 && Vector256.IsHardwareAccelerated;

    public static void DequantizeQ45(ReadOnlySpan<byte> src, Span<float> dst, int nmax, int bytes)
    {
        int nb = BlockSpans.ForDequantize(src, dst, 256, bytes);
        if (nmax == 15 && Q4KTableIsSupported) DequantizeQ4Table(src, dst);
        else DequantizeQ45Vector256(src, dst, nmax, bytes);
    }

    internal static void DequantizeQ45Vector256(ReadOnlySpan<byte> src, Span<float> dst, int nmax, int bytes)
    {
        int nb = BlockSpans.ForDequantize(src, dst, 256, bytes);
        // Raw refs: the spans' slicing and bounds checks were a third of the time at L1 speed.
        ref byte sr = ref MemoryMarshal.GetReference(src);
        ref float yr = ref MemoryMarshal.GetReference(dst);
        var lowNibble = Vector256.Create((byte)0x0F);
        var one = Vector256.Create((byte)1);
        int qsOffset = nmax == 31 ? 48 : 16;
        for (int i = 0; i < nb; i++)
        {
            ref byte b = ref Unsafe.Add(ref sr, i * bytes);
            float d = Fp16Bits.ToFloat(Unsafe.ReadUnaligned<ushort>(ref b));
            float min = Fp16Bits.ToFloat(Unsafe.ReadUnaligned<ushort>(ref Unsafe.Add(ref b, 2)));
            ref byte sc = ref Unsafe.Add(ref b, 4);
            ref float y = ref Unsafe.Add(ref yr, i * 256);
            var qh = nmax == 31 ? Vector256.LoadUnsafe(ref b, 16) : default;
            for (int j = 0, is_ = 0; j < 256; j += 64, is_ += 2)
            {
                ScaleMin(ref sc, is_, out int s1, out int m1);
                ScaleMin(ref sc, is_ + 1, out int s2, out int m2);
                var q = Vector256.LoadUnsafe(ref b, (nuint)(qsOffset + j / 2));
                var lo = q & lowNibble;
                var hi = Vector256.ShiftRightLogical(q, 4);
                if (nmax == 31)
                {
                    int shift = j / 32;
                    lo |= Vector256.ShiftLeft(Vector256.ShiftRightLogical(qh, shift) & one, 4);
                    hi |= Vector256.ShiftLeft(Vector256.ShiftRightLogical(qh, shift + 1) & one, 4);
                }
                StoreAffine(lo, d * s1, min * m1, ref Unsafe.Add(ref y, j));
                StoreAffine(hi, d * s2, min * m2, ref Unsafe.Add(ref y, j + 32));
            }
        }
    }

    /// <summary>The 512-bit table decoder pays where vpermps on 16 lanes is native (AVX-512).</summary>
    public static bool Q4KTableIsSupported => Simd.AllowAvx512 && Vector512.IsHardwareAccelerated && Avx512F.IsSupported && BitConverter.IsLittleEndian;

    /// <summary>
    /// Q4_K decode by table: a sub-block has only 16 possible outputs d·q − m (q = 0..15), so they
    /// are computed once per sub-block, with the reference's two float operations per lane, and
    /// each group of 16 nibbles becomes one zero-extend and one 16-lane permute.
    /// </summary>
    internal static void DequantizeQ4Table(ReadOnlySpan<byte> src, Span<float> dst)
    {
        int nb = BlockSpans.ForDequantize(src, dst, 256, 144);
        ref byte sr = ref MemoryMarshal.GetReference(src);
        ref float yr = ref MemoryMarshal.GetReference(dst);
        var iota = Vector512.Create(0f, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
        var lowNibble = Vector256.Create((byte)0x0F);
        for (int i = 0; i < nb; i++)
        {
            ref byte b = ref Unsafe.Add(ref sr, i * 144);
            float d = Fp16Bits.ToFloat(Unsafe.ReadUnaligned<ushort>(ref b));
            float min = Fp16Bits.ToFloat(Unsafe.ReadUnaligned<ushort>(ref Unsafe.Add(ref b, 2)));
            ref byte sc = ref Unsafe.Add(ref b, 4);
            ref float y = ref Unsafe.Add(ref yr, i * 256);
            for (int j = 0, is_ = 0; j < 256; j += 64, is_ += 2)
            {
                ScaleMin(ref sc, is_, out int s1, out int m1);
                ScaleMin(ref sc, is_ + 1, out int s2, out int m2);
                var t1 = Vector512.Create(d * s1) * iota - Vector512.Create(min * m1);
                var t2 = Vector512.Create(d * s2) * iota - Vector512.Create(min * m2);
                var q = Vector256.LoadUnsafe(ref b, (nuint)(16 + j / 2));
                var lo = q & lowNibble;
                var hi = Vector256.ShiftRightLogical(q, 4);
                nuint o = (nuint)j;
                Avx512F.PermuteVar16x32(t1, Avx512F.ConvertToVector512Int32(lo.GetLower())).StoreUnsafe(ref y, o);
                Avx512F.PermuteVar16x32(t1, Avx512F.ConvertToVector512Int32(lo.GetUpper())).StoreUnsafe(ref y, o + 16);
                Avx512F.PermuteVar16x32(t2, Avx512F.ConvertToVector512Int32(hi.GetLower())).StoreUnsafe(ref y, o + 32);
                Avx512F.PermuteVar16x32(t2, Avx512F.ConvertToVector512Int32(hi.GetUpper())).StoreUnsafe(ref y, o + 48);
            }
        }
    }

    /// <summary><see cref="QuantMath.GetScaleMinK4"/> on a raw ref (the 12 scale bytes).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void ScaleMin(ref byte q, int j, out int d, out int m)
    {
        if (j < 4)
        {
            d = Unsafe.Add(ref q, j) & 63;
            m = Unsafe.Add(ref q, j + 4) & 63;
        }
        else
        {
            d = (Unsafe.Add(ref q, j + 4) & 0xF) | ((Unsafe.Add(ref q, j - 4) >> 6) << 4);
            m = (Unsafe.Add(ref q, j + 4) >> 4) | ((Unsafe.Add(ref q, j) >> 6) << 4);
        }
    }

    /// <summary>y = d·q − m for 32 unsigned byte quants.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void StoreAffine(Vector256<byte> q, float d, float m, ref float r)
    {
        var vd = Vector256.Create(d);
        var vm = Vector256.Create(m);
        Widen4(q, out var a0, out var a1, out var b0, out var b1);
        (vd * Vector256.ConvertToSingle(a0.AsInt32()) - vm).StoreUnsafe(ref r, 0);
        (vd * Vector256.ConvertToSingle(a1.AsInt32()) - vm).StoreUnsafe(ref r, 8);
        (vd * Vector256.ConvertToSingle(b0.AsInt32()) - vm).StoreUnsafe(ref r, 16);
        (vd * Vector256.ConvertToSingle(b1.AsInt32()) - vm).StoreUnsafe(ref r, 24);
    }

    public static void DequantizeQ6(ReadOnlySpan<byte> src, Span<float> dst)
    {
        int nb = dst.Length / 256;
        var lowNibble = Vector256.Create((byte)0x0F);
        var three = Vector256.Create((byte)3);
        for (int i = 0; i < nb; i++)
        {
            var b = src.Slice(i * 210, 210);
            float d = Fp16Bits.Read(b, 208);
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
        Widen4(q, out var a0, out var a1, out var b0, out var b1);
        var off = Vector256.Create(32);
        var v0 = Vector256.Create(d * (sbyte)sc[s]);
        var v1 = Vector256.Create(d * (sbyte)sc[s + 1]);
        if (y.Length < 32) throw new ArgumentException("need 32 values", nameof(y));
        ref float r = ref MemoryMarshal.GetReference(y);
        (v0 * Vector256.ConvertToSingle(a0.AsInt32() - off)).StoreUnsafe(ref r, 0);
        (v0 * Vector256.ConvertToSingle(a1.AsInt32() - off)).StoreUnsafe(ref r, 8);
        (v1 * Vector256.ConvertToSingle(b0.AsInt32() - off)).StoreUnsafe(ref r, 16);
        (v1 * Vector256.ConvertToSingle(b1.AsInt32() - off)).StoreUnsafe(ref r, 24);
    }

    /// <summary>Q3_K: (q − 4)·(d·(sc − 32)) per lane, q = 2 low bits | third bit·4, as <see cref="Q3_K.DequantizeReference"/>.</summary>
    public static void DequantizeQ3(ReadOnlySpan<byte> src, Span<float> dst)
    {
        int nb = BlockSpans.ForDequantize(src, dst, 256, Q3_K.Bytes);
        var three = Vector256.Create((byte)3);
        var one = Vector256.Create((byte)1);
        Span<int> sc = stackalloc int[16];
        for (int i = 0; i < nb; i++)
        {
            var b = src.Slice(i * Q3_K.Bytes, Q3_K.Bytes);
            float d = Fp16Bits.Read(b, 108);
            for (int j = 0; j < 16; j++) sc[j] = Q3_K.GetScale(b.Slice(96, 12), j) - 32;
            var hm = Vector256.Create(b[..32]);
            for (int n = 0; n < 2; n++)
            {
                var q = Vector256.Create(b.Slice(32 + 32 * n, 32));
                for (int j = 0; j < 4; j++)
                {
                    var code = (Vector256.ShiftRightLogical(q, 2 * j) & three) | Vector256.ShiftLeft(Vector256.ShiftRightLogical(hm, 4 * n + j) & one, 2);
                    int k = 8 * n + 2 * j;
                    StoreOffset(code, 4, d * sc[k], d * sc[k + 1], dst.Slice(i * 256 + 128 * n + 32 * j, 32));
                }
            }
        }
    }

    /// <summary>Q2_K: d·sc·q − dmin·m per lane (two float operations, not fused), as <see cref="Q2_K.DequantizeReference"/>.</summary>
    public static void DequantizeQ2(ReadOnlySpan<byte> src, Span<float> dst)
    {
        int nb = BlockSpans.ForDequantize(src, dst, 256, Q2_K.Bytes);
        var three = Vector256.Create((byte)3);
        for (int i = 0; i < nb; i++)
        {
            var b = src.Slice(i * Q2_K.Bytes, Q2_K.Bytes);
            float d = Fp16Bits.Read(b, 80), min = Fp16Bits.Read(b, 82);
            for (int n = 0; n < 2; n++)
            {
                var q = Vector256.Create(b.Slice(16 + 32 * n, 32));
                for (int j = 0; j < 4; j++)
                {
                    byte s0 = b[8 * n + 2 * j], s1 = b[8 * n + 2 * j + 1];
                    var code = Vector256.ShiftRightLogical(q, 2 * j) & three;
                    var y = dst.Slice(i * 256 + 128 * n + 32 * j, 32);
                    Widen4(code, out var a0, out var a1, out var b0, out var b1);
                    var d0 = Vector256.Create(d * (s0 & 0xF)); var m0 = Vector256.Create(min * (s0 >> 4));
                    var d1 = Vector256.Create(d * (s1 & 0xF)); var m1 = Vector256.Create(min * (s1 >> 4));
                    ref float r = ref MemoryMarshal.GetReference(y);
                    (d0 * Vector256.ConvertToSingle(a0) - m0).StoreUnsafe(ref r, 0);
                    (d0 * Vector256.ConvertToSingle(a1) - m0).StoreUnsafe(ref r, 8);
                    (d1 * Vector256.ConvertToSingle(b0) - m1).StoreUnsafe(ref r, 16);
                    (d1 * Vector256.ConvertToSingle(b1) - m1).StoreUnsafe(ref r, 24);
                }
            }
        }
    }

    /// <summary>32 values (q − off)·scale, the scale switching after 16 values.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void StoreOffset(Vector256<byte> q, int off, float scale0, float scale1, Span<float> y)
    {
        if (y.Length < 32) throw new ArgumentException("need 32 values", nameof(y));
        Widen4(q, out var a0, out var a1, out var b0, out var b1);
        var o = Vector256.Create(off);
        var v0 = Vector256.Create(scale0);
        var v1 = Vector256.Create(scale1);
        ref float r = ref MemoryMarshal.GetReference(y);
        (v0 * Vector256.ConvertToSingle(a0 - o)).StoreUnsafe(ref r, 0);
        (v0 * Vector256.ConvertToSingle(a1 - o)).StoreUnsafe(ref r, 8);
        (v1 * Vector256.ConvertToSingle(b0 - o)).StoreUnsafe(ref r, 16);
        (v1 * Vector256.ConvertToSingle(b1 - o)).StoreUnsafe(ref r, 24);
    }

    /// <summary>32 unsigned bytes to four vectors of int32, in order (vpmovzxbd per quarter on AVX2).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Widen4(Vector256<byte> q, out Vector256<int> a0, out Vector256<int> a1, out Vector256<int> b0, out Vector256<int> b1)
    {
        if (Avx2.IsSupported)
        {
            var lo = q.GetLower();
            var hi = q.GetUpper();
            a0 = Avx2.ConvertToVector256Int32(lo);
            a1 = Avx2.ConvertToVector256Int32(Sse2.ShiftRightLogical128BitLane(lo, 8));
            b0 = Avx2.ConvertToVector256Int32(hi);
            b1 = Avx2.ConvertToVector256Int32(Sse2.ShiftRightLogical128BitLane(hi, 8));
            return;
        }
        var (a, b) = Vector256.Widen(q);
        var (x0, x1) = Vector256.Widen(a);
        var (y0, y1) = Vector256.Widen(b);
        a0 = x0.AsInt32(); a1 = x1.AsInt32(); b0 = y0.AsInt32(); b1 = y1.AsInt32();
    }
}
