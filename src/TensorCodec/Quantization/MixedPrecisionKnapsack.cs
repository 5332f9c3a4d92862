namespace TensorCodec.Quantization;

/// <summary>One way to store one item of a <see cref="MixedPrecisionKnapsack"/>: its exact bytes and its predicted damage.</summary>
/// <param name="Bytes">Stored bytes (non-negative).</param>
/// <param name="Damage">Predicted damage (lower is better; any finite value).</param>
internal readonly record struct KnapsackOption(long Bytes, double Damage);

/// <summary>The choice <see cref="MixedPrecisionKnapsack.Solve"/> made.</summary>
/// <param name="Choice">Index of the chosen option, per item.</param>
/// <param name="Bytes">Total bytes of the chosen options.</param>
/// <param name="Damage">Total damage of the chosen options.</param>
/// <param name="Grid">Byte grid the dynamic programme ran on (1 … ; equal to the costs' common divisor when the solution is exact).</param>
/// <param name="Exact">Whether the grid divides every cost, so the choice is the true optimum (otherwise optimal for costs
/// rounded up to the grid: never over the budget, at most items × (grid − 1) bytes of budget left unused).</param>
internal sealed record KnapsackSolution(int[] Choice, long Bytes, double Damage, long Grid, bool Exact);

/// <summary>
/// The multiple-choice knapsack of mixed precision: pick exactly one option per item so the total bytes stay within a
/// budget and the total damage is least. Solved exactly by dynamic programming over a byte grid, on the bytes above each
/// item's cheapest option. The grid is the greatest common divisor of those extra bytes; when that would need more than
/// <c>maxCells</c> cells the grid is coarsened and each option's extra bytes are rounded <em>up</em> to it while the
/// capacity is rounded <em>down</em>, so no rounding can take the real total over the budget.
/// </summary>
internal static class MixedPrecisionKnapsack
{
    /// <summary>Default bound on the grid cells (the choice table holds items × cells bytes).</summary>
    public const int DefaultMaxCells = 1 << 18;

    /// <summary>The least bytes any choice can take: every item at its cheapest option.</summary>
    public static long MinBytes(IReadOnlyList<IReadOnlyList<KnapsackOption>> items) => items.Sum(o => o.Min(x => x.Bytes));

    /// <summary>The least-damage choice with total bytes ≤ <paramref name="budget"/>, or null when even the cheapest choice exceeds it.</summary>
    /// <exception cref="ArgumentException">An item has no options or more than 255, or an option has negative bytes or a non-finite damage.</exception>
    public static KnapsackSolution? Solve(IReadOnlyList<IReadOnlyList<KnapsackOption>> items, long budget, int maxCells = DefaultMaxCells)
    {
        int n = items.Count;
        var baseIdx = new int[n];
        long minTotal = 0;
        for (int i = 0; i < n; i++)
        {
            var opts = items[i];
            if (opts.Count == 0 || opts.Count > 255) throw new ArgumentException($"item {i} has {opts.Count} options (1 … 255 allowed)");
            for (int k = 0; k < opts.Count; k++)
            {
                if (opts[k].Bytes < 0) throw new ArgumentException($"item {i} option {k}: negative bytes");
                if (!double.IsFinite(opts[k].Damage)) throw new ArgumentException($"item {i} option {k}: damage {opts[k].Damage} is not finite");
                var b = opts[baseIdx[i]];
                // Cheapest, and among equally cheap the least damaging.
                if (opts[k].Bytes < b.Bytes || (opts[k].Bytes == b.Bytes && opts[k].Damage < b.Damage)) baseIdx[i] = k;
            }
            minTotal += opts[baseIdx[i]].Bytes;
        }
        if (minTotal > budget) return null;
        long capacity = budget - minTotal;

        // The grid: the common divisor of the extra bytes (exact), coarsened if the table would be too large.
        long g = 0;
        for (int i = 0; i < n; i++)
            foreach (var o in items[i]) g = Gcd(g, o.Bytes - items[i][baseIdx[i]].Bytes);
        if (g == 0) g = 1;
        long maxExtra = 0;
        for (int i = 0; i < n; i++) maxExtra += items[i].Max(o => o.Bytes) - items[i][baseIdx[i]].Bytes;
        long span = Math.Min(capacity, maxExtra); // capacity beyond every item's dearest option is never used
        bool exact = true;
        if (span / g + 1 > maxCells)
        {
            long coarse = (span + maxCells - 2) / (maxCells - 1);
            if (coarse > g) { g = coarse; exact = false; }
        }
        int cells = checked((int)(span / g) + 1);

        // dp[c] = least damage of the items so far within c grid units of extra bytes (monotone in c).
        var dp = new double[cells];
        var next = new double[cells];
        var choice = new byte[(long)n * cells];
        for (int i = 0; i < n; i++)
        {
            var opts = items[i];
            long baseBytes = opts[baseIdx[i]].Bytes;
            Array.Fill(next, double.PositiveInfinity);
            long row = (long)i * cells;
            for (int k = 0; k < opts.Count; k++)
            {
                long extra = opts[k].Bytes - baseBytes;
                long w = exact ? extra / g : (extra + g - 1) / g;
                if (w >= cells) continue;
                double d = opts[k].Damage;
                for (int c = (int)w; c < cells; c++)
                {
                    double v = dp[c - (int)w] + d;
                    if (v < next[c]) { next[c] = v; choice[row + c] = (byte)k; }
                }
            }
            (dp, next) = (next, dp);
        }

        var picked = new int[n];
        int cell = cells - 1;
        long bytes = 0;
        double damage = 0;
        for (int i = n - 1; i >= 0; i--)
        {
            int k = choice[(long)i * cells + cell];
            picked[i] = k;
            long extra = items[i][k].Bytes - items[i][baseIdx[i]].Bytes;
            cell -= (int)(exact ? extra / g : (extra + g - 1) / g);
            bytes += items[i][k].Bytes;
            damage += items[i][k].Damage;
        }
        if (bytes > budget) throw new InvalidOperationException($"knapsack: chose {bytes} bytes over the budget of {budget} (grid {g})");
        return new KnapsackSolution(picked, bytes, damage, g, exact);
    }

    static long Gcd(long a, long b)
    {
        while (b != 0) (a, b) = (b, a % b);
        return Math.Abs(a);
    }
}
