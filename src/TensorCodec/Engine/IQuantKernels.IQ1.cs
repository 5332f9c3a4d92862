using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using TensorCodec.Formats;
using TensorCodec.Numerics;

namespace TensorCodec.Engine;

/// <summary>
/// iq1_s and iq1_m × q8_K. A grid point is eight ternary levels g ∈ {−1, 0, 1} (ggml's iq1s_grid)
/// shifted by ±1/8, so value = d·(2s+1)·(g ± 1/8) = d·(2s+1)/8·(8g ± 1): the kernels multiply the
/// integers 8g ± 1 (|·| ≤ 9) by the activation codes, which is ggml's Σg·x + δ·Σx in one integer sum.
/// iq1_s has a 3-bit s and one shift sign per 32 values, iq1_m a 3-bit s per 16 and a shift sign per 8.
/// </summary>
internal static unsafe partial class IQuantKernels
{
    /// <summary>iq1s_grid with every level times 8 (bytes −8, 0, 8).</summary>
    static class Grid2048x8
    {
        public static readonly ulong[] T = Build();

        static ulong[] Build()
        {
            var src = IQ2Grids.Grid2048.Table;
            var t = new ulong[src.Length];
            for (int i = 0; i < src.Length; i++)
                for (int j = 0; j < 8; j++)
                    t[i] |= (ulong)(byte)(8 * (sbyte)(src[i] >> 8 * j)) << 8 * j;
            return t;
        }
    }

    const ulong PlusOnes = 0x0101010101010101, MinusOnes = ulong.MaxValue;

    /// <summary>iq1_s (50-byte blocks: fp16 d, qs[32] index low bytes, uint16 qh[8] = 3 index bits per point | s &lt;&lt; 12 | shift sign &lt;&lt; 15).</summary>
    public static float DotIQ1_S(byte* w, byte* xq, int cols) => UseAvx2 ? IQ1_SAvx2(w, xq, cols) : IQ1_SScalar(w, xq, cols);

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    static float IQ1_SAvx2(byte* w, byte* xq, int cols)
    {
        int nsb = cols / 256;
        sbyte* x = (sbyte*)xq;
        float* xd = (float*)(xq + cols);
        float acc = 0;
        fixed (ulong* grid = Grid2048x8.T)
            for (int s = 0; s < nsb; s++, w += 50)
            {
                var iv = Vector256<int>.Zero;
                for (int ib = 0; ib < 8; ib++, x += 32)
                {
                    byte* q = w + 2 + 4 * ib;
                    int qh = U16(w + 34 + 2 * ib);
                    var g = Vector256.Create(grid[q[0] | (qh << 8 & 0x700)], grid[q[1] | (qh << 5 & 0x700)],
                        grid[q[2] | (qh << 2 & 0x700)], grid[q[3] | (qh >> 1 & 0x700)]).AsSByte();
                    var wv = g + Vector256.Create((sbyte)((qh & 0x8000) != 0 ? -1 : 1));
                    iv += SignedDot(wv, x, Vector256.Create((short)(2 * (qh >> 12 & 7) + 1)));
                }
                acc += Half(w) * xd[s] * Vector256.Sum(iv);
            }
        return 0.125f * acc;
    }

    internal static float IQ1_SScalar(byte* w, byte* xq, int cols)
    {
        int nsb = cols / 256;
        sbyte* x = (sbyte*)xq;
        float* xd = (float*)(xq + cols);
        var grid = Grid2048x8.T;
        float acc = 0;
        for (int s = 0; s < nsb; s++, w += 50)
        {
            int isum = 0;
            for (int ib = 0; ib < 8; ib++, x += 32)
            {
                int qh = U16(w + 34 + 2 * ib), delta = (qh & 0x8000) != 0 ? -1 : 1, sumi = 0;
                for (int l = 0; l < 4; l++) sumi += Dot8Signed(grid[w[2 + 4 * ib + l] | (qh >> 3 * l & 7) << 8], delta, x + 8 * l);
                isum += (2 * (qh >> 12 & 7) + 1) * sumi;
            }
            acc += Half(w) * xd[s] * isum;
        }
        return 0.125f * acc;
    }

    /// <summary>iq1_m's fp16 super-scale, spread over the top nibbles of its four uint16 scale words.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static float IQ1_MScale(byte* w)
    {
        int s0 = U16(w + 48), s1 = U16(w + 50), s2 = U16(w + 52), s3 = U16(w + 54);
        return Fp16Bits.ToFloat((ushort)((s0 >> 12) | (s1 >> 8 & 0x00f0) | (s2 >> 4 & 0x0f00) | (s3 & 0xf000)));
    }

    /// <summary>iq1_m (56-byte blocks: qs[32] index low bytes, qh[16] = 3 index bits and a shift sign per point, uint16 scales[4]).</summary>
    public static float DotIQ1_M(byte* w, byte* xq, int cols) => UseAvx2 ? IQ1_MAvx2(w, xq, cols) : IQ1_MScalar(w, xq, cols);

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    static float IQ1_MAvx2(byte* w, byte* xq, int cols)
    {
        int nsb = cols / 256;
        sbyte* x = (sbyte*)xq;
        float* xd = (float*)(xq + cols);
        float acc = 0;
        fixed (ulong* grid = Grid2048x8.T)
            for (int s = 0; s < nsb; s++, w += 56)
            {
                var iv = Vector256<int>.Zero;
                for (int ib = 0; ib < 8; ib++, x += 32)
                {
                    byte* q = w + 4 * ib;
                    int h0 = w[32 + 2 * ib], h1 = w[33 + 2 * ib];
                    var g = Vector256.Create(grid[q[0] | (h0 << 8 & 0x700)], grid[q[1] | (h0 << 4 & 0x700)],
                        grid[q[2] | (h1 << 8 & 0x700)], grid[q[3] | (h1 << 4 & 0x700)]);
                    var delta = Vector256.Create((h0 & 0x08) != 0 ? MinusOnes : PlusOnes, (h0 & 0x80) != 0 ? MinusOnes : PlusOnes,
                        (h1 & 0x08) != 0 ? MinusOnes : PlusOnes, (h1 & 0x80) != 0 ? MinusOnes : PlusOnes);
                    int sc = U16(w + 48 + 2 * (ib / 2)) >> 6 * (ib & 1);
                    var scv = Vector256.Create(Vector128.Create((short)(2 * (sc & 7) + 1)), Vector128.Create((short)(2 * (sc >> 3 & 7) + 1)));
                    iv += SignedDot(g.AsSByte() + delta.AsSByte(), x, scv);
                }
                acc += IQ1_MScale(w) * xd[s] * Vector256.Sum(iv);
            }
        return 0.125f * acc;
    }

    internal static float IQ1_MScalar(byte* w, byte* xq, int cols)
    {
        int nsb = cols / 256;
        sbyte* x = (sbyte*)xq;
        float* xd = (float*)(xq + cols);
        var grid = Grid2048x8.T;
        float acc = 0;
        for (int s = 0; s < nsb; s++, w += 56)
        {
            int isum = 0;
            for (int ib = 0; ib < 8; ib++, x += 32)
            {
                int sc = U16(w + 48 + 2 * (ib / 2)) >> 6 * (ib & 1);
                for (int l = 0; l < 4; l++)
                {
                    int h = w[32 + 2 * ib + l / 2] >> 4 * (l & 1); // this point's 3 index bits and shift sign
                    int v = Dot8Signed(grid[w[4 * ib + l] | (h & 7) << 8], (h & 8) != 0 ? -1 : 1, x + 8 * l);
                    isum += (2 * (sc >> 3 * (l / 2) & 7) + 1) * v;
                }
            }
            acc += IQ1_MScale(w) * xd[s] * isum;
        }
        return 0.125f * acc;
    }
}
