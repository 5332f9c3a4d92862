using System.Buffers.Binary;
using System.Runtime.CompilerServices;

namespace TensorCodec.Formats;

/// <summary>
/// bitsandbytes-style blockwise 4-bit (NF4, FP4): each block of <see cref="BlockSize"/> values
/// stores its absmax as float32 and one 4-bit code per value, x ≈ code[q]·absmax. Encoding
/// follows bnb's kernel: v = x·(1/absmax), then the code is picked by comparing v against the
/// fixed pivots (the midpoints bnb hard-codes in its decision trees, strict "&gt;", so a value
/// exactly on a pivot takes the lower code). An all-zero block encodes as code(0), not bnb's NaN.
/// Layout per block: absmax f32 | bs/2 bytes, value 2j in the high nibble and 2j+1 in the low
/// nibble (bnb's packing). bnb keeps absmax in a separate array; interleaving it per block is
/// the only difference, and it makes the format a fixed-size block type.
/// </summary>
internal abstract partial class Bnb4BitFormat : BlockFormatBase
{
    private readonly int _bs;
    private readonly float[] _pivots;
    private readonly byte[] _rankToCode;
    private readonly float[] _decode;
    private readonly bool _signMagnitude;

    /// <param name="blockSize">Values per block: a multiple of 16 in [16, 4096].</param>
    /// <param name="pivots">Ascending thresholds; the rank of v is the number of pivots below it.</param>
    /// <param name="rankToCode">Code for each rank (pivots.Length + 1 entries).</param>
    /// <param name="decode">The 16 code values, indexed by code.</param>
    /// <param name="signMagnitude">Rank |v| and add 8 for v &lt; 0 (FP4), else rank v itself (NF4).</param>
    private protected Bnb4BitFormat(int blockSize, float[] pivots, byte[] rankToCode, float[] decode, bool signMagnitude)
    {
        if (blockSize < 16 || blockSize > 4096 || blockSize % 16 != 0)
            throw new ArgumentOutOfRangeException(nameof(blockSize), $"block size {blockSize}: must be a multiple of 16 in [16, 4096]");
        _bs = blockSize; _pivots = pivots; _rankToCode = rankToCode; _decode = decode; _signMagnitude = signMagnitude;
    }

    public override int GgmlTypeId => -1;
    public override int BlockSize => _bs;
    public override int BlockBytes => 4 + _bs / 2;
    /// <summary>The 16 code values (multiplied by absmax on decode).</summary>
    public ReadOnlySpan<float> CodeValues => _decode;

    /// <summary>Code of a value already divided by its block's absmax.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public int EncodeNormalized(float v)
    {
        float a = _signMagnitude ? MathF.Abs(v) : v;
        int rank = 0;
        foreach (float p in _pivots) if (a > p) rank++;
        int code = _rankToCode[rank];
        return _signMagnitude && v < 0 ? code | 8 : code;
    }

    protected override void QuantizeRow(ReadOnlySpan<float> x, Span<byte> y, ReadOnlySpan<float> importance)
    {
        if (Bnb4BitFast.IsSupported) QuantizeFast(x, y);
        else QuantizeReference(x, y);
    }

    protected override void DequantizeBlocks(ReadOnlySpan<byte> src, Span<float> dst)
    {
        if (Bnb4BitFast.IsSupported) DequantizeFast(src, dst);
        else DequantizeReference(src, dst);
    }

    /// <summary>bnb's absmax: the largest magnitude in the block.</summary>
    internal static float AbsMax(ReadOnlySpan<float> x)
    {
        float m = 0;
        foreach (float v in x) m = MathF.Max(m, MathF.Abs(v));
        return m;
    }

    /// <summary>Encodes one block's values with a given absmax into bs/2 packed bytes.</summary>
    internal void EncodeBlockReference(ReadOnlySpan<float> xb, float absmax, Span<byte> q)
    {
        float inv = absmax > 0 ? 1f / absmax : 0f;
        for (int j = 0; j < xb.Length / 2; j++)
            q[j] = (byte)(EncodeNormalized(xb[2 * j] * inv) << 4 | EncodeNormalized(xb[2 * j + 1] * inv));
    }

    public void QuantizeReference(ReadOnlySpan<float> x, Span<byte> y)
    {
        int nb = x.Length / _bs, bb = BlockBytes;
        for (int i = 0; i < nb; i++)
        {
            var xb = x.Slice(i * _bs, _bs);
            var yb = y.Slice(i * bb, bb);
            float absmax = AbsMax(xb);
            BinaryPrimitives.WriteSingleLittleEndian(yb, absmax);
            EncodeBlockReference(xb, absmax, yb[4..]);
        }
    }

    public void DequantizeReference(ReadOnlySpan<byte> src, Span<float> dst)
    {
        int nb = dst.Length / _bs, bb = BlockBytes;
        for (int i = 0; i < nb; i++)
        {
            var b = src.Slice(i * bb, bb);
            DecodeBlockReference(b[4..], BinaryPrimitives.ReadSingleLittleEndian(b), dst.Slice(i * _bs, _bs));
        }
    }

    internal void DecodeBlockReference(ReadOnlySpan<byte> q, float absmax, Span<float> y)
    {
        for (int j = 0; j < y.Length / 2; j++)
        {
            y[2 * j] = _decode[q[j] >> 4] * absmax;
            y[2 * j + 1] = _decode[q[j] & 0xF] * absmax;
        }
    }
}
