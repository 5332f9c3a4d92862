using System.Buffers.Binary;
using TensorCodec.Numerics;

namespace TensorCodec.Formats;

/// <summary>
/// NVIDIA NVFP4 as the hardware uses it ("nvfp4_16"; ggml's "nvfp4" is a different, 64-value
/// block type without the tensor scale): 16 E2M1 values per block, an E4M3 block scale and one
/// float32 scale for the whole tensor. Encoding: g = amax(tensor)/(448·6) (1 if the tensor is all
/// zero); per block the scale code is E4M3(amax(block)/(6·g)), round to nearest even, saturating;
/// each element is E2M1(x / (s·g)), likewise, with s the decoded block scale. x ≈ e2m1·(s·g).
/// Layout after the <see cref="MatrixHeader"/>: g f32 | blocks of 9 bytes: scale code | 8 bytes,
/// element 2j in the low nibble of byte j (NVIDIA's packed fp4x2 order).
/// </summary>
internal sealed class NVFP4_16 : IMatrixFormat
{
    public const int K = 16;
    public const int BlockBytes = 9;
    public string Name => "nvfp4_16";
    public int RowMultiple => K;
    public bool UsesImportance => false;

    public int GetEncodedLength(ReadOnlySpan<float> src, int nPerRow)
    {
        MatrixFormatChecks.Shape(Name, src.Length, nPerRow, K);
        return checked(MatrixHeader.Size(Name) + 4 + src.Length / K * BlockBytes);
    }

    public int Encode(ReadOnlySpan<float> src, int nPerRow, Span<byte> dst, ReadOnlySpan<float> importance = default)
    {
        int rows = MatrixFormatChecks.Shape(Name, src.Length, nPerRow, K);
        int total = GetEncodedLength(src, nPerRow);
        if (dst.Length < total) throw new ArgumentException($"{Name}: destination needs {total} bytes", nameof(dst));
        int o = MatrixHeader.Write(dst, Name, rows, nPerRow);
        float amax = Bnb4BitFormat.AbsMax(src);
        float g = amax > 0 && float.IsFinite(amax) ? amax / (448f * 6f) : 1f;
        BinaryPrimitives.WriteSingleLittleEndian(dst[o..], g);
        o += 4;
        var e4 = MiniFloat.E4M3;
        var e2 = MiniFloat.E2M1;
        for (int i = 0; i < src.Length / K; i++, o += BlockBytes)
        {
            var xb = src.Slice(i * K, K);
            var yb = dst.Slice(o, BlockBytes);
            byte sc = e4.Encode(Bnb4BitFormat.AbsMax(xb) / (6f * g), saturate: true);
            yb[0] = sc;
            float eff = e4.Decode(sc) * g;
            for (int j = 0; j < K / 2; j++)
            {
                int lo = eff > 0 ? e2.Encode(xb[2 * j] / eff) : 0;
                int hi = eff > 0 ? e2.Encode(xb[2 * j + 1] / eff) : 0;
                yb[1 + j] = (byte)(lo | hi << 4);
            }
        }
        return o;
    }

    public long GetDecodedLength(ReadOnlySpan<byte> src, int nPerRow)
    {
        int o = MatrixHeader.Read(src, Name, out int rows, out int cols);
        MatrixHeader.CheckRow(Name, nPerRow, cols);
        if (cols % K != 0) throw new InvalidDataException($"{Name}: row length {cols} is not a multiple of {K}");
        MatrixHeader.Need(Name, src, o + 4 + (long)rows * cols / K * BlockBytes);
        return (long)rows * cols;
    }

    public void Decode(ReadOnlySpan<byte> src, int nPerRow, Span<float> dst)
    {
        int n = checked((int)GetDecodedLength(src, nPerRow));
        int o = MatrixHeader.Read(src, Name, out _, out _);
        float g = BinaryPrimitives.ReadSingleLittleEndian(src[o..]);
        o += 4;
        var e4 = MiniFloat.E4M3;
        var e2 = MiniFloat.E2M1;
        for (int i = 0; i < n / K; i++, o += BlockBytes)
        {
            var b = src.Slice(o, BlockBytes);
            float eff = e4.Decode(b[0]) * g;
            var y = dst.Slice(i * K, K);
            for (int j = 0; j < K / 2; j++)
            {
                y[2 * j] = e2.Decode((byte)(b[1 + j] & 0xF)) * eff;
                y[2 * j + 1] = e2.Decode((byte)(b[1 + j] >> 4)) * eff;
            }
        }
    }

    public override string ToString() => Name;
}
