using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;
using TensorCodec.Formats;

namespace TensorCodec.Engine;

/// <summary>
/// The table and sign formats: iq4_xs × q8_K and iq4_nl × q8_0 (4-bit indices into ggml's
/// kvalues_iq4nl, looked up with vpshufb as ggml does), and q1_0 (signs of d) and q2_0 (codes 0–3,
/// value (c − 1)·d) × q8_0. ggml's vec_dot_type for iq4_nl, q1_0 and q2_0 is q8_0, whose blocks are
/// 32 values with their own scale, so these kernels meet floating point once per 32 values.
/// </summary>
internal static unsafe partial class IQuantKernels
{
    static class Iq4Table { public static readonly sbyte[] T = IQ4.Values.ToArray(); }

    /// <summary>Byte i of entry v is the 2-bit code i of byte v (q2_0's packing, four codes per byte).</summary>
    static class Codes2
    {
        public static readonly uint[] T = Build();

        static uint[] Build()
        {
            var t = new uint[256];
            for (int v = 0; v < 256; v++)
                for (int i = 0; i < 4; i++) t[v] |= (uint)(v >> 2 * i & 3) << 8 * i;
            return t;
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static Vector256<sbyte> Iq4Values(byte* qs, Vector256<sbyte> table)
    {
        var raw = Vector128.Load(qs);
        var m4 = Vector128.Create((byte)0x0F);
        // Values 0–15 are the low nibbles, 16–31 the high nibbles of the same 16 bytes.
        var idx = Vector256.Create(raw & m4, Vector128.ShiftRightLogical(raw.AsUInt16(), 4).AsByte() & m4);
        return Avx2.Shuffle(table, idx.AsSByte());
    }

    /// <summary>Scalar: Σ over 32 values of kvalues_iq4nl[nibble]·x, nibbles as <see cref="Iq4Values"/> lays them out.</summary>
    static int Iq4Dot32(byte* qs, sbyte[] values, sbyte* x)
    {
        int s = 0;
        for (int j = 0; j < 16; j++) s += values[qs[j] & 15] * x[j] + values[qs[j] >> 4] * x[j + 16];
        return s;
    }

    /// <summary>iq4_xs (136-byte blocks: fp16 d, uint16 scales_h, scales_l[4], qs[128]; 6-bit scale − 32 per 32 values).</summary>
    public static float DotIQ4_XS(byte* w, byte* xq, int cols) => UseAvx2 ? IQ4_XSAvx2(w, xq, cols) : IQ4_XSScalar(w, xq, cols);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static int Iq4XsScale(byte* w, int ib) => ((w[4 + ib / 2] >> 4 * (ib & 1) & 15) | (U16(w + 2) >> 2 * ib & 3) << 4) - 32;

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    static float IQ4_XSAvx2(byte* w, byte* xq, int cols)
    {
        int nsb = cols / 256;
        sbyte* x = (sbyte*)xq;
        float* xd = (float*)(xq + cols);
        float acc = 0;
        var table = Vector256.Create(Vector128.Create(Iq4Table.T));
        for (int s = 0; s < nsb; s++, w += 136)
        {
            var iv = Vector256<int>.Zero;
            for (int ib = 0; ib < 8; ib++, x += 32)
                iv += SignedDot(Iq4Values(w + 8 + 16 * ib, table), x, Vector256.Create((short)Iq4XsScale(w, ib)));
            acc += Half(w) * xd[s] * Vector256.Sum(iv);
        }
        return acc;
    }

    internal static float IQ4_XSScalar(byte* w, byte* xq, int cols)
    {
        int nsb = cols / 256;
        sbyte* x = (sbyte*)xq;
        float* xd = (float*)(xq + cols);
        var values = Iq4Table.T;
        float acc = 0;
        for (int s = 0; s < nsb; s++, w += 136)
        {
            int isum = 0;
            for (int ib = 0; ib < 8; ib++, x += 32) isum += Iq4XsScale(w, ib) * Iq4Dot32(w + 8 + 16 * ib, values, x);
            acc += Half(w) * xd[s] * isum;
        }
        return acc;
    }

    /// <summary>iq4_nl × q8_0 (18-byte blocks of 32: fp16 d, qs[16]).</summary>
    public static float DotIQ4_NL(byte* w, byte* xq, int cols) => UseAvx2 ? IQ4_NLAvx2(w, xq, cols) : IQ4_NLScalar(w, xq, cols);

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    static float IQ4_NLAvx2(byte* w, byte* xq, int cols)
    {
        int nb = cols / 32;
        sbyte* x = (sbyte*)xq;
        float* xd = (float*)(xq + cols);
        float acc = 0;
        var table = Vector256.Create(Vector128.Create(Iq4Table.T));
        for (int b = 0; b < nb; b++, w += 18, x += 32)
            acc += Half(w) * xd[b] * Vector256.Sum(SignedDot(Iq4Values(w + 2, table), x, Ones16));
        return acc;
    }

    internal static float IQ4_NLScalar(byte* w, byte* xq, int cols)
    {
        int nb = cols / 32;
        sbyte* x = (sbyte*)xq;
        float* xd = (float*)(xq + cols);
        var values = Iq4Table.T;
        float acc = 0;
        for (int b = 0; b < nb; b++, w += 18, x += 32) acc += Half(w) * xd[b] * Iq4Dot32(w + 2, values, x);
        return acc;
    }

    /// <summary>q1_0 × q8_0 (18-byte blocks of 128: fp16 d, 128 sign bits, 1 = +d).</summary>
    public static float DotQ1_0(byte* w, byte* xq, int cols) => UseAvx2 ? Q1_0Avx2(w, xq, cols) : Q1_0Scalar(w, xq, cols);

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    static float Q1_0Avx2(byte* w, byte* xq, int cols)
    {
        int nb = cols / 32;
        sbyte* x = (sbyte*)xq;
        float* xd = (float*)(xq + cols);
        float acc = 0;
        var ones = Vector256.Create((byte)1);
        fixed (ulong* sg = SignBytes.Full)
            for (int b = 0; b < nb; b++, x += 32)
            {
                byte* blk = w + b / 4 * 18, bits = blk + 2 + 4 * (b & 3);
                // Full gives −1 for a set bit; q1_0's set bit is +d, so index with the complement.
                var sv = Vector256.Create(sg[(byte)~bits[0]], sg[(byte)~bits[1]], sg[(byte)~bits[2]], sg[(byte)~bits[3]]).AsSByte();
                acc += Half(blk) * xd[b] * Vector256.Sum(MagSignDot(ones, sv, x, Ones16));
            }
        return acc;
    }

    internal static float Q1_0Scalar(byte* w, byte* xq, int cols)
    {
        int nb = cols / 32;
        sbyte* x = (sbyte*)xq;
        float* xd = (float*)(xq + cols);
        float acc = 0;
        for (int b = 0; b < nb; b++, x += 32)
        {
            byte* blk = w + b / 4 * 18, bits = blk + 2 + 4 * (b & 3);
            int sumi = 0;
            for (int j = 0; j < 32; j++) sumi += (bits[j / 8] >> (j & 7) & 1) != 0 ? x[j] : -x[j];
            acc += Half(blk) * xd[b] * sumi;
        }
        return acc;
    }

    /// <summary>q2_0 × q8_0 (18-byte blocks of 64: fp16 d, 2-bit codes c, value (c − 1)·d): Σ(c − 1)·x = Σ c·x − Σx.</summary>
    public static float DotQ2_0(byte* w, byte* xq, int cols) => UseAvx2 ? Q2_0Avx2(w, xq, cols) : Q2_0Scalar(w, xq, cols);

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    static float Q2_0Avx2(byte* w, byte* xq, int cols)
    {
        int nb = cols / 32;
        sbyte* x = (sbyte*)xq;
        float* xd = (float*)(xq + cols);
        int* xsum = (int*)(xd + nb);
        float acc = 0;
        fixed (uint* c4 = Codes2.T)
            for (int b = 0; b < nb; b++, x += 32)
            {
                byte* blk = w + b / 2 * 18, q = blk + 2 + 8 * (b & 1);
                var codes = Vector256.Create(c4[q[0]], c4[q[1]], c4[q[2]], c4[q[3]], c4[q[4]], c4[q[5]], c4[q[6]], c4[q[7]]).AsByte();
                int cx = Vector256.Sum(Avx2.MultiplyAddAdjacent(Avx2.MultiplyAddAdjacent(codes, Vector256.Load(x)), Ones16));
                acc += Half(blk) * xd[b] * (cx - xsum[b]);
            }
        return acc;
    }

    internal static float Q2_0Scalar(byte* w, byte* xq, int cols)
    {
        int nb = cols / 32;
        sbyte* x = (sbyte*)xq;
        float* xd = (float*)(xq + cols);
        float acc = 0;
        for (int b = 0; b < nb; b++, x += 32)
        {
            byte* blk = w + b / 2 * 18, q = blk + 2 + 8 * (b & 1);
            int sumi = 0;
            for (int j = 0; j < 32; j++) sumi += ((q[j / 4] >> 2 * (j & 3) & 3) - 1) * x[j];
            acc += Half(blk) * xd[b] * sumi;
        }
        return acc;
    }
}
