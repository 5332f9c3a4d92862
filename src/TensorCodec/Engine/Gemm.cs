using System.Numerics.Tensors;
using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;
using TensorCodec.Numerics;

namespace TensorCodec.Engine;

/// <summary>
/// The F32 matrix-matrix kernel every weight type ends in: block formats decode a tile of rows
/// to F32 and call this. A 2-row × 4-token register block loads each weight vector once per four
/// tokens and each token vector once per two rows, which is what lets a batch beat n mat-vecs.
/// </summary>
internal static unsafe class Gemm
{
    /// <summary>
    /// y[i] = w[i]·x for i &lt; rows. Four rows share each load of x, and there is no per-row call
    /// overhead, which matters for small models where a row is only 64–256 floats.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)] // hot from the first call: skip tier-0 in short CLI runs
    public static void MatVec(float* w, int rows, int cols, float* x, float* y)
    {
        int i = 0;
        if (Simd.AllowAvx2 && Vector256.IsHardwareAccelerated && cols >= 8)
        {
            for (; i + 4 <= rows; i += 4)
            {
                float* w0 = w + (long)i * cols, w1 = w0 + cols, w2 = w1 + cols, w3 = w2 + cols;
                Vector256<float> a0 = default, a1 = default, a2 = default, a3 = default;
                int k = 0;
                for (; k + 8 <= cols; k += 8)
                {
                    var u = Vector256.Load(x + k);
                    a0 = Vector256.FusedMultiplyAdd(Vector256.Load(w0 + k), u, a0);
                    a1 = Vector256.FusedMultiplyAdd(Vector256.Load(w1 + k), u, a1);
                    a2 = Vector256.FusedMultiplyAdd(Vector256.Load(w2 + k), u, a2);
                    a3 = Vector256.FusedMultiplyAdd(Vector256.Load(w3 + k), u, a3);
                }
                float s0 = Vector256.Sum(a0), s1 = Vector256.Sum(a1), s2 = Vector256.Sum(a2), s3 = Vector256.Sum(a3);
                for (; k < cols; k++) { s0 += w0[k] * x[k]; s1 += w1[k] * x[k]; s2 += w2[k] * x[k]; s3 += w3[k] * x[k]; }
                y[i] = s0; y[i + 1] = s1; y[i + 2] = s2; y[i + 3] = s3;
            }
        }
        var xs = new ReadOnlySpan<float>(x, cols);
        for (; i < rows; i++) y[i] = TensorPrimitives.Dot(new ReadOnlySpan<float>(w + (long)i * cols, cols), xs);
    }

    /// <summary>
    /// K block: a row pair's (or quad's) slice, 2·KC floats, stays in L1/L2 while every token passes over
    /// it, and the tokens' slices (n·KC floats) stay in L2/L3. Measured on a 2-core AMD EPYC (AVX2,
    /// 512 KB L2, 8 MB L3), blocks of 512 or 1024 were 0.87× of unblocked at 2048×2048×64, so
    /// only wider rows (FFN down projections) are split.
    /// </summary>
    internal const int KC = 4096;

    /// <summary>
    /// y[t·ldy + i] = w[i]·x[t] for i &lt; rows, t &lt; n. w is [rows][cols], x is [n][cols], both dense.
    /// K in blocks of <see cref="KC"/> (partial sums accumulate in y); within a block, register tiles of
    /// 2 rows × 4 tokens (AVX2) or 4 × 4 (AVX-512, 32 registers), each output's lanes summed four at a
    /// time (vhaddps).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void RowsTimesTokens(float* w, int rows, int cols, float* x, int n, float* y, int ldy)
    {
        if (rows <= 0 || n <= 0) return;
        if (Simd.AllowAvx512 && Vector512.IsHardwareAccelerated && cols >= 16) Blocked512(w, rows, cols, x, n, y, ldy);
        else if (Simd.AllowAvx2 && Vector256.IsHardwareAccelerated && Avx.IsSupported && cols >= 8) Blocked256(w, rows, cols, x, n, y, ldy);
        else Reference(w, rows, cols, x, n, y, ldy);
    }

    /// <summary>The scalar reference: one dot product per output, in order.</summary>
    internal static void Reference(float* w, int rows, int cols, float* x, int n, float* y, int ldy)
    {
        for (int t = 0; t < n; t++)
            for (int i = 0; i < rows; i++)
            {
                float* wi = w + (long)i * cols, xt = x + (long)t * cols;
                float s = 0;
                for (int k = 0; k < cols; k++) s += wi[k] * xt[k];
                y[(long)t * ldy + i] = s;
            }
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    static void Blocked256(float* w, int rows, int cols, float* x, int n, float* y, int ldy)
    {
        for (int k0 = 0; k0 < cols; k0 += KC)
        {
            int kc = Math.Min(KC, cols - k0);
            bool add = k0 > 0;
            int i = 0;
            // A row pair's K block stays in L1 while every token passes over it.
            for (; i + 2 <= rows; i += 2)
            {
                float* wi = w + (long)i * cols + k0;
                int t = 0;
                for (; t + 4 <= n; t += 4) Micro256x2x4(wi, cols, x + (long)t * cols + k0, kc, y + (long)t * ldy + i, ldy, add);
                for (; t < n; t++)
                {
                    float* xt = x + (long)t * cols + k0, yt = y + (long)t * ldy + i;
                    float s0 = Dot256(wi, xt, kc), s1 = Dot256(wi + cols, xt, kc);
                    if (add) { yt[0] += s0; yt[1] += s1; } else { yt[0] = s0; yt[1] = s1; }
                }
            }
            if (i < rows)
            {
                float* wi = w + (long)i * cols + k0;
                int t = 0;
                for (; t + 4 <= n; t += 4) RowTimes4Tokens(wi, x + (long)t * cols + k0, cols, kc, y + (long)t * ldy + i, ldy, add);
                for (; t < n; t++)
                {
                    float s = Dot256(wi, x + (long)t * cols + k0, kc);
                    float* yt = y + (long)t * ldy + i;
                    *yt = add ? *yt + s : s;
                }
            }
        }
    }

    /// <summary>Rows i, i+1 × tokens t..t+3 over one K block (w0 and x0 point at the block's start).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static void Micro256x2x4(float* w0, int cols, float* x0, int kc, float* y, int ldy, bool add)
    {
        float* w1 = w0 + cols, x1 = x0 + cols, x2 = x1 + cols, x3 = x2 + cols;
        Vector256<float> a00 = default, a01 = default, a02 = default, a03 = default;
        Vector256<float> a10 = default, a11 = default, a12 = default, a13 = default;
        int k = 0;
        for (; k + 8 <= kc; k += 8)
        {
            var v0 = Vector256.Load(w0 + k);
            var v1 = Vector256.Load(w1 + k);
            var u = Vector256.Load(x0 + k);
            a00 = Vector256.FusedMultiplyAdd(v0, u, a00); a10 = Vector256.FusedMultiplyAdd(v1, u, a10);
            u = Vector256.Load(x1 + k);
            a01 = Vector256.FusedMultiplyAdd(v0, u, a01); a11 = Vector256.FusedMultiplyAdd(v1, u, a11);
            u = Vector256.Load(x2 + k);
            a02 = Vector256.FusedMultiplyAdd(v0, u, a02); a12 = Vector256.FusedMultiplyAdd(v1, u, a12);
            u = Vector256.Load(x3 + k);
            a03 = Vector256.FusedMultiplyAdd(v0, u, a03); a13 = Vector256.FusedMultiplyAdd(v1, u, a13);
        }
        var s0 = Sum4(a00, a01, a02, a03);
        var s1 = Sum4(a10, a11, a12, a13);
        for (; k < kc; k++)
        {
            s0 += Vector128.Create(x0[k], x1[k], x2[k], x3[k]) * w0[k];
            s1 += Vector128.Create(x0[k], x1[k], x2[k], x3[k]) * w1[k];
        }
        Store2x4(s0, s1, y, ldy, add);
    }

    /// <summary>
    /// One vector of four dot products a·b[j] (b[j] = b + j·strideB), four accumulators: one weight row
    /// × four tokens (strideB = cols, y strided by ldy) or one token × four rows (y contiguous).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static Vector128<float> Dot256x4(float* a, float* b, int strideB, int kc)
    {
        float* b1 = b + strideB, b2 = b1 + strideB, b3 = b2 + strideB;
        Vector256<float> a0 = default, a1 = default, a2 = default, a3 = default;
        int k = 0;
        for (; k + 8 <= kc; k += 8)
        {
            var u = Vector256.Load(a + k);
            a0 = Vector256.FusedMultiplyAdd(u, Vector256.Load(b + k), a0);
            a1 = Vector256.FusedMultiplyAdd(u, Vector256.Load(b1 + k), a1);
            a2 = Vector256.FusedMultiplyAdd(u, Vector256.Load(b2 + k), a2);
            a3 = Vector256.FusedMultiplyAdd(u, Vector256.Load(b3 + k), a3);
        }
        var s = Sum4(a0, a1, a2, a3);
        for (; k < kc; k++) s += Vector128.Create(b[k], b1[k], b2[k], b3[k]) * a[k];
        return s;
    }

    /// <summary>Row i × tokens t..t+3 (y strided by ldy).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static void RowTimes4Tokens(float* w, float* x, int cols, int kc, float* y, int ldy, bool add)
    {
        var s = Dot256x4(w, x, cols, kc);
        if (add) { y[0] += s[0]; y[ldy] += s[1]; y[2L * ldy] += s[2]; y[3L * ldy] += s[3]; }
        else { y[0] = s[0]; y[ldy] = s[1]; y[2L * ldy] = s[2]; y[3L * ldy] = s[3]; }
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static float Dot256(float* a, float* b, int kc)
    {
        Vector256<float> acc = default;
        int k = 0;
        for (; k + 8 <= kc; k += 8) acc = Vector256.FusedMultiplyAdd(Vector256.Load(a + k), Vector256.Load(b + k), acc);
        float s = Vector256.Sum(acc);
        for (; k < kc; k++) s += a[k] * b[k];
        return s;
    }

    /// <summary>The four horizontal sums of a, b, c, d as one vector (three vhaddps instead of four reductions).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static Vector128<float> Sum4(Vector256<float> a, Vector256<float> b, Vector256<float> c, Vector256<float> d)
    {
        var h = Avx.HorizontalAdd(Avx.HorizontalAdd(a, b), Avx.HorizontalAdd(c, d)); // [a01 b01 c01 d01 | a23 b23 c23 d23] per half
        return h.GetLower() + h.GetUpper();
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static void Store2x4(Vector128<float> s0, Vector128<float> s1, float* y, int ldy, bool add)
    {
        // y[t·ldy + 0] = s0[t], y[t·ldy + 1] = s1[t]: interleave into (s0[t], s1[t]) pairs, one 64-bit store each.
        var lo = Sse.UnpackLow(s0, s1).AsDouble();   // (s0[0], s1[0]), (s0[1], s1[1])
        var hi = Sse.UnpackHigh(s0, s1).AsDouble();  // (s0[2], s1[2]), (s0[3], s1[3])
        double* y0 = (double*)y, y1 = (double*)(y + ldy), y2 = (double*)(y + 2L * ldy), y3 = (double*)(y + 3L * ldy);
        if (add)
        {
            lo = (Vector128.Create(*y0, *y1).AsSingle() + lo.AsSingle()).AsDouble();
            hi = (Vector128.Create(*y2, *y3).AsSingle() + hi.AsSingle()).AsDouble();
        }
        *y0 = lo[0]; *y1 = lo[1]; *y2 = hi[0]; *y3 = hi[1];
    }

    // AVX-512: the same blocking with 16-wide vectors and 4 rows × 4 tokens (16 accumulators of 32 registers).

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    static void Blocked512(float* w, int rows, int cols, float* x, int n, float* y, int ldy)
    {
        for (int k0 = 0; k0 < cols; k0 += KC)
        {
            int kc = Math.Min(KC, cols - k0);
            bool add = k0 > 0;
            int i = 0;
            for (; i + 4 <= rows; i += 4)
            {
                float* wi = w + (long)i * cols + k0;
                int t = 0;
                for (; t + 4 <= n; t += 4) Micro512x4x4(wi, cols, x + (long)t * cols + k0, kc, y + (long)t * ldy + i, ldy, add);
                for (; t < n; t++)
                {
                    // One token × four rows: the four sums are y's four contiguous outputs.
                    var s = Dot512x4(x + (long)t * cols + k0, wi, cols, kc);
                    float* yt = y + (long)t * ldy + i;
                    if (add) s += Vector128.Load(yt);
                    s.Store(yt);
                }
            }
            for (; i < rows; i++)
            {
                float* wi = w + (long)i * cols + k0;
                int t = 0;
                for (; t + 4 <= n; t += 4)
                {
                    var s = Dot512x4(wi, x + (long)t * cols + k0, cols, kc);
                    float* yi = y + (long)t * ldy + i;
                    if (add) { yi[0] += s[0]; yi[ldy] += s[1]; yi[2L * ldy] += s[2]; yi[3L * ldy] += s[3]; }
                    else { yi[0] = s[0]; yi[ldy] = s[1]; yi[2L * ldy] = s[2]; yi[3L * ldy] = s[3]; }
                }
                for (; t < n; t++)
                {
                    float* xt = x + (long)t * cols + k0;
                    Vector512<float> acc = default;
                    int k = 0;
                    for (; k + 16 <= kc; k += 16) acc = Vector512.FusedMultiplyAdd(Vector512.Load(wi + k), Vector512.Load(xt + k), acc);
                    float s = Vector512.Sum(acc);
                    for (; k < kc; k++) s += wi[k] * xt[k];
                    float* yt = y + (long)t * ldy + i;
                    *yt = add ? *yt + s : s;
                }
            }
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static void Micro512x4x4(float* w0, int cols, float* x0, int kc, float* y, int ldy, bool add)
    {
        float* w1 = w0 + cols, w2 = w1 + cols, w3 = w2 + cols;
        float* x1 = x0 + cols, x2 = x1 + cols, x3 = x2 + cols;
        Vector512<float> a00 = default, a01 = default, a02 = default, a03 = default;
        Vector512<float> a10 = default, a11 = default, a12 = default, a13 = default;
        Vector512<float> a20 = default, a21 = default, a22 = default, a23 = default;
        Vector512<float> a30 = default, a31 = default, a32 = default, a33 = default;
        int k = 0;
        for (; k + 16 <= kc; k += 16)
        {
            var v0 = Vector512.Load(w0 + k); var v1 = Vector512.Load(w1 + k);
            var v2 = Vector512.Load(w2 + k); var v3 = Vector512.Load(w3 + k);
            var u = Vector512.Load(x0 + k);
            a00 = Vector512.FusedMultiplyAdd(v0, u, a00); a10 = Vector512.FusedMultiplyAdd(v1, u, a10);
            a20 = Vector512.FusedMultiplyAdd(v2, u, a20); a30 = Vector512.FusedMultiplyAdd(v3, u, a30);
            u = Vector512.Load(x1 + k);
            a01 = Vector512.FusedMultiplyAdd(v0, u, a01); a11 = Vector512.FusedMultiplyAdd(v1, u, a11);
            a21 = Vector512.FusedMultiplyAdd(v2, u, a21); a31 = Vector512.FusedMultiplyAdd(v3, u, a31);
            u = Vector512.Load(x2 + k);
            a02 = Vector512.FusedMultiplyAdd(v0, u, a02); a12 = Vector512.FusedMultiplyAdd(v1, u, a12);
            a22 = Vector512.FusedMultiplyAdd(v2, u, a22); a32 = Vector512.FusedMultiplyAdd(v3, u, a32);
            u = Vector512.Load(x3 + k);
            a03 = Vector512.FusedMultiplyAdd(v0, u, a03); a13 = Vector512.FusedMultiplyAdd(v1, u, a13);
            a23 = Vector512.FusedMultiplyAdd(v2, u, a23); a33 = Vector512.FusedMultiplyAdd(v3, u, a33);
        }
        // Fold each 512-bit accumulator to 256 bits, then reuse the AVX2 four-way sum.
        var s0 = Sum4(Fold(a00), Fold(a01), Fold(a02), Fold(a03));
        var s1 = Sum4(Fold(a10), Fold(a11), Fold(a12), Fold(a13));
        var s2 = Sum4(Fold(a20), Fold(a21), Fold(a22), Fold(a23));
        var s3 = Sum4(Fold(a30), Fold(a31), Fold(a32), Fold(a33));
        for (; k < kc; k++)
        {
            var xv = Vector128.Create(x0[k], x1[k], x2[k], x3[k]);
            s0 += xv * w0[k]; s1 += xv * w1[k]; s2 += xv * w2[k]; s3 += xv * w3[k];
        }
        // Transpose rows×tokens to tokens×rows: y[t·ldy + r] = s_r[t].
        var (c0, c1, c2, c3) = Transpose(s0, s1, s2, s3);
        if (add)
        {
            c0 += Vector128.Load(y); c1 += Vector128.Load(y + ldy);
            c2 += Vector128.Load(y + 2L * ldy); c3 += Vector128.Load(y + 3L * ldy);
        }
        c0.Store(y); c1.Store(y + ldy); c2.Store(y + 2L * ldy); c3.Store(y + 3L * ldy);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static Vector128<float> Dot512x4(float* a, float* b, int strideB, int kc)
    {
        float* b1 = b + strideB, b2 = b1 + strideB, b3 = b2 + strideB;
        Vector512<float> a0 = default, a1 = default, a2 = default, a3 = default;
        int k = 0;
        for (; k + 16 <= kc; k += 16)
        {
            var u = Vector512.Load(a + k);
            a0 = Vector512.FusedMultiplyAdd(u, Vector512.Load(b + k), a0);
            a1 = Vector512.FusedMultiplyAdd(u, Vector512.Load(b1 + k), a1);
            a2 = Vector512.FusedMultiplyAdd(u, Vector512.Load(b2 + k), a2);
            a3 = Vector512.FusedMultiplyAdd(u, Vector512.Load(b3 + k), a3);
        }
        var s = Sum4(Fold(a0), Fold(a1), Fold(a2), Fold(a3));
        for (; k < kc; k++) s += Vector128.Create(b[k], b1[k], b2[k], b3[k]) * a[k];
        return s;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static Vector256<float> Fold(Vector512<float> v) => v.GetLower() + v.GetUpper();

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static (Vector128<float>, Vector128<float>, Vector128<float>, Vector128<float>) Transpose(
        Vector128<float> r0, Vector128<float> r1, Vector128<float> r2, Vector128<float> r3)
    {
        var t0 = Sse.UnpackLow(r0, r1);   // r0[0] r1[0] r0[1] r1[1]
        var t1 = Sse.UnpackHigh(r0, r1);  // r0[2] r1[2] r0[3] r1[3]
        var t2 = Sse.UnpackLow(r2, r3);
        var t3 = Sse.UnpackHigh(r2, r3);
        return (Sse.MoveLowToHigh(t0, t2), Sse.MoveHighToLow(t2, t0), Sse.MoveLowToHigh(t1, t3), Sse.MoveHighToLow(t3, t1));
    }
}
