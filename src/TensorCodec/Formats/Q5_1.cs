using System.Buffers.Binary;
using TensorCodec.Numerics;

namespace TensorCodec.Formats;

/// <summary>
/// ggml Q5_1: 32 values as fp16 d, fp16 m and 5-bit q with x ≈ q·d + m; d = (max−min)/31
/// (importance weights: make_qkx3_quants). Layout: d | m | qh (uint32) | qs[16].
/// </summary>
internal sealed class Q5_1 : BlockFormatBase
{
    public const int QK = 32;
    public const int Bytes = 24;
    public override string Name => "q5_1";
    public override int GgmlTypeId => 7;
    public override int BlockSize => QK;
    public override int BlockBytes => Bytes;
    public override bool UsesImportance => true;

    protected override void QuantizeRow(ReadOnlySpan<float> x, Span<byte> y, ReadOnlySpan<float> importance)
    {
        int nb = x.Length / QK;
        Span<sbyte> L = stackalloc sbyte[QK];
        Span<byte> Lu = stackalloc byte[QK];
        Span<byte> Laux = stackalloc byte[QK];
        Span<float> weight = stackalloc float[QK];
        float sigma2 = importance.IsEmpty ? 0 : Q4_0.SumSquares(x) / x.Length;
        for (int i = 0; i < nb; i++)
        {
            var xb = x.Slice(i * QK, QK);
            var yb = y.Slice(i * Bytes, Bytes);
            float d, m;
            if (importance.IsEmpty)
            {
                float min = float.MaxValue, max = -float.MaxValue;
                for (int j = 0; j < QK; j++)
                {
                    if (xb[j] < min) min = xb[j];
                    if (xb[j] > max) max = xb[j];
                }
                d = (max - min) / 31;
                m = min;
                float id = d != 0 ? 1.0f / d : 0.0f;
                // ggml does not clamp here: (max−min)·id rounds to at most 31.
                for (int j = 0; j < QK; j++) L[j] = (sbyte)(byte)(int)((xb[j] - min) * id + 0.5f);
            }
            else
            {
                var qw = importance.Slice(i * QK, QK);
                QuantMath.ImportanceWeights(xb, qw, sigma2, weight);
                d = QuantMath.MakeQkx3Quants(QK, 31, xb, weight, Lu, out float negMin, Laux, -0.9f, 0.05f, 36, false);
                m = -negMin;
                for (int j = 0; j < QK; j++) L[j] = (sbyte)Lu[j];
            }
            Fp16.Write(yb, 0, Fp16.FromFloat(d));
            Fp16.Write(yb, 2, Fp16.FromFloat(m));
            Q5_0.Pack5(L, yb[4..]);
        }
    }

    protected override void DequantizeBlocks(ReadOnlySpan<byte> src, Span<float> dst)
    {
        int nb = dst.Length / QK;
        for (int i = 0; i < nb; i++)
        {
            var b = src.Slice(i * Bytes, Bytes);
            float d = Fp16.Read(b, 0), m = Fp16.Read(b, 2);
            uint qh = BinaryPrimitives.ReadUInt32LittleEndian(b[4..]);
            var yb = dst.Slice(i * QK, QK);
            for (int j = 0; j < 16; j++)
            {
                int h0 = (int)((qh >> j) << 4) & 0x10;
                int h1 = (int)(qh >> (j + 12)) & 0x10;
                yb[j] = ((b[8 + j] & 0x0F) | h0) * d + m;
                yb[j + 16] = ((b[8 + j] >> 4) | h1) * d + m;
            }
        }
    }
}
