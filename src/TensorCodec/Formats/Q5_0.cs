using System.Buffers.Binary;
using TensorCodec.Numerics;

namespace TensorCodec.Formats;

/// <summary>
/// ggml Q5_0: 32 values as fp16 d and 5-bit q with x ≈ (q − 16)·d; d = signed max/−16
/// (importance weights: make_qx_quants). Layout: d | qh (uint32, bit j = 5th bit of value j) | qs[16].
/// </summary>
internal sealed class Q5_0 : BlockFormatBase
{
    public const int QK = 32;
    public const int Bytes = 22;
    public override string Name => "q5_0";
    public override int GgmlTypeId => 6;
    public override int BlockSize => QK;
    public override int BlockBytes => Bytes;
    public override bool UsesImportance => true;

    protected override void QuantizeRow(ReadOnlySpan<float> x, Span<byte> y, ReadOnlySpan<float> importance)
    {
        int nb = x.Length / QK;
        Span<sbyte> L = stackalloc sbyte[QK];
        Span<float> weight = stackalloc float[QK];
        float sigma2 = importance.IsEmpty ? 0 : Q4_0.SumSquares(x) / x.Length;
        for (int i = 0; i < nb; i++)
        {
            var xb = x.Slice(i * QK, QK);
            var yb = y.Slice(i * Bytes, Bytes);
            float d;
            if (importance.IsEmpty)
            {
                float amax = 0, max = 0;
                for (int j = 0; j < QK; j++)
                    if (amax < MathF.Abs(xb[j])) { amax = MathF.Abs(xb[j]); max = xb[j]; }
                d = max / -16;
                float id = d != 0 ? 1.0f / d : 0.0f;
                for (int j = 0; j < QK; j++) L[j] = (sbyte)Math.Min(31, (int)(xb[j] * id + 16.5f));
            }
            else
            {
                var qw = importance.Slice(i * QK, QK);
                QuantMath.ImportanceWeights(xb, qw, sigma2, weight);
                d = QuantMath.MakeQxQuants(QK, 16, xb, L, 1, weight);
            }
            Fp16.Write(yb, 0, Fp16.FromFloat(d));
            Pack5(L, yb[2..]);
        }
    }

    /// <summary>Low nibbles into qs (j | j+16), fifth bits into the 32-bit qh word.</summary>
    internal static void Pack5(ReadOnlySpan<sbyte> L, Span<byte> qhqs)
    {
        uint qh = 0;
        for (int j = 0; j < 16; j++)
        {
            int q0 = L[j], q1 = L[j + 16];
            qhqs[4 + j] = (byte)((q0 & 0x0F) | (q1 & 0x0F) << 4);
            qh |= (uint)((q0 & 0x10) >> 4) << j;
            qh |= (uint)((q1 & 0x10) >> 4) << (j + 16);
        }
        BinaryPrimitives.WriteUInt32LittleEndian(qhqs, qh);
    }

    protected override void DequantizeBlocks(ReadOnlySpan<byte> src, Span<float> dst)
    {
        int nb = dst.Length / QK;
        for (int i = 0; i < nb; i++)
        {
            var b = src.Slice(i * Bytes, Bytes);
            float d = Fp16.Read(b, 0);
            uint qh = BinaryPrimitives.ReadUInt32LittleEndian(b[2..]);
            var yb = dst.Slice(i * QK, QK);
            for (int j = 0; j < 16; j++)
            {
                int h0 = (int)((qh >> j) << 4) & 0x10;
                int h1 = (int)(qh >> (j + 12)) & 0x10;
                yb[j] = (((b[6 + j] & 0x0F) | h0) - 16) * d;
                yb[j + 16] = (((b[6 + j] >> 4) | h1) - 16) * d;
            }
        }
    }
}
