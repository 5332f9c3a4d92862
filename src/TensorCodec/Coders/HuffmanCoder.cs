using System.Buffers;
using System.Buffers.Binary;
using System.Runtime.CompilerServices;

namespace TensorCodec.Coders;

/// <summary>
/// Canonical, length-limited Huffman coding of byte data (layout in FORMAT.md (chunk payload section)).
/// Lengths come from package-merge, so they are optimal under the 11-bit limit; the limit keeps
/// the decode table at 2^11 entries (4 KiB, L1-resident). The symbols are cut into four
/// contiguous quarters, each its own bit stream, so the quarters can be decoded independently.
/// </summary>
internal static class HuffmanCoder
{
    public const int MaxCodeLength = 11;
    const int TableSize = 1 << MaxCodeLength;
    const ushort Invalid = 0x8000;

    /// <summary>Worst-case payload size for <paramref name="length"/> symbols.</summary>
    public static int MaxEncodedLength(int length) =>
        checked((int)(((long)length * MaxCodeLength + 7) / 8 + 2 + 128 + 3 * Varint.MaxLength + 4));

    /// <summary>
    /// Optimal code lengths with no length above <paramref name="maxLength"/> (package-merge /
    /// "coin collector"). Unused symbols get 0; a lone symbol gets length 1.
    /// </summary>
    [SkipLocalsInit]
    public static void BuildCodeLengths(ReadOnlySpan<uint> histogram, Span<byte> lengths, int maxLength = MaxCodeLength)
    {
        if (histogram.Length < 256 || lengths.Length < 256) throw new ArgumentException("need 256 entries");
        if (maxLength is < 8 or > 15) throw new ArgumentOutOfRangeException(nameof(maxLength));
        lengths[..256].Clear();

        // Leaves sorted by weight; ties by symbol so the output is deterministic.
        Span<int> sym = stackalloc int[256];
        int n = 0;
        for (int s = 0; s < 256; s++) if (histogram[s] != 0) sym[n++] = s;
        if (n == 0) return;
        if (n == 1) { lengths[sym[0]] = 1; return; }
        sym = sym[..n];
        Span<ulong> leaf = stackalloc ulong[n];
        // Sort by (count, symbol) via a packed key.
        for (int i = 0; i < n; i++) leaf[i] = ((ulong)histogram[sym[i]] << 8) | (uint)sym[i];
        leaf.Sort();
        for (int i = 0; i < n; i++) { sym[i] = (int)(leaf[i] & 0xFF); leaf[i] >>= 8; }

        // Build the merged list of every depth bottom-up. Depth d's list = leaves ∪ pairs of depth d+1's
        // list; only "is this item a package" is needed later, because the selected items of every
        // list form a prefix (packages are built and merged in ascending order).
        int maxItems = 2 * n;
        Span<byte> isPkg = stackalloc byte[maxLength * maxItems];
        Span<int> listLen = stackalloc int[maxLength + 1];
        Span<ulong> prev = stackalloc ulong[maxItems];
        Span<ulong> cur = stackalloc ulong[maxItems];
        // Deepest list (depth maxLength) holds just the leaves.
        leaf.CopyTo(prev);
        isPkg.Slice((maxLength - 1) * maxItems, n).Clear();
        listLen[maxLength] = n;
        for (int d = maxLength - 1; d >= 1; d--)
        {
            int pkgCount = listLen[d + 1] / 2;
            Span<byte> flags = isPkg.Slice((d - 1) * maxItems, maxItems);
            int li = 0, pi = 0, k = 0;
            while (li < n || pi < pkgCount)
            {
                ulong pw = pi < pkgCount ? prev[2 * pi] + prev[2 * pi + 1] : ulong.MaxValue;
                if (li < n && leaf[li] <= pw) { cur[k] = leaf[li++]; flags[k++] = 0; }
                else { cur[k] = pw; flags[k++] = 1; pi++; }
            }
            listLen[d] = k;
            cur[..k].CopyTo(prev);
        }

        // Top-down: pick the 2n-2 cheapest items at depth 1; each selected leaf adds one bit to its
        // symbol, each selected package selects two items one level deeper.
        int take = 2 * n - 2;
        for (int d = 1; d <= maxLength && take > 0; d++)
        {
            Span<byte> flags = isPkg.Slice((d - 1) * maxItems, maxItems);
            int pk = 0;
            for (int i = 0; i < take; i++) pk += flags[i];
            int leaves = take - pk;
            for (int i = 0; i < leaves; i++) lengths[sym[i]]++;
            take = 2 * pk;
        }
    }

    /// <summary>Exact payload size for data with <paramref name="histogram"/> coded with <paramref name="lengths"/>,
    /// assuming the four quarter streams each round up to a byte (≤ 3 bytes pessimistic).</summary>
    public static long EstimateSize(ReadOnlySpan<uint> histogram, ReadOnlySpan<byte> lengths)
    {
        long bits = 0;
        int lo = 256, hi = -1;
        for (int s = 0; s < 256; s++)
        {
            if (lengths[s] == 0) continue;
            bits += (long)histogram[s] * lengths[s];
            if (lo == 256) lo = s;
            hi = s;
        }
        int table = hi < 0 ? 3 : 2 + (hi - lo + 2) / 2;
        long bytes = (bits + 7) / 8 + 3;
        return table + 3 * Varint.Size((uint)Math.Min(bytes, uint.MaxValue)) + bytes;
    }

    /// <summary>Encodes <paramref name="src"/> (histogram computed here).</summary>
    public static OperationStatus Encode(ReadOnlySpan<byte> src, Span<byte> dst, out int written)
    {
        Span<uint> hist = stackalloc uint[256];
        FrequencyTable.Histogram(src, hist);
        Span<byte> lengths = stackalloc byte[256];
        BuildCodeLengths(hist, lengths);
        return Encode(src, lengths, dst, out written);
    }

    /// <summary>Encodes <paramref name="src"/> with the given code lengths (every present symbol must have one).</summary>
    [SkipLocalsInit]
    public static unsafe OperationStatus Encode(ReadOnlySpan<byte> src, ReadOnlySpan<byte> lengths, Span<byte> dst, out int written)
    {
        written = 0;
        Span<ushort> codes = stackalloc ushort[256];
        if (!AssignCodes(lengths, codes)) throw new ArgumentException("code lengths violate the Kraft inequality or the length limit", nameof(lengths));

        int lo = 0, hi = 255;
        while (lo < 256 && lengths[lo] == 0) lo++;
        while (hi >= lo && lengths[hi] == 0) hi--;
        if (lo == 256) { lo = 0; hi = 0; } // empty alphabet: one unused slot
        int count = hi - lo + 1;
        int tableLen = 2 + (count + 1) / 2;

        int n = src.Length;
        int q = (n + 3) / 4;
        Span<long> streamBytes = stackalloc long[4];
        for (int k = 0; k < 4; k++)
        {
            int start = Math.Min(n, k * q), end = Math.Min(n, start + q);
            long bits = 0;
            foreach (byte b in src[start..end])
            {
                if (lengths[b] == 0) throw new ArgumentException($"symbol {b} has no code", nameof(lengths));
                bits += lengths[b];
            }
            streamBytes[k] = (bits + 7) / 8;
        }
        long total = tableLen + Varint.Size((uint)streamBytes[0]) + Varint.Size((uint)streamBytes[1])
                   + Varint.Size((uint)streamBytes[2]) + streamBytes[0] + streamBytes[1] + streamBytes[2] + streamBytes[3];
        if (total > dst.Length) return OperationStatus.DestinationTooSmall;

        dst[0] = (byte)lo;
        dst[1] = (byte)(count - 1);
        for (int i = 0; i < count; i += 2)
        {
            int a = lengths[lo + i], b = i + 1 < count ? lengths[lo + i + 1] : 0;
            dst[2 + i / 2] = (byte)(a | (b << 4));
        }
        int pos = tableLen;
        for (int k = 0; k < 3; k++) pos += Varint.Write(dst[pos..], (uint)streamBytes[k]);

        fixed (byte* s0 = src)
        fixed (byte* d0 = dst)
        fixed (ushort* code = codes)
        fixed (byte* len = lengths)
        {
            for (int k = 0; k < 4; k++)
            {
                int start = Math.Min(n, k * q), end = Math.Min(n, start + q);
                byte* o = d0 + pos;
                ulong acc = 0;
                int nbits = 0;
                for (int i = start; i < end; i++)
                {
                    byte b = s0[i];
                    acc = (acc << len[b]) | code[b];
                    nbits += len[b];
                    if (nbits >= 32)
                    {
                        nbits -= 32;
                        BinaryPrimitives.WriteUInt32BigEndian(new Span<byte>(o, 4), (uint)(acc >> nbits));
                        o += 4;
                    }
                }
                // Left-align the leftover bits and emit whole bytes, zero padded.
                while (nbits > 0)
                {
                    int take = Math.Min(8, nbits);
                    nbits -= take;
                    *o++ = (byte)(((acc >> nbits) << (8 - take)) & 0xFF);
                }
                pos += (int)streamBytes[k];
                if (o != d0 + pos) throw new InvalidOperationException("Huffman stream size mismatch");
            }
        }
        written = pos;
        return OperationStatus.Done;
    }

    /// <summary>Canonical codes: ascending by (length, symbol), each length's first code following the
    /// previous length's last code + 1, shifted. Returns false if lengths are invalid.</summary>
    static bool AssignCodes(ReadOnlySpan<byte> lengths, Span<ushort> codes)
    {
        Span<int> blCount = stackalloc int[MaxCodeLength + 1];
        int kraft = 0;
        for (int s = 0; s < 256; s++)
        {
            int l = lengths[s];
            if (l > MaxCodeLength) return false;
            if (l == 0) continue;
            blCount[l]++;
            kraft += 1 << (MaxCodeLength - l);
        }
        if (kraft > TableSize) return false;
        Span<int> next = stackalloc int[MaxCodeLength + 1];
        int c = 0;
        for (int l = 1; l <= MaxCodeLength; l++)
        {
            c = (c + blCount[l - 1]) << 1;
            next[l] = c;
        }
        for (int s = 0; s < 256; s++)
        {
            int l = lengths[s];
            codes[s] = l == 0 ? (ushort)0 : (ushort)next[l]++;
        }
        return true;
    }

    /// <summary>
    /// Decodes exactly <c>dst.Length</c> symbols from a payload of exactly <c>src.Length</c> bytes.
    /// Any inconsistency (bad table, invalid code, streams not consumed exactly) gives InvalidData.
    /// </summary>
    [SkipLocalsInit]
    public static unsafe OperationStatus Decode(ReadOnlySpan<byte> src, Span<byte> dst)
    {
        if (src.Length < 2) return OperationStatus.InvalidData;
        int lo = src[0], count = src[1] + 1;
        if (lo + count > 256) return OperationStatus.InvalidData;
        int tableLen = 2 + (count + 1) / 2;
        if (src.Length < tableLen) return OperationStatus.InvalidData;

        Span<byte> lengths = stackalloc byte[256];
        lengths.Clear();
        int used = 0;
        for (int i = 0; i < count; i++)
        {
            int nib = (src[2 + i / 2] >> ((i & 1) * 4)) & 15;
            if (nib > MaxCodeLength) return OperationStatus.InvalidData;
            lengths[lo + i] = (byte)nib;
            if (nib != 0) used++;
        }
        if ((count & 1) != 0 && (src[tableLen - 1] >> 4) != 0) return OperationStatus.InvalidData;
        Span<ushort> codes = stackalloc ushort[256];
        if (!AssignCodes(lengths, codes)) return OperationStatus.InvalidData;

        int pos = tableLen;
        Span<int> sLen = stackalloc int[4];
        int sum = 0;
        for (int k = 0; k < 3; k++)
        {
            if (!Varint.TryRead(src, ref pos, out sLen[k])) return OperationStatus.InvalidData;
            sum += sLen[k];
            if (sum < 0 || sum > src.Length - pos) return OperationStatus.InvalidData;
        }
        sLen[3] = src.Length - pos - sum;
        if (used == 0) return dst.Length == 0 && pos == src.Length ? OperationStatus.Done : OperationStatus.InvalidData;

        ushort* table = stackalloc ushort[TableSize];
        new Span<ushort>(table, TableSize).Fill(Invalid);
        for (int s = 0; s < 256; s++)
        {
            int l = lengths[s];
            if (l == 0) continue;
            int start = codes[s] << (MaxCodeLength - l), span = 1 << (MaxCodeLength - l);
            new Span<ushort>(table + start, span).Fill((ushort)(s | (l << 8)));
        }

        int n = dst.Length, q = (n + 3) / 4;
        fixed (byte* s0 = src)
        fixed (byte* d0 = dst)
        {
            byte* p0 = s0 + pos, p1 = p0 + sLen[0], p2 = p1 + sLen[1], p3 = p2 + sLen[2];
            int n0 = sLen[0], n1 = sLen[1], n2 = sLen[2], n3 = sLen[3];
            byte* o0 = d0, o1 = d0 + Math.Min(n, q), o2 = d0 + Math.Min(n, 2 * q), o3 = d0 + Math.Min(n, 3 * q);
            byte* end3 = d0 + n;
            long b0 = 0, b1 = 0, b2 = 0, b3 = 0;
            uint flags = 0;
            const int Shift = 64 - MaxCodeLength;
            // Four streams in lockstep: their table-lookup chains are independent, so the CPU overlaps
            // them. Quarter 3 is the shortest, so its remaining count bounds all four.
            while (end3 - o3 >= 4 && (b0 >> 3) + 8 <= n0 && (b1 >> 3) + 8 <= n1 && (b2 >> 3) + 8 <= n2 && (b3 >> 3) + 8 <= n3)
            {
                ulong u0 = BinaryPrimitives.ReverseEndianness(Unsafe.ReadUnaligned<ulong>(p0 + (b0 >> 3))) << (int)(b0 & 7);
                ulong u1 = BinaryPrimitives.ReverseEndianness(Unsafe.ReadUnaligned<ulong>(p1 + (b1 >> 3))) << (int)(b1 & 7);
                ulong u2 = BinaryPrimitives.ReverseEndianness(Unsafe.ReadUnaligned<ulong>(p2 + (b2 >> 3))) << (int)(b2 & 7);
                ulong u3 = BinaryPrimitives.ReverseEndianness(Unsafe.ReadUnaligned<ulong>(p3 + (b3 >> 3))) << (int)(b3 & 7);
                for (int r = 0; r < 4; r++)
                {
                    uint e0 = table[u0 >> Shift], e1 = table[u1 >> Shift], e2 = table[u2 >> Shift], e3 = table[u3 >> Shift];
                    int l0 = (int)(e0 >> 8) & 15, l1 = (int)(e1 >> 8) & 15, l2 = (int)(e2 >> 8) & 15, l3 = (int)(e3 >> 8) & 15;
                    u0 <<= l0; u1 <<= l1; u2 <<= l2; u3 <<= l3;
                    b0 += l0; b1 += l1; b2 += l2; b3 += l3;
                    o0[r] = (byte)e0; o1[r] = (byte)e1; o2[r] = (byte)e2; o3[r] = (byte)e3;
                    flags |= e0 | e1 | e2 | e3;
                }
                o0 += 4; o1 += 4; o2 += 4; o3 += 4;
            }
            if ((flags & Invalid) != 0
                || !DecodeStream(p0, n0, b0, o0, d0 + Math.Min(n, q), table)
                || !DecodeStream(p1, n1, b1, o1, d0 + Math.Min(n, 2 * q), table)
                || !DecodeStream(p2, n2, b2, o2, d0 + Math.Min(n, 3 * q), table)
                || !DecodeStream(p3, n3, b3, o3, end3, table))
                return OperationStatus.InvalidData;
        }
        return OperationStatus.Done;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static unsafe ulong LoadBits(byte* s, int len, long bitpos)
    {
        long bytePos = bitpos >> 3;
        ulong w;
        if (bytePos + 8 <= len) w = BinaryPrimitives.ReverseEndianness(Unsafe.ReadUnaligned<ulong>(s + bytePos));
        else
        {
            // Near the end: assemble the remaining bytes, zero padded, so no read leaves the stream.
            w = 0;
            for (int i = 0; i < 8; i++)
            {
                long p = bytePos + i;
                w = (w << 8) | (p < len ? s[p] : 0u);
            }
        }
        return w << (int)(bitpos & 7);
    }

    [SkipLocalsInit]
    static unsafe bool DecodeStream(byte* s, int len, long bitpos, byte* o, byte* oend, ushort* table)
    {
        uint flags = 0;
        const int Shift = 64 - MaxCodeLength;
        // Fast path: one unaligned 8-byte load yields ≥ 57 bits, enough for 5 symbols; we take 4.
        long fastEnd = (long)len - 8;
        while (oend - o >= 4 && (bitpos >> 3) <= fastEnd)
        {
            ulong buf = BinaryPrimitives.ReverseEndianness(Unsafe.ReadUnaligned<ulong>(s + (bitpos >> 3))) << (int)(bitpos & 7);
            uint e0 = table[buf >> Shift]; int l0 = (int)(e0 >> 8) & 15; buf <<= l0;
            uint e1 = table[buf >> Shift]; int l1 = (int)(e1 >> 8) & 15; buf <<= l1;
            uint e2 = table[buf >> Shift]; int l2 = (int)(e2 >> 8) & 15; buf <<= l2;
            uint e3 = table[buf >> Shift]; int l3 = (int)(e3 >> 8) & 15;
            o[0] = (byte)e0; o[1] = (byte)e1; o[2] = (byte)e2; o[3] = (byte)e3;
            o += 4;
            bitpos += l0 + l1 + l2 + l3;
            flags |= e0 | e1 | e2 | e3;
        }
        while (o < oend)
        {
            ulong buf = LoadBits(s, len, bitpos);
            uint e = table[buf >> Shift];
            *o++ = (byte)e;
            bitpos += (e >> 8) & 15;
            flags |= e;
        }
        // Valid iff every code was valid and the stream was consumed exactly (only pad bits remain).
        return (flags & Invalid) == 0 && (bitpos + 7) >> 3 == len;
    }
}
