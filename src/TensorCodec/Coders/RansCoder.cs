using System.Buffers;
using System.Buffers.Binary;
using System.Numerics;
using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;
using TensorCodec.Numerics;

namespace TensorCodec.Coders;

/// <summary>
/// Static order-0 rANS for byte data with sixteen interleaved 32-bit states and 16-bit
/// renormalisation (layout in FORMAT.md (chunk payload section)). Probabilities are quantised to
/// 2^<see cref="ScaleBits"/>; 12 bits lets a whole decode-table entry (symbol, freq-1, slot bias)
/// pack into one uint, and the 16 KiB table stays in L1, which is what makes decoding fast.
/// Sixteen states give the CPU independent dependency chains to overlap: two AVX2 vectors of eight
/// (fewer states left both the scalar and the gather decoder latency-bound).
/// </summary>
internal static class RansCoder
{
    public const int ScaleBits = 12;
    public const int Scale = 1 << ScaleBits;
    internal const uint L = 1u << 16; // lower bound of the normalised state interval [L, 2^32)
    internal const int States = 16;

    /// <summary>Worst case payload: table + states + one 16-bit word per symbol (a symbol costs ≤ 12 bits).</summary>
    public static int MaxEncodedLength(int length) => checked(1 + 256 * 3 + 4 * States + 2 * length + 2);

    /// <summary>
    /// Quantises <paramref name="histogram"/> to frequencies summing to exactly <see cref="Scale"/>, each
    /// present symbol ≥ 1. Starts from rounding, then moves single units where they cost least
    /// (greedy on Σ count·log2 freq), which is near-optimal for the small corrections needed.
    /// Returns false if no symbol is present.
    /// </summary>
    public static bool NormalizeFrequencies(ReadOnlySpan<uint> histogram, Span<ushort> freqs) => NormalizeFrequencies(histogram, freqs, Scale);

    /// <summary>As above, to a sum of <paramref name="scale"/> (a power of two ≤ <see cref="Scale"/>; <see cref="GgmlTableCoder"/>
    /// writes coarser tables where their bytes cost more than the precision saves).</summary>
    internal static bool NormalizeFrequencies(ReadOnlySpan<uint> histogram, Span<ushort> freqs, int scale)
    {
        freqs[..256].Clear();
        ulong total = 0;
        for (int s = 0; s < 256; s++) total += histogram[s];
        if (total == 0) return false;
        int sum = 0;
        for (int s = 0; s < 256; s++)
        {
            uint c = histogram[s];
            if (c == 0) continue;
            ulong f = ((ulong)c * (ulong)scale + total / 2) / total;
            if (f == 0) f = 1;
            freqs[s] = (ushort)f;
            sum += (int)f;
        }
        while (sum != scale)
        {
            int best = -1;
            double bestCost = double.MaxValue;
            if (sum < scale)
            {
                // Gain of f→f+1 is c·log2((f+1)/f); take the largest gain (smallest negative cost).
                for (int s = 0; s < 256; s++)
                {
                    if (freqs[s] == 0) continue;
                    double cost = -histogram[s] * Math.Log2((freqs[s] + 1.0) / freqs[s]);
                    if (cost < bestCost) { bestCost = cost; best = s; }
                }
                freqs[best]++; sum++;
            }
            else
            {
                for (int s = 0; s < 256; s++)
                {
                    if (freqs[s] <= 1) continue;
                    double cost = histogram[s] * Math.Log2(freqs[s] / (freqs[s] - 1.0));
                    if (cost < bestCost) { bestCost = cost; best = s; }
                }
                freqs[best]--; sum--;
            }
        }
        return true;
    }

    /// <summary>Estimated payload size in bytes (table exact, data from the ideal code length).</summary>
    public static long EstimateSize(ReadOnlySpan<uint> histogram, ReadOnlySpan<ushort> freqs)
    {
        double bits = 0;
        for (int s = 0; s < 256; s++)
            if (histogram[s] != 0) bits += histogram[s] * (ScaleBits - Math.Log2(freqs[s]));
        return TableSize(freqs) + 4 * States + 2 * (long)Math.Ceiling(bits / 16 + 1);
    }

    /// <summary>Serialized size of a frequency table.</summary>
    public static int TableSize(ReadOnlySpan<ushort> freqs)
    {
        int size = 1, s = 0;
        while (s < 256)
        {
            if (freqs[s] == 0) { s++; continue; }
            size += 2;
            while (s < 256 && freqs[s] != 0) { size += Varint.Size((uint)(freqs[s] - 1)); s++; }
        }
        return size;
    }

    /// <summary>Writes the frequency table as runs of present symbols (see FORMAT.md (chunk payload section)).</summary>
    internal static int WriteTable(ReadOnlySpan<ushort> freqs, Span<byte> dst)
    {
        int runs = 0, pos = 1, s = 0, prevEnd = 0;
        while (s < 256)
        {
            if (freqs[s] == 0) { s++; continue; }
            int start = s;
            while (s < 256 && freqs[s] != 0) s++;
            dst[pos++] = (byte)(start - prevEnd);
            dst[pos++] = (byte)(s - start - 1);
            for (int i = start; i < s; i++) pos += Varint.Write(dst[pos..], (uint)(freqs[i] - 1));
            prevEnd = s;
            runs++;
        }
        dst[0] = (byte)(runs - 1);
        return pos;
    }

    internal static bool ReadTable(ReadOnlySpan<byte> src, ref int pos, Span<ushort> freqs) => ReadTable(src, ref pos, freqs, Scale);

    /// <summary>As above, for a table whose frequencies sum to <paramref name="scale"/>.</summary>
    internal static bool ReadTable(ReadOnlySpan<byte> src, ref int pos, Span<ushort> freqs, int scale)
    {
        freqs[..256].Clear();
        if (pos >= src.Length) return false;
        int runs = src[pos++] + 1;
        int next = 0, sum = 0;
        for (int r = 0; r < runs; r++)
        {
            if (pos + 2 > src.Length) return false;
            int start = next + src[pos];
            int len = src[pos + 1] + 1;
            pos += 2;
            // Runs must be separated by at least one absent symbol (except the first) and stay in range.
            if ((r > 0 && src[pos - 2] == 0) || start + len > 256) return false;
            for (int i = start; i < start + len; i++)
            {
                if (!Varint.TryRead(src, ref pos, out int f, scale - 1)) return false;
                freqs[i] = (ushort)(f + 1);
                sum += f + 1;
                if (sum > scale) return false;
            }
            next = start + len;
        }
        return sum == scale;
    }

    /// <summary>Encodes <paramref name="src"/> (histogram computed here).</summary>
    public static OperationStatus Encode(ReadOnlySpan<byte> src, Span<byte> dst, out int written)
    {
        Span<uint> hist = stackalloc uint[256];
        FrequencyTable.Histogram(src, hist);
        Span<ushort> freqs = stackalloc ushort[256];
        if (!NormalizeFrequencies(hist, freqs)) freqs[0] = Scale; // empty input: any valid table
        return Encode(src, freqs, dst, out written);
    }

    /// <summary>Encodes <paramref name="src"/> with normalised <paramref name="freqs"/> (every present symbol non-zero).
    /// <see cref="OperationStatus.DestinationTooSmall"/> if the payload does not fit <paramref name="dst"/>.</summary>
    public static OperationStatus Encode(ReadOnlySpan<byte> src, ReadOnlySpan<ushort> freqs, Span<byte> dst, out int written)
    {
        ushort[] scratch = ArrayPool<ushort>.Shared.Rent(WordScratchLength(src.Length));
        try { return Encode(src, freqs, dst, out written, scratch); }
        finally { ArrayPool<ushort>.Shared.Return(scratch); }
    }

    /// <summary>Words the encoder may produce for <paramref name="length"/> symbols: at most one per symbol,
    /// plus slack so the speculative store below the write position stays in bounds.</summary>
    internal static int WordScratchLength(int length) => checked(length + 16);

    /// <summary>As <see cref="Encode(ReadOnlySpan{byte}, ReadOnlySpan{ushort}, Span{byte}, out int)"/> with the caller's word
    /// scratch (at least <see cref="WordScratchLength"/> entries), so a codec context allocates nothing.</summary>
    [SkipLocalsInit]
    internal static unsafe OperationStatus Encode(ReadOnlySpan<byte> src, ReadOnlySpan<ushort> freqs, Span<byte> dst, out int written, Span<ushort> scratch) =>
        Encode(src, freqs, dst, out written, scratch, allowSimd: true);

    /// <summary><paramref name="allowSimd"/> = false forces the scalar encoder (tests check both give the same bytes).</summary>
    [SkipLocalsInit]
    internal static unsafe OperationStatus Encode(ReadOnlySpan<byte> src, ReadOnlySpan<ushort> freqs, Span<byte> dst, out int written, Span<ushort> scratch, bool allowSimd)
    {
        written = 0;
        int tableLen = TableSize(freqs);
        int header = tableLen + 4 * States;
        if (dst.Length < header) return OperationStatus.DestinationTooSmall;

        EncSymbol* syms = stackalloc EncSymbol[256];
        if (BuildEncSymbols(freqs, syms) != Scale) throw new ArgumentException("frequencies must sum to Scale", nameof(freqs));

        int n = src.Length;
        // Words are produced last-to-first, so write them backwards into scratch then copy once.
        int maxWords = WordScratchLength(n);
        if (scratch.Length < maxWords) throw new ArgumentException("word scratch too small", nameof(scratch));
        uint* xs = stackalloc uint[States];
        for (int k = 0; k < States; k++) xs[k] = L;
        if (allowSimd && n >= States && Simd.AllowAvx2 && Avx2.IsSupported && Fma.IsSupported && BitConverter.IsLittleEndian)
            return EncodeAvx2(src, freqs, dst, out written, scratch, syms, xs, header);
        fixed (byte* s0 = src)
        fixed (ushort* w0 = scratch)
        {
            ushort* w = w0 + maxWords;
            // Symbol i belongs to state i % States; encode in reverse so the decoder runs forward.
            // (Written inline rather than as a helper taking `ref w`: an address-taken w lives on the
            // stack and its store/reload chain would dominate the loop.)
            for (int i = n - 1; i >= 0; i--)
            {
                uint* xp = xs + (i & (States - 1));
                EncSymbol* sym = syms + s0[i];
                uint v = *xp, f = sym->Freq;
                if (f == 0) throw new ArgumentException($"symbol {s0[i]} has frequency 0", nameof(freqs));
                // Branchless renormalisation (the decision is data-dependent and mispredicts). The slot
                // below w is always inside the scratch buffer, so it may be written even when unused.
                // Keeping v < 2^(32-ScaleBits)·f makes the encoded state stay below 2^32.
                uint need = (v >> (32 - ScaleBits)) >= f ? 1u : 0u;
                w[-1] = (ushort)v;
                w -= need;
                v >>= (int)(need << 4);
                *xp = EncodeState(v, sym);
            }
            int words = (int)(w0 + maxWords - w);
            long total = header + 2L * words;
            if (total > dst.Length) return OperationStatus.DestinationTooSmall;
            int pos = WriteTable(freqs, dst);
            for (int k = 0; k < States; k++, pos += 4) BinaryPrimitives.WriteUInt32LittleEndian(dst[pos..], xs[k]);
            Span<byte> body = dst.Slice(pos, 2 * words);
            if (BitConverter.IsLittleEndian) new ReadOnlySpan<byte>(w, 2 * words).CopyTo(body);
            else for (int k = 0; k < words; k++) BinaryPrimitives.WriteUInt16LittleEndian(body[(2 * k)..], w[k]);
            written = pos + 2 * words;
            return OperationStatus.Done;
        }
    }

    /// <summary>
    /// The encoder with the sixteen states as two AVX2 vectors (two independent dependency chains; the scalar
    /// loop is bound by its instruction count, about eight cycles a symbol). Same bytes as the scalar loop:
    /// a step takes the sixteen symbols of one group from state 15 down to 0, which is the scalar order, and
    /// appends the words it emits in that order to a forward buffer, so the stream is that buffer reversed.
    /// q = floor(v / f) comes from a double: v &lt; f·2^20 after renormalisation, so fma(v, fl(1/f), 2^-13) is
    /// within 2^-32 + 2^-13 above v/f, below the next integer (v/f's fraction is at most 1 − 1/f ≤ 1 − 2^-12).
    /// </summary>
    [SkipLocalsInit]
    static unsafe OperationStatus EncodeAvx2(ReadOnlySpan<byte> src, ReadOnlySpan<ushort> freqs, Span<byte> dst, out int written,
        Span<ushort> scratch, EncSymbol* syms, uint* xs, int header)
    {
        written = 0;
        int n = src.Length;
        uint* entry = stackalloc uint[256];
        double* rcp = stackalloc double[256];
        for (int s = 0; s < 256; s++)
        {
            entry[s] = syms[s].Freq | (syms[s].Cum << 16);
            rcp[s] = syms[s].Freq == 0 ? 0 : 1.0 / syms[s].Freq;
        }
        int groups = n / States;
        fixed (byte* s0 = src)
        fixed (ushort* t0 = scratch)
        fixed (int* perm = s_compressDescending)
        {
            int pos = 0;
            bool missing = false;
            // The symbols past the last whole group: the scalar step, appending forward.
            for (int i = n - 1; i >= groups * States; i--)
            {
                uint* xp = xs + (i & (States - 1));
                EncSymbol* sym = syms + s0[i];
                uint v = *xp, f = sym->Freq;
                missing |= f == 0;
                uint need = (v >> (32 - ScaleBits)) >= f ? 1u : 0u;
                t0[pos] = (ushort)v;
                pos += (int)need;
                v >>= (int)(need << 4);
                uint q = f == 0 ? 0 : v / f;
                *xp = (q << ScaleBits) + (v - q * f) + sym->Cum;
            }
            var xa = Vector256.Load(xs);
            var xb = Vector256.Load(xs + 8);
            var low16 = Vector256.Create(0xFFFFu);
            var sixteen = Vector256.Create(16u);
            var one = Vector256.Create(1u);
            var signBit = Vector128.Create(0x80000000u);
            var two31 = Vector256.Create(2147483648.0);
            var bias = Vector256.Create(1.0 / 8192);
            var zeroFreq = Vector256<uint>.Zero;
            // Bytes 0,1 of each dword → the low 8 bytes of each 128-bit half.
            var packWords = Vector256.Create((byte)0, 1, 4, 5, 8, 9, 12, 13, 128, 128, 128, 128, 128, 128, 128, 128,
                                             0, 1, 4, 5, 8, 9, 12, 13, 128, 128, 128, 128, 128, 128, 128, 128);
            for (int g = groups - 1; g >= 0; g--)
            {
                byte* sp = s0 + g * States;
                var ia = Avx2.ConvertToVector256Int32(sp);
                var ib = Avx2.ConvertToVector256Int32(sp + 8);
                var ea = Avx2.GatherVector256(entry, ia, 4);
                var eb = Avx2.GatherVector256(entry, ib, 4);
                var fa = ea & low16;
                var fb = eb & low16;
                zeroFreq |= Vector256.Equals(fa, Vector256<uint>.Zero) | Vector256.Equals(fb, Vector256<uint>.Zero);
                // need ⇔ (v >> 20) ≥ f ⇔ (v >> 20) > f − 1 (both small: the signed compare is exact).
                var na = Avx2.CompareGreaterThan((xa >> (32 - ScaleBits)).AsInt32(), (fa - one).AsInt32()).AsUInt32();
                var nb = Avx2.CompareGreaterThan((xb >> (32 - ScaleBits)).AsInt32(), (fb - one).AsInt32()).AsUInt32();
                // States 15..8 emit first, then 7..0: each vector's emitting lanes in descending order, as 16-bit words.
                uint mb = nb.ExtractMostSignificantBits(), ma = na.ExtractMostSignificantBits();
                var pb = Avx2.Shuffle(Avx2.PermuteVar8x32(xb, Vector256.Load(perm + mb * 8).AsUInt32()).AsByte(), packWords);
                Avx2.Permute4x64(pb.AsUInt64(), 0b_00_00_10_00).GetLower().Store((ulong*)(t0 + pos));
                pos += BitOperations.PopCount(mb);
                var pa = Avx2.Shuffle(Avx2.PermuteVar8x32(xa, Vector256.Load(perm + ma * 8).AsUInt32()).AsByte(), packWords);
                Avx2.Permute4x64(pa.AsUInt64(), 0b_00_00_10_00).GetLower().Store((ulong*)(t0 + pos));
                pos += BitOperations.PopCount(ma);
                xa = Avx2.ShiftRightLogicalVariable(xa, na & sixteen);
                xb = Avx2.ShiftRightLogicalVariable(xb, nb & sixteen);
                xa = Step(xa, fa, ea >> 16, ia, rcp, signBit, two31, bias);
                xb = Step(xb, fb, eb >> 16, ib, rcp, signBit, two31, bias);
            }
            xa.Store(xs);
            xb.Store(xs + 8);
            if (missing || zeroFreq != Vector256<uint>.Zero)
            {
                for (int i = n - 1; i >= 0; i--)
                    if (freqs[s0[i]] == 0) throw new ArgumentException($"symbol {s0[i]} has frequency 0", nameof(freqs));
            }
            long total = header + 2L * pos;
            if (total > dst.Length) return OperationStatus.DestinationTooSmall;
            int at = WriteTable(freqs, dst);
            for (int k = 0; k < States; k++, at += 4) BinaryPrimitives.WriteUInt32LittleEndian(dst[at..], xs[k]);
            fixed (byte* d0 = dst) ReverseWords(t0, pos, (ushort*)(d0 + at));
            written = at + 2 * pos;
            return OperationStatus.Done;
        }
    }

    /// <summary>x = (q &lt;&lt; 12) + (v − q·f) + cum with q = floor(v / f), for eight states.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static unsafe Vector256<uint> Step(Vector256<uint> v, Vector256<uint> f, Vector256<uint> cum, Vector256<int> sym, double* rcp,
        Vector128<uint> signBit, Vector256<double> two31, Vector256<double> bias)
    {
        // uint → double via the signed conversion of v − 2^31.
        var dlo = Avx.ConvertToVector256Double((v.GetLower() ^ signBit).AsInt32()) + two31;
        var dhi = Avx.ConvertToVector256Double((v.GetUpper() ^ signBit).AsInt32()) + two31;
        var rlo = Avx2.GatherVector256(rcp, sym.GetLower(), 8);
        var rhi = Avx2.GatherVector256(rcp, sym.GetUpper(), 8);
        var qlo = Avx.ConvertToVector128Int32WithTruncation(Fma.MultiplyAdd(dlo, rlo, bias));
        var qhi = Avx.ConvertToVector128Int32WithTruncation(Fma.MultiplyAdd(dhi, rhi, bias));
        var q = Vector256.Create(qlo, qhi).AsUInt32();
        return (q << ScaleBits) + v - Avx2.MultiplyLow(q, f) + cum;
    }

    /// <summary>dst[k] = src[count − 1 − k]. Shared with <see cref="RansWideCoder"/>.</summary>
    internal static unsafe void ReverseWords(ushort* src, int count, ushort* dst)
    {
        int k = 0;
        if (Avx2.IsSupported)
        {
            var rev = Vector256.Create((byte)14, 15, 12, 13, 10, 11, 8, 9, 6, 7, 4, 5, 2, 3, 0, 1,
                                       14, 15, 12, 13, 10, 11, 8, 9, 6, 7, 4, 5, 2, 3, 0, 1);
            for (; k + 16 <= count; k += 16)
            {
                var v = Avx2.Shuffle(Vector256.Load(src + count - 16 - k).AsByte(), rev);
                Avx2.Permute2x128(v, v, 1).AsUInt16().Store(dst + k);
            }
        }
        for (; k < count; k++) dst[k] = src[count - 1 - k];
    }

    /// <summary>For each 8-bit lane mask: the set lanes from highest to lowest (then anything), the order the
    /// scalar encoder emits a vector's words in.</summary>
    internal static readonly int[] s_compressDescending = BuildCompressDescending();

    static int[] BuildCompressDescending()
    {
        var t = GC.AllocateArray<int>(256 * 8, pinned: true);
        for (int m = 0; m < 256; m++)
            for (int j = 7, r = 0; j >= 0; j--)
                if ((m >> j & 1) != 0) t[m * 8 + r++] = j;
        return t;
    }

    /// <summary>A symbol's encoder entry: frequency, cumulative frequency and the reciprocal of the frequency.</summary>
    internal struct EncSymbol
    {
        public uint Freq, Cum, RcpLo, RcpHi;
        public int Shift;
    }

    /// <summary>Fills the 256 encoder entries of <paramref name="freqs"/>; returns the frequencies' sum (must be <see cref="Scale"/>).
    /// Shared with <see cref="GgmlTableCoder"/>, which holds one such table per context.</summary>
    internal static unsafe uint BuildEncSymbols(ReadOnlySpan<ushort> freqs, EncSymbol* syms)
    {
        uint c = 0;
        for (int s = 0; s < 256; s++)
        {
            uint f = freqs[s];
            syms[s].Freq = f;
            syms[s].Cum = c;
            c += f;
            if (f != 0)
            {
                Reciprocal(f, out ulong m, out int sh);
                syms[s].RcpLo = (uint)m;
                syms[s].RcpHi = (uint)(m >> 32);
                syms[s].Shift = sh - 32;
            }
        }
        return c;
    }

    /// <summary>The state after coding <paramref name="sym"/> from the renormalised state <paramref name="v"/> (v &lt; 2^20·f).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static unsafe uint EncodeState(uint v, EncSymbol* sym)
    {
        // q = floor(v / f) = floor(v·m / 2^(32+shift)), m = RcpHi·2^32 + RcpLo, in 64-bit arithmetic.
        ulong t = (((ulong)v * sym->RcpLo) >> 32) + (ulong)v * sym->RcpHi;
        uint q = (uint)(t >> sym->Shift);
        return (q << ScaleBits) + (v - q * sym->Freq) + sym->Cum;
    }

    /// <summary>The state after decoding the symbol of decode-table entry <paramref name="e"/> from <paramref name="x"/>, before renormalisation.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static uint DecodeState(uint e, uint x) => ((e >> 20) + 1) * (x >> ScaleBits) + ((e >> 8) & (Scale - 1));

    /// <summary>
    /// Exact division by multiplication (hardware division dominated the encoder): with
    /// k = ceil(log2 f), s = 32 + k and m = floor(2^s / f) + 1, floor(x·m / 2^s) = floor(x / f) for
    /// every x &lt; 2^32, because the error x·(m − 2^s/f)/2^s &lt; 2^-k ≤ 1/f never carries past the
    /// next integer (the fractional part of x/f is at most 1 − 1/f).
    /// </summary>
    internal static void Reciprocal(uint f, out ulong m, out int s)
    {
        int k = f <= 1 ? 0 : 32 - BitOperations.LeadingZeroCount(f - 1);
        s = 32 + k;
        m = (1UL << s) / f + 1;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static uint Divide(uint x, ulong m, int s)
    {
        ulong hi = Math.BigMul(x, m, out ulong lo);
        return (uint)((hi << (64 - s)) | (lo >> s));
    }

    /// <summary>
    /// Decodes exactly <c>dst.Length</c> symbols from a payload of exactly <c>src.Length</c> bytes.
    /// Verifies that every word is consumed and every state returns to its initial value, so most
    /// corruption is detected; malformed input gives InvalidData and never reads out of bounds.
    /// </summary>
    public static OperationStatus Decode(ReadOnlySpan<byte> src, Span<byte> dst) => Decode(src, dst, allowSimd: true);

    /// <summary><paramref name="allowSimd"/> = false forces the scalar path (tests compare both).</summary>
    [SkipLocalsInit]
    internal static unsafe OperationStatus Decode(ReadOnlySpan<byte> src, Span<byte> dst, bool allowSimd)
    {
        uint* xs = stackalloc uint[States];
        uint* table = stackalloc uint[Scale];
        if (!Prepare(src, table, xs, out int pos)) return OperationStatus.InvalidData;
        fixed (byte* s0 = src)
        fixed (byte* d0 = dst)
        {
            ushort* w = (ushort*)(s0 + pos), wend = (ushort*)(s0 + src.Length);
            byte* o = d0;
            Bulk(table, xs, ref w, wend, ref o, d0 + dst.Length, allowSimd);
            return Finish(table, xs, w, wend, o, d0, d0 + dst.Length);
        }
    }

    /// <summary>
    /// Two payloads at once (as two <see cref="Decode(ReadOnlySpan{byte}, Span{byte})"/> calls, same results): one
    /// stream's steps are a single dependency chain (gather, multiply, compare, refill), so the
    /// two streams' steps are interleaved in one loop for the CPU to overlap (AVX2 or AVX-512; without AVX2 the
    /// two are decoded one after the other). Used for consecutive chunks.
    /// </summary>
    [SkipLocalsInit]
    internal static unsafe void DecodePair(ReadOnlySpan<byte> srcA, Span<byte> dstA, out OperationStatus a,
        ReadOnlySpan<byte> srcB, Span<byte> dstB, out OperationStatus b)
    {
        bool avx512 = Simd.AllowAvx512 && Avx512F.VL.IsSupported;
        if (!avx512 && !(Simd.AllowAvx2 && Avx2.IsSupported))
        {
            a = Decode(srcA, dstA);
            b = Decode(srcB, dstB);
            return;
        }
        uint* xsA = stackalloc uint[States], xsB = stackalloc uint[States];
        uint* tableA = stackalloc uint[Scale], tableB = stackalloc uint[Scale];
        bool okA = Prepare(srcA, tableA, xsA, out int posA), okB = Prepare(srcB, tableB, xsB, out int posB);
        fixed (byte* sa = srcA)
        fixed (byte* da = dstA)
        fixed (byte* sb = srcB)
        fixed (byte* db = dstB)
        {
            ushort* wA = (ushort*)(sa + posA), wendA = (ushort*)(sa + srcA.Length);
            ushort* wB = (ushort*)(sb + posB), wendB = (ushort*)(sb + srcB.Length);
            byte* oA = da, oendA = da + dstA.Length, oB = db, oendB = db + dstB.Length;
            if (okA && okB) DecodeVectorPair(avx512, tableA, xsA, ref wA, wendA, ref oA, oendA, tableB, xsB, ref wB, wendB, ref oB, oendB);
            a = OperationStatus.InvalidData;
            b = OperationStatus.InvalidData;
            if (okA)
            {
                Bulk(tableA, xsA, ref wA, wendA, ref oA, oendA, allowSimd: true);
                a = Finish(tableA, xsA, wA, wendA, oA, da, oendA);
            }
            if (okB)
            {
                Bulk(tableB, xsB, ref wB, wendB, ref oB, oendB, allowSimd: true);
                b = Finish(tableB, xsB, wB, wendB, oB, db, oendB);
            }
        }
    }

    /// <summary>Reads the frequency table and the states and builds the decode table; false if malformed.</summary>
    static unsafe bool Prepare(ReadOnlySpan<byte> src, uint* table, uint* xs, out int pos)
    {
        Span<ushort> freqs = stackalloc ushort[256];
        pos = 0;
        if (!ReadTable(src, ref pos, freqs)) return false;
        if (src.Length - pos < 4 * States || ((src.Length - pos) & 1) != 0) return false;
        for (int k = 0; k < States; k++) xs[k] = BinaryPrimitives.ReadUInt32LittleEndian(src[(pos + 4 * k)..]);
        pos += 4 * States;
        if (!BitConverter.IsLittleEndian) return false; // word reads below assume LE

        BuildDecodeTable(freqs, table);
        return true;
    }

    /// <summary>The <see cref="Scale"/>-entry decode table of <paramref name="freqs"/> (summing to <see cref="Scale"/>):
    /// slot → packed (symbol | slot-cum &lt;&lt; 8 | freq-1 &lt;&lt; 20), one load per symbol.</summary>
    internal static unsafe void BuildDecodeTable(ReadOnlySpan<ushort> freqs, uint* table)
    {
        uint cum = 0;
        for (int s = 0; s < 256; s++)
        {
            uint f = freqs[s];
            for (uint k = 0; k < f; k++) table[cum + k] = (uint)s | (k << 8) | ((f - 1) << 20);
            cum += f;
        }
    }

    static unsafe void Bulk(uint* table, uint* xs, ref ushort* w, ushort* wend, ref byte* o, byte* oend, bool allowSimd)
    {
        if (Simd.AllowAvx512 && Avx512F.VL.IsSupported && allowSimd) DecodeAvx512(table, xs, ref w, wend, ref o, oend);
        else if (Simd.AllowAvx2 && Avx2.IsSupported && allowSimd) DecodeAvx2(table, xs, ref w, wend, ref o, oend);
        else DecodeScalar(table, xs, ref w, wend, ref o, oend);
    }

    /// <summary>The tail (and the stream's last few words): the same step with bounds checks; then every word
    /// must have been consumed and every state be back at L.</summary>
    static unsafe OperationStatus Finish(uint* table, uint* xs, ushort* w, ushort* wend, byte* o, byte* d0, byte* oend)
    {
        const uint Mask = Scale - 1;
        while (o < oend)
        {
            uint* x = xs + ((o - d0) & (States - 1));
            uint e = table[*x & Mask];
            *o++ = (byte)e;
            uint v = DecodeState(e, *x);
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

    /// <summary>Bulk decode while ≥ 16 symbols remain and ≥ 16 words are left (each symbol reads at most one).</summary>
    static unsafe void DecodeScalar(uint* table, uint* xs, ref ushort* wRef, ushort* wend, ref byte* oRef, byte* oend)
    {
        ushort* w = wRef;
        byte* o = oRef;
        while (oend - o >= States && wend - w >= States)
        {
            w = DecodeEight(table, xs, w, o);
            w = DecodeEight(table, xs + 8, w, o + 8);
            o += States;
        }
        wRef = w;
        oRef = o;
    }

    /// <summary>One symbol for each of eight states; needs ≥ 8 words available. Shared with <see cref="RansWideCoder"/>,
    /// whose 32 states are four groups of these eight.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static unsafe ushort* DecodeEight(uint* table, uint* xs, ushort* w, byte* o)
    {
        const uint Mask = Scale - 1;
        // Locals, not xs[], so the JIT keeps the states in registers while they are updated.
        uint x0 = xs[0], x1 = xs[1], x2 = xs[2], x3 = xs[3], x4 = xs[4], x5 = xs[5], x6 = xs[6], x7 = xs[7];
        uint e0 = table[x0 & Mask], e1 = table[x1 & Mask], e2 = table[x2 & Mask], e3 = table[x3 & Mask];
        uint e4 = table[x4 & Mask], e5 = table[x5 & Mask], e6 = table[x6 & Mask], e7 = table[x7 & Mask];
        o[0] = (byte)e0; o[1] = (byte)e1; o[2] = (byte)e2; o[3] = (byte)e3;
        o[4] = (byte)e4; o[5] = (byte)e5; o[6] = (byte)e6; o[7] = (byte)e7;
        x0 = ((e0 >> 20) + 1) * (x0 >> ScaleBits) + ((e0 >> 8) & Mask);
        x1 = ((e1 >> 20) + 1) * (x1 >> ScaleBits) + ((e1 >> 8) & Mask);
        x2 = ((e2 >> 20) + 1) * (x2 >> ScaleBits) + ((e2 >> 8) & Mask);
        x3 = ((e3 >> 20) + 1) * (x3 >> ScaleBits) + ((e3 >> 8) & Mask);
        x4 = ((e4 >> 20) + 1) * (x4 >> ScaleBits) + ((e4 >> 8) & Mask);
        x5 = ((e5 >> 20) + 1) * (x5 >> ScaleBits) + ((e5 >> 8) & Mask);
        x6 = ((e6 >> 20) + 1) * (x6 >> ScaleBits) + ((e6 >> 8) & Mask);
        x7 = ((e7 >> 20) + 1) * (x7 >> ScaleBits) + ((e7 >> 8) & Mask);
        // Renormalise without branches: whether a state needs a word is data-dependent
        // (~bits/16 of the time), so a branch here mispredicts often.
        uint n0 = x0 < L ? 1u : 0u; x0 = (x0 << (int)(n0 << 4)) | (*w & (0u - n0)); w += n0;
        uint n1 = x1 < L ? 1u : 0u; x1 = (x1 << (int)(n1 << 4)) | (*w & (0u - n1)); w += n1;
        uint n2 = x2 < L ? 1u : 0u; x2 = (x2 << (int)(n2 << 4)) | (*w & (0u - n2)); w += n2;
        uint n3 = x3 < L ? 1u : 0u; x3 = (x3 << (int)(n3 << 4)) | (*w & (0u - n3)); w += n3;
        uint n4 = x4 < L ? 1u : 0u; x4 = (x4 << (int)(n4 << 4)) | (*w & (0u - n4)); w += n4;
        uint n5 = x5 < L ? 1u : 0u; x5 = (x5 << (int)(n5 << 4)) | (*w & (0u - n5)); w += n5;
        uint n6 = x6 < L ? 1u : 0u; x6 = (x6 << (int)(n6 << 4)) | (*w & (0u - n6)); w += n6;
        uint n7 = x7 < L ? 1u : 0u; x7 = (x7 << (int)(n7 << 4)) | (*w & (0u - n7)); w += n7;
        xs[0] = x0; xs[1] = x1; xs[2] = x2; xs[3] = x3; xs[4] = x4; xs[5] = x5; xs[6] = x6; xs[7] = x7;
        return w;
    }

    /// <summary>For each 8-bit "needs a word" lane mask: lane j takes word rank(j) (set bits below j),
    /// so the words consumed in one step are handed to lanes 0..7 in order, as the scalar decoder does.</summary>
    internal static readonly int[] s_renormPermute = BuildRenormPermute();

    static int[] BuildRenormPermute()
    {
        var t = GC.AllocateArray<int>(256 * 8, pinned: true);
        for (int m = 0; m < 256; m++)
            for (int j = 0, r = 0; j < 8; j++)
                if ((m >> j & 1) != 0) t[m * 8 + j] = r++;
        return t;
    }

    /// <summary>The sixteen states as two AVX2 vectors (two independent dependency chains): gather the
    /// table entries, update all lanes, and refill the lanes that fell below L from the next words via a
    /// mask-indexed permutation — states 0..7 take words first, then 8..15, as in the scalar order.</summary>
    static unsafe void DecodeAvx2(uint* table, uint* xs, ref ushort* wRef, ushort* wend, ref byte* oRef, byte* oend)
    {
        ushort* w = wRef;
        byte* o = oRef;
        var xa = Vector256.Load(xs);
        var xb = Vector256.Load(xs + 8);
        fixed (int* perm = s_renormPermute)
        {
            while (oend - o >= States && wend - w >= States)
            {
                StepAvx2(table, ref xa, ref xb, ref w, o, perm);
                o += States;
            }
        }
        xa.Store(xs);
        xb.Store(xs + 8);
        wRef = w;
        oRef = o;
    }

    /// <summary>One step of <see cref="DecodeAvx2"/>: sixteen symbols, states 0..7 in <paramref name="xa"/>, 8..15 in <paramref name="xb"/>.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static unsafe void StepAvx2(uint* table, ref Vector256<uint> xa, ref Vector256<uint> xb, ref ushort* w, byte* o, int* perm)
    {
        var mask = Vector256.Create((uint)(Scale - 1));
        var one = Vector256.Create(1u);
        // Byte 0 of each dword → bytes 0..3 of each 128-bit half.
        var lowBytes = Vector256.Create((byte)0, 4, 8, 12, 128, 128, 128, 128, 128, 128, 128, 128, 128, 128, 128, 128,
                                        0, 4, 8, 12, 128, 128, 128, 128, 128, 128, 128, 128, 128, 128, 128, 128);
        var ea = Avx2.GatherVector256(table, (xa & mask).AsInt32(), 4);
        var eb = Avx2.GatherVector256(table, (xb & mask).AsInt32(), 4);
        var sa = Avx2.Shuffle(ea.AsByte(), lowBytes).AsUInt32();
        var sb = Avx2.Shuffle(eb.AsByte(), lowBytes).AsUInt32();
        ((uint*)o)[0] = sa.GetElement(0);
        ((uint*)o)[1] = sa.GetElement(4);
        ((uint*)o)[2] = sb.GetElement(0);
        ((uint*)o)[3] = sb.GetElement(4);
        xa = Avx2.MultiplyLow((ea >> 20) + one, xa >> ScaleBits) + ((ea >> 8) & mask);
        xb = Avx2.MultiplyLow((eb >> 20) + one, xb >> ScaleBits) + ((eb >> 8) & mask);
        var na = Vector256.Equals(xa >> 16, Vector256<uint>.Zero);
        var nb = Vector256.Equals(xb >> 16, Vector256<uint>.Zero);
        int ma = (int)na.ExtractMostSignificantBits(), mb = (int)nb.ExtractMostSignificantBits();
        var wa = Avx2.ConvertToVector256Int32(w).AsUInt32();
        w += BitOperations.PopCount((uint)ma);
        var wb = Avx2.ConvertToVector256Int32(w).AsUInt32();
        w += BitOperations.PopCount((uint)mb);
        xa = Vector256.ConditionalSelect(na, (xa << 16) | Avx2.PermuteVar8x32(wa, Vector256.Load(perm + ma * 8).AsUInt32()), xa);
        xb = Vector256.ConditionalSelect(nb, (xb << 16) | Avx2.PermuteVar8x32(wb, Vector256.Load(perm + mb * 8).AsUInt32()), xb);
    }

    /// <summary>As <see cref="DecodeAvx2"/>, with AVX-512VL's expand (VPEXPANDD) handing the next words to the lanes
    /// that fell below L in lane order, and a truncating narrow (VPMOVDB) for the output bytes. That takes the
    /// permutation-table load and the byte shuffles off each step's dependency chain, which is what bounds the loop.</summary>
    static unsafe void DecodeAvx512(uint* table, uint* xs, ref ushort* wRef, ushort* wend, ref byte* oRef, byte* oend)
    {
        ushort* w = wRef;
        byte* o = oRef;
        var xa = Vector256.Load(xs);
        var xb = Vector256.Load(xs + 8);
        while (oend - o >= States && wend - w >= States)
        {
            StepAvx512(table, ref xa, ref xb, ref w, o);
            o += States;
        }
        xa.Store(xs);
        xb.Store(xs + 8);
        wRef = w;
        oRef = o;
    }

    /// <summary>One step of <see cref="DecodeAvx512"/>: sixteen symbols, states 0..7 in <paramref name="xa"/>, 8..15 in <paramref name="xb"/>.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static unsafe void StepAvx512(uint* table, ref Vector256<uint> xa, ref Vector256<uint> xb, ref ushort* w, byte* o)
    {
        var mask = Vector256.Create((uint)(Scale - 1));
        var ea = Avx2.GatherVector256(table, (xa & mask).AsInt32(), 4);
        var eb = Avx2.GatherVector256(table, (xb & mask).AsInt32(), 4);
        ((ulong*)o)[0] = Avx512F.VL.ConvertToVector128Byte(ea).AsUInt64().ToScalar();
        ((ulong*)o)[1] = Avx512F.VL.ConvertToVector128Byte(eb).AsUInt64().ToScalar();
        var one = Vector256.Create(1u);
        xa = Avx2.MultiplyLow((ea >> 20) + one, xa >> ScaleBits) + ((ea >> 8) & mask);
        xb = Avx2.MultiplyLow((eb >> 20) + one, xb >> ScaleBits) + ((eb >> 8) & mask);
        var low = Vector256.Create(L);
        var na = Vector256.LessThan(xa, low);
        var nb = Vector256.LessThan(xb, low);
        var wa = Avx2.ConvertToVector256Int32(w).AsUInt32();
        w += BitOperations.PopCount(na.ExtractMostSignificantBits());
        var wb = Avx2.ConvertToVector256Int32(w).AsUInt32();
        w += BitOperations.PopCount(nb.ExtractMostSignificantBits());
        // Lanes that take a word shift left by 16 and OR it in; the zero-merged expand leaves the others as they are.
        var sixteen = Vector256.Create(16u);
        xa = Avx2.ShiftLeftLogicalVariable(xa, na & sixteen) | Avx512F.VL.Expand(Vector256<uint>.Zero, na, wa);
        xb = Avx2.ShiftLeftLogicalVariable(xb, nb & sixteen) | Avx512F.VL.Expand(Vector256<uint>.Zero, nb, wb);
    }

    /// <summary><see cref="DecodeAvx512"/> (or <see cref="DecodeAvx2"/>) for two streams in one loop, while both have a whole step left.</summary>
    static unsafe void DecodeVectorPair(bool avx512, uint* tableA, uint* xsA, ref ushort* wRefA, ushort* wendA, ref byte* oRefA, byte* oendA,
        uint* tableB, uint* xsB, ref ushort* wRefB, ushort* wendB, ref byte* oRefB, byte* oendB)
    {
        ushort* wA = wRefA, wB = wRefB;
        byte* oA = oRefA, oB = oRefB;
        var xa = Vector256.Load(xsA);
        var xb = Vector256.Load(xsA + 8);
        var xc = Vector256.Load(xsB);
        var xd = Vector256.Load(xsB + 8);
        // The two streams' steps are independent: written one after the other, they overlap in the core.
        if (avx512)
            while (oendA - oA >= States && wendA - wA >= States && oendB - oB >= States && wendB - wB >= States)
            {
                StepAvx512(tableA, ref xa, ref xb, ref wA, oA);
                StepAvx512(tableB, ref xc, ref xd, ref wB, oB);
                oA += States;
                oB += States;
            }
        else
            fixed (int* perm = s_renormPermute)
                while (oendA - oA >= States && wendA - wA >= States && oendB - oB >= States && wendB - wB >= States)
                {
                    StepAvx2(tableA, ref xa, ref xb, ref wA, oA, perm);
                    StepAvx2(tableB, ref xc, ref xd, ref wB, oB, perm);
                    oA += States;
                    oB += States;
                }
        xa.Store(xsA);
        xb.Store(xsA + 8);
        xc.Store(xsB);
        xd.Store(xsB + 8);
        wRefA = wA; wRefB = wB;
        oRefA = oA; oRefB = oB;
    }
}
