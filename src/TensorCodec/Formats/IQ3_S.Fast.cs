using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using TensorCodec.Numerics;

namespace TensorCodec.Formats;

/// <summary>AVX2 dequantization for IQ3_S, with <see cref="IQ3_XXSFast.Eight"/>; bit-identical to the reference.</summary>
internal static class IQ3_SFast
{
    public static bool IsSupported => IQ3_XXSFast.IsSupported;

    public static void Dequantize(ReadOnlySpan<byte> src, Span<float> dst)
    {
        int nb = BlockSpans.ForDequantize(src, dst, 256, 110);
        var grid = IQ3Grids.Iq3sGrid;
        ref float yr = ref MemoryMarshal.GetReference(dst);
        for (int i = 0; i < nb; i++)
        {
            var b = src.Slice(i * 110, 110);
            float d = Fp16.Read(b, 0);
            for (int ib = 0; ib < 8; ib++)
            {
                int sc = b[106 + ib / 2] >> (4 * (ib % 2)) & 0xF;
                var db = Vector256.Create(d * (1 + 2 * sc));
                int qh = b[66 + ib];
                var qs = b.Slice(2 + 8 * ib, 8);
                for (int l = 0; l < 4; l++)
                {
                    uint g1 = grid[qs[2 * l] | (qh << (8 - 2 * l) & 256)];
                    uint g2 = grid[qs[2 * l + 1] | (qh << (7 - 2 * l) & 256)];
                    IQ3_XXSFast.Eight(g1, g2, b[74 + 4 * ib + l], db).StoreUnsafe(ref yr, (nuint)(256 * i + 32 * ib + 8 * l));
                }
            }
        }
    }
}
