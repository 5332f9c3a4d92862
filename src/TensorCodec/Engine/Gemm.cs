using System.Numerics.Tensors;
using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
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
    /// y[t·ldy + i] = w[i]·x[t] for i &lt; rows, t &lt; n. w is [rows][cols], x is [n][cols], both dense.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void RowsTimesTokens(float* w, int rows, int cols, float* x, int n, float* y, int ldy)
    {
        int i = 0;
        if (Simd.AllowAvx2 && Vector256.IsHardwareAccelerated && cols >= 8)
        {
            for (; i + 2 <= rows; i += 2)
            {
                float* w0 = w + (long)i * cols, w1 = w0 + cols;
                int t = 0;
                for (; t + 4 <= n; t += 4)
                {
                    float* x0 = x + (long)t * cols, x1 = x0 + cols, x2 = x1 + cols, x3 = x2 + cols;
                    Vector256<float> a00 = default, a01 = default, a02 = default, a03 = default;
                    Vector256<float> a10 = default, a11 = default, a12 = default, a13 = default;
                    int k = 0;
                    for (; k + 8 <= cols; k += 8)
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
                    float s00 = Vector256.Sum(a00), s01 = Vector256.Sum(a01), s02 = Vector256.Sum(a02), s03 = Vector256.Sum(a03);
                    float s10 = Vector256.Sum(a10), s11 = Vector256.Sum(a11), s12 = Vector256.Sum(a12), s13 = Vector256.Sum(a13);
                    for (; k < cols; k++)
                    {
                        s00 += w0[k] * x0[k]; s01 += w0[k] * x1[k]; s02 += w0[k] * x2[k]; s03 += w0[k] * x3[k];
                        s10 += w1[k] * x0[k]; s11 += w1[k] * x1[k]; s12 += w1[k] * x2[k]; s13 += w1[k] * x3[k];
                    }
                    float* yt = y + (long)t * ldy + i;
                    yt[0] = s00; yt[1] = s10; yt += ldy;
                    yt[0] = s01; yt[1] = s11; yt += ldy;
                    yt[0] = s02; yt[1] = s12; yt += ldy;
                    yt[0] = s03; yt[1] = s13;
                }
                for (; t < n; t++)
                {
                    var xt = new ReadOnlySpan<float>(x + (long)t * cols, cols);
                    y[(long)t * ldy + i] = TensorPrimitives.Dot(new ReadOnlySpan<float>(w0, cols), xt);
                    y[(long)t * ldy + i + 1] = TensorPrimitives.Dot(new ReadOnlySpan<float>(w1, cols), xt);
                }
            }
        }
        for (; i < rows; i++)
        {
            var wi = new ReadOnlySpan<float>(w + (long)i * cols, cols);
            for (int t = 0; t < n; t++) y[(long)t * ldy + i] = TensorPrimitives.Dot(wi, new ReadOnlySpan<float>(x + (long)t * cols, cols));
        }
    }
}
