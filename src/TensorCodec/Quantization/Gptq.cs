using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;
using TensorCodec.Formats;

namespace TensorCodec.Quantization;

/// <summary>
/// The factor GPTQ rounds with for one layer input: U, upper triangular with H⁻¹ = UᵀU (Frantar et al.'s
/// "Cholesky of H⁻¹"), for the dampened H; shared by every weight that reads the input (q/k/v, gate/up).
/// </summary>
internal sealed class GptqFactor
{
    internal GptqFactor(float[] u, int n, bool[] dead, float damp)
    {
        U = u; N = n; Dead = dead; Damp = damp;
    }

    /// <summary>Row-major n×n; only the upper triangle is used.</summary>
    public float[] U { get; }
    public int N { get; }
    /// <summary>Columns whose input was never active (H[i,i] = 0): their weights cannot matter and are quantized as zero.</summary>
    public bool[] Dead { get; }
    /// <summary>The λ added to H's diagonal.</summary>
    public float Damp { get; }
}

/// <summary>
/// GPTQ (Frantar et al., 2022) into standard ggml blocks. Columns are quantized in order; each column's rounding error,
/// divided by U[j,j], is fed into the columns not yet quantized along row j of U, eagerly inside a batch of columns and
/// lazily (one matrix product) beyond it. At the start of each ggml block the type's own quantizer chooses the block's
/// scales and mins from the error-updated weights (with the importance weights); the block's columns are then rounded
/// one at a time to the nearest value those fixed scales allow (<see cref="GptqGrid"/>), so the bytes are the type's
/// standard layout and any llama.cpp decodes them. Rows are independent given U and are processed in tiles.
/// </summary>
internal static class Gptq
{
    /// <summary>Fraction of the mean diagonal added to H (GPTQ's percdamp).</summary>
    public const float DefaultDamp = 0.01f;

    /// <summary>Whether <paramref name="ggmlType"/> can be written by GPTQ.</summary>
    public static bool Supports(int ggmlType) => GptqGrid.For(ggmlType) is not null;

    /// <summary>
    /// U for <paramref name="h"/> (n×n, symmetric positive semi-definite; not modified). Dead columns get H[i,i] = 1;
    /// λ = <paramref name="damp"/> × mean diagonal is added; if the Cholesky still fails, λ grows tenfold and it retries.
    /// </summary>
    public static GptqFactor Factor(ReadOnlySpan<float> h, int n, float damp = DefaultDamp)
    {
        if (h.Length != (long)n * n) throw new ArgumentException($"H holds {h.Length} values, not {n}×{n}", nameof(h));
        var dead = new bool[n];
        double mean = 0;
        for (int i = 0; i < n; i++)
        {
            float d = h[i * n + i];
            dead[i] = !(d > 0);
            mean += dead[i] ? 1 : d;
        }
        mean /= n;
        var a = new float[(long)n * n];
        for (float lambda = (float)(damp * mean); ; lambda *= 10)
        {
            // Reversed order: the lower Cholesky factor L of P·H·P gives H = Ũ·Ũᵀ with Ũ = P·L·P upper,
            // so H⁻¹ = (Ũ⁻¹)ᵀ·Ũ⁻¹ and U = Ũ⁻¹ = P·L⁻¹·P — one factorisation and one triangular inverse.
            for (int i = 0; i < n; i++)
                for (int j = 0; j <= i; j++)
                {
                    int si = n - 1 - i, sj = n - 1 - j;
                    float v = dead[si] || dead[sj] ? (si == sj ? 1 : 0) : h[si * n + sj];
                    a[(long)i * n + j] = i == j ? v + lambda : v;
                }
            if (!CholeskyLower(a, n)) { if (lambda > 1e6 * mean) throw new ArgumentException("H is not positive definite even with heavy dampening"); continue; }
            var m = InverseLower(a, n);
            var u = new float[(long)n * n];
            for (int i = 0; i < n; i++)
                for (int j = i; j < n; j++)
                    u[(long)i * n + j] = m[(long)(n - 1 - i) * n + (n - 1 - j)];
            return new GptqFactor(u, n, dead, lambda);
        }
    }

    /// <summary>
    /// In place: the lower triangle of <paramref name="a"/> becomes L with A = L·Lᵀ (row by row, Cholesky–Banachiewicz).
    /// Four rows go together so each earlier row of L is read once per four. False when A is not positive definite.
    /// </summary>
    internal static bool CholeskyLower(float[] a, int n)
    {
        var span = a.AsSpan();
        for (int i0 = 0; i0 < n; i0 += 4)
        {
            int m = Math.Min(4, n - i0);
            for (int j = 0; j < i0; j++)
            {
                var lj = span.Slice(j * n, j);
                float ljj = span[j * n + j];
                if (m == 4)
                {
                    Dot4(lj, span.Slice(i0 * n, j), span.Slice((i0 + 1) * n, j), span.Slice((i0 + 2) * n, j), span.Slice((i0 + 3) * n, j),
                        out float d0, out float d1, out float d2, out float d3);
                    span[i0 * n + j] = (span[i0 * n + j] - d0) / ljj;
                    span[(i0 + 1) * n + j] = (span[(i0 + 1) * n + j] - d1) / ljj;
                    span[(i0 + 2) * n + j] = (span[(i0 + 2) * n + j] - d2) / ljj;
                    span[(i0 + 3) * n + j] = (span[(i0 + 3) * n + j] - d3) / ljj;
                }
                else
                    for (int t = 0; t < m; t++)
                    {
                        var li = span.Slice((i0 + t) * n, n);
                        li[j] = (li[j] - Dot(li[..j], lj)) / ljj;
                    }
            }
            // The 4×4 triangle of the group itself.
            for (int t = 0; t < m; t++)
            {
                int i = i0 + t;
                var li = span.Slice(i * n, n);
                for (int j = i0; j <= i; j++)
                {
                    float s = li[j] - Dot(li[..j], span.Slice(j * n, j));
                    if (i == j)
                    {
                        if (!(s > 0) || !float.IsFinite(s)) return false;
                        li[i] = MathF.Sqrt(s);
                    }
                    else li[j] = s / span[j * n + j];
                }
            }
        }
        return true;
    }

    /// <summary>Four dot products against one shared vector <paramref name="x"/>.</summary>
    static void Dot4(ReadOnlySpan<float> x, ReadOnlySpan<float> y0, ReadOnlySpan<float> y1, ReadOnlySpan<float> y2, ReadOnlySpan<float> y3,
        out float d0, out float d1, out float d2, out float d3)
    {
        int i = 0;
        d0 = d1 = d2 = d3 = 0;
        if (Vector256.IsHardwareAccelerated && Fma.IsSupported && x.Length >= 8)
        {
            ref float px = ref MemoryMarshal.GetReference(x);
            ref float p0 = ref MemoryMarshal.GetReference(y0);
            ref float p1 = ref MemoryMarshal.GetReference(y1);
            ref float p2 = ref MemoryMarshal.GetReference(y2);
            ref float p3 = ref MemoryMarshal.GetReference(y3);
            Vector256<float> a0 = default, a1 = default, a2 = default, a3 = default;
            for (; i <= x.Length - 8; i += 8)
            {
                var v = Vector256.LoadUnsafe(ref px, (nuint)i);
                a0 = Fma.MultiplyAdd(v, Vector256.LoadUnsafe(ref p0, (nuint)i), a0);
                a1 = Fma.MultiplyAdd(v, Vector256.LoadUnsafe(ref p1, (nuint)i), a1);
                a2 = Fma.MultiplyAdd(v, Vector256.LoadUnsafe(ref p2, (nuint)i), a2);
                a3 = Fma.MultiplyAdd(v, Vector256.LoadUnsafe(ref p3, (nuint)i), a3);
            }
            d0 = Vector256.Sum(a0); d1 = Vector256.Sum(a1); d2 = Vector256.Sum(a2); d3 = Vector256.Sum(a3);
        }
        for (; i < x.Length; i++) { d0 += x[i] * y0[i]; d1 += x[i] * y1[i]; d2 += x[i] * y2[i]; d3 += x[i] * y3[i]; }
    }

    /// <summary>
    /// L⁻¹ of the lower triangle of <paramref name="l"/>, row by row: row i of L⁻¹ is −(Σₖ L[i,k]·row k)/L[i,i] plus
    /// 1/L[i,i] on the diagonal. Four rows go together so each earlier row is read once per four.
    /// </summary>
    internal static float[] InverseLower(float[] l, int n)
    {
        var m = new float[(long)n * n];
        var acc = new float[4 * n];
        for (int i0 = 0; i0 < n; i0 += 4)
        {
            int g = Math.Min(4, n - i0);
            acc.AsSpan(0, 4 * n).Clear();
            for (int k = 0; k < i0; k++)
            {
                var mk = m.AsSpan(k * n, k + 1);
                for (int t = 0; t < g; t++)
                {
                    float c = l[(i0 + t) * n + k];
                    if (c != 0) Axpy(c, mk, acc.AsSpan(t * n, k + 1));
                }
            }
            for (int t = 0; t < g; t++)
            {
                int i = i0 + t;
                var a = acc.AsSpan(t * n, i + 1);
                for (int k = i0; k < i; k++)
                {
                    float c = l[i * n + k];
                    if (c != 0) Axpy(c, m.AsSpan(k * n, k + 1), a[..(k + 1)]);
                }
                float inv = 1 / l[i * n + i];
                var mi = m.AsSpan(i * n, n);
                for (int c = 0; c < i; c++) mi[c] = -a[c] * inv;
                mi[i] = inv;
            }
        }
        return m;
    }

    /// <summary>
    /// Quantizes <paramref name="w"/> ([rows][cols] row-major, GGUF rows; overwritten with the error-updated weights) to
    /// <paramref name="fmt"/> with <paramref name="factor"/>, writing the type's standard bytes to <paramref name="dst"/>
    /// (and, when <paramref name="values"/> is given, the value each weight was rounded to, for checks).
    /// </summary>
    public static void Quantize(float[] w, int rows, int cols, GptqFactor factor, IBlockFormat fmt, ReadOnlySpan<float> importance,
        Span<byte> dst, int threads = 1, CancellationToken ct = default, float[]? values = null)
    {
        var grid = GptqGrid.For(fmt.GgmlTypeId) ?? throw new NotSupportedException($"GPTQ does not handle {fmt.Name}");
        if (factor.N != cols) throw new ArgumentException($"H is {factor.N}×{factor.N} but the rows have {cols} columns");
        if (cols % fmt.BlockSize != 0) throw new ArgumentException($"{fmt.Name}: row length {cols} is not a multiple of {fmt.BlockSize}");
        if (w.Length != (long)rows * cols) throw new ArgumentException($"{w.Length} weights are not {rows}×{cols}");
        int rowBytes = cols / fmt.BlockSize * fmt.BlockBytes;
        if (dst.Length < (long)rows * rowBytes) throw new ArgumentException($"destination needs {(long)rows * rowBytes} bytes");
        for (int r = 0; r < rows; r++)
            for (int c = 0; c < cols; c++)
                if (factor.Dead[c]) w[(long)r * cols + c] = 0;
        var imp = importance.IsEmpty || !fmt.UsesImportance ? null : importance.ToArray();
        int tiles = (rows + TileRows - 1) / TileRows;
        var output = new byte[(long)rows * rowBytes];
        Parallel.For(0, tiles, new ParallelOptions { MaxDegreeOfParallelism = Math.Max(1, threads), CancellationToken = ct },
            t => QuantizeTile(w, t * TileRows, Math.Min(rows, (t + 1) * TileRows), cols, factor.U, fmt, grid, imp, output, rowBytes, values));
        output.CopyTo(dst);
    }

    /// <summary>Rows per tile: enough to reuse each loaded stretch of U several times, few enough to keep the tile's rows in cache.</summary>
    const int TileRows = 64;

    static void QuantizeTile(float[] w, int r0, int r1, int cols, float[] u, IBlockFormat fmt, GptqGrid grid, float[]? imp, byte[] output, int rowBytes, float[]? values)
    {
        int n = r1 - r0, bs = fmt.BlockSize, bb = fmt.BlockBytes;
        // A batch of whole ggml blocks: 128 columns for 32-blocks, one super-block for the K types.
        int batch = Math.Max(bs, 128);
        var err = new float[n * batch];
        var a = new float[n * bs];
        var b = new float[n * bs];
        for (int b0 = 0; b0 < cols; b0 += batch)
        {
            int b1 = Math.Min(cols, b0 + batch);
            for (int c0 = b0; c0 < b1; c0 += bs)
            {
                for (int r = 0; r < n; r++)
                {
                    var block = output.AsSpan((r0 + r) * rowBytes + c0 / bs * bb, bb);
                    fmt.Quantize(w.AsSpan((r0 + r) * cols + c0, bs), block, bs, imp is null ? default : imp.AsSpan(c0, bs));
                    grid.Scales(block, a.AsSpan(r * bs, bs), b.AsSpan(r * bs, bs));
                }
                for (int j = c0; j < c0 + bs; j++)
                {
                    var uj = u.AsSpan(j * cols, cols);
                    float ujj = uj[j];
                    for (int r = 0; r < n; r++)
                    {
                        var wr = w.AsSpan((r0 + r) * cols, cols);
                        float x = wr[j];
                        int q = grid.Nearest(x, a[r * bs + j - c0], b[r * bs + j - c0], out float v);
                        grid.SetCode(output.AsSpan((r0 + r) * rowBytes + c0 / bs * bb, bb), j - c0, q);
                        if (values is not null) values[(r0 + r) * cols + j] = v;
                        float e = (x - v) / ujj;
                        err[r * batch + j - b0] = e;
                        if (e != 0 && j + 1 < b1) Axpy(-e, uj[(j + 1)..b1], wr[(j + 1)..b1]);
                    }
                }
            }
            if (b1 < cols) LazyUpdate(w, r0, n, cols, u, err, batch, b0, b1);
        }
    }

    /// <summary>W[r, b1:] −= Σₖ err[r,k]·U[b0+k, b1:] for the tile's rows (GPTQ's lazy batch update).</summary>
    static void LazyUpdate(float[] w, int r0, int n, int cols, float[] u, float[] err, int batch, int b0, int b1) =>
        SubtractProduct(w, r0, n, cols, u, b0, b1 - b0, err, batch, b1);

    /// <summary>
    /// W[r0+r, c0:] −= Σ_{k&lt;k1} E[r·eStride + k]·U[u0+k, c0:] for r &lt; n (W and U row-major with <paramref name="cols"/>
    /// columns). The kernel keeps 4 rows × 16 columns of the sum in registers over all k; the column stretch is the
    /// outer loop, so its slice of U (16 columns × k1) stays in L1 while every row uses it, and U is read from memory
    /// once per call, not once per row.
    /// </summary>
    internal static void SubtractProduct(float[] w, int r0, int n, int cols, float[] u, int u0, int k1, float[] e, int eStride, int c0)
    {
        int fast = Vector256.IsHardwareAccelerated && Fma.IsSupported ? n / 4 * 4 : 0;
        int c = c0;
        if (fast > 0)
            for (; c + 16 <= cols; c += 16)
                for (int r = 0; r < fast; r += 4) Kernel4x16(w, r0 + r, cols, u, e.AsSpan(r * eStride), eStride, u0, k1, c);
        // The rest, one row at a time: columns past the last whole 16, rows past the last whole 4 (or no FMA).
        for (int r = 0; r < n; r++)
        {
            int from = r < fast ? c : c0;
            if (from >= cols) continue;
            for (int k = 0; k < k1; k++)
            {
                float ek = e[r * eStride + k];
                if (ek != 0) Axpy(-ek, u.AsSpan((u0 + k) * cols + from, cols - from), w.AsSpan((r0 + r) * cols + from, cols - from));
            }
        }
    }

    static unsafe void Kernel4x16(float[] w, int row, int cols, float[] u, ReadOnlySpan<float> err, int batch, int b0, int k1, int c)
    {
        fixed (float* pw = w, pu = u, pe = err)
        {
            Vector256<float> a0 = default, a1 = default, a2 = default, a3 = default, a4 = default, a5 = default, a6 = default, a7 = default;
            float* uk = pu + (long)b0 * cols + c;
            for (int k = 0; k < k1; k++, uk += cols)
            {
                var ulo = Avx.LoadVector256(uk);
                var uhi = Avx.LoadVector256(uk + 8);
                var e0 = Vector256.Create(pe[k]);
                var e1 = Vector256.Create(pe[batch + k]);
                var e2 = Vector256.Create(pe[2 * batch + k]);
                var e3 = Vector256.Create(pe[3 * batch + k]);
                a0 = Fma.MultiplyAdd(e0, ulo, a0); a1 = Fma.MultiplyAdd(e0, uhi, a1);
                a2 = Fma.MultiplyAdd(e1, ulo, a2); a3 = Fma.MultiplyAdd(e1, uhi, a3);
                a4 = Fma.MultiplyAdd(e2, ulo, a4); a5 = Fma.MultiplyAdd(e2, uhi, a5);
                a6 = Fma.MultiplyAdd(e3, ulo, a6); a7 = Fma.MultiplyAdd(e3, uhi, a7);
            }
            float* w0 = pw + (long)row * cols + c, w1 = w0 + cols, w2 = w1 + cols, w3 = w2 + cols;
            Avx.Store(w0, Avx.Subtract(Avx.LoadVector256(w0), a0)); Avx.Store(w0 + 8, Avx.Subtract(Avx.LoadVector256(w0 + 8), a1));
            Avx.Store(w1, Avx.Subtract(Avx.LoadVector256(w1), a2)); Avx.Store(w1 + 8, Avx.Subtract(Avx.LoadVector256(w1 + 8), a3));
            Avx.Store(w2, Avx.Subtract(Avx.LoadVector256(w2), a4)); Avx.Store(w2 + 8, Avx.Subtract(Avx.LoadVector256(w2 + 8), a5));
            Avx.Store(w3, Avx.Subtract(Avx.LoadVector256(w3), a6)); Avx.Store(w3 + 8, Avx.Subtract(Avx.LoadVector256(w3 + 8), a7));
        }
    }

    /// <summary>y += alpha·x.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static void Axpy(float alpha, ReadOnlySpan<float> x, Span<float> y)
    {
        int i = 0;
        if (Vector256.IsHardwareAccelerated && x.Length >= 8)
        {
            ref float px = ref MemoryMarshal.GetReference(x);
            ref float py = ref MemoryMarshal.GetReference(y);
            var va = Vector256.Create(alpha);
            for (; i <= x.Length - 8; i += 8)
            {
                var vx = Vector256.LoadUnsafe(ref px, (nuint)i);
                var vy = Vector256.LoadUnsafe(ref py, (nuint)i);
                (Fma.IsSupported ? Fma.MultiplyAdd(va, vx, vy) : va * vx + vy).StoreUnsafe(ref py, (nuint)i);
            }
        }
        for (; i < x.Length; i++) y[i] += alpha * x[i];
    }

    static float Dot(ReadOnlySpan<float> x, ReadOnlySpan<float> y)
    {
        int i = 0;
        float s = 0;
        if (Vector256.IsHardwareAccelerated && x.Length >= 8)
        {
            ref float px = ref MemoryMarshal.GetReference(x);
            ref float py = ref MemoryMarshal.GetReference(y);
            var acc = Vector256<float>.Zero;
            for (; i <= x.Length - 8; i += 8)
            {
                var vx = Vector256.LoadUnsafe(ref px, (nuint)i);
                var vy = Vector256.LoadUnsafe(ref py, (nuint)i);
                acc = Fma.IsSupported ? Fma.MultiplyAdd(vx, vy, acc) : vx * vy + acc;
            }
            s = Vector256.Sum(acc);
        }
        for (; i < x.Length; i++) s += x[i] * y[i];
        return s;
    }
}
