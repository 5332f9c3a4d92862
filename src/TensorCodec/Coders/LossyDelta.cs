using System.Buffers.Binary;
using TensorCodec.Numerics;

namespace TensorCodec.Coders;

/// <summary>
/// The lossy delta of one chunk of a 2-D float tensor against its reference (FORMAT.md, "Lossy deltas"). A chunk
/// holds values <c>first … first + n − 1</c> of a row-major tensor of <c>cols</c> columns; it is cut into
/// <em>pieces</em>, the runs of values that lie in one row, and each piece has its own scale. The payload is, in
/// order: the low-rank factor rows L[r] of the rows the chunk touches (P × R F16), the whole right factor R
/// (cols × R F16), one F16 scale per piece, the codes packed LSB-first at their width, then zero bytes up to the
/// chunk's n·w bytes. A chunk whose payload would not fit in n·w bytes holds its values verbatim (lossless).
/// Decoding is scalar float arithmetic in a fixed order (no fused multiply-add), so every reader rebuilds the same bytes.
/// </summary>
internal static class LossyDelta
{
    /// <summary>Dtypes a lossy delta is defined for.</summary>
    public static bool Supports(DType t) => t is DType.F32 or DType.F16 or DType.BF16;

    /// <summary>Largest |delta| a tensor may have to be coded lossy (its scales then always fit F16).</summary>
    public const float MaxDelta = 1000;

    static int Level(int bits) => (1 << (bits - 1)) - 1;

    static int Pieces(int cols, long first, int n) => n == 0 ? 0 : (int)((first + n - 1) / cols - first / cols + 1);

    /// <summary>Bytes of the payload of a chunk of <paramref name="n"/> values from value <paramref name="first"/>.</summary>
    public static long PayloadBytes(LossyDeltaSpec spec, int cols, long first, int n)
    {
        long p = Pieces(cols, first, n), bytes = 0;
        if (spec.Method == LossyDeltaMethod.LowRank) bytes += 2L * spec.Rank * (p + cols);
        if (spec.Bits > 0) bytes += 2 * p + ((long)n * spec.Bits + 7) / 8;
        return bytes;
    }

    /// <summary>True when the chunk holds the lossy payload; false: its values verbatim.</summary>
    public static bool Fits(LossyDeltaSpec spec, int cols, long first, int n, DType dtype) =>
        n > 0 && PayloadBytes(spec, cols, first, n) <= (long)n * dtype.ElementSize();

    /// <summary>Values of a float dtype as F32 (exact).</summary>
    public static void ToFloat(ReadOnlySpan<byte> src, DType dtype, Span<float> dst)
    {
        for (int i = 0; i < dst.Length; i++)
            dst[i] = dtype switch
            {
                DType.F32 => BinaryPrimitives.ReadSingleLittleEndian(src[(4 * i)..]),
                DType.F16 => (float)BinaryPrimitives.ReadHalfLittleEndian(src[(2 * i)..]),
                _ => BFloat16.ToFloat(BinaryPrimitives.ReadUInt16LittleEndian(src[(2 * i)..])),
            };
    }

    /// <summary>F32 values rounded to a float dtype: to nearest, ties to even (BF16 as <see cref="BFloat16.FromFloat(float)"/>).</summary>
    public static void FromFloat(ReadOnlySpan<float> src, DType dtype, Span<byte> dst)
    {
        for (int i = 0; i < src.Length; i++)
            switch (dtype)
            {
                case DType.F32: BinaryPrimitives.WriteSingleLittleEndian(dst[(4 * i)..], src[i]); break;
                case DType.F16: BinaryPrimitives.WriteHalfLittleEndian(dst[(2 * i)..], (Half)src[i]); break;
                default: BinaryPrimitives.WriteUInt16LittleEndian(dst[(2 * i)..], BFloat16.FromFloat(src[i])); break;
            }
    }

    /// <summary>
    /// Writes the payload of a chunk whose delta (target − reference, in F32) is <paramref name="delta"/>, into
    /// <paramref name="payload"/> (n·w bytes, fully written). <paramref name="leftRows"/>: the rows of the left
    /// factor for the rows the chunk touches (P × R); <paramref name="right"/>: the right factor (cols × R).
    /// The chunk must <see cref="Fits"/>.
    /// </summary>
    public static void Encode(LossyDeltaSpec spec, int cols, long first, ReadOnlySpan<float> delta, ReadOnlySpan<Half> leftRows, ReadOnlySpan<Half> right, Span<byte> payload)
    {
        int n = delta.Length, pieces = Pieces(cols, first, n), rank = spec.Rank;
        payload.Clear();
        int pos = 0;
        var residual = new float[n];
        delta.CopyTo(residual);
        if (spec.Method == LossyDeltaMethod.LowRank)
        {
            for (int i = 0; i < pieces * rank; i++) BinaryPrimitives.WriteHalfLittleEndian(payload[(2 * (pos + i))..], leftRows[i]);
            pos += pieces * rank;
            for (int i = 0; i < cols * rank; i++) BinaryPrimitives.WriteHalfLittleEndian(payload[(2 * (pos + i))..], right[i]);
            pos += cols * rank;
            var term = new float[n];
            LowRankTerm(payload, cols, first, rank, term);
            // What the codes must carry is what the factor leaves, computed as the decoder will.
            for (int i = 0; i < n; i++) residual[i] = delta[i] - term[i];
        }
        if (spec.Bits == 0) return;
        int scaleAt = 2 * pos, codeAt = scaleAt + 2 * pieces;
        long bit = 0;
        for (int p = 0; p < pieces; p++)
        {
            var (from, to) = Piece(cols, first, n, p);
            var e = residual.AsSpan(from, to - from);
            Half scale;
            if (spec.Method == LossyDeltaMethod.BitDelta)
            {
                double sum = 0;
                foreach (var v in e) sum += Math.Abs(v);
                scale = (Half)(sum / e.Length);
            }
            else
            {
                float max = 0;
                foreach (var v in e) max = Math.Max(max, Math.Abs(v));
                scale = ScaleFor(max, Level(spec.Bits));
            }
            BinaryPrimitives.WriteHalfLittleEndian(payload[(scaleAt + 2 * p)..], scale);
            double s = (double)scale;
            int level = spec.Bits == 1 ? 0 : Level(spec.Bits);
            foreach (var v in e)
            {
                uint code = spec.Bits == 1 ? (v < 0 ? 1u : 0u)
                    : (uint)(Math.Clamp(s == 0 ? 0 : (int)Math.Round(v / s, MidpointRounding.ToEven), -level, level) + level);
                PutBits(payload[codeAt..], bit, spec.Bits, code);
                bit += spec.Bits;
            }
        }
    }

    /// <summary>The smallest F16 at least <paramref name="max"/> / <paramref name="level"/>, so no code is clamped
    /// (<see cref="Half.MaxValue"/> at most: <see cref="MaxDelta"/> keeps a delta far below).</summary>
    internal static Half ScaleFor(float max, int level)
    {
        if (max == 0) return Half.Zero;
        double target = (double)max / level;
        var h = (Half)target;
        if ((double)h < target) h = Half.BitIncrement(h);
        return Half.IsInfinity(h) ? Half.MaxValue : h;
    }

    static (int From, int To) Piece(int cols, long first, int n, int p)
    {
        long row = first / cols + p;
        long from = Math.Max(first, row * cols), to = Math.Min(first + n, (row + 1) * cols);
        return ((int)(from - first), (int)(to - first));
    }

    static void PutBits(Span<byte> codes, long bit, int width, uint value)
    {
        for (int b = 0; b < width; b++, bit++)
            if ((value >> b & 1) != 0) codes[(int)(bit >> 3)] |= (byte)(1 << (int)(bit & 7));
    }

    static uint GetBits(ReadOnlySpan<byte> codes, long bit, int width)
    {
        uint v = 0;
        for (int b = 0; b < width; b++, bit++)
            v |= (uint)(codes[(int)(bit >> 3)] >> (int)(bit & 7) & 1) << b;
        return v;
    }

    /// <summary>term[i] = Σₖ L[row(i), k] · R[col(i), k], k = 0 … R−1 in order, each product and sum rounded to F32.</summary>
    static void LowRankTerm(ReadOnlySpan<byte> payload, int cols, long first, int rank, Span<float> term)
    {
        int n = term.Length, pieces = Pieces(cols, first, n);
        var left = new float[pieces * rank];
        var right = new float[cols * rank];
        for (int i = 0; i < left.Length; i++) left[i] = (float)BinaryPrimitives.ReadHalfLittleEndian(payload[(2 * i)..]);
        for (int i = 0; i < right.Length; i++) right[i] = (float)BinaryPrimitives.ReadHalfLittleEndian(payload[(2 * (left.Length + i))..]);
        for (int p = 0; p < pieces; p++)
        {
            var (from, to) = Piece(cols, first, n, p);
            var l = left.AsSpan(p * rank, rank);
            for (int i = from; i < to; i++)
            {
                int c = (int)((first + i) % cols);
                var r = right.AsSpan(c * rank, rank);
                float acc = 0;
                for (int k = 0; k < rank; k++) acc += l[k] * r[k];
                term[i] = acc;
            }
        }
    }

    /// <summary>
    /// The decoded delta of a chunk (n = <paramref name="delta"/>.Length values): the low-rank term, plus code × scale
    /// (<c>bits:N</c> and residuals: (c − L) × s with L = 2^(N−1) − 1; bitdelta: ±s). False when the payload is malformed
    /// (a scale negative or not finite, a code above 2L, a factor not finite, nonzero padding).
    /// </summary>
    public static bool DecodeDelta(LossyDeltaSpec spec, int cols, long first, ReadOnlySpan<byte> payload, Span<float> delta)
    {
        int n = delta.Length, pieces = Pieces(cols, first, n), rank = spec.Rank;
        long used = PayloadBytes(spec, cols, first, n);
        if (used > payload.Length || payload[(int)used..].ContainsAnyExcept((byte)0)) return false;
        delta.Clear();
        int pos = 0;
        if (spec.Method == LossyDeltaMethod.LowRank)
        {
            pos = rank * (pieces + cols);
            for (int i = 0; i < pos; i++)
                if (!Half.IsFinite(BinaryPrimitives.ReadHalfLittleEndian(payload[(2 * i)..]))) return false;
            LowRankTerm(payload, cols, first, rank, delta);
        }
        if (spec.Bits == 0) return true;
        int scaleAt = 2 * pos, codeAt = scaleAt + 2 * pieces;
        long totalBits = (long)n * spec.Bits;
        if (totalBits % 8 != 0 && (payload[codeAt + (int)(totalBits >> 3)] >> (int)(totalBits & 7)) != 0) return false;
        int level = spec.Bits == 1 ? 0 : Level(spec.Bits);
        long bit = 0;
        var codes = payload[codeAt..];
        for (int p = 0; p < pieces; p++)
        {
            var scale = BinaryPrimitives.ReadHalfLittleEndian(payload[(scaleAt + 2 * p)..]);
            if (!Half.IsFinite(scale) || Half.IsNegative(scale)) return false;
            float s = (float)scale;
            var (from, to) = Piece(cols, first, n, p);
            for (int i = from; i < to; i++, bit += spec.Bits)
            {
                uint code = GetBits(codes, bit, spec.Bits);
                if (spec.Bits == 1) delta[i] = code == 0 ? s : -s;
                else
                {
                    if (code > 2 * level) return false;
                    delta[i] += ((int)code - level) * s;
                }
            }
        }
        return true;
    }

    /// <summary>The rebuilt values: reference + decoded delta in F32, rounded once to the dtype. False: malformed payload.</summary>
    public static bool Decode(LossyDeltaSpec spec, int cols, long first, ReadOnlySpan<byte> payload, ReadOnlySpan<byte> reference, DType dtype, Span<byte> output)
    {
        int n = reference.Length / dtype.ElementSize();
        var delta = new float[n];
        if (!DecodeDelta(spec, cols, first, payload, delta)) return false;
        var values = new float[n];
        ToFloat(reference, dtype, values);
        for (int i = 0; i < n; i++) values[i] += delta[i];
        FromFloat(values, dtype, output);
        return true;
    }
}
