using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;
using TensorCodec.Formats;

namespace TensorCodec.Engine;

/// <summary>
/// iq2_xxs, iq2_xs and iq2_s × q8_K. A grid point is eight magnitudes (8, 25 or 43) and a sign
/// mask; the value is d·(2s+1)/8·magnitude·sign with a 4-bit s per 32 (iq2_xxs) or per 16 values
/// (iq2_xs, iq2_s), so the kernels sum (2s+1)·Σ magnitude·sign·x exactly and multiply by d·d_x/8.
/// </summary>
internal static unsafe partial class IQuantKernels
{
    // Nested so that each lattice is built on first use of its own format only.
    static class Grid256 { public static readonly ulong[] T = IQ2Grids.Grid256.Table; }
    static class Grid512 { public static readonly ulong[] T = IQ2Grids.Grid512.Table; }
    static class Grid1024 { public static readonly ulong[] T = IQ2Grids.Grid1024.Table; }

    /// <summary>iq2_xxs (66-byte blocks: fp16 d, then per 32 values uint32 four grid indices and uint32 four 7-bit signs | scale &lt;&lt; 28).</summary>
    public static float DotIQ2_XXS(byte* w, byte* xq, int cols) => UseAvx2 ? IQ2_XXSAvx2(w, xq, cols) : IQ2_XXSScalar(w, xq, cols);

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    static float IQ2_XXSAvx2(byte* w, byte* xq, int cols)
    {
        int nsb = cols / 256;
        sbyte* x = (sbyte*)xq;
        float* xd = (float*)(xq + cols);
        float acc = 0;
        var shifts7 = Vector128.Create(0u, 7, 14, 21);
        var m7 = Vector128.Create(127u);
        fixed (ulong* grid = Grid256.T)
        fixed (ulong* sg = SignBytes.Even7)
            for (int s = 0; s < nsb; s++, w += 66)
            {
                var iv = Vector256<int>.Zero;
                for (int ib = 0; ib < 8; ib++, x += 32)
                {
                    uint a1 = U32(w + 6 + 8 * ib);
                    // Four grid points by their byte indices and four sign masks by their 7-bit fields, gathered.
                    var g = Avx2.GatherVector256(grid, Sse41.ConvertToVector128Int32(w + 2 + 8 * ib), 8).AsByte();
                    var si = Avx2.ShiftRightLogicalVariable(Vector128.Create(a1), shifts7) & m7;
                    var sv = Avx2.GatherVector256(sg, si.AsInt32(), 8).AsSByte();
                    iv += MagSignDot(g, sv, x, Vector256.Create((short)(2 * (a1 >> 28) + 1)));
                }
                acc += Half(w) * xd[s] * Vector256.Sum(iv);
            }
        return 0.125f * acc;
    }

    internal static float IQ2_XXSScalar(byte* w, byte* xq, int cols)
    {
        int nsb = cols / 256;
        sbyte* x = (sbyte*)xq;
        float* xd = (float*)(xq + cols);
        var grid = Grid256.T;
        var ks = IQ2Grids.KSigns;
        float acc = 0;
        for (int s = 0; s < nsb; s++, w += 66)
        {
            int isum = 0;
            for (int ib = 0; ib < 8; ib++, x += 32)
            {
                uint a0 = U32(w + 2 + 8 * ib), a1 = U32(w + 6 + 8 * ib);
                int sumi = 0;
                for (int l = 0; l < 4; l++) sumi += Dot8(grid[a0 >> 8 * l & 255], ks[a1 >> 7 * l & 127], x + 8 * l);
                isum += (int)(2 * (a1 >> 28) + 1) * sumi;
            }
            acc += Half(w) * xd[s] * isum;
        }
        return 0.125f * acc;
    }

    /// <summary>iq2_xs (74-byte blocks: fp16 d, uint16 qs[32] = 9-bit index | 7-bit signs &lt;&lt; 9, scales[8] two nibbles per 32).</summary>
    public static float DotIQ2_XS(byte* w, byte* xq, int cols) => UseAvx2 ? IQ2_XSAvx2(w, xq, cols) : IQ2_XSScalar(w, xq, cols);

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    static float IQ2_XSAvx2(byte* w, byte* xq, int cols)
    {
        int nsb = cols / 256;
        sbyte* x = (sbyte*)xq;
        float* xd = (float*)(xq + cols);
        float acc = 0;
        fixed (ulong* grid = Grid512.T)
        fixed (ulong* sg = SignBytes.Even7)
            for (int s = 0; s < nsb; s++, w += 74)
            {
                var iv = Vector256<int>.Zero;
                for (int ib = 0; ib < 8; ib++, x += 32)
                {
                    byte* q = w + 2 + 8 * ib;
                    int q0 = U16(q), q1 = U16(q + 2), q2 = U16(q + 4), q3 = U16(q + 6);
                    var g = Vector256.Create(grid[q0 & 511], grid[q1 & 511], grid[q2 & 511], grid[q3 & 511]).AsByte();
                    var sv = Vector256.Create(sg[q0 >> 9], sg[q1 >> 9], sg[q2 >> 9], sg[q3 >> 9]).AsSByte();
                    int sc = w[66 + ib];
                    // int16 lanes 0–7 of vpmaddubsw hold values 0–15 (first scale), lanes 8–15 values 16–31.
                    var scv = Vector256.Create(Vector128.Create((short)(2 * (sc & 15) + 1)), Vector128.Create((short)(2 * (sc >> 4) + 1)));
                    iv += MagSignDot(g, sv, x, scv);
                }
                acc += Half(w) * xd[s] * Vector256.Sum(iv);
            }
        return 0.125f * acc;
    }

    internal static float IQ2_XSScalar(byte* w, byte* xq, int cols)
    {
        int nsb = cols / 256;
        sbyte* x = (sbyte*)xq;
        float* xd = (float*)(xq + cols);
        var grid = Grid512.T;
        var ks = IQ2Grids.KSigns;
        float acc = 0;
        for (int s = 0; s < nsb; s++, w += 74)
        {
            int isum = 0;
            for (int ib = 0; ib < 8; ib++, x += 32)
            {
                int sc = w[66 + ib];
                for (int half = 0; half < 2; half++)
                {
                    int sumi = 0;
                    for (int l = 2 * half; l < 2 * half + 2; l++)
                    {
                        int q = U16(w + 2 + 8 * ib + 2 * l);
                        sumi += Dot8(grid[q & 511], ks[q >> 9], x + 8 * l);
                    }
                    isum += (2 * (sc >> 4 * half & 15) + 1) * sumi;
                }
            }
            acc += Half(w) * xd[s] * isum;
        }
        return 0.125f * acc;
    }

    /// <summary>iq2_s (82-byte blocks: fp16 d, qs[32] index low bytes, signs[32], qh[8] two index bits per point, scales[8]).</summary>
    public static float DotIQ2_S(byte* w, byte* xq, int cols) => UseAvx2 ? IQ2_SAvx2(w, xq, cols) : IQ2_SScalar(w, xq, cols);

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    static float IQ2_SAvx2(byte* w, byte* xq, int cols)
    {
        int nsb = cols / 256;
        sbyte* x = (sbyte*)xq;
        float* xd = (float*)(xq + cols);
        float acc = 0;
        fixed (ulong* grid = Grid1024.T)
        fixed (ulong* sg = SignBytes.Full)
            for (int s = 0; s < nsb; s++, w += 82)
            {
                var iv = Vector256<int>.Zero;
                for (int ib = 0; ib < 8; ib++, x += 32)
                {
                    byte* q = w + 2 + 4 * ib, sb = w + 34 + 4 * ib;
                    int qh = w[66 + ib];
                    var g = Vector256.Create(grid[q[0] | (qh << 8 & 0x300)], grid[q[1] | (qh << 6 & 0x300)],
                        grid[q[2] | (qh << 4 & 0x300)], grid[q[3] | (qh << 2 & 0x300)]).AsByte();
                    var sv = Vector256.Create(sg[sb[0]], sg[sb[1]], sg[sb[2]], sg[sb[3]]).AsSByte();
                    int sc = w[74 + ib];
                    var scv = Vector256.Create(Vector128.Create((short)(2 * (sc & 15) + 1)), Vector128.Create((short)(2 * (sc >> 4) + 1)));
                    iv += MagSignDot(g, sv, x, scv);
                }
                acc += Half(w) * xd[s] * Vector256.Sum(iv);
            }
        return 0.125f * acc;
    }

    internal static float IQ2_SScalar(byte* w, byte* xq, int cols)
    {
        int nsb = cols / 256;
        sbyte* x = (sbyte*)xq;
        float* xd = (float*)(xq + cols);
        var grid = Grid1024.T;
        float acc = 0;
        for (int s = 0; s < nsb; s++, w += 82)
        {
            int isum = 0;
            for (int ib = 0; ib < 8; ib++, x += 32)
            {
                int sc = w[74 + ib], qh = w[66 + ib];
                for (int half = 0; half < 2; half++)
                {
                    int sumi = 0;
                    for (int l = 2 * half; l < 2 * half + 2; l++)
                        sumi += Dot8(grid[w[2 + 4 * ib + l] | (qh << (8 - 2 * l) & 0x300)], w[34 + 4 * ib + l], x + 8 * l);
                    isum += (2 * (sc >> 4 * half & 15) + 1) * sumi;
                }
            }
            acc += Half(w) * xd[s] * isum;
        }
        return 0.125f * acc;
    }
}
