using TensorCodec.Formats;
using TensorCodec.Numerics;

namespace TensorCodec.Quantization;

/// <summary>
/// The values one ggml block can represent once its scales are fixed, and how to write one code: what GPTQ needs to
/// round a single column on the scales the type's own search chose. Position p of a block decodes to
/// A[p]·level(q) + B[p] with q in 0 … <see cref="Levels"/> − 1 and level(q) = q − <see cref="Offset"/>, or
/// <see cref="Table"/>[q] for the non-uniform IQ4 grid — exactly the expression the type's decoder evaluates.
/// </summary>
internal abstract class GptqGrid
{
    public abstract int GgmlType { get; }
    public abstract int BlockSize { get; }
    public abstract int Levels { get; }
    public virtual int Offset => 0;
    /// <summary>Non-uniform levels (IQ4's), else empty.</summary>
    public virtual ReadOnlySpan<sbyte> Table => default;

    /// <summary>Per position of <paramref name="block"/>: the scale A and offset B its decoder applies to the level.</summary>
    public abstract void Scales(ReadOnlySpan<byte> block, Span<float> a, Span<float> b);

    /// <summary>Writes code <paramref name="q"/> at position <paramref name="p"/>, leaving every other field as it is.</summary>
    public abstract void SetCode(Span<byte> block, int p, int q);

    /// <summary>The code nearest <paramref name="w"/> on position scale <paramref name="a"/> and offset <paramref name="b"/>, and its value.</summary>
    public int Nearest(float w, float a, float b, out float value)
    {
        var table = Table;
        if (!table.IsEmpty)
        {
            int best = 0;
            float bestErr = float.PositiveInfinity;
            value = b;
            for (int q = 0; q < table.Length; q++)
            {
                float v = a * table[q] + b, e = MathF.Abs(w - v);
                if (e < bestErr) { bestErr = e; best = q; value = v; }
            }
            return best;
        }
        int code;
        if (a == 0) code = Offset; // every code decodes to b
        else
        {
            float t = (w - b) / a + Offset;
            code = float.IsNaN(t) ? Offset : (int)Math.Clamp(MathF.Round(t), 0, Levels - 1);
        }
        value = a * (code - Offset) + b;
        return code;
    }

    /// <summary>The grid of a ggml type, or null when GPTQ does not handle it.</summary>
    public static GptqGrid? For(int ggmlType) => ggmlType switch
    {
        2 => new D4Grid(2), 3 => new Q4_1Grid(), 6 => new Q5_0Grid(), 7 => new Q5_1Grid(), 8 => new Q8_0Grid(),
        10 => new Q2_KGrid(), 11 => new Q3_KGrid(), 12 => new Q45_KGrid(12), 13 => new Q45_KGrid(13), 14 => new Q6_KGrid(),
        20 => new D4Grid(20), 23 => new IQ4_XSGrid(),
        _ => null,
    };

    /// <summary>Nibble j of 32 values: low nibble of byte j (j &lt; 16), else high nibble of byte j − 16.</summary>
    protected static void SetNibble32(Span<byte> qs, int p, int q)
    {
        if (p < 16) qs[p] = (byte)((qs[p] & 0xF0) | q);
        else qs[p - 16] = (byte)((qs[p - 16] & 0x0F) | q << 4);
    }

    protected static void SetBit(Span<byte> bytes, int bit, bool on)
    {
        if (on) bytes[bit >> 3] |= (byte)(1 << (bit & 7));
        else bytes[bit >> 3] &= (byte)~(1 << (bit & 7));
    }

    sealed class Q8_0Grid : GptqGrid
    {
        public override int GgmlType => 8;
        public override int BlockSize => 32;
        public override int Levels => 256;
        public override int Offset => 128;
        public override void Scales(ReadOnlySpan<byte> block, Span<float> a, Span<float> b) { a.Fill(Fp16.Read(block, 0)); b.Clear(); }
        public override void SetCode(Span<byte> block, int p, int q) => block[2 + p] = (byte)(sbyte)(q - 128);
    }

    /// <summary>q4_0 (x = d·(q − 8)) and iq4_nl (x = d·table[q]): one fp16 d and 16 bytes of nibbles.</summary>
    sealed class D4Grid(int type) : GptqGrid
    {
        public override int GgmlType => type;
        public override int BlockSize => 32;
        public override int Levels => 16;
        public override int Offset => type == 2 ? 8 : 0;
        public override ReadOnlySpan<sbyte> Table => type == 2 ? default : IQ4.Values;
        public override void Scales(ReadOnlySpan<byte> block, Span<float> a, Span<float> b) { a.Fill(Fp16.Read(block, 0)); b.Clear(); }
        public override void SetCode(Span<byte> block, int p, int q) => SetNibble32(block.Slice(2, 16), p, q);
    }

    sealed class Q4_1Grid : GptqGrid
    {
        public override int GgmlType => 3;
        public override int BlockSize => 32;
        public override int Levels => 16;
        public override void Scales(ReadOnlySpan<byte> block, Span<float> a, Span<float> b) { a.Fill(Fp16.Read(block, 0)); b.Fill(Fp16.Read(block, 2)); }
        public override void SetCode(Span<byte> block, int p, int q) => SetNibble32(block.Slice(4, 16), p, q);
    }

    sealed class Q5_0Grid : GptqGrid
    {
        public override int GgmlType => 6;
        public override int BlockSize => 32;
        public override int Levels => 32;
        public override int Offset => 16;
        public override void Scales(ReadOnlySpan<byte> block, Span<float> a, Span<float> b) { a.Fill(Fp16.Read(block, 0)); b.Clear(); }
        public override void SetCode(Span<byte> block, int p, int q)
        {
            SetNibble32(block.Slice(6, 16), p, q & 0xF);
            SetBit(block.Slice(2, 4), p, (q & 0x10) != 0); // qh bit p is value p's fifth bit
        }
    }

    sealed class Q5_1Grid : GptqGrid
    {
        public override int GgmlType => 7;
        public override int BlockSize => 32;
        public override int Levels => 32;
        public override void Scales(ReadOnlySpan<byte> block, Span<float> a, Span<float> b) { a.Fill(Fp16.Read(block, 0)); b.Fill(Fp16.Read(block, 2)); }
        public override void SetCode(Span<byte> block, int p, int q)
        {
            SetNibble32(block.Slice(8, 16), p, q & 0xF);
            SetBit(block.Slice(4, 4), p, (q & 0x10) != 0);
        }
    }

    sealed class IQ4_XSGrid : GptqGrid
    {
        public override int GgmlType => 23;
        public override int BlockSize => 256;
        public override int Levels => 16;
        public override ReadOnlySpan<sbyte> Table => IQ4.Values;
        public override void Scales(ReadOnlySpan<byte> block, Span<float> a, Span<float> b)
        {
            float d = Fp16.Read(block, 0);
            int sh = block[2] | block[3] << 8;
            for (int ib = 0; ib < 8; ib++)
            {
                int ls = ((block[4 + ib / 2] >> (4 * (ib % 2))) & 0xF) | ((sh >> (2 * ib)) & 3) << 4;
                a.Slice(32 * ib, 32).Fill(d * (ls - 32));
            }
            b.Clear();
        }
        public override void SetCode(Span<byte> block, int p, int q) => SetNibble32(block.Slice(8 + 16 * (p / 32), 16), p % 32, q);
    }

    /// <summary>q4_K (12) and q5_K (13): eight sub-blocks of 32 with 6-bit scale and min, x = d·sc·q − dmin·m.</summary>
    sealed class Q45_KGrid(int type) : GptqGrid
    {
        public override int GgmlType => type;
        public override int BlockSize => 256;
        public override int Levels => type == 12 ? 16 : 32;
        public override void Scales(ReadOnlySpan<byte> block, Span<float> a, Span<float> b)
        {
            float d = Fp16.Read(block, 0), min = Fp16.Read(block, 2);
            var sc = block.Slice(4, 12);
            for (int j = 0; j < 8; j++)
            {
                QuantMath.GetScaleMinK4(j, sc, out byte s, out byte m);
                a.Slice(32 * j, 32).Fill(d * s);
                b.Slice(32 * j, 32).Fill(-(min * m));
            }
        }
        public override void SetCode(Span<byte> block, int p, int q)
        {
            // Each 64 values share 32 bytes: the first 32 in the low nibbles, the next 32 in the high ones.
            int chunk = p / 64, l = p % 32;
            bool high = p % 64 >= 32;
            var qs = type == 12 ? block.Slice(16 + 32 * chunk, 32) : block.Slice(48 + 32 * chunk, 32);
            qs[l] = high ? (byte)((qs[l] & 0x0F) | (q & 0xF) << 4) : (byte)((qs[l] & 0xF0) | (q & 0xF));
            if (type == 13) SetBit(block.Slice(16, 32), l * 8 + 2 * chunk + (high ? 1 : 0), (q & 0x10) != 0);
        }
    }

    /// <summary>q6_K: sixteen sub-blocks of 16 with int8 scales, x = d·sc·(q − 32).</summary>
    sealed class Q6_KGrid : GptqGrid
    {
        public override int GgmlType => 14;
        public override int BlockSize => 256;
        public override int Levels => 64;
        public override int Offset => 32;
        public override void Scales(ReadOnlySpan<byte> block, Span<float> a, Span<float> b)
        {
            float d = Fp16.Read(block, 208);
            for (int p = 0; p < 256; p++) a[p] = d * (sbyte)block[192 + 8 * (p / 128) + p % 128 / 16];
            b.Clear();
        }
        public override void SetCode(Span<byte> block, int p, int q)
        {
            int n = p / 128, r = p % 128, l = r % 32, quarter = r / 32;
            // Quarters 0/1 use the low nibbles of ql[l] / ql[l+32], quarters 2/3 the high ones; qh[l] holds 2 bits per quarter.
            int qlIndex = 64 * n + l + (quarter % 2 == 1 ? 32 : 0);
            ref byte ql = ref block[qlIndex];
            ql = quarter < 2 ? (byte)((ql & 0xF0) | (q & 0xF)) : (byte)((ql & 0x0F) | (q & 0xF) << 4);
            ref byte qh = ref block[128 + 32 * n + l];
            int shift = 2 * quarter;
            qh = (byte)((qh & ~(3 << shift)) | ((q >> 4) & 3) << shift);
        }
    }

    /// <summary>q2_K: sixteen sub-blocks of 16, 4-bit scale and min per sub-block, x = d·sc·q − dmin·m, q in 0 … 3.</summary>
    sealed class Q2_KGrid : GptqGrid
    {
        public override int GgmlType => 10;
        public override int BlockSize => 256;
        public override int Levels => 4;
        public override void Scales(ReadOnlySpan<byte> block, Span<float> a, Span<float> b)
        {
            float d = Fp16.Read(block, 80), min = Fp16.Read(block, 82);
            for (int s = 0; s < 16; s++)
            {
                a.Slice(16 * s, 16).Fill(d * (block[s] & 0xF));
                b.Slice(16 * s, 16).Fill(-(min * (block[s] >> 4)));
            }
        }
        public override void SetCode(Span<byte> block, int p, int q)
        {
            int n = p / 128, r = p % 128, shift = 2 * (r / 32), k = r % 32;
            ref byte v = ref block[16 + 32 * n + k];
            v = (byte)((v & ~(3 << shift)) | q << shift);
        }
    }

    /// <summary>q3_K: sixteen sub-blocks of 16 with 6-bit signed scales, x = d·(sc − 32)·(q − 4), q in 0 … 7 (high bit in hmask).</summary>
    sealed class Q3_KGrid : GptqGrid
    {
        public override int GgmlType => 11;
        public override int BlockSize => 256;
        public override int Levels => 8;
        public override int Offset => 4;
        public override void Scales(ReadOnlySpan<byte> block, Span<float> a, Span<float> b)
        {
            float d = Fp16.Read(block, 108);
            var sc = block.Slice(96, 12);
            for (int s = 0; s < 16; s++) a.Slice(16 * s, 16).Fill(d * (Q3_K.GetScale(sc, s) - 32));
            b.Clear();
        }
        public override void SetCode(Span<byte> block, int p, int q)
        {
            int n = p / 128, r = p % 128, shift = 2 * (r / 32), k = r % 32;
            ref byte v = ref block[32 + 32 * n + k];
            v = (byte)((v & ~(3 << shift)) | (q & 3) << shift);
            // hmask bit set means the high bit is present (the decoder subtracts 4 when it is clear).
            int m = 4 * n + r / 32;
            block[k] = (q & 4) != 0 ? (byte)(block[k] | 1 << m) : (byte)(block[k] & ~(1 << m));
        }
    }
}
