namespace TensorCodec.Formats;

/// <summary>
/// The IQ3 family's D4-lattice grids and the quantizer's neighbour maps. The grids are ggml's
/// <c>iq3xxs_grid</c> (256 points) and <c>iq3s_grid</c> (512 points) from ggml-common.h (llama.cpp
/// 34af94cd), copied from the golden tables <c>tables/iq3xxs_grid.uint32</c> and
/// <c>tables/iq3s_grid.uint32</c>: each uint32 holds four byte magnitudes, element 0 in the low byte.
/// The <see cref="Lattice"/> rebuilds what ggml's <c>iq3xs_init_impl</c> builds at start-up.
/// </summary>
internal static class IQ3Grids
{
    /// <summary>IQ3_XXS dequantization grid: magnitudes in {4,12,…,52,62}.</summary>
    public static ReadOnlySpan<uint> Iq3xxsGrid =>
    [
        0x04040404, 0x04040414, 0x04040424, 0x04040c0c, 0x04040c1c, 0x04040c3e, 0x04041404, 0x04041414,
        0x04041c0c, 0x04042414, 0x04043e1c, 0x04043e2c, 0x040c040c, 0x040c041c, 0x040c0c04, 0x040c0c14,
        0x040c140c, 0x040c142c, 0x040c1c04, 0x040c1c14, 0x040c240c, 0x040c2c24, 0x040c3e04, 0x04140404,
        0x04140414, 0x04140424, 0x04140c0c, 0x04141404, 0x04141414, 0x04141c0c, 0x04141c1c, 0x04141c3e,
        0x04142c0c, 0x04142c3e, 0x04143e2c, 0x041c040c, 0x041c043e, 0x041c0c04, 0x041c0c14, 0x041c142c,
        0x041c3e04, 0x04240c1c, 0x04241c3e, 0x04242424, 0x04242c3e, 0x04243e1c, 0x04243e2c, 0x042c040c,
        0x042c043e, 0x042c1c14, 0x042c2c14, 0x04341c2c, 0x04343424, 0x043e0c04, 0x043e0c24, 0x043e0c34,
        0x043e241c, 0x043e340c, 0x0c04040c, 0x0c04041c, 0x0c040c04, 0x0c040c14, 0x0c04140c, 0x0c04141c,
        0x0c041c04, 0x0c041c14, 0x0c041c24, 0x0c04243e, 0x0c042c04, 0x0c0c0404, 0x0c0c0414, 0x0c0c0c0c,
        0x0c0c1404, 0x0c0c1414, 0x0c14040c, 0x0c14041c, 0x0c140c04, 0x0c140c14, 0x0c14140c, 0x0c141c04,
        0x0c143e14, 0x0c1c0404, 0x0c1c0414, 0x0c1c1404, 0x0c1c1c0c, 0x0c1c2434, 0x0c1c3434, 0x0c24040c,
        0x0c24042c, 0x0c242c04, 0x0c2c1404, 0x0c2c1424, 0x0c2c2434, 0x0c2c3e0c, 0x0c34042c, 0x0c3e1414,
        0x0c3e2404, 0x14040404, 0x14040414, 0x14040c0c, 0x14040c1c, 0x14041404, 0x14041414, 0x14041434,
        0x14041c0c, 0x14042414, 0x140c040c, 0x140c041c, 0x140c042c, 0x140c0c04, 0x140c0c14, 0x140c140c,
        0x140c1c04, 0x140c341c, 0x140c343e, 0x140c3e04, 0x14140404, 0x14140414, 0x14140c0c, 0x14140c3e,
        0x14141404, 0x14141414, 0x14141c3e, 0x14142404, 0x14142c2c, 0x141c040c, 0x141c0c04, 0x141c0c24,
        0x141c3e04, 0x141c3e24, 0x14241c2c, 0x14242c1c, 0x142c041c, 0x142c143e, 0x142c240c, 0x142c3e24,
        0x143e040c, 0x143e041c, 0x143e0c34, 0x143e242c, 0x1c04040c, 0x1c040c04, 0x1c040c14, 0x1c04140c,
        0x1c04141c, 0x1c042c04, 0x1c04342c, 0x1c043e14, 0x1c0c0404, 0x1c0c0414, 0x1c0c1404, 0x1c0c1c0c,
        0x1c0c2424, 0x1c0c2434, 0x1c14040c, 0x1c14041c, 0x1c140c04, 0x1c14142c, 0x1c142c14, 0x1c143e14,
        0x1c1c0c0c, 0x1c1c1c1c, 0x1c241c04, 0x1c24243e, 0x1c243e14, 0x1c2c0404, 0x1c2c0434, 0x1c2c1414,
        0x1c2c2c2c, 0x1c340c24, 0x1c341c34, 0x1c34341c, 0x1c3e1c1c, 0x1c3e3404, 0x24040424, 0x24040c3e,
        0x24041c2c, 0x24041c3e, 0x24042c1c, 0x24042c3e, 0x240c3e24, 0x24141404, 0x24141c3e, 0x24142404,
        0x24143404, 0x24143434, 0x241c043e, 0x241c242c, 0x24240424, 0x24242c0c, 0x24243424, 0x242c142c,
        0x242c241c, 0x242c3e04, 0x243e042c, 0x243e0c04, 0x243e0c14, 0x243e1c04, 0x2c040c14, 0x2c04240c,
        0x2c043e04, 0x2c0c0404, 0x2c0c0434, 0x2c0c1434, 0x2c0c2c2c, 0x2c140c24, 0x2c141c14, 0x2c143e14,
        0x2c1c0414, 0x2c1c2c1c, 0x2c240c04, 0x2c24141c, 0x2c24143e, 0x2c243e14, 0x2c2c0414, 0x2c2c1c0c,
        0x2c342c04, 0x2c3e1424, 0x2c3e2414, 0x34041424, 0x34042424, 0x34042434, 0x34043424, 0x340c140c,
        0x340c340c, 0x34140c3e, 0x34143424, 0x341c1c04, 0x341c1c34, 0x34242424, 0x342c042c, 0x342c2c14,
        0x34341c1c, 0x343e041c, 0x343e140c, 0x3e04041c, 0x3e04042c, 0x3e04043e, 0x3e040c04, 0x3e041c14,
        0x3e042c14, 0x3e0c1434, 0x3e0c2404, 0x3e140c14, 0x3e14242c, 0x3e142c14, 0x3e1c0404, 0x3e1c0c2c,
        0x3e1c1c1c, 0x3e1c3404, 0x3e24140c, 0x3e24240c, 0x3e2c0404, 0x3e2c0414, 0x3e2c1424, 0x3e341c04,
    ];

    /// <summary>IQ3_S dequantization grid: magnitudes 2l+1, l in 0..7.</summary>
    public static ReadOnlySpan<uint> Iq3sGrid =>
    [
        0x01010101, 0x01010103, 0x01010105, 0x0101010b, 0x0101010f, 0x01010301, 0x01010303, 0x01010305,
        0x01010309, 0x0101030d, 0x01010501, 0x01010503, 0x0101050b, 0x01010707, 0x01010901, 0x01010905,
        0x0101090b, 0x0101090f, 0x01010b03, 0x01010b07, 0x01010d01, 0x01010d05, 0x01010f03, 0x01010f09,
        0x01010f0f, 0x01030101, 0x01030103, 0x01030105, 0x01030109, 0x01030301, 0x01030303, 0x0103030b,
        0x01030501, 0x01030507, 0x0103050f, 0x01030703, 0x0103070b, 0x01030909, 0x01030d03, 0x01030d0b,
        0x01030f05, 0x01050101, 0x01050103, 0x0105010b, 0x0105010f, 0x01050301, 0x01050307, 0x0105030d,
        0x01050503, 0x0105050b, 0x01050701, 0x01050709, 0x01050905, 0x0105090b, 0x0105090f, 0x01050b03,
        0x01050b07, 0x01050f01, 0x01050f07, 0x01070107, 0x01070303, 0x0107030b, 0x01070501, 0x01070505,
        0x01070703, 0x01070707, 0x0107070d, 0x01070909, 0x01070b01, 0x01070b05, 0x01070d0f, 0x01070f03,
        0x01070f0b, 0x01090101, 0x01090307, 0x0109030f, 0x01090503, 0x01090509, 0x01090705, 0x01090901,
        0x01090907, 0x01090b03, 0x01090f01, 0x010b0105, 0x010b0109, 0x010b0501, 0x010b0505, 0x010b050d,
        0x010b0707, 0x010b0903, 0x010b090b, 0x010b090f, 0x010b0d0d, 0x010b0f07, 0x010d010d, 0x010d0303,
        0x010d0307, 0x010d0703, 0x010d0b05, 0x010d0f03, 0x010f0101, 0x010f0105, 0x010f0109, 0x010f0501,
        0x010f0505, 0x010f050d, 0x010f0707, 0x010f0b01, 0x010f0b09, 0x03010101, 0x03010103, 0x03010105,
        0x03010109, 0x03010301, 0x03010303, 0x03010307, 0x0301030b, 0x0301030f, 0x03010501, 0x03010505,
        0x03010703, 0x03010709, 0x0301070d, 0x03010b09, 0x03010b0d, 0x03010d03, 0x03010f05, 0x03030101,
        0x03030103, 0x03030107, 0x0303010d, 0x03030301, 0x03030309, 0x03030503, 0x03030701, 0x03030707,
        0x03030903, 0x03030b01, 0x03030b05, 0x03030f01, 0x03030f0d, 0x03050101, 0x03050305, 0x0305030b,
        0x0305030f, 0x03050501, 0x03050509, 0x03050705, 0x03050901, 0x03050907, 0x03050b0b, 0x03050d01,
        0x03050f05, 0x03070103, 0x03070109, 0x0307010f, 0x03070301, 0x03070307, 0x03070503, 0x0307050f,
        0x03070701, 0x03070709, 0x03070903, 0x03070d05, 0x03070f01, 0x03090107, 0x0309010b, 0x03090305,
        0x03090309, 0x03090703, 0x03090707, 0x03090905, 0x0309090d, 0x03090b01, 0x03090b09, 0x030b0103,
        0x030b0301, 0x030b0307, 0x030b0503, 0x030b0701, 0x030b0705, 0x030b0b03, 0x030d0501, 0x030d0509,
        0x030d050f, 0x030d0909, 0x030d090d, 0x030f0103, 0x030f0107, 0x030f0301, 0x030f0305, 0x030f0503,
        0x030f070b, 0x030f0903, 0x030f0d05, 0x030f0f01, 0x05010101, 0x05010103, 0x05010107, 0x0501010b,
        0x0501010f, 0x05010301, 0x05010305, 0x05010309, 0x0501030d, 0x05010503, 0x05010507, 0x0501050f,
        0x05010701, 0x05010705, 0x05010903, 0x05010907, 0x0501090b, 0x05010b01, 0x05010b05, 0x05010d0f,
        0x05010f01, 0x05010f07, 0x05010f0b, 0x05030101, 0x05030105, 0x05030301, 0x05030307, 0x0503030f,
        0x05030505, 0x0503050b, 0x05030703, 0x05030709, 0x05030905, 0x05030b03, 0x05050103, 0x05050109,
        0x0505010f, 0x05050503, 0x05050507, 0x05050701, 0x0505070f, 0x05050903, 0x05050b07, 0x05050b0f,
        0x05050f03, 0x05050f09, 0x05070101, 0x05070105, 0x0507010b, 0x05070303, 0x05070505, 0x05070509,
        0x05070703, 0x05070707, 0x05070905, 0x05070b01, 0x05070d0d, 0x05090103, 0x0509010f, 0x05090501,
        0x05090507, 0x05090705, 0x0509070b, 0x05090903, 0x05090f05, 0x05090f0b, 0x050b0109, 0x050b0303,
        0x050b0505, 0x050b070f, 0x050b0901, 0x050b0b07, 0x050b0f01, 0x050d0101, 0x050d0105, 0x050d010f,
        0x050d0503, 0x050d0b0b, 0x050d0d03, 0x050f010b, 0x050f0303, 0x050f050d, 0x050f0701, 0x050f0907,
        0x050f0b01, 0x07010105, 0x07010303, 0x07010307, 0x0701030b, 0x0701030f, 0x07010505, 0x07010703,
        0x07010707, 0x0701070b, 0x07010905, 0x07010909, 0x0701090f, 0x07010b03, 0x07010d07, 0x07010f03,
        0x07030103, 0x07030107, 0x0703010b, 0x07030309, 0x07030503, 0x07030507, 0x07030901, 0x07030d01,
        0x07030f05, 0x07030f0d, 0x07050101, 0x07050305, 0x07050501, 0x07050705, 0x07050709, 0x07050b01,
        0x07070103, 0x07070301, 0x07070309, 0x07070503, 0x07070507, 0x0707050f, 0x07070701, 0x07070903,
        0x07070907, 0x0707090f, 0x07070b0b, 0x07070f07, 0x07090107, 0x07090303, 0x0709030d, 0x07090505,
        0x07090703, 0x07090b05, 0x07090d01, 0x07090d09, 0x070b0103, 0x070b0301, 0x070b0305, 0x070b050b,
        0x070b0705, 0x070b0909, 0x070b0b0d, 0x070b0f07, 0x070d030d, 0x070d0903, 0x070f0103, 0x070f0107,
        0x070f0501, 0x070f0505, 0x070f070b, 0x09010101, 0x09010109, 0x09010305, 0x09010501, 0x09010509,
        0x0901050f, 0x09010705, 0x09010903, 0x09010b01, 0x09010f01, 0x09030105, 0x0903010f, 0x09030303,
        0x09030307, 0x09030505, 0x09030701, 0x0903070b, 0x09030907, 0x09030b03, 0x09030b0b, 0x09050103,
        0x09050107, 0x09050301, 0x0905030b, 0x09050503, 0x09050707, 0x09050901, 0x09050b0f, 0x09050d05,
        0x09050f01, 0x09070109, 0x09070303, 0x09070307, 0x09070501, 0x09070505, 0x09070703, 0x0907070b,
        0x09090101, 0x09090105, 0x09090509, 0x0909070f, 0x09090901, 0x09090f03, 0x090b010b, 0x090b010f,
        0x090b0503, 0x090b0d05, 0x090d0307, 0x090d0709, 0x090d0d01, 0x090f0301, 0x090f030b, 0x090f0701,
        0x090f0907, 0x090f0b03, 0x0b010105, 0x0b010301, 0x0b010309, 0x0b010505, 0x0b010901, 0x0b010909,
        0x0b01090f, 0x0b010b05, 0x0b010d0d, 0x0b010f09, 0x0b030103, 0x0b030107, 0x0b03010b, 0x0b030305,
        0x0b030503, 0x0b030705, 0x0b030f05, 0x0b050101, 0x0b050303, 0x0b050507, 0x0b050701, 0x0b05070d,
        0x0b050b07, 0x0b070105, 0x0b07010f, 0x0b070301, 0x0b07050f, 0x0b070909, 0x0b070b03, 0x0b070d0b,
        0x0b070f07, 0x0b090103, 0x0b090109, 0x0b090501, 0x0b090705, 0x0b09090d, 0x0b0b0305, 0x0b0b050d,
        0x0b0b0b03, 0x0b0b0b07, 0x0b0d0905, 0x0b0f0105, 0x0b0f0109, 0x0b0f0505, 0x0d010303, 0x0d010307,
        0x0d01030b, 0x0d010703, 0x0d010707, 0x0d010d01, 0x0d030101, 0x0d030501, 0x0d03050f, 0x0d030d09,
        0x0d050305, 0x0d050709, 0x0d050905, 0x0d050b0b, 0x0d050d05, 0x0d050f01, 0x0d070101, 0x0d070309,
        0x0d070503, 0x0d070901, 0x0d09050b, 0x0d090907, 0x0d090d05, 0x0d0b0101, 0x0d0b0107, 0x0d0b0709,
        0x0d0b0d01, 0x0d0d010b, 0x0d0d0901, 0x0d0f0303, 0x0d0f0307, 0x0f010101, 0x0f010109, 0x0f01010f,
        0x0f010501, 0x0f010505, 0x0f01070d, 0x0f010901, 0x0f010b09, 0x0f010d05, 0x0f030105, 0x0f030303,
        0x0f030509, 0x0f030907, 0x0f03090b, 0x0f050103, 0x0f050109, 0x0f050301, 0x0f05030d, 0x0f050503,
        0x0f050701, 0x0f050b03, 0x0f070105, 0x0f070705, 0x0f07070b, 0x0f070b07, 0x0f090103, 0x0f09010b,
        0x0f090307, 0x0f090501, 0x0f090b01, 0x0f0b0505, 0x0f0b0905, 0x0f0d0105, 0x0f0d0703, 0x0f0f0101,
    ];

    /// <summary>
    /// ggml's <c>ksigns_iq2xs</c>: seven sign bits and, in bit 7, their parity, so that every
    /// group of eight has an even number of minus signs.
    /// </summary>
    public static byte KSigns(int i) => (byte)(i | (System.Numerics.BitOperations.PopCount((uint)i) & 1) << 7);

    /// <summary>
    /// The quantizers' weights for 32 values: ggml's qw·√(σ² + x²) with an importance matrix, else x²;
    /// and their square roots, which weigh the neighbour search.
    /// </summary>
    public static void Weights(ReadOnlySpan<float> xb, ReadOnlySpan<float> qw, float sigma2, Span<float> weight, Span<float> waux)
    {
        if (!qw.IsEmpty) QuantMath.ImportanceWeights(xb, qw, sigma2, weight);
        else for (int i = 0; i < 32; i++) weight[i] = xb[i] * xb[i];
        for (int i = 0; i < 32; i++) waux[i] = MathF.Sqrt(weight[i]);
    }

    /// <summary>Eight decoded values: db·magnitude of grid points g1 (values 0–3) and g2 (4–7), negated where bit j of <paramref name="signs"/> is set.</summary>
    public static void Eight(uint g1, uint g2, int signs, float db, Span<float> y)
    {
        for (int j = 0; j < 4; j++)
        {
            float v1 = db * (byte)(g1 >> (8 * j)), v2 = db * (byte)(g2 >> (8 * j));
            y[j] = (signs & (1 << j)) != 0 ? -v1 : v1;
            y[j + 4] = (signs & (1 << (j + 4))) != 0 ? -v2 : v2;
        }
    }

    private static readonly Lazy<Lattice> _l256 = new(() => new Lattice(256));
    private static readonly Lazy<Lattice> _l512 = new(() => new Lattice(512));

    /// <summary>The quantizer's lattice for IQ3_XXS (256) or IQ3_S (512).</summary>
    public static Lattice For(int gridSize) => gridSize == 256 ? _l256.Value : gridSize == 512 ? _l512.Value
        : throw new ArgumentOutOfRangeException(nameof(gridSize), gridSize, "IQ3 grids have 256 or 512 points");

    /// <summary>
    /// ggml's <c>iq3xs_init_impl</c>: the grid as odd integers 2l+1 (four signed bytes per point),
    /// <see cref="Map"/> from the 12-bit code Σ l_i·8^i to the grid index, and for every code off the
    /// grid (map value −(offset+1)) a neighbour list at <see cref="Neighbours"/>[offset]: a count, then
    /// the grid points of the 2 (256-grid) or 3 (512-grid) smallest squared distances, sorted by
    /// (distance, index) exactly as ggml's qsort comparator orders them.
    /// </summary>
    internal sealed class Lattice
    {
        public readonly int GridSize;
        /// <summary>Point k's four values 2l+1 (1..15), element i at [4k+i].</summary>
        public readonly sbyte[] Grid;
        public readonly int[] Map = new int[4096];
        public readonly ushort[] Neighbours;

        public Lattice(int gridSize)
        {
            GridSize = gridSize;
            var source = gridSize == 256 ? Iq3xxsGrid : Iq3sGrid;
            Grid = new sbyte[4 * gridSize];
            Array.Fill(Map, -1);
            for (int k = 0; k < gridSize; k++)
            {
                int code = 0;
                for (int i = 0; i < 4; i++)
                {
                    int v = (int)(source[k] >> (8 * i)) & 0xFF;
                    // ggml generates both from one index list; IQ3_XXS's table stores 8l+4 (62 for l=7).
                    int l = gridSize == 256 ? v >> 3 : (v - 1) / 2;
                    Grid[4 * k + i] = (sbyte)(2 * l + 1);
                    code |= l << (3 * i);
                }
                Map[code] = k;
            }
            int nwant = gridSize == 256 ? 2 : 3;
            var list = new List<ushort>();
            var dist = new (int D2, int J)[gridSize];
            for (int code = 0; code < 4096; code++)
            {
                if (Map[code] >= 0) continue;
                for (int j = 0; j < gridSize; j++)
                {
                    int d2 = 0;
                    for (int i = 0; i < 4; i++)
                    {
                        int diff = Grid[4 * j + i] - (2 * ((code >> (3 * i)) & 7) + 1);
                        d2 += diff * diff;
                    }
                    dist[j] = (d2, j);
                }
                Array.Sort(dist);
                Map[code] = -(list.Count + 1);
                int start = list.Count;
                list.Add(0);
                int cur = dist[0].D2, nhave = 1, n = 0;
                for (int j = 0; j < gridSize; j++)
                {
                    if (dist[j].D2 > cur)
                    {
                        if (nhave == nwant) break;
                        cur = dist[j].D2;
                        nhave++;
                    }
                    list.Add((ushort)dist[j].J);
                    n++;
                }
                list[start] = (ushort)n;
            }
            Neighbours = [.. list];
        }

        /// <summary>
        /// The scale search ggml's IQ3 quantizers run per 32 magnitudes <paramref name="xval"/> (max
        /// <paramref name="max"/> &gt; 0): inverse scales (15 + 0.2·t)/max for t in ±<paramref name="ntry"/>,
        /// each rounding four values at a time to the grid (or its best neighbour, weighted by
        /// <paramref name="waux"/>) and keeping the least-squares best; then, if any group was off the
        /// grid, a re-fit at that scale — of the off-grid groups (IQ3_XXS) or of every group
        /// (<paramref name="refitAll"/>, IQ3_S) — and a final least-squares scale. Writes the levels
        /// to <paramref name="L"/> and returns the scale.
        /// </summary>
        public float FitBlock(ReadOnlySpan<float> xval, ReadOnlySpan<float> weight, ReadOnlySpan<float> waux, float max,
            int ntry, bool refitAll, Span<sbyte> L)
        {
            const int kMaxQ = 8;
            Span<sbyte> Laux = stackalloc sbyte[32];
            Span<bool> onGrid = stackalloc bool[8];
            Span<bool> onGridAux = stackalloc bool[8];
            float best = 0;
            float scale = max / (2 * kMaxQ - 1);
            // ggml starts IQ3_XXS's flags "on the grid" and IQ3_S's "off" (it matters only when no trial is taken).
            onGrid.Fill(!refitAll);
            for (int itry = -ntry; itry <= ntry; itry++)
            {
                float id = (2 * kMaxQ - 1 + itry * 0.2f) / max;
                float thisScale = 1 / id;
                for (int k = 0; k < 8; k++)
                {
                    var la = Laux.Slice(4 * k, 4);
                    for (int i = 0; i < 4; i++)
                        la[i] = (sbyte)Math.Clamp(QuantMath.NearestInt(0.5f * (id * xval[4 * k + i] - 1)), 0, kMaxQ - 1);
                    int code = Code(la);
                    onGridAux[k] = Map[code] >= 0;
                    if (!onGridAux[k]) BestNeighbour(code, xval.Slice(4 * k, 4), waux.Slice(4 * k, 4), thisScale, la);
                }
                float sumqx = 0, sumq2 = 0;
                for (int i = 0; i < 32; i++)
                {
                    float w = weight[i];
                    float q = 2 * Laux[i] + 1;
                    sumqx += w * xval[i] * q;
                    sumq2 += w * q * q;
                }
                if (sumq2 > 0 && sumqx * sumqx > best * sumq2)
                {
                    scale = sumqx / sumq2;
                    best = scale * sumqx;
                    Laux.CopyTo(L);
                    onGridAux.CopyTo(onGrid);
                }
            }
            int notOnGrid = 0;
            for (int k = 0; k < 8; k++) if (!onGrid[k]) notOnGrid++;
            if (notOnGrid > 0 && scale > 0)
            {
                float id = 1 / scale;
                for (int k = 0; k < 8; k++)
                {
                    if (!refitAll && onGrid[k]) continue;
                    int code = 0;
                    for (int i = 0; i < 4; i++)
                        code |= Math.Clamp(QuantMath.NearestInt(0.5f * (id * xval[4 * k + i] - 1)), 0, kMaxQ - 1) << (3 * i);
                    int g = Map[code];
                    if (g < 0) g = BestNeighbour(code, xval.Slice(4 * k, 4), waux.Slice(4 * k, 4), scale, L.Slice(4 * k, 4));
                    for (int i = 0; i < 4; i++) L[4 * k + i] = (sbyte)((Grid[4 * g + i] - 1) / 2);
                }
                float sumqx = 0, sumq2 = 0;
                for (int i = 0; i < 32; i++)
                {
                    float w = weight[i];
                    float q = 2 * L[i] + 1;
                    sumqx += w * xval[i] * q;
                    sumq2 += w * q * q;
                }
                if (sumq2 > 0) scale = sumqx / sumq2;
            }
            return scale;
        }

        /// <summary>
        /// ggml's <c>iq3_find_best_neighbour</c>: among the neighbours of an off-grid code, the point with
        /// the least weighted squared error at <paramref name="scale"/>; writes its levels l to
        /// <paramref name="L"/> and returns its index.
        /// </summary>
        public int BestNeighbour(int code, ReadOnlySpan<float> xval, ReadOnlySpan<float> weight, float scale, Span<sbyte> L)
        {
            int at = -Map[code] - 1;
            var list = Neighbours.AsSpan(at + 1, Neighbours[at]);
            var grid = Grid.AsSpan();
            // Hoisted into locals (the quantizer's hot loop); same operations in the same order as ggml.
            float x0 = xval[0], x1 = xval[1], x2 = xval[2], x3 = xval[3];
            float w0 = weight[0], w1 = weight[1], w2 = weight[2], w3 = weight[3];
            float best = float.MaxValue;
            int index = -1;
            foreach (int p in list)
            {
                var g = grid.Slice(4 * p, 4);
                float e0 = scale * g[0] - x0, e1 = scale * g[1] - x1, e2 = scale * g[2] - x2, e3 = scale * g[3] - x3;
                float d2 = 0;
                d2 += w0 * e0 * e0;
                d2 += w1 * e1 * e1;
                d2 += w2 * e2 * e2;
                d2 += w3 * e3 * e3;
                if (d2 < best) { best = d2; index = p; }
            }
            if (index < 0) throw new InvalidOperationException("iq3: no grid neighbour has a finite error (non-finite input?)");
            for (int i = 0; i < 4; i++) L[i] = (sbyte)((Grid[4 * index + i] - 1) / 2);
            return index;
        }

        /// <summary>The 12-bit code of four levels.</summary>
        public static int Code(ReadOnlySpan<sbyte> L) => (byte)L[0] | (byte)L[1] << 3 | (byte)L[2] << 6 | (byte)L[3] << 9; // levels are 0..7
    }
}
