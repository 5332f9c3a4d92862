using System.Numerics;
using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;
using TensorCodec.Numerics;

namespace TensorCodec.Coders;

/// <summary>Byte histograms and the entropy measures the chunk codec reports and uses to pick methods.</summary>
internal static class FrequencyTable
{
    /// <summary>Counts byte occurrences into <paramref name="histogram"/> (length ≥ 256, overwritten).</summary>
    public static void Histogram(ReadOnlySpan<byte> data, Span<uint> histogram)
    {
        if (histogram.Length < 256) throw new ArgumentException("histogram needs 256 entries", nameof(histogram));
        if (data.Length >= VectorMinimum && Simd.AllowAvx512 && Avx512BW.IsSupported && HistogramAvx512(data, histogram)) return;
        HistogramScalar(data, histogram);
    }

    /// <summary>Below this the vector count's prefix and candidate set do not pay.</summary>
    const int VectorMinimum = 16 << 10;
    const int Prefix = 4096;
    const int MaxCandidates = 16;

    /// <summary>
    /// For skewed streams (exponents: a dozen values carry nearly everything): counts a 4 KiB prefix exactly, takes
    /// its most frequent values (at most 16, until they cover 99.5% of it) as candidates, and counts the rest 64 bytes
    /// at a time with one VPCMPEQB + POPCNT per candidate; the bytes no candidate matched are counted one by one from
    /// the mask. Exact for any input; returns false (nothing written) when the candidates cover under 97% of the
    /// prefix, where the scalar count is faster.
    /// </summary>
    [SkipLocalsInit]
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    internal static unsafe bool HistogramAvx512(ReadOnlySpan<byte> data, Span<uint> histogram)
    {
        Span<uint> h = stackalloc uint[256];
        HistogramScalar(data[..Prefix], h);
        byte* cand = stackalloc byte[MaxCandidates];
        int k = 0;
        uint covered = 0;
        Span<uint> left = stackalloc uint[256];
        h.CopyTo(left);
        while (k < MaxCandidates && covered < Prefix - Prefix / 200)
        {
            int best = 0;
            for (int s = 1; s < 256; s++) if (left[s] > left[best]) best = s;
            if (left[best] == 0) break;
            covered += left[best];
            left[best] = 0;
            cand[k++] = (byte)best;
        }
        if (covered < Prefix - 3 * Prefix / 100) return false;
        var c = stackalloc Vector512<byte>[MaxCandidates];
        for (int j = 0; j < k; j++) c[j] = Vector512.Create(cand[j]);
        ulong* counts = stackalloc ulong[MaxCandidates];
        for (int j = 0; j < MaxCandidates; j++) counts[j] = 0;
        fixed (byte* p0 = data)
        {
            byte* p = p0 + Prefix, end = p0 + data.Length;
            for (; end - p >= 64; p += 64)
            {
                var v = Vector512.Load(p);
                ulong matched = 0;
                for (int j = 0; j < k; j++)
                {
                    ulong m = Vector512.Equals(v, c[j]).ExtractMostSignificantBits();
                    counts[j] += (ulong)BitOperations.PopCount(m);
                    matched |= m;
                }
                for (ulong rest = ~matched; rest != 0; rest &= rest - 1) h[p[BitOperations.TrailingZeroCount(rest)]]++;
            }
            for (; p < end; p++) h[*p]++;
        }
        for (int j = 0; j < k; j++) h[cand[j]] += (uint)counts[j];
        h.CopyTo(histogram);
        return true;
    }

    [SkipLocalsInit]
    internal static unsafe void HistogramScalar(ReadOnlySpan<byte> data, Span<uint> histogram)
    {
        // Four sub-histograms break the store-to-load dependency when the same byte repeats,
        // which is exactly the common case (exponent streams are dominated by a few values).
        uint* h = stackalloc uint[4 * 256];
        new Span<uint>(h, 4 * 256).Clear();
        fixed (byte* p0 = data)
        {
            byte* p = p0, end = p0 + data.Length;
            while (end - p >= 8)
            {
                ulong w = Unsafe.ReadUnaligned<ulong>(p);
                h[(byte)w]++;
                h[256 + (byte)(w >> 8)]++;
                h[512 + (byte)(w >> 16)]++;
                h[768 + (byte)(w >> 24)]++;
                h[(byte)(w >> 32)]++;
                h[256 + (byte)(w >> 40)]++;
                h[512 + (byte)(w >> 48)]++;
                h[768 + (byte)(w >> 56)]++;
                p += 8;
            }
            while (p < end) h[*p++]++;
        }
        for (int i = 0; i < 256; i++) histogram[i] = h[i] + h[256 + i] + h[512 + i] + h[768 + i];
    }

    /// <summary>Counts the first 16 bytes of every 64 of <paramref name="data"/> (a quarter, spread over all of it) into
    /// <paramref name="histogram"/> (overwritten); returns how many bytes were counted.</summary>
    [SkipLocalsInit]
    public static unsafe int SampleHistogram(ReadOnlySpan<byte> data, Span<uint> histogram)
    {
        if (histogram.Length < 256) throw new ArgumentException("histogram needs 256 entries", nameof(histogram));
        uint* h = stackalloc uint[4 * 256];
        new Span<uint>(h, 4 * 256).Clear();
        int blocks = data.Length / 64;
        fixed (byte* p0 = data)
        {
            for (int b = 0; b < blocks; b++)
            {
                byte* p = p0 + 64L * b;
                ulong w0 = Unsafe.ReadUnaligned<ulong>(p), w1 = Unsafe.ReadUnaligned<ulong>(p + 8);
                h[(byte)w0]++; h[256 + (byte)(w0 >> 8)]++; h[512 + (byte)(w0 >> 16)]++; h[768 + (byte)(w0 >> 24)]++;
                h[(byte)(w0 >> 32)]++; h[256 + (byte)(w0 >> 40)]++; h[512 + (byte)(w0 >> 48)]++; h[768 + (byte)(w0 >> 56)]++;
                h[(byte)w1]++; h[256 + (byte)(w1 >> 8)]++; h[512 + (byte)(w1 >> 16)]++; h[768 + (byte)(w1 >> 24)]++;
                h[(byte)(w1 >> 32)]++; h[256 + (byte)(w1 >> 40)]++; h[512 + (byte)(w1 >> 48)]++; h[768 + (byte)(w1 >> 56)]++;
            }
        }
        for (int i = 0; i < 256; i++) histogram[i] = h[i] + h[256 + i] + h[512 + i] + h[768 + i];
        return 16 * blocks;
    }

    /// <summary>Number of distinct symbols with a non-zero count.</summary>
    public static int UsedSymbols(ReadOnlySpan<uint> histogram)
    {
        int n = 0;
        foreach (uint c in histogram) if (c != 0) n++;
        return n;
    }

    /// <summary>Order-0 Shannon information of the whole data in bits: Σ −log2 p(symbol).</summary>
    public static double Order0Bits(ReadOnlySpan<uint> histogram)
    {
        ulong total = 0;
        double sum = 0;
        foreach (uint c in histogram)
        {
            if (c == 0) continue;
            total += c;
            sum += c * Math.Log2(c);
        }
        return total == 0 ? 0 : total * Math.Log2(total) - sum;
    }

    /// <summary>Order-0 information of <paramref name="data"/> in bits.</summary>
    public static double Order0Bits(ReadOnlySpan<byte> data)
    {
        Span<uint> h = stackalloc uint[256];
        Histogram(data, h);
        return Order0Bits(h);
    }

    /// <summary>
    /// Order-1 conditional information in bits: Σ −log2 p(x_i | x_{i-1}), with the first symbol's
    /// context taken as 0. A measure only (what a previous-symbol context model could reach).
    /// </summary>
    public static double Order1Bits(ReadOnlySpan<byte> data)
    {
        if (data.IsEmpty) return 0;
        uint[] counts = System.Buffers.ArrayPool<uint>.Shared.Rent(65536);
        try { return Order1Bits(data, counts); }
        finally { System.Buffers.ArrayPool<uint>.Shared.Return(counts); }
    }

    /// <summary>As <see cref="Order1Bits(ReadOnlySpan{byte})"/> with the caller's 65,536-entry pair histogram (overwritten).</summary>
    internal static double Order1Bits(ReadOnlySpan<byte> data, uint[] counts)
    {
        if (data.IsEmpty) return 0;
        // Only the contexts that occur are cleared and summed (an unseen one adds exactly 0), so a tiny
        // stream costs its length, not the 65,536-entry table: a file of 200,000 one-value tensors stays fast.
        Span<bool> seen = stackalloc bool[256];
        seen.Clear();
        seen[0] = true;
        foreach (byte b in data) seen[b] = true;
        for (int ctx = 0; ctx < 256; ctx++)
            if (seen[ctx]) Array.Clear(counts, ctx << 8, 256);
        int prev = 0;
        foreach (byte b in data) { counts[(prev << 8) | b]++; prev = b; }
        double bits = 0;
        for (int ctx = 0; ctx < 256; ctx++)
            if (seen[ctx]) bits += Order0Bits(new ReadOnlySpan<uint>(counts, ctx << 8, 256));
        return bits;
    }
}
