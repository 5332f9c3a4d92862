using TensorCodec.Numerics;

namespace TensorCodec.Formats;

/// <summary>
/// ggml Q2_K: 256 values in 16 sub-blocks of 16, each with a 4-bit scale and 4-bit min (times
/// fp16 d and dmin), 2-bit quants, x ≈ d·sc·q − dmin·m. Reference: make_qkx2_quants with |x|
/// weights and mean-absolute error; importance: make_qkx3_quants (qw·√(σ²+x²)) and
/// make_qp_quants for the 4-bit codes.
/// Layout: scales[16] (low nibble scale, high nibble min) | qs[64] | d | dmin.
/// </summary>
internal sealed class Q2_K : BlockFormatBase
{
    public const int QK = 256;
    public const int Bytes = 84;
    public override string Name => "q2_K";
    public override int GgmlTypeId => 10;
    public override int BlockSize => QK;
    public override int BlockBytes => Bytes;
    public override bool UsesImportance => true;

    protected override void QuantizeRow(ReadOnlySpan<float> x, Span<byte> y, ReadOnlySpan<float> importance)
    {
        Span<byte> L = stackalloc byte[QK];
        Span<byte> Laux = stackalloc byte[16];
        Span<float> weights = stackalloc float[16];
        Span<float> mins = stackalloc float[16];
        Span<float> scales = stackalloc float[16];
        Span<float> sw = stackalloc float[16];
        Span<byte> Ls = stackalloc byte[16];
        Span<byte> Lm = stackalloc byte[16];
        const float q4scale = 15f;
        int nb = x.Length / QK;
        for (int i = 0; i < nb; i++)
        {
            var xb = x.Slice(i * QK, QK);
            var yb = y.Slice(i * Bytes, Bytes);
            var sc = yb[..16];
            ushort dh, mh;
            if (importance.IsEmpty)
            {
                float maxScale = 0, maxMin = 0;
                for (int j = 0; j < 16; j++)
                {
                    var xs = xb.Slice(16 * j, 16);
                    for (int l = 0; l < 16; l++) weights[l] = MathF.Abs(xs[l]);
                    scales[j] = QuantMath.MakeQkx2Quants(16, 3, xs, weights, L.Slice(16 * j, 16), out mins[j], Laux, -0.5f, 0.1f, 15, true);
                    if (scales[j] > maxScale) maxScale = scales[j];
                    if (mins[j] > maxMin) maxMin = mins[j];
                }
                if (maxScale > 0)
                {
                    float iscale = q4scale / maxScale;
                    for (int j = 0; j < 16; j++) sc[j] = (byte)QuantMath.NearestInt(iscale * scales[j]);
                    dh = Fp16.FromFloat(maxScale / q4scale);
                }
                else
                {
                    sc.Clear();
                    dh = Fp16.FromFloat(0f);
                }
                if (maxMin > 0)
                {
                    float iscale = q4scale / maxMin;
                    for (int j = 0; j < 16; j++) sc[j] |= (byte)(QuantMath.NearestInt(iscale * mins[j]) << 4);
                    mh = Fp16.FromFloat(maxMin / q4scale);
                }
                else mh = Fp16.FromFloat(0f);
            }
            else
            {
                float sigma2 = Q4_0.SumSquares(xb) / QK;
                for (int j = 0; j < 16; j++)
                {
                    var xs = xb.Slice(16 * j, 16);
                    var qw = importance.Slice(QK * i + 16 * j, 16);
                    sw[j] = QuantMath.ImportanceWeights(xs, qw, sigma2, weights);
                    scales[j] = QuantMath.MakeQkx3Quants(16, 3, xs, weights, L.Slice(16 * j, 16), out mins[j], Laux, -0.9f, 0.05f, 36, false);
                }
                float dm = QuantMath.MakeQpQuants(16, 15, scales, Ls, sw);
                float mm = QuantMath.MakeQpQuants(16, 15, mins, Lm, sw);
                dh = Fp16.FromFloat(dm);
                mh = Fp16.FromFloat(mm);
                for (int j = 0; j < 16; j++) sc[j] = (byte)(Ls[j] | Lm[j] << 4);
            }
            Fp16.Write(yb, 80, dh);
            Fp16.Write(yb, 82, mh);
            float dAll = Fp16.ToFloat(dh), mAll = Fp16.ToFloat(mh);
            for (int j = 0; j < 16; j++)
            {
                float d = dAll * (sc[j] & 0xF);
                if (d == 0) continue;
                float dm = mAll * (sc[j] >> 4);
                for (int ii = 0; ii < 16; ii++)
                {
                    int l = QuantMath.NearestInt((xb[16 * j + ii] + dm) / d);
                    L[16 * j + ii] = (byte)Math.Max(0, Math.Min(3, l));
                }
            }
            PackQ2(L, yb.Slice(16, 64));
        }
    }

    /// <summary>Four 2-bit quants per byte: byte l of each 32-byte group holds values l, l+32, l+64, l+96.</summary>
    internal static void PackQ2(ReadOnlySpan<byte> L, Span<byte> qs)
    {
        for (int j = 0; j < 256; j += 128)
            for (int l = 0; l < 32; l++)
                qs[j / 4 + l] = (byte)(L[j + l] | L[j + l + 32] << 2 | L[j + l + 64] << 4 | L[j + l + 96] << 6);
    }

    protected override void DequantizeBlocks(ReadOnlySpan<byte> src, Span<float> dst)
    {
        if (KQuantFast.IsSupported) KQuantFast.DequantizeQ2(src, dst);
        else DequantizeReference(src, dst);
    }

    internal static void DequantizeReference(ReadOnlySpan<byte> src, Span<float> dst)
    {
        int nb = dst.Length / QK;
        for (int i = 0; i < nb; i++)
        {
            var b = src.Slice(i * Bytes, Bytes);
            float d = Fp16.Read(b, 80), min = Fp16.Read(b, 82);
            var y = dst.Slice(i * QK, QK);
            int o = 0, is_ = 0;
            for (int n = 0; n < 2; n++)
            {
                var q = b.Slice(16 + 32 * n, 32);
                for (int shift = 0; shift < 8; shift += 2)
                {
                    for (int half = 0; half < 2; half++)
                    {
                        byte s = b[is_++];
                        float dl = d * (s & 0xF), ml = min * (s >> 4);
                        for (int l = 0; l < 16; l++) y[o++] = dl * ((q[l + 16 * half] >> shift) & 3) - ml;
                    }
                }
            }
        }
    }
}
