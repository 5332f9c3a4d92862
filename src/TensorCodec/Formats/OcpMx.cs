using TensorCodec.Numerics;

namespace TensorCodec.Formats;

/// <summary>
/// OCP Microscaling (MX v1.0) block: 32 elements sharing an E8M0 scale X = 2^s with
/// s = floor(log2(amax)) − emax(element type), clamped to E8M0's [−127, 127]; each element is
/// x/X converted to the element type with round-to-nearest-even and saturation to ±max.
/// amax = 0 gives s = −127 and zero elements; a NaN or infinity in the block gives the NaN scale
/// (0xFF), which decodes the whole block as NaN (as the spec prescribes).
/// The spec fixes no memory layout; ours: scale byte | 32 elements as a little-endian bit stream
/// (element k at bits [k·w, k·w+w), so for FP4 element 2j is the low nibble of byte j, and FP6
/// packs 4 elements into 3 bytes). Importance weights are ignored.
/// </summary>
internal abstract class OcpMxFormat : BlockFormatBase
{
    public const int K = 32;
    public override int GgmlTypeId => -1;
    public override int BlockSize => K;
    public override int BlockBytes => 1 + K * ElementBits / 8;
    /// <summary>Bits per element (8, 6 or 4).</summary>
    public abstract int ElementBits { get; }
    /// <summary>Exponent of the largest power of two the element type represents (emax_elem).</summary>
    public abstract int ElementEmax { get; }
    /// <summary>Element code of v = x/X (round to nearest even, saturating).</summary>
    public abstract int EncodeElement(float v);
    /// <summary>Element value of a code (before scaling).</summary>
    public abstract float DecodeElement(int code);

    /// <summary>The shared-scale exponent for a block with largest magnitude <paramref name="amax"/>, or null for NaN/inf.</summary>
    public int? SharedExponent(float amax)
    {
        if (!float.IsFinite(amax)) return null;
        if (amax == 0) return -127;
        return Math.Clamp(MathF.ILogB(amax) - ElementEmax, -127, 127); // ILogB is exact floor(log2) for subnormals too
    }

    protected override void QuantizeRow(ReadOnlySpan<float> x, Span<byte> y, ReadOnlySpan<float> importance)
    {
        int nb = x.Length / K;
        Span<int> codes = stackalloc int[K];
        for (int i = 0; i < nb; i++)
        {
            var xb = x.Slice(i * K, K);
            var yb = y.Slice(i * BlockBytes, BlockBytes);
            float amax = 0;
            bool finite = true;
            foreach (float v in xb)
            {
                if (!float.IsFinite(v)) finite = false;
                else amax = MathF.Max(amax, MathF.Abs(v));
            }
            int? s = finite ? SharedExponent(amax) : null;
            if (s is null)
            {
                yb.Clear();
                yb[0] = 0xFF;
                continue;
            }
            yb[0] = (byte)(s.Value + 127);
            for (int j = 0; j < K; j++) codes[j] = amax == 0 ? 0 : EncodeElement(MathF.ScaleB(xb[j], -s.Value));
            PackBits(codes, ElementBits, yb[1..]);
        }
    }

    protected override void DequantizeBlocks(ReadOnlySpan<byte> src, Span<float> dst)
    {
        int nb = dst.Length / K;
        Span<int> codes = stackalloc int[K];
        Span<float> table = stackalloc float[1 << ElementBits];
        for (int c = 0; c < table.Length; c++) table[c] = DecodeElement(c);
        for (int i = 0; i < nb; i++)
        {
            var b = src.Slice(i * BlockBytes, BlockBytes);
            float scale = ScaleFormats.E8M0ToFloat(b[0]);
            UnpackBits(b[1..], ElementBits, codes);
            var y = dst.Slice(i * K, K);
            for (int j = 0; j < K; j++) y[j] = table[codes[j]] * scale;
        }
    }

    /// <summary>Writes codes as a little-endian bit stream of <paramref name="bits"/>-bit fields.</summary>
    internal static void PackBits(ReadOnlySpan<int> codes, int bits, Span<byte> dst)
    {
        if (bits == 8) { for (int j = 0; j < codes.Length; j++) dst[j] = (byte)codes[j]; return; }
        ulong acc = 0;
        int n = 0, o = 0, mask = (1 << bits) - 1;
        foreach (int c in codes)
        {
            acc |= (ulong)(c & mask) << n;
            n += bits;
            while (n >= 8) { dst[o++] = (byte)acc; acc >>= 8; n -= 8; }
        }
        if (n > 0) dst[o] = (byte)acc;
    }

    internal static void UnpackBits(ReadOnlySpan<byte> src, int bits, Span<int> codes)
    {
        if (bits == 8) { for (int j = 0; j < codes.Length; j++) codes[j] = src[j]; return; }
        ulong acc = 0;
        int n = 0, o = 0, mask = (1 << bits) - 1;
        for (int j = 0; j < codes.Length; j++)
        {
            while (n < bits) { acc |= (ulong)src[o++] << n; n += 8; }
            codes[j] = (int)(acc & (ulong)mask);
            acc >>= bits;
            n -= bits;
        }
    }
}

/// <summary>An MX format whose elements are one of the OCP mini-floats.</summary>
internal abstract class OcpMxFloatFormat(MiniFloat element, int emax) : OcpMxFormat
{
    public MiniFloat Element { get; } = element;
    public override int ElementBits => Element.Bits;
    public override int ElementEmax => emax;
    public override int EncodeElement(float v) => Element.Encode(v, saturate: true);
    public override float DecodeElement(int code) => Element.Decode((byte)code);
}
