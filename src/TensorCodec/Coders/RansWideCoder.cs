using System.Buffers;
using System.Buffers.Binary;
using System.Numerics;
using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;
using TensorCodec.Numerics;

namespace TensorCodec.Coders;

/// <summary>
/// Stream method 5, "RansWide": static order-0 rANS like <see cref="RansCoder"/> (same 12-bit frequency table,
/// same 32-bit states with 16-bit renormalisation) but with 32 interleaved states instead of 16 (layout in
/// FORMAT.md, chunk payload section). Sixteen states are one AVX2 dependency chain pair per step (gather →
/// multiply → compare → refill), which bounds <see cref="RansCoder"/>'s decoder; thirty-two are four vectors
/// whose chains overlap, for 64 more bytes of states per stream. Symbol i belongs to state i mod 32.
/// </summary>
internal static class RansWideCoder
{
    public const int States = 32;
    const int ScaleBits = RansCoder.ScaleBits;
    const int Scale = RansCoder.Scale;
    const uint L = 1u << 16;

    /// <summary>Streams shorter than this use <see cref="RansCoder"/>: the 64 extra state bytes cost more than
    /// 0.4% of such a stream's raw size, and a short stream's decode is dominated by its table build anyway.</summary>
    public const int MinimumLength = 16 << 10;

    /// <summary>Worst case payload: table + states + one 16-bit word per symbol (a symbol costs ≤ 12 bits).</summary>
    public static int MaxEncodedLength(int length) => checked(1 + 256 * 3 + 4 * States + 2 * length + 2);

    /// <summary>Estimated payload size in bytes: <see cref="RansCoder.EstimateSize"/> plus the sixteen extra states.</summary>
    public static long EstimateSize(ReadOnlySpan<uint> histogram, ReadOnlySpan<ushort> freqs) =>
        RansCoder.EstimateSize(histogram, freqs) + 4 * (States - 16);

    /// <summary>Words the encoder may produce for <paramref name="length"/> symbols (≤ one per symbol) plus
    /// slack for the vector encoder's 8-word stores past the write position.</summary>
    internal static int WordScratchLength(int length) => checked(length + 2 * States);

    /// <summary>Encodes <paramref name="src"/> with normalised <paramref name="freqs"/> (every present symbol non-zero)
    /// using the caller's word scratch (≥ <see cref="WordScratchLength"/>). <see cref="OperationStatus.DestinationTooSmall"/>
    /// if the payload does not fit <paramref name="dst"/>.</summary>
    public static OperationStatus Encode(ReadOnlySpan<byte> src, ReadOnlySpan<ushort> freqs, Span<byte> dst, out int written, Span<ushort> scratch) =>
        Encode(src, freqs, dst, out written, scratch, allowSimd: true);

    /// <summary><paramref name="allowSimd"/> = false forces the scalar reference encoder (tests check both give the same bytes).</summary>
    [SkipLocalsInit]
    internal static unsafe OperationStatus Encode(ReadOnlySpan<byte> src, ReadOnlySpan<ushort> freqs, Span<byte> dst, out int written,
        Span<ushort> scratch, bool allowSimd)
    {
        written = 0;
        int header = RansCoder.TableSize(freqs) + 4 * States;
        if (dst.Length < header) return OperationStatus.DestinationTooSmall;
        int n = src.Length;
        if (scratch.Length < WordScratchLength(n)) throw new ArgumentException("word scratch too small", nameof(scratch));

        // freq | cum << 16, and the exact-division reciprocal of each frequency.
        uint* entry = stackalloc uint[256];
        ulong* rcpM = stackalloc ulong[256];
        int* rcpS = stackalloc int[256];
        uint c = 0;
        for (int s = 0; s < 256; s++)
        {
            uint f = freqs[s];
            entry[s] = f | (c << 16);
            c += f;
            RansCoder.Reciprocal(f == 0 ? 1 : f, out rcpM[s], out rcpS[s]);
        }
        if (c != Scale) throw new ArgumentException("frequencies must sum to Scale", nameof(freqs));

        uint* xs = stackalloc uint[States];
        for (int k = 0; k < States; k++) xs[k] = L;
        int words;
        bool missing;
        fixed (byte* s0 = src)
        fixed (ushort* t0 = scratch)
        {
            // Both encoders append the words in emission order (states of a group from 31 down to 0, groups
            // last to first) to a forward buffer; the stream is that buffer reversed.
            int groups = n / States;
            words = 0;
            missing = false;
            // The symbols past the last whole group first.
            for (int i = n - 1; i >= groups * States; i--)
                EncodeScalarStep(xs + (i & (States - 1)), s0[i], entry, rcpM, rcpS, t0, ref words, ref missing);
            // An AVX-512 encoder (two 16-lane vectors, VPCOMPRESSW, divider-free q) was 1.1× slower than this one on
            // the quiet Zen 4 (`e2e wide`, load 0.5: 0.40–0.42 vs 0.36–0.37 ms/MiB), so AVX2 stays.
            if (allowSimd && groups > 0 && Simd.AllowAvx2 && Avx2.IsSupported && Fma.IsSupported && BitConverter.IsLittleEndian)
                EncodeAvx2(s0, groups, entry, xs, t0, ref words, ref missing);
            else
                for (int i = groups * States - 1; i >= 0; i--)
                    EncodeScalarStep(xs + (i & (States - 1)), s0[i], entry, rcpM, rcpS, t0, ref words, ref missing);

            if (missing)
                for (int i = 0; i < n; i++)
                    if (freqs[s0[i]] == 0) throw new ArgumentException($"symbol {s0[i]} has frequency 0", nameof(freqs));
            if (header + 2L * words > dst.Length) return OperationStatus.DestinationTooSmall;
            int pos = RansCoder.WriteTable(freqs, dst);
            for (int k = 0; k < States; k++, pos += 4) BinaryPrimitives.WriteUInt32LittleEndian(dst[pos..], xs[k]);
            fixed (byte* d0 = dst) RansCoder.ReverseWords(t0, words, (ushort*)(d0 + pos));
            written = pos + 2 * words;
            return OperationStatus.Done;
        }
    }

    /// <summary>The scalar reference step: renormalise (emit the low word while v ≥ f·2^20, at most once), then
    /// x = ⌊v/f⌋·2^12 + v mod f + cum, the division by the exact reciprocal of <see cref="RansCoder.Reciprocal"/>.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static unsafe void EncodeScalarStep(uint* xp, byte sym, uint* entry, ulong* rcpM, int* rcpS, ushort* t0, ref int words, ref bool missing)
    {
        uint v = *xp, e = entry[sym], f = e & 0xFFFF;
        missing |= f == 0;
        uint need = (v >> (32 - ScaleBits)) >= f ? 1u : 0u;
        t0[words] = (ushort)v;
        words += (int)need;
        v >>= (int)(need << 4);
        uint q = RansCoder.Divide(v, rcpM[sym], rcpS[sym]);
        *xp = (q << ScaleBits) + (v - q * f) + (e >> 16);
    }

    /// <summary>
    /// The encoder with the 32 states as four AVX2 vectors (states 0–7, 8–15, 16–23, 24–31). Each step takes one
    /// group of 32 symbols: the lanes that must renormalise emit their low words from state 31 down to 0 (each
    /// vector's emitting lanes compressed in descending order by a permutation table), then all lanes encode.
    /// q = ⌊v / f⌋ from a double division (VDIVPD), exact (see <see cref="EncodeLanes"/>), so the bytes equal the
    /// scalar loop's; on this Zen 2 it was 1.3× faster than <see cref="RansCoder"/>'s gathered reciprocal and FMA.
    /// </summary>
    [SkipLocalsInit]
    static unsafe void EncodeAvx2(byte* s0, int groups, uint* entry, uint* xs, ushort* t0, ref int wordsRef, ref bool missingRef)
    {
        int pos = wordsRef;
        var x0 = Vector256.Load(xs);
        var x1 = Vector256.Load(xs + 8);
        var x2 = Vector256.Load(xs + 16);
        var x3 = Vector256.Load(xs + 24);
        var low16 = Vector256.Create(0xFFFFu);
        var sixteen = Vector256.Create(16u);
        var one = Vector256.Create(1u);
        var zeroFreq = Vector256<uint>.Zero;
        // Bytes 0,1 of each dword → the low 8 bytes of each 128-bit half.
        var packWords = Vector256.Create((byte)0, 1, 4, 5, 8, 9, 12, 13, 128, 128, 128, 128, 128, 128, 128, 128,
                                         0, 1, 4, 5, 8, 9, 12, 13, 128, 128, 128, 128, 128, 128, 128, 128);
        fixed (int* perm = RansCoder.s_compressDescending)
        {
            for (int g = groups - 1; g >= 0; g--)
            {
                byte* sp = s0 + g * States;
                // Entries by scalar loads, not VPGATHERDD: 1.4× faster on this Zen 2 (see Lookup).
                var e0 = Vector256.Create(entry[sp[0]], entry[sp[1]], entry[sp[2]], entry[sp[3]], entry[sp[4]], entry[sp[5]], entry[sp[6]], entry[sp[7]]);
                var e1 = Vector256.Create(entry[sp[8]], entry[sp[9]], entry[sp[10]], entry[sp[11]], entry[sp[12]], entry[sp[13]], entry[sp[14]], entry[sp[15]]);
                var e2 = Vector256.Create(entry[sp[16]], entry[sp[17]], entry[sp[18]], entry[sp[19]], entry[sp[20]], entry[sp[21]], entry[sp[22]], entry[sp[23]]);
                var e3 = Vector256.Create(entry[sp[24]], entry[sp[25]], entry[sp[26]], entry[sp[27]], entry[sp[28]], entry[sp[29]], entry[sp[30]], entry[sp[31]]);
                var f0 = e0 & low16;
                var f1 = e1 & low16;
                var f2 = e2 & low16;
                var f3 = e3 & low16;
                zeroFreq |= Vector256.Equals(f0, Vector256<uint>.Zero) | Vector256.Equals(f1, Vector256<uint>.Zero)
                          | Vector256.Equals(f2, Vector256<uint>.Zero) | Vector256.Equals(f3, Vector256<uint>.Zero);
                // need ⇔ (v >> 20) ≥ f ⇔ (v >> 20) > f − 1 (both small: the signed compare is exact).
                var n0 = Avx2.CompareGreaterThan((x0 >> (32 - ScaleBits)).AsInt32(), (f0 - one).AsInt32()).AsUInt32();
                var n1 = Avx2.CompareGreaterThan((x1 >> (32 - ScaleBits)).AsInt32(), (f1 - one).AsInt32()).AsUInt32();
                var n2 = Avx2.CompareGreaterThan((x2 >> (32 - ScaleBits)).AsInt32(), (f2 - one).AsInt32()).AsUInt32();
                var n3 = Avx2.CompareGreaterThan((x3 >> (32 - ScaleBits)).AsInt32(), (f3 - one).AsInt32()).AsUInt32();
                pos = Emit(x3, n3, perm, packWords, t0, pos);
                pos = Emit(x2, n2, perm, packWords, t0, pos);
                pos = Emit(x1, n1, perm, packWords, t0, pos);
                pos = Emit(x0, n0, perm, packWords, t0, pos);
                x0 = EncodeLanes(Avx2.ShiftRightLogicalVariable(x0, n0 & sixteen), f0, e0 >> 16);
                x1 = EncodeLanes(Avx2.ShiftRightLogicalVariable(x1, n1 & sixteen), f1, e1 >> 16);
                x2 = EncodeLanes(Avx2.ShiftRightLogicalVariable(x2, n2 & sixteen), f2, e2 >> 16);
                x3 = EncodeLanes(Avx2.ShiftRightLogicalVariable(x3, n3 & sixteen), f3, e3 >> 16);
            }
        }
        x0.Store(xs);
        x1.Store(xs + 8);
        x2.Store(xs + 16);
        x3.Store(xs + 24);
        wordsRef = pos;
        missingRef |= zeroFreq != Vector256<uint>.Zero;
    }

    /// <summary>Appends the low words of <paramref name="x"/>'s lanes selected by <paramref name="need"/>, highest lane
    /// first; stores 8 words (the unused ones are overwritten by the next append).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static unsafe int Emit(Vector256<uint> x, Vector256<uint> need, int* perm, Vector256<byte> packWords, ushort* t0, int pos)
    {
        uint m = need.ExtractMostSignificantBits();
        var p = Avx2.Shuffle(Avx2.PermuteVar8x32(x, Vector256.Load(perm + m * 8).AsUInt32()).AsByte(), packWords);
        Avx2.Permute4x64(p.AsUInt64(), 0b_00_00_10_00).GetLower().Store((ulong*)(t0 + pos));
        return pos + BitOperations.PopCount(m);
    }

    /// <summary>x = (q &lt;&lt; 12) + (v − q·f) + cum with q = ⌊v / f⌋, for eight states.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static Vector256<uint> EncodeLanes(Vector256<uint> v, Vector256<uint> f, Vector256<uint> cum)
    {
        // uint → double via the signed conversion of v − 2^31.
        var signBit = Vector128.Create(0x80000000u);
        var two31 = Vector256.Create(2147483648.0);
        var dlo = Avx.ConvertToVector256Double((v.GetLower() ^ signBit).AsInt32()) + two31;
        var dhi = Avx.ConvertToVector256Double((v.GetUpper() ^ signBit).AsInt32()) + two31;
        // IEEE division is correctly rounded and v/f < 2^20 is at least 1/f ≥ 2^-12 below the next integer, far
        // more than half an ulp (≤ 2^-33), so truncating the quotient gives ⌊v/f⌋ exactly.
        var qlo = Avx.ConvertToVector128Int32WithTruncation(dlo / Avx.ConvertToVector256Double(f.GetLower().AsInt32()));
        var qhi = Avx.ConvertToVector128Int32WithTruncation(dhi / Avx.ConvertToVector256Double(f.GetUpper().AsInt32()));
        var q = Vector256.Create(qlo, qhi).AsUInt32();
        return (q << ScaleBits) + v - Avx2.MultiplyLow(q, f) + cum;
    }

    /// <summary>
    /// Decodes exactly <c>dst.Length</c> symbols from a payload of exactly <c>src.Length</c> bytes. Verifies that
    /// every word is consumed and every state ends at L (the encoder's start), so most corruption is detected;
    /// malformed input gives InvalidData and never reads out of bounds (table indices are masked to 12 bits, word
    /// reads are bounded by the loop conditions and the checked tail).
    /// </summary>
    public static OperationStatus Decode(ReadOnlySpan<byte> src, Span<byte> dst) => Decode(src, dst, allowSimd: true);

    /// <summary><paramref name="allowSimd"/> = false forces the scalar reference decoder (tests compare both).</summary>
    [SkipLocalsInit]
    internal static unsafe OperationStatus Decode(ReadOnlySpan<byte> src, Span<byte> dst, bool allowSimd)
    {
        if (!BitConverter.IsLittleEndian) return OperationStatus.InvalidData; // word reads assume LE
        uint* xs = stackalloc uint[States];
        uint* table = stackalloc uint[Scale];
        Span<ushort> freqs = stackalloc ushort[256];
        int pos = 0;
        if (!RansCoder.ReadTable(src, ref pos, freqs)) return OperationStatus.InvalidData;
        if (src.Length - pos < 4 * States || ((src.Length - pos) & 1) != 0) return OperationStatus.InvalidData;
        for (int k = 0; k < States; k++)
        {
            xs[k] = BinaryPrimitives.ReadUInt32LittleEndian(src[(pos + 4 * k)..]);
            if (xs[k] < L) return OperationStatus.InvalidData; // an encoder's states are always ≥ L
        }
        pos += 4 * States;
        // Slot → packed (symbol | slot-cum << 8 | freq-1 << 20): one load per symbol.
        uint cum = 0;
        for (int s = 0; s < 256; s++)
        {
            uint f = freqs[s];
            uint e = (uint)s | ((f - 1) << 20);
            uint* t = table + cum;
            for (uint k = 0; k < f; k++) t[k] = e | (k << 8);
            cum += f;
        }
        fixed (byte* s0 = src)
        fixed (byte* d0 = dst)
        {
            ushort* w = (ushort*)(s0 + pos), wend = (ushort*)(s0 + src.Length);
            byte* o = d0, oend = d0 + dst.Length;
            if (allowSimd && Simd.AllowAvx512 && Avx512F.IsSupported && Avx2.IsSupported) DecodeAvx512(table, xs, ref w, wend, ref o, oend);
            else if (allowSimd && Simd.AllowAvx2 && Avx2.IsSupported) DecodeAvx2(table, xs, ref w, wend, ref o, oend);
            else DecodeScalar(table, xs, ref w, wend, ref o, oend);
            return Finish(table, xs, w, wend, o, d0, oend);
        }
    }

    /// <summary>The tail: the reference step with bounds checks; then every word must have been consumed and every state be back at L.</summary>
    static unsafe OperationStatus Finish(uint* table, uint* xs, ushort* w, ushort* wend, byte* o, byte* d0, byte* oend)
    {
        const uint Mask = Scale - 1;
        while (o < oend)
        {
            uint* x = xs + ((o - d0) & (States - 1));
            uint e = table[*x & Mask];
            *o++ = (byte)e;
            uint v = ((e >> 20) + 1) * (*x >> ScaleBits) + ((e >> 8) & Mask);
            if (v < L)
            {
                if (w >= wend) return OperationStatus.InvalidData;
                v = (v << 16) | *w++;
            }
            *x = v;
        }
        if (w != wend) return OperationStatus.InvalidData;
        for (int k = 0; k < States; k++) if (xs[k] != L) return OperationStatus.InvalidData;
        return OperationStatus.Done;
    }

    /// <summary>Scalar bulk decode while a whole group of 32 symbols and 32 words remain (a group reads at most 32).</summary>
    static unsafe void DecodeScalar(uint* table, uint* xs, ref ushort* wRef, ushort* wend, ref byte* oRef, byte* oend)
    {
        ushort* w = wRef;
        byte* o = oRef;
        while (oend - o >= States && wend - w >= States)
        {
            w = RansCoder.DecodeEight(table, xs, w, o);
            w = RansCoder.DecodeEight(table, xs + 8, w, o + 8);
            w = RansCoder.DecodeEight(table, xs + 16, w, o + 16);
            w = RansCoder.DecodeEight(table, xs + 24, w, o + 24);
            o += States;
        }
        wRef = w;
        oRef = o;
    }

    /// <summary>
    /// The 32 states as four AVX2 vectors: four independent gather → multiply → compare → refill chains per step,
    /// which the core overlaps (the 16-state coder has two). Only the word pointer is shared: vector k+1's words
    /// start after the popcount of vector k's refill mask, states 0..31 in order as in the scalar decoder.
    /// </summary>
    static unsafe void DecodeAvx2(uint* table, uint* xs, ref ushort* wRef, ushort* wend, ref byte* oRef, byte* oend)
    {
        ushort* w = wRef;
        byte* o = oRef;
        var x0 = Vector256.Load(xs);
        var x1 = Vector256.Load(xs + 8);
        var x2 = Vector256.Load(xs + 16);
        var x3 = Vector256.Load(xs + 24);
        var mask = Vector256.Create((uint)(Scale - 1));
        var lowByte = Vector256.Create(0xFFu);
        var order = Vector256.Create(0, 4, 1, 5, 2, 6, 3, 7);
        uint* slots = stackalloc uint[8];
        fixed (int* perm = RansCoder.s_renormPermute)
        {
            while (oend - o >= States && wend - w >= States)
            {
                var e0 = Lookup(table, x0 & mask, slots);
                var e1 = Lookup(table, x1 & mask, slots);
                var e2 = Lookup(table, x2 & mask, slots);
                var e3 = Lookup(table, x3 & mask, slots);
                // Low bytes of the 32 entries, in state order: pack dword→word→byte, then undo the per-lane interleave.
                var p01 = Avx2.PackUnsignedSaturate((e0 & lowByte).AsInt32(), (e1 & lowByte).AsInt32());
                var p23 = Avx2.PackUnsignedSaturate((e2 & lowByte).AsInt32(), (e3 & lowByte).AsInt32());
                var bytes = Avx2.PackUnsignedSaturate(p01.AsInt16(), p23.AsInt16());
                Avx2.PermuteVar8x32(bytes.AsInt32(), order).Store((int*)o);
                x0 = Advance(x0, e0, mask);
                x1 = Advance(x1, e1, mask);
                x2 = Advance(x2, e2, mask);
                x3 = Advance(x3, e3, mask);
                x0 = Refill(x0, ref w, perm);
                x1 = Refill(x1, ref w, perm);
                x2 = Refill(x2, ref w, perm);
                x3 = Refill(x3, ref w, perm);
                o += States;
            }
        }
        x0.Store(xs);
        x1.Store(xs + 8);
        x2.Store(xs + 16);
        x3.Store(xs + 24);
        wRef = w;
        oRef = o;
    }

    /// <summary>
    /// The 32 states as two AVX-512 vectors (states 0–15, 16–31): half the instructions of <see cref="DecodeAvx2"/>
    /// per step. The table entries come from VPGATHERDD (two 8-lane gathers per vector), on the quiet Zen 4 as fast
    /// as the AVX2 loop's scalar loads with fewer instructions; the refill hands the next words to the lanes below L in lane order with
    /// VPEXPANDD, and VPMOVDB narrows the entries to the output bytes.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    static unsafe void DecodeAvx512(uint* table, uint* xs, ref ushort* wRef, ushort* wend, ref byte* oRef, byte* oend)
    {
        ushort* w = wRef;
        byte* o = oRef;
        var xa = Vector512.Load(xs);
        var xb = Vector512.Load(xs + 16);
        var mask = Vector512.Create((uint)(Scale - 1));
        var low = Vector512.Create(L);
        var sixteen = Vector512.Create(16u);
        while (oend - o >= States && wend - w >= States)
        {
            var sa = (xa & mask).AsInt32();
            var sb = (xb & mask).AsInt32();
            var ea = Avx512F.InsertVector256(Avx2.GatherVector256(table, sa.GetLower(), 4).ToVector512Unsafe(), Avx2.GatherVector256(table, sa.GetUpper(), 4), 1);
            var eb = Avx512F.InsertVector256(Avx2.GatherVector256(table, sb.GetLower(), 4).ToVector512Unsafe(), Avx2.GatherVector256(table, sb.GetUpper(), 4), 1);
            Avx512F.ConvertToVector128Byte(ea).Store(o);
            Avx512F.ConvertToVector128Byte(eb).Store(o + 16);
            xa = Avx512F.MultiplyLow((ea >> 20) + Vector512<uint>.One, xa >> ScaleBits) + ((ea >> 8) & mask);
            xb = Avx512F.MultiplyLow((eb >> 20) + Vector512<uint>.One, xb >> ScaleBits) + ((eb >> 8) & mask);
            var na = Vector512.LessThan(xa, low);
            var nb = Vector512.LessThan(xb, low);
            // A group reads at most 32 words, so both 16-word loads stay inside the checked margin.
            var wa = Avx512F.ConvertToVector512UInt32(Vector256.Load(w));
            w += BitOperations.PopCount(na.ExtractMostSignificantBits());
            var wb = Avx512F.ConvertToVector512UInt32(Vector256.Load(w));
            w += BitOperations.PopCount(nb.ExtractMostSignificantBits());
            xa = Avx512F.ShiftLeftLogicalVariable(xa, na & sixteen) | Avx512F.Expand(Vector512<uint>.Zero, na, wa);
            xb = Avx512F.ShiftLeftLogicalVariable(xb, nb & sixteen) | Avx512F.Expand(Vector512<uint>.Zero, nb, wb);
            o += States;
        }
        xa.Store(xs);
        xb.Store(xs + 16);
        wRef = w;
        oRef = o;
    }

    /// <summary>Eight table entries by scalar loads: on this Zen 2, VPGATHERDD was the decoder's bottleneck and eight
    /// loads plus inserts are 1.25× faster (paired, `e2e wide`). The slots go through a stack buffer (store-to-load
    /// forwarding of a wide store to narrow loads is cheap) rather than eight lane extracts.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static unsafe Vector256<uint> Lookup(uint* table, Vector256<uint> slot, uint* tmp)
    {
        slot.Store(tmp);
        return Vector256.Create(table[tmp[0]], table[tmp[1]], table[tmp[2]], table[tmp[3]], table[tmp[4]], table[tmp[5]], table[tmp[6]], table[tmp[7]]);
    }

    /// <summary>x = freq · (x >> 12) + (x mod 4096 − cum) for eight states, from their table entries.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static Vector256<uint> Advance(Vector256<uint> x, Vector256<uint> e, Vector256<uint> mask) =>
        Avx2.MultiplyLow((e >> 20) + Vector256<uint>.One, x >> ScaleBits) + ((e >> 8) & mask);

    /// <summary>The lanes below L shift left by 16 and take the next words, in lane order.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static unsafe Vector256<uint> Refill(Vector256<uint> x, ref ushort* w, int* perm)
    {
        var need = Vector256.Equals(x >> 16, Vector256<uint>.Zero);
        int m = (int)need.ExtractMostSignificantBits();
        var words = Avx2.ConvertToVector256Int32(w).AsUInt32();
        w += BitOperations.PopCount((uint)m);
        return Vector256.ConditionalSelect(need, (x << 16) | Avx2.PermuteVar8x32(words, Vector256.Load(perm + m * 8).AsUInt32()), x);
    }
}
