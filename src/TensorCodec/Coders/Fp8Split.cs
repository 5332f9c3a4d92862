using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using TensorCodec.Numerics;

namespace TensorCodec.Coders;

/// <summary>
/// Split transforms 10 (F8E4M3) and 11 (F8E5M2): one byte per element becomes two streams,
/// <c>mag</c> = bits 6..0 (exponent and mantissa together, one byte per element) and <c>sign</c> =
/// bit 7 of each element packed eight to a byte (element 8i+j in bit j of byte i, least significant
/// first; unused bits of the last byte are zero), ceil(n/8) bytes. Every one of the 256 codes (±0,
/// subnormals, E4M3's NaN 0x7F/0xFF, E5M2's ±Inf 0x7C/0xFC and NaNs 0x7D..0x7F) round-trips, since
/// every bit goes to exactly one stream. Both ids share this layout; the id records where the
/// exponent ends inside <c>mag</c> (bits 6..3 for E4M3, 6..2 for E5M2), for statistics and models.
/// </summary>
/// <remarks>
/// Why this cut (measured on bard-3m cast to FP8 with 128×128 block scales, BENCHMARKS.md "FP8
/// weights"): the sign is independent of the magnitude to within 0.001 bits, so taking it out
/// costs nothing, while the magnitude alphabet halves (the rANS frequencies at a 2^12 scale and the
/// tables fit it better, and the sign plane is stored at exactly one bit). Splitting exponent from
/// mantissa as for BF16 would lose I(exponent; mantissa), about 0.05 bits a value, with order-0 coders.
/// </remarks>
internal static class Fp8Split
{
    /// <summary>Whether <paramref name="t"/> is one of the FP8 transforms.</summary>
    public static bool Is(SplitTransform t) => t is SplitTransform.F8E4M3 or SplitTransform.F8E5M2;

    /// <summary>The FP8 transform of <paramref name="dtype"/>, or <see cref="SplitTransform.Bytes"/> for any other dtype.</summary>
    public static SplitTransform ForDType(DType dtype) => dtype switch
    {
        DType.F8E4M3 => SplitTransform.F8E4M3,
        DType.F8E5M2 => SplitTransform.F8E5M2,
        _ => SplitTransform.Bytes,
    };

    /// <summary>Mantissa bits inside the <c>mag</c> byte (3 for E4M3, 2 for E5M2).</summary>
    public static int MantissaBits(SplitTransform t) => t == SplitTransform.F8E5M2 ? 2 : 3;

    /// <summary>Bytes of stream <paramref name="k"/> (0 = mag, 1 = sign) for <paramref name="n"/> elements.</summary>
    public static int StreamLength(int k, int n) => k == 0 ? n : (int)(((long)n + 7) >> 3);

    static readonly string[] Names = ["mag", "sign"];

    /// <summary>Stream name used in statistics.</summary>
    public static string StreamName(int k) => Names[k];

    /// <summary>
    /// Transform 10/11 or 0 for one chunk of FP8 bytes, decided from the byte histogram without trial encoding:
    /// the FP8 split is taken when the size estimate of its two streams (the magnitude histogram folded from the
    /// byte histogram; the sign plane stored, or constant when every sign is equal) beats the estimate for the byte
    /// stream as it is by more than <see cref="Margin"/>. <paramref name="hist"/> (256 entries) is overwritten.
    /// </summary>
    /// <remarks>
    /// Each stream is estimated as the encoder would code it (constant; else the cheaper of Huffman, exact from
    /// its code lengths, and rANS; stored if neither beats the storing limit), except that the rANS size comes
    /// from rounded frequencies without the encoder's unit-by-unit correction to a sum of exactly 2^12, which
    /// costs about three histograms on a 250-symbol alphabet; both candidates are estimated the same way and the
    /// margin covers the difference.
    /// </remarks>
    public static SplitTransform Choose(ReadOnlySpan<byte> raw, DType dtype, Span<uint> hist)
    {
        var t = ForDType(dtype);
        int n = raw.Length;
        if (t == SplitTransform.Bytes || n < 64) return SplitTransform.Bytes;
        FrequencyTable.Histogram(raw, hist);
        long whole = EstimateStream(hist, n);
        Span<uint> mag = stackalloc uint[256];
        mag.Clear();
        long negative = 0;
        for (int s = 0; s < 128; s++)
        {
            mag[s] = hist[s] + hist[s + 128];
            negative += hist[s + 128];
        }
        long signBytes = StreamLength(1, n);
        long sign = negative == 0 || negative == n ? 1 : signBytes;
        long split = EstimateStream(mag, n) + sign + 1 + Varint.Size((uint)sign);
        return split + Margin(n) < whole ? t : SplitTransform.Bytes;
    }

    /// <summary>How much smaller the FP8 split's estimate must be: 16 bytes + 1/4096 of the chunk (the gain on
    /// weights is about 1/400 of the chunk, BENCHMARKS.md "FP8 weights").</summary>
    static long Margin(int n) => 16 + (n >> 12);

    /// <summary>Payload bytes plus record header the encoder would spend on a stream of <paramref name="n"/> bytes
    /// with histogram <paramref name="hist"/> (see <see cref="Choose"/>).</summary>
    static long EstimateStream(ReadOnlySpan<uint> hist, int n)
    {
        if (FrequencyTable.UsedSymbols(hist) <= 1) return 3;
        long limit = n - (n >> 7) - 8;
        long best = n;
        if (FrequencyTable.Order0Bits(hist) / 8 < limit + 1)
        {
            Span<byte> lengths = stackalloc byte[256];
            HuffmanCoder.BuildCodeLengths(hist, lengths);
            long coded = Math.Min(HuffmanCoder.EstimateSize(hist, lengths), RansEstimate(hist, n));
            if (coded < limit) best = coded;
        }
        return best + 1 + Varint.Size((uint)best);
    }

    /// <summary>rANS payload size from frequencies rounded to the 2^12 scale (each present symbol ≥ 1), coded as if
    /// their probabilities were freq / Σfreq: the table, the states and the ideal code length.</summary>
    static long RansEstimate(ReadOnlySpan<uint> hist, int n)
    {
        Span<ushort> freqs = stackalloc ushort[256];
        long sum = 0;
        for (int s = 0; s < 256; s++)
        {
            uint c = hist[s];
            if (c == 0) { freqs[s] = 0; continue; }
            long f = Math.Clamp(((long)c * RansCoder.Scale + n / 2) / n, 1, RansCoder.Scale);
            freqs[s] = (ushort)f;
            sum += f;
        }
        double bits = 0, logSum = Math.Log2(sum);
        for (int s = 0; s < 256; s++)
            if (hist[s] != 0) bits += hist[s] * (logSum - Math.Log2(freqs[s]));
        return RansCoder.TableSize(freqs) + 4 * 16 + 2 * (long)Math.Ceiling(bits / 16 + 1);
    }

    /// <summary>Splits <paramref name="n"/> bytes at <paramref name="r"/> into <paramref name="mag"/> (n bytes) and <paramref name="sign"/> (ceil(n/8) bytes).</summary>
    public static unsafe void Split(byte* r, byte* mag, byte* sign, int n)
    {
        int i = 0;
        if (Simd.AllowAvx2 && Vector256.IsHardwareAccelerated)
        {
            var x7f = Vector256.Create((byte)0x7F);
            for (; i + 32 <= n; i += 32)
            {
                var v = Vector256.Load(r + i);
                (v & x7f).Store(mag + i);
                Unsafe.WriteUnaligned(sign + (i >> 3), v.ExtractMostSignificantBits());
            }
        }
        if (Simd.AllowVector128 && Vector128.IsHardwareAccelerated)
        {
            var x7f = Vector128.Create((byte)0x7F);
            for (; i + 16 <= n; i += 16)
            {
                var v = Vector128.Load(r + i);
                (v & x7f).Store(mag + i);
                Unsafe.WriteUnaligned(sign + (i >> 3), (ushort)v.ExtractMostSignificantBits());
            }
        }
        SplitScalar(r, mag, sign, i, n);
    }

    /// <summary>The scalar reference from element <paramref name="from"/> (a multiple of 8) on.</summary>
    static unsafe void SplitScalar(byte* r, byte* mag, byte* sign, int from, int n)
    {
        for (int i = from; i < n; i += 8)
        {
            int bits = 0, end = Math.Min(n, i + 8);
            for (int j = i; j < end; j++)
            {
                mag[j] = (byte)(r[j] & 0x7F);
                bits |= (r[j] >> 7) << (j - i);
            }
            sign[i >> 3] = (byte)bits;
        }
    }

    /// <summary>Inverse of <see cref="Split"/>. Bit 7 of a <paramref name="mag"/> byte and unused sign bits are ignored.</summary>
    public static unsafe void Merge(byte* mag, byte* sign, byte* r, int n)
    {
        int i = 0;
        // Each sign byte is spread over the 8 lanes it covers, then lane j keeps bit j: equal to its lane bit → 0x80.
        const ulong LaneBits = 0x8040201008040201UL, Spread = 0x0101010101010101UL;
        if (Simd.AllowAvx2 && Vector256.IsHardwareAccelerated)
        {
            var x7f = Vector256.Create((byte)0x7F);
            var x80 = Vector256.Create((byte)0x80);
            var lane = Vector256.Create(LaneBits).AsByte();
            for (; i + 32 <= n; i += 32)
            {
                byte* s = sign + (i >> 3);
                var spread = Vector256.Create(s[0] * Spread, s[1] * Spread, s[2] * Spread, s[3] * Spread).AsByte();
                var neg = Vector256.Equals(spread & lane, lane) & x80;
                ((Vector256.Load(mag + i) & x7f) | neg).Store(r + i);
            }
        }
        if (Simd.AllowVector128 && Vector128.IsHardwareAccelerated)
        {
            var x7f = Vector128.Create((byte)0x7F);
            var x80 = Vector128.Create((byte)0x80);
            var lane = Vector128.Create(LaneBits).AsByte();
            for (; i + 16 <= n; i += 16)
            {
                byte* s = sign + (i >> 3);
                var spread = Vector128.Create(s[0] * Spread, s[1] * Spread).AsByte();
                var neg = Vector128.Equals(spread & lane, lane) & x80;
                ((Vector128.Load(mag + i) & x7f) | neg).Store(r + i);
            }
        }
        for (; i < n; i++)
            r[i] = (byte)((mag[i] & 0x7F) | (((sign[i >> 3] >> (i & 7)) & 1) << 7));
    }
}
