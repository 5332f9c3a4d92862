using TensorCodec.Numerics;

namespace TensorCodec.Formats;

/// <summary>
/// ggml Q3_K: 256 values in 16 sub-blocks of 16 with signed 6-bit scales (times fp16 d) and
/// 3-bit quants, x ≈ d·(sc − 32)·(q − 4). Reference: make_q3_quants per sub-block; importance:
/// make_qx_quants with qw·√(σ²+x²), and again (weighted by the sub-block weight sums) for the
/// scale codes. Layout: hmask[32] (3rd bits) | qs[64] (2-bit lows) | scales[12] | d.
/// </summary>
internal sealed class Q3_K : BlockFormatBase
{
    public const int QK = 256;
    public const int Bytes = 110;
    public override string Name => "q3_K";
    public override int GgmlTypeId => 11;
    public override int BlockSize => QK;
    public override int BlockBytes => Bytes;
    public override bool UsesImportance => true;

    protected override void QuantizeRow(ReadOnlySpan<float> x, Span<byte> y, ReadOnlySpan<float> importance)
    {
        Span<sbyte> L = stackalloc sbyte[QK];
        Span<float> scales = stackalloc float[16];
        Span<float> weight = stackalloc float[16];
        Span<float> sw = stackalloc float[16];
        Span<sbyte> Ls = stackalloc sbyte[16];
        Span<byte> Lu = stackalloc byte[QK];
        int nb = x.Length / QK;
        for (int i = 0; i < nb; i++)
        {
            var xb = x.Slice(i * QK, QK);
            var yb = y.Slice(i * Bytes, Bytes);
            var sc = yb.Slice(96, 12);
            sc.Clear();
            ushort dh;
            if (importance.IsEmpty)
            {
                float maxScale = 0, amax = 0;
                for (int j = 0; j < 16; j++)
                {
                    scales[j] = QuantMath.MakeQ3Quants(16, 4, xb.Slice(16 * j, 16), L.Slice(16 * j, 16), true);
                    float s = MathF.Abs(scales[j]);
                    if (s > amax) { amax = s; maxScale = scales[j]; }
                }
                if (maxScale != 0)
                {
                    float iscale = -32f / maxScale;
                    for (int j = 0; j < 16; j++)
                    {
                        int l = (sbyte)QuantMath.NearestInt(iscale * scales[j]);
                        PutScale(sc, j, Math.Max(-32, Math.Min(31, l)) + 32);
                    }
                    dh = Fp16.FromFloat(1 / iscale);
                }
                else dh = Fp16.FromFloat(0f);
            }
            else
            {
                float sumx2 = Q4_0.SumSquares(xb);
                float sigma2 = 2 * sumx2 / QK;
                for (int j = 0; j < 16; j++)
                {
                    var xs = xb.Slice(16 * j, 16);
                    var qw = importance.Slice(QK * i + 16 * j, 16);
                    sw[j] = QuantMath.ImportanceWeights(xs, qw, sigma2, weight);
                    scales[j] = QuantMath.MakeQxQuants(16, 4, xs, L.Slice(16 * j, 16), 1, weight);
                }
                float dBlock = QuantMath.MakeQxQuants(16, 32, scales, Ls, 1, sw);
                for (int j = 0; j < 16; j++) PutScale(sc, j, Ls[j]);
                dh = Fp16.FromFloat(dBlock);
            }
            Fp16.Write(yb, 108, dh);
            float dAll = Fp16.ToFloat(dh);
            for (int j = 0; j < 16; j++)
            {
                float d = dAll * (GetScale(sc, j) - 32);
                if (d == 0) continue;
                for (int ii = 0; ii < 16; ii++)
                {
                    int l = QuantMath.NearestInt(xb[16 * j + ii] / d);
                    L[16 * j + ii] = (sbyte)(Math.Max(-4, Math.Min(3, l)) + 4);
                }
            }
            // The third bit of value j goes to hmask[j % 32], bit j / 32.
            var hmask = yb[..32];
            hmask.Clear();
            for (int j = 0; j < QK; j++)
            {
                int l = L[j];
                if (l > 3) { hmask[j % 32] |= (byte)(1 << (j / 32)); l -= 4; }
                Lu[j] = (byte)l;
            }
            Q2_K.PackQ2(Lu, yb.Slice(32, 64));
        }
    }

    /// <summary>6-bit scale j: low nibbles in bytes 0–7 (j, j−8 high half), high 2 bits in bytes 8–11.</summary>
    private static void PutScale(Span<byte> sc, int j, int l)
    {
        if (j < 8) sc[j] = (byte)(l & 0xF);
        else sc[j - 8] |= (byte)((l & 0xF) << 4);
        sc[j % 4 + 8] |= (byte)((l >> 4) << (2 * (j / 4)));
    }

    internal static int GetScale(ReadOnlySpan<byte> sc, int j)
    {
        int lo = j < 8 ? sc[j] & 0xF : sc[j - 8] >> 4;
        return lo | ((sc[8 + j % 4] >> (2 * (j / 4))) & 3) << 4;
    }

    protected override void DequantizeBlocks(ReadOnlySpan<byte> src, Span<float> dst)
    {
        if (KQuantFast.IsSupported) KQuantFast.DequantizeQ3(src, dst);
        else DequantizeReference(src, dst);
    }

    internal static void DequantizeReference(ReadOnlySpan<byte> src, Span<float> dst)
    {
        int nb = dst.Length / QK;
        for (int i = 0; i < nb; i++)
        {
            var b = src.Slice(i * Bytes, Bytes);
            var hm = b[..32];
            var sc = b.Slice(96, 12);
            float dAll = Fp16.Read(b, 108);
            var y = dst.Slice(i * QK, QK);
            int o = 0, is_ = 0, m = 1;
            for (int n = 0; n < 2; n++)
            {
                var q = b.Slice(32 + 32 * n, 32);
                for (int shift = 0; shift < 8; shift += 2)
                {
                    for (int half = 0; half < 2; half++)
                    {
                        float dl = dAll * (GetScale(sc, is_++) - 32);
                        for (int l = 0; l < 16; l++)
                        {
                            int k = l + 16 * half;
                            y[o++] = dl * (((q[k] >> shift) & 3) - ((hm[k] & m) != 0 ? 0 : 4));
                        }
                    }
                    m <<= 1;
                }
            }
        }
    }
}
