using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;
using TensorCodec.Numerics;

namespace TensorCodec.Formats;

/// <summary>
/// AVX2 dequantization for IQ3_XXS (and, through <see cref="Eight"/>, IQ3_S): eight values per step
/// from two grid points, one multiply by the block scale and the signs applied by flipping the
/// sign bit — the same single rounding as the reference, so the bits are identical.
/// </summary>
internal static class IQ3_XXSFast
{
    public static bool IsSupported => Simd.AllowAvx2 && Avx2.IsSupported && BitConverter.IsLittleEndian;

    /// <summary>Bit j of a sign byte, as a lane mask for value j.</summary>
    private static Vector256<int> Bits => Vector256.Create(1, 2, 4, 8, 16, 32, 64, 128);

    /// <summary>Values db·grid (g1 for 0–3, g2 for 4–7), negated where bit j of <paramref name="signs"/> is set.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<float> Eight(uint g1, uint g2, int signs, Vector256<float> db)
    {
        var bytes = Vector128.CreateScalar(g1 | (ulong)g2 << 32).AsByte();
        var v = Avx.ConvertToVector256Single(Avx2.ConvertToVector256Int32(bytes)) * db;
        var neg = ~Vector256.Equals(Vector256.Create(signs) & Bits, Vector256<int>.Zero) & Vector256.Create(int.MinValue);
        return (v.AsInt32() ^ neg).AsSingle();
    }

    public static void Dequantize(ReadOnlySpan<byte> src, Span<float> dst)
    {
        int nb = BlockSpans.ForDequantize(src, dst, 256, 98);
        var grid = IQ3Grids.Iq3xxsGrid;
        ref float yr = ref MemoryMarshal.GetReference(dst);
        for (int i = 0; i < nb; i++)
        {
            var b = src.Slice(i * 98, 98);
            float d = Fp16.Read(b, 0);
            for (int ib = 0; ib < 8; ib++)
            {
                uint aux = System.Buffers.Binary.BinaryPrimitives.ReadUInt32LittleEndian(b.Slice(66 + 4 * ib, 4));
                var db = Vector256.Create(d * (0.5f + (aux >> 28)) * 0.5f);
                var qs = b.Slice(2 + 8 * ib, 8);
                for (int l = 0; l < 4; l++)
                {
                    int signs = IQ3Grids.KSigns((int)(aux >> (7 * l)) & 127);
                    Eight(grid[qs[2 * l]], grid[qs[2 * l + 1]], signs, db)
                        .StoreUnsafe(ref yr, (nuint)(256 * i + 32 * ib + 8 * l));
                }
            }
        }
    }
}
