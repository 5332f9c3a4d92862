using System.Buffers.Binary;

namespace TensorCodec.Formats;

/// <summary>
/// bitsandbytes' double quantization ("compress_statistics") over NF4/FP4 ("nf4_dq",
/// "fp4_b128_dq", …): the float32 absmax of every block is stored in 8 bits. As in bnb, the
/// elements are encoded with the exact absmax; then offset = mean(absmax), and the centred
/// values absmax − offset are quantized in chunks of 256 against bnb's signed dynamic 8-bit map
/// (<see cref="DynamicMap"/>) with a float32 scale per chunk. Decoding uses
/// absmax ≈ map[code]·scale + offset.
/// Layout after the <see cref="MatrixHeader"/>: block size u32 | blocks u32 | offset f32 |
/// chunk scales f32[ceil(blocks/256)] | absmax codes u8[blocks] | packed 4-bit data
/// (blocks · bs/2 bytes, bnb nibble order as in <see cref="Bnb4BitFormat"/>).
/// </summary>
internal sealed class Bnb4BitDoubleQuant(Bnb4BitFormat inner) : IMatrixFormat
{
    public const int Chunk = 256;
    public Bnb4BitFormat Inner { get; } = inner;
    public string Name => Inner.Name + "_dq";
    public int RowMultiple => Inner.BlockSize;
    public bool UsesImportance => false;

    /// <summary>
    /// bnb's create_dynamic_map(signed=True): for i = 0…6, the 2^i midpoints of linspace(0.1, 1,
    /// 2^i + 1) scaled by 10^(i−6), with both signs, plus 0 and 1; 256 values, ascending.
    /// Computed in double and rounded once (torch builds it in float32; values can differ by an ulp).
    /// </summary>
    public static readonly float[] DynamicMap = BuildDynamicMap();

    private static float[] BuildDynamicMap()
    {
        var data = new List<double>();
        for (int i = 0; i < 7; i++)
        {
            int n = (1 << i) + 1;
            double scale = Math.Pow(10, i - 6);
            for (int k = 0; k + 1 < n; k++)
            {
                double a = 0.1 + 0.9 * k / (n - 1), b = 0.1 + 0.9 * (k + 1) / (n - 1);
                double m = (a + b) / 2 * scale;
                data.Add(m);
                data.Add(-m);
            }
        }
        data.Add(0);
        data.Add(1);
        return data.Select(v => (float)v).Order().ToArray();
    }

    /// <summary>Index of the nearest map value (ties to the lower index).</summary>
    public static int NearestCode(float v)
    {
        var map = DynamicMap;
        int lo = 0, hi = map.Length - 1;
        if (!(v > map[0])) return 0;
        if (v >= map[hi]) return hi;
        while (hi - lo > 1)
        {
            int mid = (lo + hi) >> 1;
            if (map[mid] <= v) lo = mid; else hi = mid;
        }
        return v - map[lo] <= map[hi] - v ? lo : hi;
    }

    private int Length(int blocks) =>
        checked(MatrixHeader.Size(Name) + 12 + 4 * ((blocks + Chunk - 1) / Chunk) + blocks + blocks * Inner.BlockSize / 2);

    public int GetEncodedLength(ReadOnlySpan<float> src, int nPerRow)
    {
        MatrixFormatChecks.Shape(Name, src.Length, nPerRow, RowMultiple);
        return Length(src.Length / Inner.BlockSize);
    }

    public int Encode(ReadOnlySpan<float> src, int nPerRow, Span<byte> dst, ReadOnlySpan<float> importance = default)
    {
        int rows = MatrixFormatChecks.Shape(Name, src.Length, nPerRow, RowMultiple);
        int bs = Inner.BlockSize, blocks = src.Length / bs, chunks = (blocks + Chunk - 1) / Chunk;
        int total = Length(blocks);
        if (dst.Length < total) throw new ArgumentException($"{Name}: destination needs {total} bytes", nameof(dst));
        int o = MatrixHeader.Write(dst, Name, rows, nPerRow);
        BinaryPrimitives.WriteUInt32LittleEndian(dst[o..], (uint)bs);
        BinaryPrimitives.WriteUInt32LittleEndian(dst[(o + 4)..], (uint)blocks);
        int offsetAt = o + 8, scalesAt = o + 12, codesAt = scalesAt + 4 * chunks, dataAt = codesAt + blocks;

        var absmax = new float[blocks];
        double sum = 0;
        for (int i = 0; i < blocks; i++)
        {
            var xb = src.Slice(i * bs, bs);
            absmax[i] = Bnb4BitFormat.AbsMax(xb);
            sum += absmax[i];
            Inner.EncodeBlockReference(xb, absmax[i], dst.Slice(dataAt + i * bs / 2, bs / 2));
        }
        float offset = blocks > 0 ? (float)(sum / blocks) : 0f;
        BinaryPrimitives.WriteSingleLittleEndian(dst[offsetAt..], offset);
        for (int c = 0; c < chunks; c++)
        {
            int start = c * Chunk, end = Math.Min(blocks, start + Chunk);
            float a2 = 0;
            for (int i = start; i < end; i++) a2 = MathF.Max(a2, MathF.Abs(absmax[i] - offset));
            BinaryPrimitives.WriteSingleLittleEndian(dst[(scalesAt + 4 * c)..], a2);
            float inv = a2 > 0 ? 1f / a2 : 0f;
            for (int i = start; i < end; i++) dst[codesAt + i] = (byte)NearestCode((absmax[i] - offset) * inv);
        }
        return total;
    }

    public long GetDecodedLength(ReadOnlySpan<byte> src, int nPerRow)
    {
        int o = MatrixHeader.Read(src, Name, out int rows, out int cols);
        MatrixHeader.CheckRow(Name, nPerRow, cols);
        MatrixHeader.Need(Name, src, o + 12);
        uint bs = BinaryPrimitives.ReadUInt32LittleEndian(src[o..]);
        uint blocks = BinaryPrimitives.ReadUInt32LittleEndian(src[(o + 4)..]);
        if (bs != Inner.BlockSize || (long)blocks * bs != (long)rows * cols)
            throw new InvalidDataException($"{Name}: block size {bs} × {blocks} blocks does not match {rows}×{cols}");
        MatrixHeader.Need(Name, src, Length((int)blocks));
        return (long)rows * cols;
    }

    public void Decode(ReadOnlySpan<byte> src, int nPerRow, Span<float> dst)
    {
        long n = GetDecodedLength(src, nPerRow);
        int o = MatrixHeader.Read(src, Name, out _, out _);
        int bs = Inner.BlockSize, blocks = (int)(n / bs), chunks = (blocks + Chunk - 1) / Chunk;
        float offset = BinaryPrimitives.ReadSingleLittleEndian(src[(o + 8)..]);
        int scalesAt = o + 12, codesAt = scalesAt + 4 * chunks, dataAt = codesAt + blocks;
        for (int i = 0; i < blocks; i++)
        {
            float a2 = BinaryPrimitives.ReadSingleLittleEndian(src[(scalesAt + 4 * (i / Chunk))..]);
            float absmax = DynamicMap[src[codesAt + i]] * a2 + offset;
            Inner.DecodeBlockReference(src.Slice(dataAt + i * bs / 2, bs / 2), absmax, dst.Slice(i * bs, bs));
        }
    }

    public override string ToString() => Name;
}
