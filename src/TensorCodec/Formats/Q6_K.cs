using TensorCodec.Numerics;

namespace TensorCodec.Formats;

/// <summary>
/// ggml Q6_K: 256 values in 16 sub-blocks of 16; each sub-block has an int8 scale (times a fp16
/// super-scale d) and 6-bit quants q with x ≈ d·sc·(q − 32). Sub-block scales come from
/// make_qx_quants (weights x², or the raw importance weights when given).
/// Layout: ql[128] (low nibbles) | qh[64] (2-bit highs) | scales[16] (int8) | d.
/// </summary>
internal sealed class Q6_K : BlockFormatBase
{
    public const int QK = 256;
    public const int Bytes = 210;
    public override string Name => "q6_K";
    public override int GgmlTypeId => 14;
    public override int BlockSize => QK;
    public override int BlockBytes => Bytes;
    public override bool UsesImportance => true;

    protected override void QuantizeRow(ReadOnlySpan<float> x, Span<byte> y, ReadOnlySpan<float> importance)
    {
        if (KQuantQuantizeFast.IsSupported) KQuantQuantizeFast.QuantizeQ6(x, y, importance);
        else QuantizeReference(x, y, importance);
    }

    /// <summary>Scalar reference, operation for operation like ggml's quantize_row_q6_K_ref / quantize_q6_K_impl.</summary>
    internal static void QuantizeReference(ReadOnlySpan<float> x, Span<byte> y, ReadOnlySpan<float> importance)
    {
        Span<sbyte> L = stackalloc sbyte[QK];
        Span<float> scales = stackalloc float[QK / 16];
        int nb = x.Length / QK;
        for (int i = 0; i < nb; i++)
        {
            var xb = x.Slice(i * QK, QK);
            var yb = y.Slice(i * Bytes, Bytes);
            float maxScale = 0, maxAbsScale = 0;
            for (int ib = 0; ib < QK / 16; ib++)
            {
                var qw = importance.IsEmpty ? default : importance.Slice(i * QK + 16 * ib, 16);
                float scale = QuantMath.MakeQxQuants(16, 32, xb.Slice(16 * ib, 16), L.Slice(16 * ib, 16), 1, qw);
                scales[ib] = scale;
                float abs = MathF.Abs(scale);
                if (abs > maxAbsScale) { maxAbsScale = abs; maxScale = scale; }
            }
            if (maxAbsScale < QuantMath.GroupMaxEps)
            {
                yb.Clear();
                continue;
            }
            float iscale = -128f / maxScale;
            ushort dh = Fp16.FromFloat(1 / iscale);
            Fp16.Write(yb, 208, dh);
            var sc = yb.Slice(192, 16);
            for (int ib = 0; ib < QK / 16; ib++)
                sc[ib] = (byte)(sbyte)Math.Min(127, QuantMath.NearestInt(iscale * scales[ib]));
            float dAll = Fp16.ToFloat(dh);
            for (int j = 0; j < QK / 16; j++)
            {
                float d = dAll * (sbyte)sc[j];
                if (d == 0) continue;
                for (int ii = 0; ii < 16; ii++)
                {
                    int l = QuantMath.NearestInt(xb[16 * j + ii] / d);
                    L[16 * j + ii] = (sbyte)(Math.Max(-32, Math.Min(31, l)) + 32);
                }
            }
            var ql = yb[..128];
            var qh = yb.Slice(128, 64);
            for (int j = 0; j < QK; j += 128)
            {
                var qlp = ql.Slice(j / 2, 64);
                var qhp = qh.Slice(j / 4, 32);
                for (int l = 0; l < 32; l++)
                {
                    int q1 = L[j + l], q2 = L[j + l + 32], q3 = L[j + l + 64], q4 = L[j + l + 96];
                    qlp[l] = (byte)((q1 & 0xF) | (q3 & 0xF) << 4);
                    qlp[l + 32] = (byte)((q2 & 0xF) | (q4 & 0xF) << 4);
                    qhp[l] = (byte)((q1 >> 4) | (q2 >> 4) << 2 | (q3 >> 4) << 4 | (q4 >> 4) << 6);
                }
            }
        }
    }

    protected override void DequantizeBlocks(ReadOnlySpan<byte> src, Span<float> dst)
    {
        if (KQuantFast.IsSupported) KQuantFast.DequantizeQ6(src, dst);
        else DequantizeReference(src, dst);
    }

    internal static void DequantizeReference(ReadOnlySpan<byte> src, Span<float> dst)
    {
        int nb = dst.Length / QK;
        for (int i = 0; i < nb; i++)
        {
            var b = src.Slice(i * Bytes, Bytes);
            float d = Fp16.Read(b, 208);
            for (int n = 0; n < 2; n++)
            {
                var ql = b.Slice(64 * n, 64);
                var qh = b.Slice(128 + 32 * n, 32);
                var sc = b.Slice(192 + 8 * n, 8);
                var y = dst.Slice(i * QK + 128 * n, 128);
                for (int l = 0; l < 32; l++)
                {
                    int s = l / 16;
                    int q1 = ((ql[l] & 0xF) | ((qh[l] >> 0) & 3) << 4) - 32;
                    int q2 = ((ql[l + 32] & 0xF) | ((qh[l] >> 2) & 3) << 4) - 32;
                    int q3 = ((ql[l] >> 4) | ((qh[l] >> 4) & 3) << 4) - 32;
                    int q4 = ((ql[l + 32] >> 4) | ((qh[l] >> 6) & 3) << 4) - 32;
                    y[l] = d * (sbyte)sc[s] * q1;
                    y[l + 32] = d * (sbyte)sc[s + 2] * q2;
                    y[l + 64] = d * (sbyte)sc[s + 4] * q3;
                    y[l + 96] = d * (sbyte)sc[s + 6] * q4;
                }
            }
        }
    }
}
