using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;
using TensorCodec.Formats;

namespace TensorCodec.Engine;

/// <summary>
/// iq3_xxs and iq3_s × q8_K. A grid point is four magnitudes (a uint32 of ggml's iq3xxs_grid /
/// iq3s_grid), two points make eight values with one sign mask. iq3_xxs: value d·(2s+1)/4·g·sign
/// with 7-bit parity-completed masks; iq3_s: d·(2s+1)·g·sign with explicit masks and a ninth index
/// bit per point. One 4-bit s per 32 values in both.
/// </summary>
internal static unsafe partial class IQuantKernels
{
    static class Iq3xxs { public static readonly uint[] T = IQ3Grids.Iq3xxsGrid.ToArray(); }
    static class Iq3s { public static readonly uint[] T = IQ3Grids.Iq3sGrid.ToArray(); }

    /// <summary>iq3_xxs (98-byte blocks: fp16 d, qs[64] grid indices, per 32 values uint32 four 7-bit signs | scale &lt;&lt; 28).</summary>
    public static float DotIQ3_XXS(byte* w, byte* xq, int cols) => UseAvx2 ? IQ3_XXSAvx2(w, xq, cols) : IQ3_XXSScalar(w, xq, cols);

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    static float IQ3_XXSAvx2(byte* w, byte* xq, int cols)
    {
        int nsb = cols / 256;
        sbyte* x = (sbyte*)xq;
        float* xd = (float*)(xq + cols);
        float acc = 0;
        fixed (uint* grid = Iq3xxs.T)
        fixed (ulong* sg = SignBytes.Even7)
            for (int s = 0; s < nsb; s++, w += 98)
            {
                var iv = Vector256<int>.Zero;
                for (int ib = 0; ib < 8; ib++, x += 32)
                {
                    uint aux = U32(w + 66 + 4 * ib);
                    // Eight grid points gathered by their byte indices (vpgatherdd: about twice as fast as eight inserts).
                    var g = Avx2.GatherVector256(grid, Avx2.ConvertToVector256Int32(w + 2 + 8 * ib), 4).AsByte();
                    var sv = Vector256.Create(sg[aux & 127], sg[aux >> 7 & 127], sg[aux >> 14 & 127], sg[aux >> 21 & 127]).AsSByte();
                    iv += MagSignDot(g, sv, x, Vector256.Create((short)(2 * (aux >> 28) + 1)));
                }
                acc += Half(w) * xd[s] * Vector256.Sum(iv);
            }
        return 0.25f * acc;
    }

    internal static float IQ3_XXSScalar(byte* w, byte* xq, int cols)
    {
        int nsb = cols / 256;
        sbyte* x = (sbyte*)xq;
        float* xd = (float*)(xq + cols);
        var grid = Iq3xxs.T;
        var ks = IQ2Grids.KSigns;
        float acc = 0;
        for (int s = 0; s < nsb; s++, w += 98)
        {
            int isum = 0;
            for (int ib = 0; ib < 8; ib++, x += 32)
            {
                byte* q = w + 2 + 8 * ib;
                uint aux = U32(w + 66 + 4 * ib);
                int sumi = 0;
                for (int l = 0; l < 4; l++)
                    sumi += Dot8(grid[q[2 * l]] | (ulong)grid[q[2 * l + 1]] << 32, ks[aux >> 7 * l & 127], x + 8 * l);
                isum += (int)(2 * (aux >> 28) + 1) * sumi;
            }
            acc += Half(w) * xd[s] * isum;
        }
        return 0.25f * acc;
    }

    /// <summary>iq3_s (110-byte blocks: fp16 d, qs[64] index low bytes, qh[8] ninth bits, signs[32], scales[4] two nibbles).</summary>
    public static float DotIQ3_S(byte* w, byte* xq, int cols) => UseAvx2 ? IQ3_SAvx2(w, xq, cols) : IQ3_SScalar(w, xq, cols);

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    static float IQ3_SAvx2(byte* w, byte* xq, int cols)
    {
        int nsb = cols / 256;
        sbyte* x = (sbyte*)xq;
        float* xd = (float*)(xq + cols);
        float acc = 0;
        var shifts = Vector256.Create(8u, 7, 6, 5, 4, 3, 2, 1);
        var bit8 = Vector256.Create(256u);
        fixed (uint* grid = Iq3s.T)
        fixed (ulong* sg = SignBytes.Full)
            for (int s = 0; s < nsb; s++, w += 110)
            {
                var iv = Vector256<int>.Zero;
                for (int ib = 0; ib < 8; ib++, x += 32)
                {
                    byte* sb = w + 74 + 4 * ib;
                    // Index k = qs[k] | bit k of qh << 8, for the eight points at once, then one gather.
                    var idx = Avx2.ConvertToVector256Int32(w + 2 + 8 * ib).AsUInt32()
                        | (Avx2.ShiftLeftLogicalVariable(Vector256.Create((uint)w[66 + ib]), shifts) & bit8);
                    var g = Avx2.GatherVector256(grid, idx.AsInt32(), 4).AsByte();
                    var sv = Vector256.Create(sg[sb[0]], sg[sb[1]], sg[sb[2]], sg[sb[3]]).AsSByte();
                    int sc = w[106 + ib / 2] >> 4 * (ib & 1) & 15;
                    iv += MagSignDot(g, sv, x, Vector256.Create((short)(2 * sc + 1)));
                }
                acc += Half(w) * xd[s] * Vector256.Sum(iv);
            }
        return acc;
    }

    internal static float IQ3_SScalar(byte* w, byte* xq, int cols)
    {
        int nsb = cols / 256;
        sbyte* x = (sbyte*)xq;
        float* xd = (float*)(xq + cols);
        var grid = Iq3s.T;
        float acc = 0;
        for (int s = 0; s < nsb; s++, w += 110)
        {
            int isum = 0;
            for (int ib = 0; ib < 8; ib++, x += 32)
            {
                byte* q = w + 2 + 8 * ib;
                int qh = w[66 + ib], sumi = 0;
                for (int l = 0; l < 4; l++)
                {
                    ulong g = grid[q[2 * l] | (qh >> 2 * l & 1) << 8] | (ulong)grid[q[2 * l + 1] | (qh >> (2 * l + 1) & 1) << 8] << 32;
                    sumi += Dot8(g, w[74 + 4 * ib + l], x + 8 * l);
                }
                isum += (2 * (w[106 + ib / 2] >> 4 * (ib & 1) & 15) + 1) * sumi;
            }
            acc += Half(w) * xd[s] * isum;
        }
        return acc;
    }
}
