using System.Buffers.Binary;
using System.Runtime.Intrinsics;
using TensorCodec.Numerics;

namespace TensorCodec.Formats;

/// <summary>
/// Blockwise symmetric int8: each block stores its absmax as float32 and q = round(x / d),
/// d = absmax/127, ties to even, so |x − q·d| ≤ d/2. Block 64 by default ("int8_block"; also
/// "int8_block_b32", "int8_block_b128", …). Layout per block: absmax f32 | q int8[bs].
/// </summary>
internal sealed class Int8Block : BlockFormatBase
{
    private readonly int _bs;

    public Int8Block(int blockSize = 64)
    {
        if (blockSize < 8 || blockSize > 4096 || blockSize % 8 != 0)
            throw new ArgumentOutOfRangeException(nameof(blockSize), $"block size {blockSize}: must be a multiple of 8 in [8, 4096]");
        _bs = blockSize;
    }

    public override string Name => _bs == 64 ? "int8_block" : $"int8_block_b{_bs}";
    public override int GgmlTypeId => -1;
    public override int BlockSize => _bs;
    public override int BlockBytes => 4 + _bs;

    protected override void QuantizeRow(ReadOnlySpan<float> x, Span<byte> y, ReadOnlySpan<float> importance)
    {
        if (Simd.AllowAvx2 && Vector256.IsHardwareAccelerated) QuantizeFast(x, y);
        else QuantizeReference(x, y);
    }

    protected override void DequantizeBlocks(ReadOnlySpan<byte> src, Span<float> dst)
    {
        if (Simd.AllowAvx2 && Vector256.IsHardwareAccelerated) DequantizeFast(src, dst);
        else DequantizeReference(src, dst);
    }

    public void QuantizeReference(ReadOnlySpan<float> x, Span<byte> y)
    {
        int nb = x.Length / _bs;
        for (int i = 0; i < nb; i++)
        {
            var xb = x.Slice(i * _bs, _bs);
            var yb = y.Slice(i * BlockBytes, BlockBytes);
            float absmax = Bnb4BitFormat.AbsMax(xb);
            BinaryPrimitives.WriteSingleLittleEndian(yb, absmax);
            float d = absmax / 127f;
            for (int j = 0; j < _bs; j++)
                yb[4 + j] = d > 0 ? (byte)(sbyte)Math.Clamp(MathF.Round(xb[j] / d), -127f, 127f) : (byte)0;
        }
    }

    public void DequantizeReference(ReadOnlySpan<byte> src, Span<float> dst)
    {
        int nb = dst.Length / _bs;
        for (int i = 0; i < nb; i++)
        {
            var b = src.Slice(i * BlockBytes, BlockBytes);
            float d = BinaryPrimitives.ReadSingleLittleEndian(b) / 127f;
            for (int j = 0; j < _bs; j++) dst[i * _bs + j] = (sbyte)b[4 + j] * d;
        }
    }

    /// <summary>Same per-lane operations as the reference (true division, round-to-even), so identical bytes.</summary>
    internal void QuantizeFast(ReadOnlySpan<float> x, Span<byte> y)
    {
        int nb = x.Length / _bs;
        var lo = Vector256.Create(-127f);
        var hi = Vector256.Create(127f);
        for (int i = 0; i < nb; i++)
        {
            var xb = x.Slice(i * _bs, _bs);
            var yb = y.Slice(i * BlockBytes, BlockBytes);
            float absmax = Q8_0Fast.StoreAbsMaxHeader(xb, yb);
            float d = absmax / 127f;
            if (!(d > 0)) { yb[4..].Clear(); continue; }
            var vd = Vector256.Create(d);
            for (int j = 0; j < _bs; j += 32)
            {
                var q0 = Vector256.ConvertToInt32(Vector256.Min(hi, Vector256.Max(lo, Vector256.Round(Vector256.Create(xb.Slice(j, 8)) / vd))));
                var q1 = Vector256.ConvertToInt32(Vector256.Min(hi, Vector256.Max(lo, Vector256.Round(Vector256.Create(xb.Slice(j + 8, 8)) / vd))));
                if (j + 32 > _bs)
                {
                    var s = Vector256.Narrow(q0, q1);
                    Vector256.Narrow(s, s).AsByte().GetLower().CopyTo(yb.Slice(4 + j, 16));
                    continue;
                }
                var q2 = Vector256.ConvertToInt32(Vector256.Min(hi, Vector256.Max(lo, Vector256.Round(Vector256.Create(xb.Slice(j + 16, 8)) / vd))));
                var q3 = Vector256.ConvertToInt32(Vector256.Min(hi, Vector256.Max(lo, Vector256.Round(Vector256.Create(xb.Slice(j + 24, 8)) / vd))));
                Vector256.Narrow(Vector256.Narrow(q0, q1), Vector256.Narrow(q2, q3)).AsByte().CopyTo(yb.Slice(4 + j, 32));
            }
        }
    }

    internal void DequantizeFast(ReadOnlySpan<byte> src, Span<float> dst)
    {
        int nb = dst.Length / _bs;
        for (int i = 0; i < nb; i++)
        {
            var b = src.Slice(i * BlockBytes, BlockBytes);
            var vd = Vector256.Create(BinaryPrimitives.ReadSingleLittleEndian(b) / 127f);
            var y = dst.Slice(i * _bs, _bs);
            for (int j = 0; j < _bs; j += 8)
            {
                var (w, _) = Vector128.Widen(Vector128.CreateScalar(BinaryPrimitives.ReadUInt64LittleEndian(b.Slice(4 + j, 8))).AsSByte());
                var (i0, i1) = Vector128.Widen(w);
                (Vector256.ConvertToSingle(Vector256.Create(i0, i1)) * vd).CopyTo(y.Slice(j, 8));
            }
        }
    }
}
