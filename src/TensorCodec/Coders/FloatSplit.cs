using System.Buffers;
using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;
using TensorCodec.Numerics;

namespace TensorCodec.Coders;

/// <summary>How a chunk's elements are cut into byte streams (the id is stored in the chunk).</summary>
internal enum SplitTransform : byte
{
    /// <summary>One stream, the bytes as they are (1-byte types: I8, U8, Bool, F8*).</summary>
    Bytes = 0,
    /// <summary>exp (8 exponent bits), sm (sign bit 7 | 7 mantissa bits).</summary>
    BF16 = 1,
    /// <summary>exp (5 exponent bits), hi (sign bit 2 | mantissa bits 9..8), lo (mantissa bits 7..0).</summary>
    F16 = 2,
    /// <summary>exp (8 exponent bits), sm (sign bit 7 | mantissa bits 22..16), m1 (15..8), m0 (7..0).</summary>
    F32 = 3,
    /// <summary>Byte planes, most significant byte first (16-bit integers).</summary>
    Planes2 = 4,
    /// <summary>Byte planes, most significant byte first (32-bit integers).</summary>
    Planes4 = 5,
    /// <summary>Byte planes, most significant byte first (F64 and unsigned 64-bit integers).</summary>
    Planes8 = 6,
    /// <summary>Zig-zag mapped (0,−1,1,−2,… → 0,1,2,3,…) then byte planes, for signed integers: small
    /// magnitudes of either sign leave the high planes all zero instead of 0x00/0xFF noise.</summary>
    ZigZag2 = 7,
    ZigZag4 = 8,
    ZigZag8 = 9,
    /// <summary>FP8 E4M3: mag (bits 6..0) and sign (bit 7, packed 8 per byte), <see cref="Fp8Split"/>.</summary>
    F8E4M3 = 10,
    /// <summary>FP8 E5M2: the same two streams as <see cref="F8E4M3"/>; the exponent is bits 6..2 of mag.</summary>
    F8E5M2 = 11,
    /// <summary>BF16 context-mixed: sign, exponent and top 3 mantissa bits range coded, the low 4 stored (<see cref="ContextMixCoder"/>).
    /// Not a stream split: handled apart from the others (FORMAT.md §2b).</summary>
    Bf16ContextMix = 12,
    /// <summary>F32 context-mixed: the top 16 bits as in <see cref="Bf16ContextMix"/>, the low 16 stored.</summary>
    F32ContextMix = 13,
}

/// <summary>
/// Splits little-endian elements into streams of different statistics (exponents are highly
/// predictable, low mantissa bits are nearly random) and merges them back bit-exactly. Every
/// bit of the input lands in exactly one stream, so NaN payloads, ±0, ±Inf and subnormals
/// round-trip. F64 uses plain byte planes: its 11-bit exponent does not fit a byte alphabet,
/// and the top two planes (sign+exponent, exponent-tail+mantissa-head) already isolate most of
/// the redundancy. Streams are laid out back to back: stream k occupies [k·n, (k+1)·n).
/// A trailing partial element is not part of any stream; the caller stores it verbatim.
/// </summary>
internal static class FloatSplit
{
    public static SplitTransform ForDType(DType dtype) => dtype switch
    {
        DType.BF16 => SplitTransform.BF16,
        DType.F16 => SplitTransform.F16,
        DType.F32 => SplitTransform.F32,
        DType.F64 or DType.U64 => SplitTransform.Planes8,
        DType.U32 => SplitTransform.Planes4,
        DType.U16 => SplitTransform.Planes2,
        DType.I64 => SplitTransform.ZigZag8,
        DType.I32 => SplitTransform.ZigZag4,
        DType.I16 => SplitTransform.ZigZag2,
        _ => SplitTransform.Bytes,
    };

    public static int ElementSize(SplitTransform t) => t switch
    {
        SplitTransform.Bytes or SplitTransform.F8E4M3 or SplitTransform.F8E5M2 => 1,
        SplitTransform.BF16 or SplitTransform.F16 or SplitTransform.Planes2 or SplitTransform.ZigZag2 => 2,
        SplitTransform.F32 or SplitTransform.Planes4 or SplitTransform.ZigZag4 => 4,
        SplitTransform.Planes8 or SplitTransform.ZigZag8 => 8,
        _ => 0,
    };

    public static int StreamCount(SplitTransform t) => t switch
    {
        SplitTransform.F16 => 3,
        SplitTransform.F32 => 4,
        SplitTransform.F8E4M3 or SplitTransform.F8E5M2 => 2,
        _ => ElementSize(t),
    };

    public static bool IsDefined(byte id) => id <= (byte)SplitTransform.ZigZag8 || id is (byte)SplitTransform.F8E4M3 or (byte)SplitTransform.F8E5M2;

    /// <summary>Bytes of stream <paramref name="k"/> for <paramref name="n"/> elements: n, except the FP8 sign plane (ceil(n/8)).
    /// Stream k always starts at k·n in the stream buffer.</summary>
    public static int StreamLength(SplitTransform t, int k, int n) => Fp8Split.Is(t) ? Fp8Split.StreamLength(k, n) : n;

    static readonly string[] BF16Names = ["exp", "sm"], F16Names = ["exp", "hi", "lo"], F32Names = ["exp", "sm", "m1", "m0"];

    /// <summary>Stream name used in statistics ("exp", "sm", … or "b7".."b0" for planes, "bytes").</summary>
    public static string StreamName(SplitTransform t, int index) => t switch
    {
        SplitTransform.BF16 => BF16Names[index],
        SplitTransform.F16 => F16Names[index],
        SplitTransform.F32 => F32Names[index],
        SplitTransform.Bytes => "bytes",
        SplitTransform.F8E4M3 or SplitTransform.F8E5M2 => Fp8Split.StreamName(index),
        _ => "b" + (ElementSize(t) - 1 - index),
    };

    /// <summary>Splits the whole elements of <paramref name="raw"/> into <paramref name="streams"/>, which needs
    /// StreamCount·n bytes (n = raw.Length / ElementSize); <see cref="OperationStatus.DestinationTooSmall"/> if it is shorter.</summary>
    public static unsafe OperationStatus Split(SplitTransform t, ReadOnlySpan<byte> raw, Span<byte> streams)
    {
        if (!StreamsFit(t, raw.Length, streams.Length, out int e, out int n)) return OperationStatus.DestinationTooSmall;
        fixed (byte* r = raw)
        fixed (byte* s = streams)
        {
            switch (t)
            {
                case SplitTransform.Bytes: Buffer.MemoryCopy(r, s, n, n); break;
                case SplitTransform.BF16: SplitBF16(r, s, s + n, n); break;
                case SplitTransform.F16: SplitF16(r, s, s + n, s + 2 * n, n); break;
                case SplitTransform.F32: SplitF32(r, s, s + n, s + 2 * n, s + 3 * n, n); break;
                case SplitTransform.ZigZag2 or SplitTransform.ZigZag4 or SplitTransform.ZigZag8: SplitZigZag(r, s, n, e); break;
                case SplitTransform.F8E4M3 or SplitTransform.F8E5M2: Fp8Split.Split(r, s, s + n, n); break;
                default: SplitPlanes(r, s, n, e); break;
            }
        }
        return OperationStatus.Done;
    }

    /// <summary>Inverse of <see cref="Split"/>: writes n = raw.Length / ElementSize whole elements from StreamCount·n
    /// stream bytes; <see cref="OperationStatus.NeedMoreData"/> if <paramref name="streams"/> holds fewer.</summary>
    public static unsafe OperationStatus Merge(SplitTransform t, ReadOnlySpan<byte> streams, Span<byte> raw)
    {
        if (!StreamsFit(t, raw.Length, streams.Length, out _, out int n)) return OperationStatus.NeedMoreData;
        int sc = StreamCount(t);
        fixed (byte* r = raw)
        fixed (byte* s = streams)
        {
            byte** sp = stackalloc byte*[8];
            for (int k = 0; k < sc; k++) sp[k] = s + (long)k * n;
            MergeCore(t, sp, r, n);
        }
        return OperationStatus.Done;
    }

    /// <summary>n = whole elements of a raw span; whether StreamCount·n stream bytes fit in <paramref name="streamsLength"/>.</summary>
    static bool StreamsFit(SplitTransform t, int rawLength, int streamsLength, out int elementSize, out int n)
    {
        elementSize = ElementSize(t);
        if (elementSize == 0) throw new ArgumentOutOfRangeException(nameof(t));
        n = rawLength / elementSize;
        return streamsLength >= (long)StreamCount(t) * n;
    }

    /// <summary>Merge from separately located streams (lets the decoder read stored streams in place).</summary>
    internal static unsafe void MergeCore(SplitTransform t, byte** sp, byte* r, int n)
    {
        int e = ElementSize(t);
        switch (t)
        {
            case SplitTransform.Bytes: Buffer.MemoryCopy(sp[0], r, n, n); break;
            case SplitTransform.BF16: MergeBF16(sp[0], sp[1], r, n); break;
            case SplitTransform.F16: MergeF16(sp[0], sp[1], sp[2], r, n); break;
            case SplitTransform.F32: MergeF32(sp[0], sp[1], sp[2], sp[3], r, n); break;
            case SplitTransform.ZigZag2 or SplitTransform.ZigZag4 or SplitTransform.ZigZag8: MergeZigZag(sp, r, n, e); break;
            case SplitTransform.F8E4M3 or SplitTransform.F8E5M2: Fp8Split.Merge(sp[0], sp[1], r, n); break;
            default: MergePlanes(sp, r, n, e); break;
        }
    }

    static unsafe void SplitBF16(byte* r, byte* exp, byte* sm, int n)
    {
        int i = 0;
        if (Simd.AllowAvx512 && Avx512Vbmi.IsSupported && BitConverter.IsLittleEndian)
        {
            // 64 elements a step: both fields are formed in 16-bit lanes (exp = v >> 7; sm's bit 7 from v's bit 15,
            // bits 6..0 from v) and VPERMT2B gathers the 64 low bytes of two vectors into one.
            var even = EvenBytes();
            var x80 = Vector512.Create((ushort)0x80);
            for (; i + 64 <= n; i += 64)
            {
                var v0 = Vector512.Load((ushort*)r + i);
                var v1 = Vector512.Load((ushort*)r + i + 32);
                Avx512Vbmi.PermuteVar64x8x2((v0 >> 7).AsByte(), even, (v1 >> 7).AsByte()).Store(exp + i);
                Avx512Vbmi.PermuteVar64x8x2(Vector512.ConditionalSelect(x80, v0 >> 8, v0).AsByte(), even,
                    Vector512.ConditionalSelect(x80, v1 >> 8, v1).AsByte()).Store(sm + i);
            }
        }
        if (Simd.AllowVector128 && Vector128.IsHardwareAccelerated && BitConverter.IsLittleEndian)
        {
            var ff = Vector128.Create((ushort)0xFF);
            var x80 = Vector128.Create((ushort)0x80);
            var x7f = Vector128.Create((ushort)0x7F);
            for (; i + 16 <= n; i += 16)
            {
                var v0 = Vector128.Load((ushort*)r + i);
                var v1 = Vector128.Load((ushort*)r + i + 8);
                var e = Vector128.Narrow((v0 >> 7) & ff, (v1 >> 7) & ff);
                var m = Vector128.Narrow(((v0 >> 8) & x80) | (v0 & x7f), ((v1 >> 8) & x80) | (v1 & x7f));
                e.Store(exp + i);
                m.Store(sm + i);
            }
        }
        for (; i < n; i++)
        {
            uint v = Unsafe.ReadUnaligned<ushort>(r + 2 * i);
            if (!BitConverter.IsLittleEndian) v = (ushort)((v >> 8) | (v << 8));
            exp[i] = (byte)(v >> 7);
            sm[i] = (byte)(((v >> 8) & 0x80) | (v & 0x7F));
        }
    }

    /// <summary>Byte indices 0, 2, …, 126: the low byte of each 16-bit lane of two vectors, for VPERMT2B.</summary>
    static Vector512<byte> EvenBytes()
    {
        Span<byte> idx = stackalloc byte[64];
        for (int k = 0; k < 64; k++) idx[k] = (byte)(2 * k);
        return Vector512.Create<byte>(idx);
    }

    /// <summary>Byte indices e0, m0, e1, m1, … (the two tables' bytes interleaved) from element <paramref name="first"/> on.</summary>
    static Vector512<byte> InterleaveBytes(int first)
    {
        Span<byte> idx = stackalloc byte[64];
        for (int k = 0; k < 32; k++) { idx[2 * k] = (byte)(first + k); idx[2 * k + 1] = (byte)(64 + first + k); }
        return Vector512.Create<byte>(idx);
    }

    static unsafe void MergeBF16(byte* exp, byte* sm, byte* r, int n)
    {
        int i = 0;
        if (Simd.AllowAvx512 && Avx512Vbmi.IsSupported && BitConverter.IsLittleEndian)
        {
            // 64 elements a step: VPERMT2B interleaves exp and sm into words w = sm << 8 | exp, then
            // v = (w & 0x8000) | ((w << 7) & 0x7F80) | ((w >> 8) & 0x7F) by two bit selects.
            var lo = InterleaveBytes(0);
            var hi = InterleaveBytes(32);
            var x8000 = Vector512.Create((ushort)0x8000);
            var x7f = Vector512.Create((ushort)0x7F);
            for (; i + 64 <= n; i += 64)
            {
                var e = Vector512.Load(exp + i);
                var m = Vector512.Load(sm + i);
                var w0 = Avx512Vbmi.PermuteVar64x8x2(e, lo, m).AsUInt16();
                var w1 = Avx512Vbmi.PermuteVar64x8x2(e, hi, m).AsUInt16();
                Vector512.ConditionalSelect(x8000, w0, Vector512.ConditionalSelect(x7f, w0 >> 8, w0 << 7)).Store((ushort*)r + i);
                Vector512.ConditionalSelect(x8000, w1, Vector512.ConditionalSelect(x7f, w1 >> 8, w1 << 7)).Store((ushort*)r + i + 32);
            }
        }
        if (Simd.AllowVector128 && Vector128.IsHardwareAccelerated && BitConverter.IsLittleEndian)
        {
            var x80 = Vector128.Create((ushort)0x80);
            var x7f = Vector128.Create((ushort)0x7F);
            for (; i + 16 <= n; i += 16)
            {
                var (e0, e1) = Vector128.Widen(Vector128.Load(exp + i));
                var (m0, m1) = Vector128.Widen(Vector128.Load(sm + i));
                (((m0 & x80) << 8) | (e0 << 7) | (m0 & x7f)).Store((ushort*)r + i);
                (((m1 & x80) << 8) | (e1 << 7) | (m1 & x7f)).Store((ushort*)r + i + 8);
            }
        }
        for (; i < n; i++)
        {
            uint m = sm[i];
            uint v = ((m & 0x80) << 8) | ((uint)exp[i] << 7) | (m & 0x7F);
            r[2 * i] = (byte)v;
            r[2 * i + 1] = (byte)(v >> 8);
        }
    }

    static unsafe void SplitF16(byte* r, byte* exp, byte* hi, byte* lo, int n)
    {
        int i = 0;
        if (Simd.AllowVector128 && Vector128.IsHardwareAccelerated && BitConverter.IsLittleEndian)
        {
            var x1f = Vector128.Create((ushort)0x1F);
            var x4 = Vector128.Create((ushort)4);
            var x3 = Vector128.Create((ushort)3);
            var ff = Vector128.Create((ushort)0xFF);
            for (; i + 16 <= n; i += 16)
            {
                var v0 = Vector128.Load((ushort*)r + i);
                var v1 = Vector128.Load((ushort*)r + i + 8);
                Vector128.Narrow((v0 >> 10) & x1f, (v1 >> 10) & x1f).Store(exp + i);
                Vector128.Narrow(((v0 >> 13) & x4) | ((v0 >> 8) & x3), ((v1 >> 13) & x4) | ((v1 >> 8) & x3)).Store(hi + i);
                Vector128.Narrow(v0 & ff, v1 & ff).Store(lo + i);
            }
        }
        for (; i < n; i++)
        {
            uint v = r[2 * i] | ((uint)r[2 * i + 1] << 8);
            exp[i] = (byte)((v >> 10) & 0x1F);
            hi[i] = (byte)(((v >> 13) & 4) | ((v >> 8) & 3));
            lo[i] = (byte)v;
        }
    }

    static unsafe void MergeF16(byte* exp, byte* hi, byte* lo, byte* r, int n)
    {
        int i = 0;
        if (Simd.AllowVector128 && Vector128.IsHardwareAccelerated && BitConverter.IsLittleEndian)
        {
            var x1f = Vector128.Create((ushort)0x1F);
            var x4 = Vector128.Create((ushort)4);
            var x3 = Vector128.Create((ushort)3);
            for (; i + 16 <= n; i += 16)
            {
                var (e0, e1) = Vector128.Widen(Vector128.Load(exp + i));
                var (h0, h1) = Vector128.Widen(Vector128.Load(hi + i));
                var (l0, l1) = Vector128.Widen(Vector128.Load(lo + i));
                (((h0 & x4) << 13) | ((e0 & x1f) << 10) | ((h0 & x3) << 8) | l0).Store((ushort*)r + i);
                (((h1 & x4) << 13) | ((e1 & x1f) << 10) | ((h1 & x3) << 8) | l1).Store((ushort*)r + i + 8);
            }
        }
        for (; i < n; i++)
        {
            uint h = hi[i];
            uint v = ((h & 4) << 13) | ((exp[i] & 0x1Fu) << 10) | ((h & 3) << 8) | lo[i];
            r[2 * i] = (byte)v;
            r[2 * i + 1] = (byte)(v >> 8);
        }
    }

    static unsafe void SplitF32(byte* r, byte* exp, byte* sm, byte* m1, byte* m0, int n)
    {
        int i = 0;
        if (Simd.AllowVector128 && Vector128.IsHardwareAccelerated && BitConverter.IsLittleEndian)
        {
            var ff = Vector128.Create(0xFFu);
            var x80 = Vector128.Create(0x80u);
            var x7f = Vector128.Create(0x7Fu);
            for (; i + 16 <= n; i += 16)
            {
                uint* p = (uint*)r + i;
                var v0 = Vector128.Load(p); var v1 = Vector128.Load(p + 4); var v2 = Vector128.Load(p + 8); var v3 = Vector128.Load(p + 12);
                // Narrow truncates, so each field is masked to 8 bits first.
                static Vector128<byte> Pack(Vector128<uint> a, Vector128<uint> b, Vector128<uint> c, Vector128<uint> d) =>
                    Vector128.Narrow(Vector128.Narrow(a, b), Vector128.Narrow(c, d));
                Pack((v0 >> 23) & ff, (v1 >> 23) & ff, (v2 >> 23) & ff, (v3 >> 23) & ff).Store(exp + i);
                Pack(((v0 >> 24) & x80) | ((v0 >> 16) & x7f), ((v1 >> 24) & x80) | ((v1 >> 16) & x7f),
                     ((v2 >> 24) & x80) | ((v2 >> 16) & x7f), ((v3 >> 24) & x80) | ((v3 >> 16) & x7f)).Store(sm + i);
                Pack((v0 >> 8) & ff, (v1 >> 8) & ff, (v2 >> 8) & ff, (v3 >> 8) & ff).Store(m1 + i);
                Pack(v0 & ff, v1 & ff, v2 & ff, v3 & ff).Store(m0 + i);
            }
        }
        for (; i < n; i++)
        {
            byte* p = r + 4 * i;
            uint b3 = p[3], b2 = p[2];
            exp[i] = (byte)((b3 << 1) | (b2 >> 7));
            sm[i] = (byte)((b3 & 0x80) | (b2 & 0x7F));
            m1[i] = p[1];
            m0[i] = p[0];
        }
    }

    static unsafe void MergeF32(byte* exp, byte* sm, byte* m1, byte* m0, byte* r, int n)
    {
        int i = 0;
        if (Simd.AllowVector128 && Vector128.IsHardwareAccelerated && BitConverter.IsLittleEndian)
        {
            var x80 = Vector128.Create(0x80u);
            var x7f = Vector128.Create(0x7Fu);
            for (; i + 16 <= n; i += 16)
            {
                var (e01, e23) = Vector128.Widen(Vector128.Load(exp + i));
                var (s01, s23) = Vector128.Widen(Vector128.Load(sm + i));
                var (a01, a23) = Vector128.Widen(Vector128.Load(m1 + i));
                var (b01, b23) = Vector128.Widen(Vector128.Load(m0 + i));
                uint* p = (uint*)r + i;
                static Vector128<uint> Join(Vector128<uint> e, Vector128<uint> s, Vector128<uint> a, Vector128<uint> b, Vector128<uint> x80, Vector128<uint> x7f) =>
                    ((s & x80) << 24) | (e << 23) | ((s & x7f) << 16) | (a << 8) | b;
                var (e0, e1) = Vector128.Widen(e01); var (e2, e3) = Vector128.Widen(e23);
                var (s0, s1) = Vector128.Widen(s01); var (s2, s3) = Vector128.Widen(s23);
                var (a0, a1) = Vector128.Widen(a01); var (a2, a3) = Vector128.Widen(a23);
                var (b0, b1) = Vector128.Widen(b01); var (b2, b3) = Vector128.Widen(b23);
                Join(e0, s0, a0, b0, x80, x7f).Store(p);
                Join(e1, s1, a1, b1, x80, x7f).Store(p + 4);
                Join(e2, s2, a2, b2, x80, x7f).Store(p + 8);
                Join(e3, s3, a3, b3, x80, x7f).Store(p + 12);
            }
        }
        for (; i < n; i++)
        {
            byte* p = r + 4 * i;
            uint e = exp[i], s = sm[i];
            p[3] = (byte)((s & 0x80) | (e >> 1));
            p[2] = (byte)((e << 7) | (s & 0x7F));
            p[1] = m1[i];
            p[0] = m0[i];
        }
    }

    static unsafe void SplitPlanes(byte* r, byte* s, int n, int e)
    {
        for (int k = 0; k < e; k++)
        {
            byte* plane = s + (long)k * n;
            byte* src = r + (e - 1 - k);
            for (int i = 0; i < n; i++) plane[i] = src[(long)i * e];
        }
    }

    static unsafe void MergePlanes(byte** sp, byte* r, int n, int e)
    {
        for (int k = 0; k < e; k++)
        {
            byte* plane = sp[k];
            byte* dst = r + (e - 1 - k);
            for (int i = 0; i < n; i++) dst[(long)i * e] = plane[i];
        }
    }

    static unsafe void SplitZigZag(byte* r, byte* s, int n, int e)
    {
        int bits = 8 * e;
        for (int i = 0; i < n; i++)
        {
            ulong v = 0;
            for (int b = e - 1; b >= 0; b--) v = (v << 8) | r[(long)i * e + b];
            long sv = (long)(v << (64 - bits)) >> (64 - bits);    // sign-extend
            ulong z = ((ulong)sv << 1) ^ (ulong)(sv >> 63);
            for (int k = 0; k < e; k++) s[(long)k * n + i] = (byte)(z >> (8 * (e - 1 - k)));
        }
    }

    static unsafe void MergeZigZag(byte** sp, byte* r, int n, int e)
    {
        for (int i = 0; i < n; i++)
        {
            ulong z = 0;
            for (int k = 0; k < e; k++) z = (z << 8) | sp[k][i];
            ulong v = (z >> 1) ^ (0UL - (z & 1));
            for (int b = 0; b < e; b++) r[(long)i * e + b] = (byte)(v >> (8 * b));
        }
    }
}
