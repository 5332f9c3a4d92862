namespace TensorCodec.Formats;

/// <summary>
/// One lattice of the iq2/iq1 families: ggml's dequantization table, the quantizer's view of the same
/// points (levels 2l+1 ∈ {1,3,5}), the map from a packed 8×2-bit code to its grid index, and for every
/// code off the grid its neighbour list — what ggml's <c>iq2xs_init_impl</c> builds at start-up.
/// </summary>
internal sealed class IQGrid
{
    /// <summary>ggml's <c>iq2xxs_grid</c>/<c>iq2xs_grid</c>/<c>iq2s_grid</c>/<c>iq1s_grid</c>: eight bytes per point.</summary>
    public readonly ulong[] Table;
    /// <summary>Eight int8 levels 2l+1 per point, as iq2xs_init_impl lays them out.</summary>
    public readonly sbyte[] Pos;
    /// <summary>Grid index of each packed code below <see cref="MapSize"/>, or −1 when the code is off the grid.</summary>
    public readonly int[] Map;
    /// <summary>For a code off the grid (all levels ≤ 2), its neighbours in ggml's order; null on the grid.</summary>
    public readonly ushort[]?[] Neighbours;

    /// <summary>ggml's kmap_size: one past the largest code with every level ≤ 2 (0xAAAA), plus one.</summary>
    public const int MapSize = 43692;

    public int Size => Table.Length;

    public IQGrid(ReadOnlySpan<ushort> codes, ReadOnlySpan<byte> levelBytes, int nwant)
    {
        int n = codes.Length;
        Table = new ulong[n];
        Pos = new sbyte[n * 8];
        Map = new int[MapSize];
        Array.Fill(Map, -1);
        for (int k = 0; k < n; k++)
        {
            ulong t = 0;
            for (int i = 0; i < 8; i++)
            {
                int l = (codes[k] >> 2 * i) & 3;
                Pos[8 * k + i] = (sbyte)(2 * l + 1);
                t |= (ulong)levelBytes[l] << 8 * i;
            }
            Table[k] = t;
            Map[codes[k]] = k;
        }
        Neighbours = new ushort[]?[MapSize];
        // ggml sorts all grid points by (distance², index) and keeps the first nwant distinct distances.
        // Only codes whose eight levels are all ≤ 2 can be looked up (the quantizers clamp to 0..2), so only
        // those are built; their lists are what ggml stores for them.
        Span<int> d2 = stackalloc int[n];
        Span<sbyte> pos = stackalloc sbyte[8];
        Span<int> wanted = stackalloc int[nwant];
        var list = new List<ushort>();
        for (int code = 0; code < MapSize; code++)
        {
            if (Map[code] >= 0) continue;
            bool reachable = true;
            for (int k = 0; k < 8; k++)
            {
                int l = (code >> 2 * k) & 3;
                if (l == 3) { reachable = false; break; }
                pos[k] = (sbyte)(2 * l + 1);
            }
            if (!reachable) continue;
            for (int j = 0; j < n; j++)
            {
                int s = 0;
                for (int k = 0; k < 8; k++)
                {
                    int diff = Pos[8 * j + k] - pos[k];
                    s += diff * diff;
                }
                d2[j] = s;
            }
            int have = 0;
            int last = -1;
            while (have < nwant)
            {
                int next = int.MaxValue;
                foreach (int v in d2) if (v > last && v < next) next = v;
                if (next == int.MaxValue) break;
                wanted[have++] = next;
                last = next;
            }
            list.Clear();
            for (int w = 0; w < have; w++)
                for (int j = 0; j < n; j++)
                    if (d2[j] == wanted[w]) list.Add((ushort)j);
            Neighbours[code] = list.ToArray();
        }
    }

    /// <summary>Packs eight levels (each 0..2) as the map's key.</summary>
    public static int Code(ReadOnlySpan<sbyte> L)
    {
        int u = 0;
        for (int i = 0; i < 8; i++) u |= L[i] << 2 * i;
        return u;
    }

    /// <summary>
    /// ggml's iq2_find_best_neighbour: the neighbour of an off-grid code nearest to xval at
    /// <paramref name="scale"/> by weighted squared error (first wins ties); writes its levels to L.
    /// </summary>
    public int BestNeighbour(int code, ReadOnlySpan<float> xval, ReadOnlySpan<float> weight, float scale, Span<sbyte> L)
    {
        var nb = Neighbours[code]!;
        float bestD2 = float.MaxValue;
        int gridIndex = -1;
        foreach (ushort j in nb)
        {
            float d2 = 0;
            for (int i = 0; i < 8; i++)
            {
                float q = Pos[8 * j + i];
                float diff = scale * q - xval[i];
                d2 += weight[i] * diff * diff;
            }
            if (d2 < bestD2) { bestD2 = d2; gridIndex = j; }
        }
        if (gridIndex < 0) throw new InvalidOperationException("no grid neighbour fits (non-finite input)");
        for (int i = 0; i < 8; i++) L[i] = (sbyte)((Pos[8 * gridIndex + i] - 1) / 2);
        return gridIndex;
    }

    /// <summary>
    /// ggml's iq1_find_best_neighbour2: like <see cref="BestNeighbour"/> but each level l stands for
    /// <c>xg[l]</c> (the shifted ternary values of iq1_s/iq1_m).
    /// </summary>
    public int BestNeighbour1(int code, ReadOnlySpan<float> xval, ReadOnlySpan<float> weight, float scale, ReadOnlySpan<float> xg, Span<sbyte> L)
    {
        var nb = Neighbours[code]!;
        float best = float.MaxValue;
        int gridIndex = -1;
        foreach (ushort j in nb)
        {
            float d2 = 0;
            for (int i = 0; i < 8; i++)
            {
                float q = xg[(Pos[8 * j + i] - 1) / 2];
                float w = weight[i];
                float diff = scale * q - xval[i];
                d2 += w * diff * diff;
            }
            if (d2 < best) { best = d2; gridIndex = j; }
        }
        if (gridIndex < 0) throw new InvalidOperationException("no grid neighbour fits (non-finite input)");
        for (int i = 0; i < 8; i++) L[i] = (sbyte)((Pos[8 * gridIndex + i] - 1) / 2);
        return gridIndex;
    }
}

/// <summary>
/// The four lattices of IQ2_XXS (256 points), IQ2_XS (512), IQ2_S (1024) and IQ1_S/IQ1_M (2048), built on
/// first use, plus ggml's sign tables and the helpers the iq2 quantizers share.
/// </summary>
internal static partial class IQ2Grids
{
    // Level l of a grid point decodes to these bytes: 8/25/43 for iq2 (ggml-common.h's iq2*_grid), −1/0/1 as int8 for iq1s_grid.
    static ReadOnlySpan<byte> Iq2Levels => [0x08, 0x19, 0x2b];
    static ReadOnlySpan<byte> Iq1Levels => [0xff, 0x00, 0x01];

    // nwant (how many distinct distances a neighbour list spans) is ggml's: 2, 2, 1 and 3.
    static readonly Lazy<IQGrid> _g256 = new(() => new IQGrid(Codes256, Iq2Levels, 2));
    static readonly Lazy<IQGrid> _g512 = new(() => new IQGrid(Codes512, Iq2Levels, 2));
    static readonly Lazy<IQGrid> _g1024 = new(() => new IQGrid(Codes1024, Iq2Levels, 1));
    static readonly Lazy<IQGrid> _g2048 = new(() => new IQGrid(Codes2048, Iq1Levels, 3));

    public static IQGrid Grid256 => _g256.Value;
    public static IQGrid Grid512 => _g512.Value;
    public static IQGrid Grid1024 => _g1024.Value;
    public static IQGrid Grid2048 => _g2048.Value;

    /// <summary>ggml's ksigns_iq2xs: seven sign bits plus an eighth that makes the count of set bits even.</summary>
    public static readonly byte[] KSigns = BuildSigns();

    static byte[] BuildSigns()
    {
        var s = new byte[128];
        for (int i = 0; i < 128; i++) s[i] = (byte)(i | (System.Numerics.BitOperations.PopCount((uint)i) & 1) << 7);
        return s;
    }

    /// <summary>ggml's IQ1S_DELTA and IQ1M_DELTA: the shift of the ternary levels.</summary>
    public const float IQ1Delta = 0.125f;

    /// <summary>
    /// Takes absolute values of eight weights into xval and returns their sign bits. With
    /// <paramref name="evenParity"/> (iq2_xxs, iq2_xs) an odd number of negatives is made even by
    /// flipping the least important one, as only seven sign bits are stored.
    /// </summary>
    public static byte Signs(ReadOnlySpan<float> xb, ReadOnlySpan<float> weight, Span<float> xval, bool evenParity)
    {
        int nflip = 0;
        int s = 0;
        for (int i = 0; i < 8; i++)
        {
            if (xb[i] >= 0) xval[i] = xb[i];
            else { xval[i] = -xb[i]; nflip++; s |= 1 << i; }
        }
        if (evenParity && nflip % 2 != 0)
        {
            int imin = 0;
            float min = weight[0] * xb[0] * xb[0];
            for (int i = 1; i < 8; i++)
            {
                float ax = weight[i] * xb[i] * xb[i];
                if (ax < min) { min = ax; imin = i; }
            }
            xval[imin] = -xval[imin];
            s ^= 1 << imin;
        }
        return (byte)s;
    }

    /// <summary>Σx² / n over a super-block, summed in order.</summary>
    public static float MeanSquare(ReadOnlySpan<float> x)
    {
        float s = 0;
        foreach (float v in x) s += v * v;
        return s / x.Length;
    }

    /// <summary>The refusal ggml gives as an assertion ("missing quantization weights").</summary>
    public static ArgumentException NeedsImportance(string name) =>
        new($"{name}: quantizing needs an importance matrix (pass one, e.g. --imatrix); ggml refuses {name} without quantization weights");

    /// <summary>
    /// The search iq2_xs and iq2_s share (ggml's quantize_row_iq2_xs_impl / quantize_row_iq2_s_impl): per group
    /// of 16 values, a ±0.9 sweep of the inverse scale over grid points (snapping off-grid codes to their best
    /// neighbour), a refit of the off-grid halves at the chosen scale, then a weighted least-squares scale.
    /// Writes per half-group (8 values) the grid index and sign byte, per group its scale; returns the largest
    /// scale. <paramref name="qw"/> empty means iq2_s's weights σ²/4 + x² (<paramref name="sigma2"/> then being 2·mean x²).
    /// </summary>
    public static float QuantizeGroups16(IQGrid grid, ReadOnlySpan<float> xbl, ReadOnlySpan<float> qw, float sigma2, float eps,
        bool evenParity, Span<float> scales, Span<int> index, Span<byte> signs)
    {
        const int kMaxQ = 3; // levels 0..kMaxQ−1 (SnapLevels clamps to 2)
        Span<float> weight = stackalloc float[16];
        Span<float> xval = stackalloc float[16];
        Span<float> waux = stackalloc float[16];
        Span<sbyte> L = stackalloc sbyte[16];
        Span<sbyte> Laux = stackalloc sbyte[16];
        Span<bool> onGrid = stackalloc bool[2];
        Span<bool> onGridAux = stackalloc bool[2];
        index.Clear();
        signs.Clear();
        float maxScale = 0;
        for (int ib = 0; ib < 16; ib++)
        {
            var xb = xbl.Slice(16 * ib, 16);
            if (!qw.IsEmpty)
                for (int i = 0; i < 16; i++) weight[i] = qw[16 * ib + i] * MathF.Sqrt(sigma2 + xb[i] * xb[i]);
            else
                for (int i = 0; i < 16; i++) weight[i] = 0.25f * sigma2 + xb[i] * xb[i];
            for (int i = 0; i < 16; i++) waux[i] = MathF.Sqrt(weight[i]);
            byte s0 = Signs(xb[..8], weight[..8], xval[..8], evenParity);
            byte s1 = Signs(xb[8..], weight[8..], xval[8..], evenParity);
            if (evenParity) { s0 &= 127; s1 &= 127; }
            float max = xval[0];
            for (int i = 1; i < 16; i++) max = max > xval[i] ? max : xval[i];
            L.Clear();
            if (max < eps) { scales[ib] = 0; continue; }
            float best = 0;
            float scale = max / (2 * kMaxQ - 1);
            onGrid[0] = onGrid[1] = true;
            for (int step = -9; step <= 9; step++)
            {
                float id = (2 * kMaxQ - 1 + step * 0.1f) / max;
                float thisScale = 1 / id;
                for (int k = 0; k < 2; k++)
                {
                    int u = SnapLevels(xval.Slice(8 * k, 8), id, Laux.Slice(8 * k, 8));
                    onGridAux[k] = true;
                    if (grid.Map[u] < 0)
                    {
                        onGridAux[k] = false;
                        grid.BestNeighbour(u, xval.Slice(8 * k, 8), waux.Slice(8 * k, 8), thisScale, Laux.Slice(8 * k, 8));
                    }
                }
                OddFit(weight, xval, Laux, out float sumqx, out float sumq2);
                if (sumq2 > 0 && sumqx * sumqx > best * sumq2)
                {
                    scale = sumqx / sumq2;
                    best = scale * sumqx;
                    Laux.CopyTo(L);
                    onGridAux.CopyTo(onGrid);
                }
            }
            if ((!onGrid[0] || !onGrid[1]) && scale > 0)
            {
                float id = 1 / scale;
                for (int k = 0; k < 2; k++)
                {
                    if (onGrid[k]) continue;
                    int u = SnapLevels(xval.Slice(8 * k, 8), id, L.Slice(8 * k, 8));
                    if (grid.Map[u] < 0)
                        grid.BestNeighbour(u, xval.Slice(8 * k, 8), waux.Slice(8 * k, 8), scale, L.Slice(8 * k, 8));
                }
                OddFit(weight, xval, L, out float sumqx, out float sumq2);
                if (sumq2 > 0) scale = sumqx / sumq2;
            }
            if (scale < 0)
            {
                // ggml: "should never happen"; the scale is stored unsigned, so flip the signs instead.
                scale = -scale;
                s0 = (byte)~s0; s1 = (byte)~s1;
                if (evenParity) { s0 &= 127; s1 &= 127; }
            }
            for (int k = 0; k < 2; k++)
            {
                int gi = grid.Map[IQGrid.Code(L.Slice(8 * k, 8))];
                if (gi < 0) throw new InvalidOperationException("point off the grid (non-finite input?)");
                index[2 * ib + k] = gi;
            }
            signs[2 * ib] = s0;
            signs[2 * ib + 1] = s1;
            scales[ib] = scale;
            maxScale = maxScale > scale ? maxScale : scale;
        }
        return maxScale;
    }

    /// <summary>Sixteen 4-bit group scales l = round((s/d − 1)/2) ∈ [0, 15], two per byte.</summary>
    public static void PackScales(ReadOnlySpan<float> scales, float id, Span<byte> dst)
    {
        for (int ib = 0; ib < 16; ib++)
        {
            int l = QuantMath.NearestInt(0.5f * (id * scales[ib] - 1));
            l = Math.Max(0, Math.Min(15, l));
            if (ib % 2 == 0) dst[ib / 2] = (byte)l;
            else dst[ib / 2] |= (byte)(l << 4);
        }
    }

    /// <summary>
    /// Indices of x in ascending order of value, equal values keeping their order: what ggml's qsort of
    /// (value, index) pairs gives with glibc, whose qsort merge-sorts small arrays.
    /// </summary>
    public static void SortedOrder(ReadOnlySpan<float> x, Span<int> order)
    {
        for (int j = 0; j < x.Length; j++)
        {
            int i = j;
            while (i > 0 && x[order[i - 1]] > x[j]) { order[i] = order[i - 1]; i--; }
            order[i] = j;
        }
    }

    /// <summary>Levels l = clamp(round((id·x − 1)/2), 0, 2) of eight magnitudes (the odd grid 2l+1 at scale 1/id); returns their code.</summary>
    public static int SnapLevels(ReadOnlySpan<float> xval, float id, Span<sbyte> L)
    {
        int u = 0;
        for (int i = 0; i < 8; i++)
        {
            int l = QuantMath.NearestInt(0.5f * (id * xval[i] - 1));
            l = Math.Max(0, Math.Min(2, l));
            L[i] = (sbyte)l;
            u |= l << 2 * i;
        }
        return u;
    }

    /// <summary>Σw·x·q and Σw·q² for q = 2L+1, summed in order: the weighted least-squares fit of a scale.</summary>
    public static void OddFit(ReadOnlySpan<float> weight, ReadOnlySpan<float> xval, ReadOnlySpan<sbyte> L, out float sumqx, out float sumq2)
    {
        sumqx = 0; sumq2 = 0;
        for (int i = 0; i < L.Length; i++)
        {
            float w = weight[i];
            float q = 2 * L[i] + 1;
            sumqx += w * xval[i] * q;
            sumq2 += w * q * q;
        }
    }
}
