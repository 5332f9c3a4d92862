using System.Buffers;
using System.Buffers.Binary;
using System.Runtime.CompilerServices;

namespace TensorCodec.Coders;

/// <summary>
/// Static order-0 rANS for byte data with four interleaved 32-bit states and 16-bit
/// renormalisation (layout in CHUNK-FORMAT.md). Probabilities are quantised to
/// 2^<see cref="ScaleBits"/>; 12 bits lets a whole decode-table entry (symbol, freq-1, slot bias)
/// pack into one uint, and the 16 KiB table stays in L1, which is what makes decoding fast.
/// Four states give the CPU four independent dependency chains to overlap.
/// </summary>
public static class RansCoder
{
    public const int ScaleBits = 12;
    public const int Scale = 1 << ScaleBits;
    const uint L = 1u << 16;          // lower bound of the normalised state interval [L, 2^32)
    const int States = 4;

    /// <summary>Worst case payload: table + states + one 16-bit word per symbol (a symbol costs ≤ 12 bits).</summary>
    public static int MaxEncodedLength(int length) => checked(1 + 256 * 3 + 4 * States + 2 * length + 2);

    /// <summary>
    /// Quantises <paramref name="histogram"/> to frequencies summing to exactly <see cref="Scale"/>, each
    /// present symbol ≥ 1. Starts from rounding, then moves single units where they cost least
    /// (greedy on Σ count·log2 freq), which is near-optimal for the small corrections needed.
    /// Returns false if no symbol is present.
    /// </summary>
    public static bool NormalizeFrequencies(ReadOnlySpan<uint> histogram, Span<ushort> freqs)
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
            ulong f = ((ulong)c * Scale + total / 2) / total;
            if (f == 0) f = 1;
            freqs[s] = (ushort)f;
            sum += (int)f;
        }
        while (sum != Scale)
        {
            int best = -1;
            double bestCost = double.MaxValue;
            if (sum < Scale)
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

    /// <summary>Writes the frequency table as runs of present symbols (see CHUNK-FORMAT.md).</summary>
    static int WriteTable(ReadOnlySpan<ushort> freqs, Span<byte> dst)
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

    static bool ReadTable(ReadOnlySpan<byte> src, ref int pos, Span<ushort> freqs)
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
                if (!Varint.TryRead(src, ref pos, out int f, Scale - 1)) return false;
                freqs[i] = (ushort)(f + 1);
                sum += f + 1;
                if (sum > Scale) return false;
            }
            next = start + len;
        }
        return sum == Scale;
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

    /// <summary>Encodes <paramref name="src"/> with normalised <paramref name="freqs"/> (every present symbol non-zero).</summary>
    [SkipLocalsInit]
    public static unsafe OperationStatus Encode(ReadOnlySpan<byte> src, ReadOnlySpan<ushort> freqs, Span<byte> dst, out int written)
    {
        written = 0;
        int tableLen = TableSize(freqs);
        int header = tableLen + 4 * States;
        if (dst.Length < header) return OperationStatus.DestinationTooSmall;

        uint* cum = stackalloc uint[256];
        uint* frq = stackalloc uint[256];
        uint c = 0;
        for (int s = 0; s < 256; s++) { cum[s] = c; frq[s] = freqs[s]; c += freqs[s]; }
        if (c != Scale) throw new ArgumentException("frequencies must sum to Scale", nameof(freqs));

        int n = src.Length;
        // Words are produced last-to-first, so write them backwards into scratch then copy once.
        int maxWords = n + 2;
        ushort[] scratch = ArrayPool<ushort>.Shared.Rent(maxWords);
        try
        {
            uint x0 = L, x1 = L, x2 = L, x3 = L;
            fixed (byte* s0 = src)
            fixed (ushort* w0 = scratch)
            {
                ushort* w = w0 + maxWords;
                // Symbol i belongs to state i % 4; encode in reverse so the decoder runs forward.
                int i = n - 1;
                for (; i >= 0 && (i & 3) != 3; i--)
                {
                    switch (i & 3)
                    {
                        case 0: Put(ref x0, s0[i], cum, frq, ref w); break;
                        case 1: Put(ref x1, s0[i], cum, frq, ref w); break;
                        case 2: Put(ref x2, s0[i], cum, frq, ref w); break;
                    }
                }
                for (; i >= 3; i -= 4)
                {
                    Put(ref x3, s0[i], cum, frq, ref w);
                    Put(ref x2, s0[i - 1], cum, frq, ref w);
                    Put(ref x1, s0[i - 2], cum, frq, ref w);
                    Put(ref x0, s0[i - 3], cum, frq, ref w);
                }
                int words = (int)(w0 + maxWords - w);
                long total = header + 2L * words;
                if (total > dst.Length) return OperationStatus.DestinationTooSmall;
                int pos = WriteTable(freqs, dst);
                BinaryPrimitives.WriteUInt32LittleEndian(dst[pos..], x0);
                BinaryPrimitives.WriteUInt32LittleEndian(dst[(pos + 4)..], x1);
                BinaryPrimitives.WriteUInt32LittleEndian(dst[(pos + 8)..], x2);
                BinaryPrimitives.WriteUInt32LittleEndian(dst[(pos + 12)..], x3);
                pos += 16;
                Span<byte> body = dst.Slice(pos, 2 * words);
                if (BitConverter.IsLittleEndian) new ReadOnlySpan<byte>(w, 2 * words).CopyTo(body);
                else for (int k = 0; k < words; k++) BinaryPrimitives.WriteUInt16LittleEndian(body[(2 * k)..], w[k]);
                written = pos + 2 * words;
                return OperationStatus.Done;
            }
        }
        finally { ArrayPool<ushort>.Shared.Return(scratch); }
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static unsafe void Put(ref uint x, byte sym, uint* cum, uint* frq, ref ushort* w)
    {
        uint f = frq[sym];
        // Keep x < 2^(32-ScaleBits)·f after the step so the encoded state stays below 2^32.
        if ((x >> (32 - ScaleBits)) >= f) { *--w = (ushort)x; x >>= 16; }
        uint q = x / f;
        x = (q << ScaleBits) + (x - q * f) + cum[sym];
    }

    /// <summary>
    /// Decodes exactly <c>dst.Length</c> symbols from a payload of exactly <c>src.Length</c> bytes.
    /// Verifies that every word is consumed and every state returns to its initial value, so most
    /// corruption is detected; malformed input gives InvalidData and never reads out of bounds.
    /// </summary>
    [SkipLocalsInit]
    public static unsafe OperationStatus Decode(ReadOnlySpan<byte> src, Span<byte> dst)
    {
        Span<ushort> freqs = stackalloc ushort[256];
        int pos = 0;
        if (!ReadTable(src, ref pos, freqs)) return OperationStatus.InvalidData;
        if (src.Length - pos < 4 * States || ((src.Length - pos) & 1) != 0) return OperationStatus.InvalidData;
        uint x0 = BinaryPrimitives.ReadUInt32LittleEndian(src[pos..]);
        uint x1 = BinaryPrimitives.ReadUInt32LittleEndian(src[(pos + 4)..]);
        uint x2 = BinaryPrimitives.ReadUInt32LittleEndian(src[(pos + 8)..]);
        uint x3 = BinaryPrimitives.ReadUInt32LittleEndian(src[(pos + 12)..]);
        pos += 16;
        if (!BitConverter.IsLittleEndian) return OperationStatus.InvalidData; // word reads below assume LE

        // Slot → packed (symbol | slot-cum << 8 | freq-1 << 20): one load per symbol.
        uint* table = stackalloc uint[Scale];
        uint cum = 0;
        for (int s = 0; s < 256; s++)
        {
            uint f = freqs[s];
            for (uint k = 0; k < f; k++) table[cum + k] = (uint)s | (k << 8) | ((f - 1) << 20);
            cum += f;
        }

        int n = dst.Length;
        fixed (byte* s0 = src)
        fixed (byte* d0 = dst)
        {
            ushort* w = (ushort*)(s0 + pos);
            ushort* wend = (ushort*)(s0 + src.Length);
            byte* o = d0, oend = d0 + n;
            const uint Mask = Scale - 1;
            // Fast path: each symbol reads at most one word, so 4 symbols need ≤ 4 words.
            while (oend - o >= 4 && wend - w >= 4)
            {
                uint e0 = table[x0 & Mask], e1 = table[x1 & Mask], e2 = table[x2 & Mask], e3 = table[x3 & Mask];
                o[0] = (byte)e0; o[1] = (byte)e1; o[2] = (byte)e2; o[3] = (byte)e3;
                x0 = ((e0 >> 20) + 1) * (x0 >> ScaleBits) + ((e0 >> 8) & Mask);
                x1 = ((e1 >> 20) + 1) * (x1 >> ScaleBits) + ((e1 >> 8) & Mask);
                x2 = ((e2 >> 20) + 1) * (x2 >> ScaleBits) + ((e2 >> 8) & Mask);
                x3 = ((e3 >> 20) + 1) * (x3 >> ScaleBits) + ((e3 >> 8) & Mask);
                if (x0 < L) x0 = (x0 << 16) | *w++;
                if (x1 < L) x1 = (x1 << 16) | *w++;
                if (x2 < L) x2 = (x2 << 16) | *w++;
                if (x3 < L) x3 = (x3 << 16) | *w++;
                o += 4;
            }
            // Tail (and the stream's last few words): same step with bounds checks.
            while (o < oend)
            {
                long idx = o - d0;
                ref uint x = ref x0;
                switch (idx & 3)
                {
                    case 1: x = ref x1; break;
                    case 2: x = ref x2; break;
                    case 3: x = ref x3; break;
                }
                uint e = table[x & Mask];
                *o++ = (byte)e;
                x = ((e >> 20) + 1) * (x >> ScaleBits) + ((e >> 8) & Mask);
                if (x < L)
                {
                    if (w >= wend) return OperationStatus.InvalidData;
                    x = (x << 16) | *w++;
                }
            }
            if (w != wend || x0 != L || x1 != L || x2 != L || x3 != L) return OperationStatus.InvalidData;
        }
        return OperationStatus.Done;
    }
}
