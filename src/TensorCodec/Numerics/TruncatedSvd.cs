namespace TensorCodec.Numerics;

/// <summary>
/// Rank-R truncated SVD of a dense row-major matrix by a randomized range finder (Halko, Martinsson and Tropp,
/// "Finding structure with randomness", algorithm 4.4): a Rademacher test matrix of R + 8 columns, two power
/// iterations with re-orthonormalization, then the exact SVD of the small projected matrix through a cyclic
/// Jacobi eigen-decomposition of B·Bᵀ. Everything runs in double precision; the test matrix comes from a fixed
/// SplitMix64 seed, so a given matrix always gives the same factors. Written here (not a linear-algebra package)
/// because only the top R triplets of matrices up to a few thousand rows are needed, and the core library takes
/// no dependency for it.
/// </summary>
internal static class TruncatedSvd
{
    /// <summary>Oversampling columns beyond the rank, and power iterations (the book values).</summary>
    public const int Oversample = 8, PowerIterations = 2;

    /// <summary>
    /// Factors <paramref name="a"/> (<paramref name="rows"/> × <paramref name="cols"/>, row-major) as L·Rᵀ with
    /// L = U·√Σ (rows × rank, row-major) and R = V·√Σ (cols × rank, row-major): the singular values are split
    /// evenly between the two factors so both keep a similar magnitude (they are stored in F16).
    /// </summary>
    public static (double[] Left, double[] Right, double[] Sigma) Factor(ReadOnlySpan<float> a, int rows, int cols, int rank, ulong seed = 0x5EED_1234_ABCD_0001UL)
    {
        if (rows < 1 || cols < 1 || a.Length != (long)rows * cols) throw new ArgumentException("matrix size does not match its data");
        if (rank < 1 || rank > Math.Min(rows, cols)) throw new ArgumentOutOfRangeException(nameof(rank), $"rank {rank} outside 1..{Math.Min(rows, cols)}");
        int k = Math.Min(rank + Oversample, Math.Min(rows, cols));
        var m = new double[a.Length];
        for (int i = 0; i < a.Length; i++) m[i] = a[i];

        // Omega: cols × k, entries ±1.
        var omega = new double[(long)cols * k];
        ulong s = seed;
        for (int i = 0; i < omega.Length; i++) omega[i] = (SplitMix(ref s) & 1) == 0 ? 1 : -1;
        var q = MulAB(m, rows, cols, omega, k);          // rows × k
        Orthonormalize(q, rows, k);
        for (int it = 0; it < PowerIterations; it++)
        {
            var z = MulAtB(m, rows, cols, q, k);         // cols × k
            Orthonormalize(z, cols, k);
            q = MulAB(m, rows, cols, z, k);
            Orthonormalize(q, rows, k);
        }
        var b = MulAtB(m, rows, cols, q, k);             // Bᵀ = Aᵀ Q: cols × k
        // G = B Bᵀ = (Bᵀ)ᵀ Bᵀ: k × k.
        var g = new double[k * k];
        for (int i = 0; i < k; i++)
            for (int j = i; j < k; j++)
            {
                double sum = 0;
                for (int c = 0; c < cols; c++) sum += b[c * k + i] * b[c * k + j];
                g[i * k + j] = g[j * k + i] = sum;
            }
        var (lambda, w) = JacobiEigen(g, k);
        var order = Enumerable.Range(0, k).OrderByDescending(i => lambda[i]).ToArray();
        var left = new double[(long)rows * rank];
        var right = new double[(long)cols * rank];
        var sigma = new double[rank];
        for (int t = 0; t < rank; t++)
        {
            int e = order[t];
            double sv = Math.Sqrt(Math.Max(0, lambda[e]));
            sigma[t] = sv;
            if (sv <= 0) continue;
            double root = Math.Sqrt(sv);
            // u = Q w (unit), v = Bᵀ w / σ (unit): left = u √σ, right = v √σ = Bᵀ w / √σ.
            for (int r = 0; r < rows; r++)
            {
                double sum = 0;
                for (int j = 0; j < k; j++) sum += q[r * k + j] * w[j * k + e];
                left[(long)r * rank + t] = sum * root;
            }
            for (int c = 0; c < cols; c++)
            {
                double sum = 0;
                for (int j = 0; j < k; j++) sum += b[c * k + j] * w[j * k + e];
                right[(long)c * rank + t] = sum / root;
            }
        }
        return (left, right, sigma);
    }

    static ulong SplitMix(ref ulong s)
    {
        ulong z = s += 0x9E3779B97F4A7C15UL;
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9UL;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBUL;
        return z ^ (z >> 31);
    }

    /// <summary>A (rows × cols) times X (cols × k): rows × k.</summary>
    static double[] MulAB(double[] a, int rows, int cols, double[] x, int k)
    {
        var y = new double[(long)rows * k];
        for (int r = 0; r < rows; r++)
        {
            var yr = y.AsSpan(r * k, k);
            for (int c = 0; c < cols; c++)
            {
                double v = a[(long)r * cols + c];
                if (v == 0) continue;
                var xc = x.AsSpan(c * k, k);
                for (int j = 0; j < k; j++) yr[j] += v * xc[j];
            }
        }
        return y;
    }

    /// <summary>Aᵀ (cols × rows) times X (rows × k): cols × k.</summary>
    static double[] MulAtB(double[] a, int rows, int cols, double[] x, int k)
    {
        var y = new double[(long)cols * k];
        for (int r = 0; r < rows; r++)
        {
            var xr = x.AsSpan(r * k, k);
            for (int c = 0; c < cols; c++)
            {
                double v = a[(long)r * cols + c];
                if (v == 0) continue;
                var yc = y.AsSpan(c * k, k);
                for (int j = 0; j < k; j++) yc[j] += v * xr[j];
            }
        }
        return y;
    }

    /// <summary>Modified Gram–Schmidt, twice, on the k columns of an n × k row-major matrix; a column that
    /// vanishes (rank deficiency) becomes zero.</summary>
    static void Orthonormalize(double[] x, int n, int k)
    {
        for (int pass = 0; pass < 2; pass++)
            for (int j = 0; j < k; j++)
            {
                for (int i = 0; i < j; i++)
                {
                    double dot = 0;
                    for (int r = 0; r < n; r++) dot += x[r * k + i] * x[r * k + j];
                    for (int r = 0; r < n; r++) x[r * k + j] -= dot * x[r * k + i];
                }
                double norm = 0;
                for (int r = 0; r < n; r++) norm += x[r * k + j] * x[r * k + j];
                norm = Math.Sqrt(norm);
                double inv = norm > 1e-300 ? 1 / norm : 0;
                for (int r = 0; r < n; r++) x[r * k + j] *= inv;
            }
    }

    /// <summary>Cyclic Jacobi eigen-decomposition of a symmetric k × k matrix: eigenvalues and the eigenvectors as columns.</summary>
    internal static (double[] Values, double[] Vectors) JacobiEigen(double[] g, int k)
    {
        var a = (double[])g.Clone();
        var v = new double[k * k];
        for (int i = 0; i < k; i++) v[i * k + i] = 1;
        double total = 0;
        foreach (var x in a) total += x * x;
        for (int sweep = 0; sweep < 100; sweep++)
        {
            double off = 0;
            for (int i = 0; i < k; i++)
                for (int j = i + 1; j < k; j++) off += a[i * k + j] * a[i * k + j];
            if (off <= 1e-30 * total || off == 0) break;
            for (int p = 0; p < k; p++)
                for (int q = p + 1; q < k; q++)
                {
                    double apq = a[p * k + q];
                    if (apq == 0) continue;
                    double theta = (a[q * k + q] - a[p * k + p]) / (2 * apq);
                    double t = Math.Sign(theta) / (Math.Abs(theta) + Math.Sqrt(theta * theta + 1));
                    if (theta == 0) t = 1;
                    double c = 1 / Math.Sqrt(t * t + 1), s = t * c;
                    for (int r = 0; r < k; r++)
                    {
                        double arp = a[r * k + p], arq = a[r * k + q];
                        a[r * k + p] = c * arp - s * arq;
                        a[r * k + q] = s * arp + c * arq;
                    }
                    for (int r = 0; r < k; r++)
                    {
                        double apr = a[p * k + r], aqr = a[q * k + r];
                        a[p * k + r] = c * apr - s * aqr;
                        a[q * k + r] = s * apr + c * aqr;
                    }
                    for (int r = 0; r < k; r++)
                    {
                        double vrp = v[r * k + p], vrq = v[r * k + q];
                        v[r * k + p] = c * vrp - s * vrq;
                        v[r * k + q] = s * vrp + c * vrq;
                    }
                }
        }
        var values = new double[k];
        for (int i = 0; i < k; i++) values[i] = a[i * k + i];
        return (values, v);
    }
}
