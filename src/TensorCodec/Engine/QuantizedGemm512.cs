using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace TensorCodec.Engine;

/// <summary>
/// The AVX-512BW form of <see cref="QuantizedGemm.Q3_K"/> (same arguments, same layouts): each
/// vpmaddubsw/vpmaddwd covers 64 codes, two of the AVX2 kernel's 32-value blocks, so a token costs one
/// load and two multiply-adds per 64 weights instead of two and four. The result is bit-for-bit the
/// AVX2 kernel's: the 16 int32 lanes fold (lower + upper half, exact integer addition) into the AVX2
/// kernel's 8 before the one float step per super-block. Only q3_K is here because only it measured
/// faster on the Zen 4 this was written on (512-bit ops run as two 256-bit halves there): the same
/// construction for q8_0, q4_0, q4_K, q5_K, q6_K and q2_K measured 0.79–1.00× of their AVX2 kernels
/// (BENCHMARKS.md §3) and was dropped. .NET 10 exposes no AVX-512 VNNI (<c>vpdpbusd</c> on zmm comes with
/// <c>AvxVnni.V512</c> in .NET 11; <c>AvxVnni</c> is the VEX form, which Zen 4 lacks), so the products
/// stay vpmaddubsw + vpmaddwd.
/// </summary>
internal static unsafe class QuantizedGemm512
{
    /// <summary>Whether the kernel may run: AVX-512BW here and allowed by <see cref="Numerics.Simd"/>.</summary>
    public static bool IsSupported => Avx512BW.IsSupported && Numerics.Simd.AllowAvx512;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static Vector512<int> Madd(Vector512<byte> u, Vector512<sbyte> x, Vector512<short> scale) =>
        Avx512BW.MultiplyAddAdjacent(Avx512BW.MultiplyAddAdjacent(u, x), scale);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static Vector256<int> Fold(Vector512<int> v) => v.GetLower() + v.GetUpper();

    /// <summary>vpermw indices: int16 lane l takes entry <paramref name="first"/> + l/8 (one scale per 16 codes).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static Vector512<short> Groups16(int first) => Vector512.Create(
        (short)first, (short)first, (short)first, (short)first, (short)first, (short)first, (short)first, (short)first,
        (short)(first + 1), (short)(first + 1), (short)(first + 1), (short)(first + 1), (short)(first + 1), (short)(first + 1), (short)(first + 1), (short)(first + 1),
        (short)(first + 2), (short)(first + 2), (short)(first + 2), (short)(first + 2), (short)(first + 2), (short)(first + 2), (short)(first + 2), (short)(first + 2),
        (short)(first + 3), (short)(first + 3), (short)(first + 3), (short)(first + 3), (short)(first + 3), (short)(first + 3), (short)(first + 3), (short)(first + 3));

    /// <summary>q3_K × q8_K: the AVX2 kernel's codes, two 32-value blocks per step.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void Q3_K(byte* w, byte* rs, int cols, byte* x0, byte* x1, byte* x2, byte* x3, float* result)
    {
        var groups0 = Groups16(0);
        var four = Vector512.Create((short)4);
        var m3 = Vector256.Create((byte)3);
        var b2v = Vector256.Create((byte)4);
        int nsb = cols / 256;
        float* dd = (float*)rs;
        short* rsc = (short*)(dd + 2 * nsb);
        float* d0 = (float*)(x0 + cols), d1 = (float*)(x1 + cols), d2 = (float*)(x2 + cols), d3 = (float*)(x3 + cols);
        short* b0 = (short*)(d0 + nsb), b1 = (short*)(d1 + nsb), b2 = (short*)(d2 + nsb), b3 = (short*)(d3 + nsb);
        Vector256<float> a0 = default, a1 = default, a2 = default, a3 = default;
        for (int s = 0; s < nsb; s++, w += 110)
        {
            float d = dd[2 * s];
            var scv = Vector256.Load(rsc + 16 * s);
            var scs = Vector512.Create(scv, Vector256<short>.Zero);
            var hm = Vector256.Load(w).AsUInt16();
            int o = s * 256;
            Vector512<int> i0 = default, i1 = default, i2 = default, i3 = default;
            var idx = groups0;
            for (int n = 0; n < 2; n++)
            {
                var q = Vector256.Load(w + 32 + 32 * n).AsUInt16();
                for (int j = 0; j < 4; j += 2, idx += four)
                {
                    var lo = (Vector256.ShiftRightLogical(q, 2 * j).AsByte() & m3) | (Vector256.ShiftLeft(hm, 2).AsByte() & b2v);
                    var hi = (Vector256.ShiftRightLogical(q, 2 * j + 2).AsByte() & m3) | (Vector256.ShiftLeft(hm, 1).AsByte() & b2v);
                    hm = Vector256.ShiftRightLogical(hm, 2);
                    var code = Vector512.Create(lo, hi);
                    var sc = Avx512BW.PermuteVar32x16(scs, idx);
                    int k = o + 128 * n + 32 * j;
                    i0 += Madd(code, Vector512.Load((sbyte*)x0 + k), sc);
                    i1 += Madd(code, Vector512.Load((sbyte*)x1 + k), sc);
                    i2 += Madd(code, Vector512.Load((sbyte*)x2 + k), sc);
                    i3 += Madd(code, Vector512.Load((sbyte*)x3 + k), sc);
                }
            }
            // The −4 offset as the AVX2 kernel applies it (4·Σ sc·bsum), after the exact fold.
            a0 = QuantizedGemm.ScaleAdd(Fold(i0) - Vector256.ShiftLeft(Avx2.MultiplyAddAdjacent(Vector256.Load(b0 + s * 16), scv), 2), d * d0[s], a0);
            a1 = QuantizedGemm.ScaleAdd(Fold(i1) - Vector256.ShiftLeft(Avx2.MultiplyAddAdjacent(Vector256.Load(b1 + s * 16), scv), 2), d * d1[s], a1);
            a2 = QuantizedGemm.ScaleAdd(Fold(i2) - Vector256.ShiftLeft(Avx2.MultiplyAddAdjacent(Vector256.Load(b2 + s * 16), scv), 2), d * d2[s], a2);
            a3 = QuantizedGemm.ScaleAdd(Fold(i3) - Vector256.ShiftLeft(Avx2.MultiplyAddAdjacent(Vector256.Load(b3 + s * 16), scv), 2), d * d3[s], a3);
        }
        QuantizedGemm.Store4(result, a0, a1, a2, a3);
    }
}
