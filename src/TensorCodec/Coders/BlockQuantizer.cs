using System.Buffers.Binary;

namespace TensorCodec.Coders;

/// <summary>The value map a block of optimizer state is quantized to (the id is stored, FORMAT.md).</summary>
internal enum QuantMap : byte
{
    /// <summary>Signed dynamic tree map (8-bit optimizers, Dettmers et al.): decades 10^−(k−1) … 1, finer near 1, plus 0 and 1.</summary>
    SignedDynamic = 0,
    /// <summary>Unsigned dynamic map, for non-negative values (exp_avg_sq at 8 bits): twice the fractions per decade, plus 0 and 1.</summary>
    UnsignedDynamic = 1,
    /// <summary>Linear map without zero, (i+1)/2^bits (exp_avg_sq at 4 bits, as in the 4-bit optimizer paper: a second
    /// moment restored as 0 would blow up the update m/√v).</summary>
    UnsignedLinear = 2,
}

/// <summary>
/// Blockwise absmax quantization of F32 values as the 8-bit and 4-bit optimizer papers do it: each block of
/// <c>blockSize</c> values keeps its absolute maximum as F32 and every value becomes the index of the nearest
/// entry of a fixed map of 2^bits values in [−1, 1] (or [0, 1]), scaled by that maximum. The error of every
/// value is at most <see cref="ErrorBound"/> × the block's absmax. Decoding is pure float multiplication by
/// stored constants, so every reader rebuilds the same bytes.
/// </summary>
/// <remarks>Coded layout of n values (n ≥ 2): ceil(n/B) absmax values (F32 LE), then the codes: one byte each
/// at 8 bits, two per byte at 4 bits (low nibble first); the rest of the n·4 bytes is zero. n &lt; 2 is stored as is
/// (the layout would not fit in 4 bytes).</remarks>
internal static class BlockQuantizer
{
    static readonly float[][] Maps = new float[6][];

    /// <summary>The sorted map of 2^<paramref name="bits"/> entries for <paramref name="map"/>.</summary>
    public static float[] Map(QuantMap map, int bits)
    {
        int slot = (int)map * 2 + (bits == 4 ? 1 : 0);
        return Maps[slot] ??= Build(map, bits);
    }

    static float[] Build(QuantMap map, int bits)
    {
        if (bits is not (4 or 8)) throw new ArgumentOutOfRangeException(nameof(bits), "4 or 8 bits");
        int size = 1 << bits;
        var values = new List<double>();
        if (map == QuantMap.UnsignedLinear)
        {
            for (int i = 0; i < size; i++) values.Add((i + 1) / (double)size);
        }
        else
        {
            bool signed = map == QuantMap.SignedDynamic;
            int exponents = bits - 1;
            // Decade scales as literals, not Math.Pow: the map must be the same bits on every machine.
            double[] decades = [1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 1e-1, 1];
            for (int i = 0; i < exponents; i++)
            {
                double scale = decades[decades.Length - exponents + i];
                int fractions = signed ? 1 << i : 2 << i;
                // Midpoints of `fractions` equal steps over [0.1, 1].
                for (int j = 0; j < fractions; j++)
                {
                    double lo = 0.1 + 0.9 * j / fractions, hi = 0.1 + 0.9 * (j + 1) / fractions;
                    values.Add(scale * (lo + hi) / 2);
                    if (signed) values.Add(-scale * (lo + hi) / 2);
                }
            }
            values.Add(0);
            values.Add(1);
        }
        if (values.Count != size) throw new InvalidOperationException($"map {map} at {bits} bits has {values.Count} entries");
        var result = values.Select(v => (float)v).ToArray();
        Array.Sort(result);
        return result;
    }

    /// <summary>Largest |x − x̂| / absmax over every x of a block (from the map's gaps and ends); the format's
    /// documented per-block bound, before float rounding of the product (≤ 2^−23 relative more).</summary>
    public static double ErrorBound(QuantMap map, int bits)
    {
        var m = Map(map, bits);
        double lo = map == QuantMap.SignedDynamic ? -1 : 0;
        double bound = Math.Max(m[0] - lo, 1 - m[^1]);
        for (int i = 1; i < m.Length; i++) bound = Math.Max(bound, (m[i] - (double)m[i - 1]) / 2);
        return bound;
    }

    /// <summary>Bytes the coded form of <paramref name="n"/> values takes (≤ 4n for n ≥ 2).</summary>
    public static int CodedLength(int n, int bits, int blockSize) =>
        n < 2 ? 4 * n : 4 * ((n + blockSize - 1) / blockSize) + (bits == 8 ? n : (n + 1) / 2);

    /// <summary>Quantizes the F32 values of <paramref name="raw"/> (length 4n) into <paramref name="coded"/> (length 4n, rest zeroed).</summary>
    public static void Encode(ReadOnlySpan<byte> raw, Span<byte> coded, QuantMap map, int bits, int blockSize)
    {
        int n = raw.Length / 4;
        if (n < 2) { raw.CopyTo(coded); return; }
        var m = Map(map, bits);
        coded.Clear();
        int blocks = (n + blockSize - 1) / blockSize;
        var codes = coded[(4 * blocks)..];
        for (int b = 0; b < blocks; b++)
        {
            int start = b * blockSize, end = Math.Min(n, start + blockSize);
            float absmax = 0;
            for (int i = start; i < end; i++) absmax = MathF.Max(absmax, MathF.Abs(Read(raw, i)));
            BinaryPrimitives.WriteSingleLittleEndian(coded[(4 * b)..], absmax);
            for (int i = start; i < end; i++)
            {
                int q = absmax > 0 ? Nearest(m, Read(raw, i) / absmax) : Nearest(m, 0);
                if (bits == 8) codes[i] = (byte)q;
                else codes[i >> 1] |= (byte)(q << ((i & 1) * 4));
            }
        }
    }

    /// <summary>Rebuilds the F32 values from <paramref name="coded"/> into <paramref name="raw"/> (both 4n bytes; may not overlap).</summary>
    public static void Decode(ReadOnlySpan<byte> coded, Span<byte> raw, QuantMap map, int bits, int blockSize)
    {
        int n = raw.Length / 4;
        if (n < 2) { coded.CopyTo(raw); return; }
        var m = Map(map, bits);
        int blocks = (n + blockSize - 1) / blockSize;
        var codes = coded[(4 * blocks)..];
        for (int b = 0; b < blocks; b++)
        {
            int start = b * blockSize, end = Math.Min(n, start + blockSize);
            float absmax = BinaryPrimitives.ReadSingleLittleEndian(coded[(4 * b)..]);
            for (int i = start; i < end; i++)
            {
                int q = bits == 8 ? codes[i] : (codes[i >> 1] >> ((i & 1) * 4)) & 15;
                BinaryPrimitives.WriteSingleLittleEndian(raw[(4 * i)..], m[q] * absmax);
            }
        }
    }

    /// <summary>True when the coded bytes past the codes are zero and every absmax is finite and ≥ 0 (a damaged chunk is refused, not rebuilt).</summary>
    public static bool IsWellFormed(ReadOnlySpan<byte> coded, int bits, int blockSize)
    {
        int n = coded.Length / 4;
        if (n < 2) return true;
        int blocks = (n + blockSize - 1) / blockSize;
        for (int b = 0; b < blocks; b++)
        {
            float a = BinaryPrimitives.ReadSingleLittleEndian(coded[(4 * b)..]);
            if (!float.IsFinite(a) || a < 0 || float.IsNegative(a)) return false;
        }
        return !coded[CodedLength(n, bits, blockSize)..].ContainsAnyExcept((byte)0);
    }

    static float Read(ReadOnlySpan<byte> raw, int i) => BinaryPrimitives.ReadSingleLittleEndian(raw[(4 * i)..]);

    /// <summary>Index of the map entry nearest to <paramref name="x"/> (ties to the lower entry).</summary>
    static int Nearest(float[] m, float x)
    {
        int lo = 0, hi = m.Length - 1;
        if (x <= m[0]) return 0;
        if (x >= m[hi]) return hi;
        while (hi - lo > 1)
        {
            int mid = (lo + hi) >> 1;
            if (m[mid] <= x) lo = mid; else hi = mid;
        }
        return x - m[lo] <= m[hi] - x ? lo : hi;
    }
}
