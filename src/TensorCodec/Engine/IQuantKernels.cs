using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;
using TensorCodec.Formats;
using TensorCodec.Numerics;

namespace TensorCodec.Engine;

/// <summary>
/// Fused dequantize-dot kernels for ggml's grid i-quants (iq2_xxs, iq2_xs, iq2_s, iq3_xxs, iq3_s,
/// iq1_s, iq1_m), the non-linear iq4_nl/iq4_xs and the new q1_0/q2_0: one weight row in its packed
/// blocks times one activation row in ggml's <c>vec_dot_type</c> layout (<see cref="GgmlQ8"/>: q8_K
/// for the 256-blocks, q8_0 for iq4_nl, q1_0, q2_0), as ggml's CPU backend multiplies them.
/// <para>
/// Every kernel has an AVX2 form and a scalar form computing the same integers: within one scale
/// block of the activation (256 values for q8_K, 32 for q8_0) the sum of weight code × sub-block
/// scale × activation code is exact int32 arithmetic; the block then meets floating point once,
/// as <c>d_w·d_x·isum</c>, summed over the blocks in order, and the row is multiplied by the
/// format's constant factor (a power of two). The AVX2 form reduces its int32 lanes per block
/// before that step, so both forms return the same float bit for bit, at every instruction-set
/// level (the tests hold them to that). Grid points come from the formats' own tables
/// (<see cref="IQ2Grids"/>, <see cref="IQ3Grids"/>, <see cref="IQ4"/>), which are ggml's
/// (ggml-common.h), gathered (vpgatherdd/vpgatherdq) or inserted; signs are applied with <c>vpsignb</c>
/// from eight ±1 bytes per sign mask, as in ggml's AVX2 <c>ggml_vec_dot_iq2_xxs_q8_K</c> and relatives.
/// Design, bounds and measurements: docs/IQUANT-KERNELS.md.
/// </para>
/// </summary>
internal static unsafe partial class IQuantKernels
{
    /// <summary>Whether the AVX2 forms run (else the scalar forms, which give the same results).</summary>
    public static bool UseAvx2 => Simd.AllowAvx2 && Avx2.IsSupported;

    /// <summary>Sign masks as eight bytes each: byte j is −1 where bit j of the index is set, else +1 (for vpsignb).</summary>
    static class SignBytes
    {
        /// <summary>All 256 eight-bit masks.</summary>
        public static readonly ulong[] Full = BuildFull();

        /// <summary>ggml's seven-bit masks with the parity bit restored (<see cref="IQ2Grids.KSigns"/>): ggml's keven_signs_q2xs.</summary>
        public static readonly ulong[] Even7 = BuildEven7();

        static ulong[] BuildFull()
        {
            var t = new ulong[256];
            for (int i = 0; i < 256; i++)
                for (int j = 0; j < 8; j++)
                    t[i] |= (ulong)((i >> j & 1) != 0 ? 0xFFu : 0x01u) << 8 * j;
            return t;
        }

        static ulong[] BuildEven7()
        {
            var t = new ulong[128];
            for (int i = 0; i < 128; i++) t[i] = Full[IQ2Grids.KSigns[i]];
            return t;
        }
    }

    static Vector256<short> Ones16 => Vector256.Create((short)1);

    /// <summary>The fp16 at <paramref name="p"/>.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static float Half(byte* p) => Fp16Bits.ToFloat(Unsafe.ReadUnaligned<ushort>(p));

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static uint U32(byte* p) => Unsafe.ReadUnaligned<uint>(p);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static int U16(byte* p) => Unsafe.ReadUnaligned<ushort>(p);

    /// <summary>
    /// Σ over 32 values of magnitude·sign·x, in int16 pairs (|pair| ≤ 2·63·127), then times the
    /// int16 scales as int32 lanes: <paramref name="mag"/> unsigned, <paramref name="signs"/> ±1.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static Vector256<int> MagSignDot(Vector256<byte> mag, Vector256<sbyte> signs, sbyte* x, Vector256<short> scale) =>
        Avx2.MultiplyAddAdjacent(Avx2.MultiplyAddAdjacent(mag, Avx2.Sign(Vector256.Load(x), signs)), scale);

    /// <summary>Σ over 32 values of w·x for signed int8 w (|w| ≤ 127), then times the int16 scales as int32 lanes.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static Vector256<int> SignedDot(Vector256<sbyte> w, sbyte* x, Vector256<short> scale) =>
        Avx2.MultiplyAddAdjacent(Avx2.MultiplyAddAdjacent(Avx2.Abs(w), Avx2.Sign(Vector256.Load(x), w)), scale);

    /// <summary>Scalar: Σ of eight magnitude bytes of <paramref name="g"/> times x, negated where bit j of <paramref name="signs"/> is set.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static int Dot8(ulong g, int signs, sbyte* x)
    {
        int s = 0;
        for (int j = 0; j < 8; j++)
        {
            int v = (byte)(g >> 8 * j) * x[j];
            s += (signs >> j & 1) != 0 ? -v : v;
        }
        return s;
    }

    /// <summary>Scalar: Σ of eight signed bytes of <paramref name="g"/> (plus <paramref name="add"/> each) times x.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static int Dot8Signed(ulong g, int add, sbyte* x)
    {
        int s = 0;
        for (int j = 0; j < 8; j++) s += ((sbyte)(g >> 8 * j) + add) * x[j];
        return s;
    }
}
