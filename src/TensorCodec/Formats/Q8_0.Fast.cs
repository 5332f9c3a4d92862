using System.Buffers.Binary;
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
    public static bool IsSupported => Simd.AllowAvx2 && Vector256.IsHardwareAccelerated && BitConverter.IsLittleEndian;

    /// <summary>Blocks per chunk: all scales of a chunk are computed before any of its blocks is quantized.</summary>
    private const int Chunk = 64;

    [SkipLocalsInit]
    public static void Quantize(ReadOnlySpan<float> x, Span<byte> y)
    {
        int nb = BlockSpans.ForQuantize(x, y, 32, 34);
        // Raw refs: per-block slicing and bounds checks cost more than the arithmetic here.
        ref float xr = ref MemoryMarshal.GetReference(x);
        ref byte yr = ref MemoryMarshal.GetReference(y);
        int i = 0;
        // (a 512-bit variant measured no faster on Zen 4, which splits 512-bit ops in two)
        if (Avx2.IsSupported && nb >= 8)
        {
            // Two passes per chunk: the scale chain (max, transpose, two divisions, fp16) is long, and
            // with scales and quantization interleaved per eight blocks the core waited on it every
            // time; computed a chunk ahead, the scale groups are independent and overlap each other.
            Span<float> ids = stackalloc float[Chunk];
            Span<uint> dhs = stackalloc uint[Chunk];
            ref float idr = ref MemoryMarshal.GetReference(ids);
            ref uint dhr = ref MemoryMarshal.GetReference(dhs);
            bool range = Simd.AllowAvx512 && Avx512DQ.VL.IsSupported;
            for (; i + 8 <= nb;)
            {
                int n = Math.Min(Chunk, (nb - i) & ~7);
                ref float xc = ref Unsafe.Add(ref xr, i * 32);
                if (range) ScalesChunkRange(ref xc, ref idr, ref dhr, n);
                else ScalesChunk(ref xc, ref idr, ref dhr, n);
                QuantizeChunk(ref xc, ref Unsafe.Add(ref yr, i * 34), ref idr, ref dhr, n);
                i += n;
            }
        }
        for (; i < nb; i++)
        {
            ref float xb = ref Unsafe.Add(ref xr, i * 32);
            var v0 = Vector256.LoadUnsafe(ref xb);
            var v1 = Vector256.LoadUnsafe(ref xb, 8);
            var v2 = Vector256.LoadUnsafe(ref xb, 16);
            var v3 = Vector256.LoadUnsafe(ref xb, 24);
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

    /// <summary>
    /// Scales of eight blocks at once: the eight block maxima are reduced together (a transpose-max
    /// instead of eight horizontal reductions), and d, 1/d and the fp16 scales are computed as one vector.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Scales8(ref float x, ref float ids, ref uint dhs, bool range)
    {
        var amax = TransposeMax(AbsMax(ref x, 0, range), AbsMax(ref x, 32, range), AbsMax(ref x, 64, range), AbsMax(ref x, 96, range),
            AbsMax(ref x, 128, range), AbsMax(ref x, 160, range), AbsMax(ref x, 192, range), AbsMax(ref x, 224, range));
        var d = amax / Vector256.Create(127f);
        // lanes with d = 0 get 1/0 = inf first, then the select replaces it, as the reference's branch does
        var id = Vector256.ConditionalSelect(Vector256.Equals(d, Vector256<float>.Zero), Vector256<float>.Zero, Vector256<float>.One / d);
        id.StoreUnsafe(ref ids);
        Fp16Bits.FromFloat(d).StoreUnsafe(ref dhs);
    }

    // Two copies, so the constant 'range' removes the unused AbsMax branch from each loop.
    [MethodImpl(MethodImplOptions.NoInlining)]
    private static void ScalesChunk(ref float x, ref float ids, ref uint dhs, int n)
    {
        for (int g = 0; g < n; g += 8)
            Scales8(ref Unsafe.Add(ref x, g * 32), ref Unsafe.Add(ref ids, g), ref Unsafe.Add(ref dhs, g), range: false);
    }

    [MethodImpl(MethodImplOptions.NoInlining)]
    private static void ScalesChunkRange(ref float x, ref float ids, ref uint dhs, int n)
    {
        for (int g = 0; g < n; g += 8)
            Scales8(ref Unsafe.Add(ref x, g * 32), ref Unsafe.Add(ref ids, g), ref Unsafe.Add(ref dhs, g), range: true);
    }

    /// <summary>Blocks from their precomputed 1/d and fp16 d: scale, round, pack.</summary>
    [MethodImpl(MethodImplOptions.NoInlining)]
    private static void QuantizeChunk(ref float x, ref byte y, ref float ids, ref uint dhs, int n)
    {
        // dwords of the saturating pack come out as r0 r1 r2 r3 per 128-bit half; this restores r0..r3 order
        var order = Vector256.Create(0, 4, 1, 5, 2, 6, 3, 7);
        var sgn = Vector256.Create(-0f);
        var half = Vector256.Create(0.49999997f);
        for (int b = 0; b < n; b++)
        {
            Unsafe.WriteUnaligned(ref y, (ushort)dhs);
            var vid = Vector256.Create(ids);
            var r0 = RoundAwayToInt(Vector256.LoadUnsafe(ref x), vid, sgn, half);
            var r1 = RoundAwayToInt(Vector256.LoadUnsafe(ref x, 8), vid, sgn, half);
            var r2 = RoundAwayToInt(Vector256.LoadUnsafe(ref x, 16), vid, sgn, half);
            var r3 = RoundAwayToInt(Vector256.LoadUnsafe(ref x, 24), vid, sgn, half);
            // |r| ≤ 127, so the saturating packs are plain narrowing
            var p = Avx2.PackSignedSaturate(Avx2.PackSignedSaturate(r0, r1), Avx2.PackSignedSaturate(r2, r3));
            Avx2.PermuteVar8x32(p.AsInt32(), order).AsByte().StoreUnsafe(ref Unsafe.Add(ref y, 2));
            x = ref Unsafe.Add(ref x, 32);
            y = ref Unsafe.Add(ref y, 34);
            ids = ref Unsafe.Add(ref ids, 1);
            dhs = ref Unsafe.Add(ref dhs, 1);
        }
    }

    /// <summary>
    /// RoundAwayToInt(v * id) with the constants passed in (so they stay in registers), taking the
    /// sign from v: id ≥ 0, so v * id has v's sign, and the sign select need not wait for the product.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<int> RoundAwayToInt(Vector256<float> v, Vector256<float> id, Vector256<float> sgn, Vector256<float> half)
    {
        var h = (v & sgn) | half;
        return Vector256.ConvertToInt32Native(v * id + h); // cvttps2dq: truncation
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<float> AbsMax(ref float x, nuint o, bool range)
    {
        if (range && Avx512DQ.VL.IsSupported)
        {
            // vrangeps 0x0B: the larger magnitude with the sign cleared, i.e. max(|a|, |b|) in one op
            var a = Avx512DQ.VL.Range(Vector256.LoadUnsafe(ref x, o), Vector256.LoadUnsafe(ref x, o + 8), 0x0B);
            var b = Avx512DQ.VL.Range(Vector256.LoadUnsafe(ref x, o + 16), Vector256.LoadUnsafe(ref x, o + 24), 0x0B);
            return Avx.Max(a, b);
        }
        return Vector256.MaxNative(
            Vector256.MaxNative(Vector256.Abs(Vector256.LoadUnsafe(ref x, o)), Vector256.Abs(Vector256.LoadUnsafe(ref x, o + 8))),
            Vector256.MaxNative(Vector256.Abs(Vector256.LoadUnsafe(ref x, o + 16)), Vector256.Abs(Vector256.LoadUnsafe(ref x, o + 24))));
    }

    /// <summary>Lane b of the result is the maximum of all lanes of m_b (max is order-independent on |x|).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static Vector256<float> TransposeMax(Vector256<float> m0, Vector256<float> m1, Vector256<float> m2, Vector256<float> m3,
        Vector256<float> m4, Vector256<float> m5, Vector256<float> m6, Vector256<float> m7)
    {
        // pairs interleaved: even lanes hold block 2k, odd lanes block 2k+1
        var a01 = Avx.Max(Avx.UnpackLow(m0, m1), Avx.UnpackHigh(m0, m1));
        var a23 = Avx.Max(Avx.UnpackLow(m2, m3), Avx.UnpackHigh(m2, m3));
        var a45 = Avx.Max(Avx.UnpackLow(m4, m5), Avx.UnpackHigh(m4, m5));
        var a67 = Avx.Max(Avx.UnpackLow(m6, m7), Avx.UnpackHigh(m6, m7));
        // per 128-bit half: blocks 0..3 (resp. 4..7) in lanes 0..3
        var b03 = Avx.Max(Avx.Shuffle(a01, a23, 0x44), Avx.Shuffle(a01, a23, 0xEE));
        var b47 = Avx.Max(Avx.Shuffle(a45, a67, 0x44), Avx.Shuffle(a45, a67, 0xEE));
        return Avx.Max(Avx.Permute2x128(b03, b47, 0x20), Avx.Permute2x128(b03, b47, 0x31));
    }

    public static void Dequantize(ReadOnlySpan<byte> src, Span<float> dst)
    {
        int nb = BlockSpans.ForDequantize(src, dst, 32, 34);
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

    /// <summary>
    /// The absmax of one block (length a multiple of 8), stored as the little-endian f32 header the
    /// bitsandbytes-style blocks (int8_block, nf4, fp4) start with; returns it.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static float StoreAbsMaxHeader(ReadOnlySpan<float> xb, Span<byte> yb)
    {
        var m = Vector256<float>.Zero;
        for (int j = 0; j < xb.Length; j += 8) m = Vector256.Max(m, Vector256.Abs(Vector256.Create(xb.Slice(j, 8))));
        float absmax = HorizontalMax(m);
        BinaryPrimitives.WriteSingleLittleEndian(yb, absmax);
        return absmax;
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
    /// C roundf per lane, exactly: add the largest float below one half with t's sign, then
    /// truncate. The sum rounds up to the next integer exactly when frac(|t|) ≥ ½ (adding ½
    /// itself would misround 0.49999997); valid for |t| &lt; 2^23 (tested over every float in
    /// [2^-2, 2^8) and at the boundaries beyond).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static Vector256<int> RoundAwayToInt(Vector256<float> t)
    {
        var h = (t & Vector256.Create(-0f)) | Vector256.Create(0.49999997f);
        return Vector256.ConvertToInt32Native(t + h); // cvttps2dq: truncation
    }
}
