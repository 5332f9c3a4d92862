using System.Buffers.Binary;
using TensorCodec.Numerics;

namespace TensorCodec.Formats;

/// <summary>
/// Group-wise asymmetric n-bit integers in GPTQ's storage layout ("int4_g128", n ∈ {2,3,4,8},
/// group ∈ {32,64,128}), round to nearest. The input matrix is [out_features (rows) ×
/// in_features (cols)], as nn.Linear stores it; groups run along a row. Per group:
/// lo = min(x, 0), hi = max(x, 0) (both 0: lo = −1, hi = 1, as GPTQ does); s = (hi − lo)/maxq
/// rounded <em>up</em> to fp16 (so the stored scale still covers the range and |x − dq| ≤ s/2);
/// z = round(−lo/s); q = clamp(round(x/s) + z, 0, maxq); dq = (q − z)·s. Ties round to even.
/// Layout after the <see cref="MatrixHeader"/>, little-endian:
/// bits u32 | group u32 |
/// qweight i32[cols·n/32][rows] — for each row, its q values form a bit stream (value c at bit
/// c·n, so 3-bit values straddle words as in GPTQ), word w of row r at [w·rows + r] |
/// qzeros i32[cols/group][rows·n/32] — per group the zero points of all rows, packed the same
/// way along the rows | scales f16[cols/group][rows].
/// Zero points are stored as is (GPTQ v2 / GPTQModel convention); AutoGPTQ's v1 checkpoints
/// store z − 1. Needs rows·n to be a multiple of 32 (GPTQ packs the zeros along out_features).
/// </summary>
internal sealed class IntNGroupwise : IMatrixFormat
{
    public IntNGroupwise(int bits, int group)
    {
        if (bits is not (2 or 3 or 4 or 8)) throw new ArgumentOutOfRangeException(nameof(bits), "bits must be 2, 3, 4 or 8");
        if (group is not (32 or 64 or 128)) throw new ArgumentOutOfRangeException(nameof(group), "group must be 32, 64 or 128");
        Bits = bits; Group = group;
    }

    public int Bits { get; }
    public int Group { get; }
    public int MaxQ => (1 << Bits) - 1;
    public string Name => $"int{Bits}_g{Group}";
    public int RowMultiple => Group;
    public bool UsesImportance => false;

    private int RowsCheck(ReadOnlySpan<float> src, int nPerRow)
    {
        int rows = MatrixFormatChecks.Shape(Name, src.Length, nPerRow, Group);
        if (rows * Bits % 32 != 0)
            throw new ArgumentException($"{Name}: {rows} rows: GPTQ packs zero points along the rows, so rows·{Bits} must be a multiple of 32");
        return rows;
    }

    private int Length(int rows, int cols) =>
        checked(MatrixHeader.Size(Name) + 8 + cols * Bits / 8 * rows + cols / Group * rows * Bits / 8 + 2 * (cols / Group) * rows);

    public int GetEncodedLength(ReadOnlySpan<float> src, int nPerRow) => Length(RowsCheck(src, nPerRow), nPerRow);

    /// <summary>Scale and zero point for one group (see the class comment).</summary>
    public (ushort Scale, int Zero) GroupParams(ReadOnlySpan<float> g)
    {
        float lo = 0, hi = 0;
        foreach (float v in g) { lo = MathF.Min(lo, v); hi = MathF.Max(hi, v); }
        if (lo == 0 && hi == 0) { lo = -1; hi = 1; }
        float s = (hi - lo) / MaxQ;
        ushort h = Fp16.FromFloat(s);
        if (Fp16.ToFloat(h) < s) h++; // next fp16 up (s is positive and finite)
        float sh = Fp16.ToFloat(h);
        int z = Math.Clamp((int)MathF.Round(-lo / sh), 0, MaxQ);
        return (h, z);
    }

    public int Encode(ReadOnlySpan<float> src, int nPerRow, Span<byte> dst, ReadOnlySpan<float> importance = default)
    {
        int rows = RowsCheck(src, nPerRow), cols = nPerRow, groups = cols / Group;
        int total = Length(rows, cols);
        if (dst.Length < total) throw new ArgumentException($"{Name}: destination needs {total} bytes", nameof(dst));
        int o = MatrixHeader.Write(dst, Name, rows, cols);
        BinaryPrimitives.WriteUInt32LittleEndian(dst[o..], (uint)Bits);
        BinaryPrimitives.WriteUInt32LittleEndian(dst[(o + 4)..], (uint)Group);
        o += 8;
        int wordsPerRow = cols * Bits / 32, zWords = rows * Bits / 32;
        var qweight = dst.Slice(o, 4 * wordsPerRow * rows);
        var qzeros = dst.Slice(o + qweight.Length, 4 * groups * zWords);
        var scales = dst.Slice(o + qweight.Length + qzeros.Length, 2 * groups * rows);
        qweight.Clear(); qzeros.Clear();
        var zrow = new int[rows];
        Span<int> q = stackalloc int[Group];
        for (int g = 0; g < groups; g++)
        {
            for (int r = 0; r < rows; r++)
            {
                var xg = src.Slice(r * cols + g * Group, Group);
                var (h, z) = GroupParams(xg);
                float s = Fp16.ToFloat(h);
                Fp16.Write(scales, 2 * (g * rows + r), h);
                zrow[r] = z;
                for (int j = 0; j < Group; j++) q[j] = Math.Clamp((int)MathF.Round(xg[j] / s) + z, 0, MaxQ);
                // bits [c·n, c·n+n) of row r's stream, c = g·Group + j; word w lives at [w·rows + r]
                for (int j = 0; j < Group; j++) OrBits(qweight, (long)(g * Group + j) * Bits, q[j], w => w * rows + r);
            }
            for (int r = 0; r < rows; r++) OrBits(qzeros, (long)r * Bits, zrow[r], w => g * zWords + w);
        }
        return total;
    }

    /// <summary>ORs an n-bit value into a stream of little-endian int32 words at a bit offset.</summary>
    private void OrBits(Span<byte> words, long bit, int value, Func<int, int> wordIndex)
    {
        int w = (int)(bit >> 5), sh = (int)(bit & 31);
        ulong v = (ulong)(uint)value << sh;
        Or32(words, wordIndex(w), (uint)v);
        if (sh + Bits > 32) Or32(words, wordIndex(w + 1), (uint)(v >> 32));
    }

    private static void Or32(Span<byte> words, int index, uint v)
    {
        var s = words.Slice(4 * index, 4);
        BinaryPrimitives.WriteUInt32LittleEndian(s, BinaryPrimitives.ReadUInt32LittleEndian(s) | v);
    }

    private int GetBits(ReadOnlySpan<byte> words, long bit, Func<int, int> wordIndex)
    {
        int w = (int)(bit >> 5), sh = (int)(bit & 31);
        ulong v = BinaryPrimitives.ReadUInt32LittleEndian(words[(4 * wordIndex(w))..]);
        if (sh + Bits > 32) v |= (ulong)BinaryPrimitives.ReadUInt32LittleEndian(words[(4 * wordIndex(w + 1))..]) << 32;
        return (int)(v >> sh) & MaxQ;
    }

    public long GetDecodedLength(ReadOnlySpan<byte> src, int nPerRow)
    {
        int o = MatrixHeader.Read(src, Name, out int rows, out int cols);
        MatrixHeader.CheckRow(Name, nPerRow, cols);
        MatrixHeader.Need(Name, src, o + 8);
        if (BinaryPrimitives.ReadUInt32LittleEndian(src[o..]) != Bits || BinaryPrimitives.ReadUInt32LittleEndian(src[(o + 4)..]) != Group)
            throw new InvalidDataException($"{Name}: bits/group in the data do not match the name");
        if (cols % Group != 0 || rows * Bits % 32 != 0) throw new InvalidDataException($"{Name}: bad shape {rows}×{cols}");
        MatrixHeader.Need(Name, src, Length(rows, cols));
        return (long)rows * cols;
    }

    public void Decode(ReadOnlySpan<byte> src, int nPerRow, Span<float> dst)
    {
        GetDecodedLength(src, nPerRow);
        int o = MatrixHeader.Read(src, Name, out int rows, out int cols) + 8;
        int groups = cols / Group, wordsPerRow = cols * Bits / 32, zWords = rows * Bits / 32;
        var qweight = src.Slice(o, 4 * wordsPerRow * rows);
        var qzeros = src.Slice(o + qweight.Length, 4 * groups * zWords);
        var scales = src.Slice(o + qweight.Length + qzeros.Length, 2 * groups * rows);
        for (int g = 0; g < groups; g++)
            for (int r = 0; r < rows; r++)
            {
                float s = Fp16.Read(scales, 2 * (g * rows + r));
                int z = GetBits(qzeros, (long)r * Bits, w => g * zWords + w);
                var y = dst.Slice(r * cols + g * Group, Group);
                for (int j = 0; j < Group; j++)
                    y[j] = (GetBits(qweight, (long)(g * Group + j) * Bits, w => w * rows + r) - z) * s;
            }
    }

    public override string ToString() => Name;
}
