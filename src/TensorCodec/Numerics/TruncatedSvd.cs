using System.Numerics.Tensors;

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
        // Row-major A in double; tall matrices are kept as k column vectors, so every product is a contiguous dot or axpy.
        var m = new double[a.Length];
        for (int i = 0; i < a.Length; i++) m[i] = a[i];

        ulong s = seed;
        var omega = new double[k][];
        for (int j = 0; j < k; j++)
        {
            omega[j] = new double[cols];
            for (int c = 0; c < cols; c++) omega[j][c] = (SplitMix(ref s) & 1) == 0 ? 1 : -1;
        }
        var q = MulA(m, rows, cols, omega);              // k columns of length rows
        Orthonormalize(q);
        for (int it = 0; it < PowerIterations; it++)
        {
            var z = MulAt(m, rows, cols, q);             // k columns of length cols
            Orthonormalize(z);
            q = MulA(m, rows, cols, z);
            Orthonormalize(q);
        }
        var bt = MulAt(m, rows, cols, q);                // Bᵀ = Aᵀ Q
        var g = new double[k * k];                       // G = B Bᵀ
        for (int i = 0; i < k; i++)
            for (int j = i; j < k; j++)
                g[i * k + j] = g[j * k + i] = TensorPrimitives.Dot<double>(bt[i], bt[j]);
        var (lambda, w) = JacobiEigen(g, k);
        var order = Enumerable.Range(0, k).OrderByDescending(i => lambda[i]).ToArray();
        var left = new double[(long)rows * rank];
        var right = new double[(long)cols * rank];
        var sigma = new double[rank];
        var u = new double[rows];
        var v = new double[cols];
        for (int t = 0; t < rank; t++)
        {
            int e = order[t];
            double sv = Math.Sqrt(Math.Max(0, lambda[e]));
            sigma[t] = sv;
            if (sv <= 0) continue;
            double root = Math.Sqrt(sv);
            // u = Q w (unit), v = Bᵀ w / σ (unit): left = u √σ, right = v √σ = Bᵀ w / √σ.
            Array.Clear(u);
            Array.Clear(v);
            for (int j = 0; j < k; j++)
            {
                TensorPrimitives.MultiplyAdd<double>(q[j], w[j * k + e], u, u);
                TensorPrimitives.MultiplyAdd<double>(bt[j], w[j * k + e], v, v);
            }
            for (int r = 0; r < rows; r++) left[(long)r * rank + t] = u[r] * root;
            for (int c = 0; c < cols; c++) right[(long)c * rank + t] = v[c] / root;
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

    /// <summary>A (rows × cols) times each column x_j (length cols): columns of length rows.</summary>
    static double[][] MulA(double[] a, int rows, int cols, double[][] x)
    {
        var y = new double[x.Length][];
        for (int j = 0; j < x.Length; j++)
        {
            y[j] = new double[rows];
            for (int r = 0; r < rows; r++) y[j][r] = TensorPrimitives.Dot<double>(a.AsSpan(r * cols, cols), x[j]);
        }
        return y;
    }

    /// <summary>Aᵀ (cols × rows) times each column x_j (length rows): columns of length cols.</summary>
    static double[][] MulAt(double[] a, int rows, int cols, double[][] x)
    {
        var y = new double[x.Length][];
        for (int j = 0; j < x.Length; j++)
        {
            var yj = y[j] = new double[cols];
            for (int r = 0; r < rows; r++)
                if (x[j][r] != 0) TensorPrimitives.MultiplyAdd<double>(a.AsSpan(r * cols, cols), x[j][r], yj, yj);
        }
        return y;
    }

    /// <summary>Modified Gram–Schmidt, twice, on the columns; a column that vanishes (rank deficiency) becomes zero.</summary>
    static void Orthonormalize(double[][] x)
    {
        for (int pass = 0; pass < 2; pass++)
            for (int j = 0; j < x.Length; j++)
            {
                for (int i = 0; i < j; i++)
                    TensorPrimitives.MultiplyAdd<double>(x[i], -TensorPrimitives.Dot<double>(x[i], x[j]), x[j], x[j]);
                double norm = Math.Sqrt(TensorPrimitives.Dot<double>(x[j], x[j]));
                TensorPrimitives.Multiply<double>(x[j], norm > 1e-300 ? 1 / norm : 0, x[j]);
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
