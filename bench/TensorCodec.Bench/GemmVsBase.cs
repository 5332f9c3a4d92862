using System.Diagnostics;
using System.Numerics.Tensors;
using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;
using TensorCodec.Engine;
using TensorCodec.Numerics;

namespace TensorCodec.Bench;

/// <summary>
/// `e2e gemm-vs-base ROWS COLS TOKENS [ROUNDS]`: the engine's F32 GEMM and integer GEMM against the kernels
/// they replaced (issue 14), in one process with the rounds interleaved (base, new, base, …), so a shared
/// machine's load hits both alike. Medians of ROUNDS; the ratio is new over base throughput.
/// </summary>
static unsafe class GemmVsBase
{
    public static void Run(int rows, int cols, int n, int rounds)
    {
        var rng = new Random(3);
        var w = GC.AllocateUninitializedArray<float>(rows * cols, pinned: true);
        for (int i = 0; i < w.Length; i++) w[i] = (float)(rng.NextDouble() - 0.5) * 0.1f;
        var x = GC.AllocateUninitializedArray<float>(n * cols, pinned: true);
        for (int i = 0; i < x.Length; i++) x[i] = (float)(rng.NextDouble() - 0.5);
        var y = GC.AllocateUninitializedArray<float>(n * rows, pinned: true);
        double macs = (double)rows * cols * n / 1e9;
        Console.WriteLine($"{rows}x{cols} weights, {n} tokens, one thread, SIMD level {Simd.Level}: GMAC per second of thread CPU time, median of {rounds} interleaved rounds (load: {File.ReadAllText("/proc/loadavg").Trim()})");
        Console.WriteLine("| product | base | new | new / base |");
        Console.WriteLine("|---|---:|---:|---:|");
        // Thread CPU time, not wall time: on a shared machine a descheduled round would count the other processes' turns.
        static double Time(Action a) { double t0 = ThreadCpuSeconds(); a(); return ThreadCpuSeconds() - t0; }
        void Pair(string name, Action baseline, Action current)
        {
            baseline(); current(); // JIT and caches
            var tb = new List<double>(); var tn = new List<double>();
            for (int r = 0; r < rounds; r++) { tb.Add(Time(baseline)); tn.Add(Time(current)); }
            tb.Sort(); tn.Sort();
            double b = tb[rounds / 2], c = tn[rounds / 2];
            Console.WriteLine($"| {name} | {macs / b:F2} | {macs / c:F2} | {b / c:F2}x |");
        }
        fixed (float* pw = w, px = x, py = y)
        {
            float* fw = pw, fx = px, fy = py;
            var f32 = new F32Matrix(pw, rows, cols);
            Pair("f32 GEMM", () => RowsTimesTokens(fw, rows, cols, fx, n, fy, rows), () => f32.MatMul(x, n, y, 0, rows));
            foreach (var type in new[] { "q8_0", "q4_0", "q4_K", "q5_K", "q6_K", "q3_K", "q2_K" })
            {
                var fmt = Formats.BlockFormats.Get(type);
                var packed = GC.AllocateUninitializedArray<byte>(rows * cols / fmt.BlockSize * fmt.BlockBytes, pinned: true);
                fmt.Quantize(w, packed, cols, default);
                fixed (byte* pp = packed)
                {
                    var m = QuantizedMatrix.TryCreate(fmt.GgmlTypeId, pp, rows, cols, null)!;
                    int stride = GgmlQ8.RowBytes(m.Activation, cols);
                    var xq = GC.AllocateUninitializedArray<byte>(n * stride, pinned: true);
                    fixed (byte* pq = xq)
                    {
                        byte* q = pq, wp = pp;
                        for (int t = 0; t < n; t++) GgmlQ8.Quantize(m.Activation, fx + (long)t * cols, cols, q + (long)t * stride);
                        Pair($"{type} decoded tiles + F32 GEMM", () => BaseDecodedTiles(m, fx, n, fy, rows), () => WeightMatrix.MatMulByDecodedTiles(m, x, n, y, 0, rows));
                        int rowBytes = packed.Length / rows;
                        Pair($"{type} integer GEMM", () => BaseGgml(type, wp, rowBytes, rows, cols, q, stride, n, fy), () => m.MatMulGgml(q, stride, n, fy, 0, rows));
                        foreach (var tb in (Environment.GetEnvironmentVariable("TILE_SWEEP") ?? "").Split(',', StringSplitOptions.RemoveEmptyEntries))
                        {
                            int keep = QuantizedMatrix.TileBytes;
                            Pair($"{type} integer GEMM, tile {keep} vs {tb} bytes", () => m.MatMulGgml(q, stride, n, fy, 0, rows),
                                () => { QuantizedMatrix.TileBytes = int.Parse(tb); m.MatMulGgml(q, stride, n, fy, 0, rows); QuantizedMatrix.TileBytes = keep; });
                        }
                        if (Simd.Level >= SimdLevel.Avx512) // the AVX2 kernels (base: main before the AVX-512 ones) against this level's
                            Pair($"{type} integer GEMM, AVX2 kernels vs {Simd.Level}", () => { using (Simd.Force(SimdLevel.Avx2)) m.MatMulGgml(q, stride, n, fy, 0, rows); }, () => m.MatMulGgml(q, stride, n, fy, 0, rows));
                    }
                }
            }
        }
    }

    [System.Runtime.InteropServices.DllImport("libc", EntryPoint = "clock_gettime")]
    static extern int ClockGetTime(int clock, out TimeSpec ts);
    struct TimeSpec { public long Seconds, Nanoseconds; }
    const int ClockThreadCpuTime = 3; // CLOCK_THREAD_CPUTIME_ID (Linux)

    static double ThreadCpuSeconds() =>
        ClockGetTime(ClockThreadCpuTime, out var ts) == 0 ? ts.Seconds + ts.Nanoseconds * 1e-9 : Stopwatch.GetTimestamp() / (double)Stopwatch.Frequency;

    /// <summary>The base's WeightMatrix.MatMulByDecodedTiles: tiles of ~32 KB of rows, then its F32 GEMM.</summary>
    static void BaseDecodedTiles(IWeightMatrix m, float* x, int n, float* y, int rows)
    {
        int cols = m.Cols;
        int tileRows = Math.Clamp(8192 / cols, 2, 64) & ~1;
        var tile = new float[tileRows * cols];
        fixed (float* pt = tile)
            for (int r = 0; r < rows; r += tileRows)
            {
                int nr = Math.Min(tileRows, rows - r);
                for (int i = 0; i < nr; i++) m.ReadRow(r + i, tile.AsSpan(i * cols, cols));
                RowsTimesTokens(pt, nr, cols, x, n, y + r, rows);
            }
    }

    /// <summary>The base's QuantizedMatrix.MatMulGgml driver: one row × four tokens per kernel call.</summary>
    static void BaseGgml(string type, byte* data, int rowBytes, int rows, int cols, byte* xq, int xStride, int n, float* y)
    {
        float* r4 = stackalloc float[4];
        int tile = Math.Max(4, 98304 / xStride & ~3);
        for (int t0 = 0; t0 < n; t0 += tile)
        for (int r = 0; r < rows; r++)
        {
            byte* w = data + (long)r * rowBytes;
            for (int t = t0; t < Math.Min(n, t0 + tile); t += 4)
            {
                byte* x0 = xq + (long)t * xStride;
                byte* x1 = xq + (long)Math.Min(t + 1, n - 1) * xStride;
                byte* x2 = xq + (long)Math.Min(t + 2, n - 1) * xStride;
                byte* x3 = xq + (long)Math.Min(t + 3, n - 1) * xStride;
                switch (type)
                {
                    case "q8_0": BaseQuantizedGemm.Q8_0(w, cols, x0, x1, x2, x3, r4); break;
                    case "q4_0": BaseQuantizedGemm.Q4_0(w, cols, x0, x1, x2, x3, r4); break;
                    case "q4_K": BaseQuantizedGemm.Q4_K(w, cols, x0, x1, x2, x3, r4); break;
                    case "q6_K": BaseQuantizedGemm.Q6_K(w, cols, x0, x1, x2, x3, r4); break;
                    case "q5_K": BaseQuantizedGemm.Q5_K(w, cols, x0, x1, x2, x3, r4); break;
                    case "q3_K": BaseQuantizedGemm.Q3_K(w, cols, x0, x1, x2, x3, r4); break;
                    default: BaseQuantizedGemm.Q2_K(w, cols, x0, x1, x2, x3, r4); break;
                }
                int mm = Math.Min(4, n - t);
                for (int k = 0; k < mm; k++) y[(long)(t + k) * rows + r] = r4[k];
            }
        }
    }

    /// <summary>
    /// y[t·ldy + i] = w[i]·x[t] for i &lt; rows, t &lt; n. w is [rows][cols], x is [n][cols], both dense.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    static void RowsTimesTokens(float* w, int rows, int cols, float* x, int n, float* y, int ldy)
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

/// <summary>The base's integer GEMM kernels (one weight row × four tokens), unchanged, to time against.</summary>
static unsafe class BaseQuantizedGemm
{



    static Vector256<short> Ones16 => Vector256.Create((short)1);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static Vector256<int> Madd(Vector256<byte> u, Vector256<sbyte> x, Vector256<short> scale) =>
        Avx2.MultiplyAddAdjacent(Avx2.MultiplyAddAdjacent(u, x), scale);

    /// <summary>q8_0 × q8_0: per 32, d_w·d_x·Σ w·x.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void Q8_0(byte* w, int cols, byte* x0, byte* x1, byte* x2, byte* x3, float* result)
    {
        int nb = cols / 32;
        float* d0 = (float*)(x0 + cols), d1 = (float*)(x1 + cols), d2 = (float*)(x2 + cols), d3 = (float*)(x3 + cols);
        Vector256<float> a0 = default, a1 = default, a2 = default, a3 = default;
        for (int b = 0; b < nb; b++, w += 34)
        {
            var wq = Vector256.Load((sbyte*)(w + 2));
            var aw = Avx2.Abs(wq);
            float dw = QuantizedKernels.Half(w);
            int o = b * 32;
            a0 = Fma.MultiplyAdd(Avx.ConvertToVector256Single(Avx2.MultiplyAddAdjacent(Avx2.MultiplyAddAdjacent(aw, Avx2.Sign(Vector256.Load((sbyte*)x0 + o), wq)), Ones16)), Vector256.Create(dw * d0[b]), a0);
            a1 = Fma.MultiplyAdd(Avx.ConvertToVector256Single(Avx2.MultiplyAddAdjacent(Avx2.MultiplyAddAdjacent(aw, Avx2.Sign(Vector256.Load((sbyte*)x1 + o), wq)), Ones16)), Vector256.Create(dw * d1[b]), a1);
            a2 = Fma.MultiplyAdd(Avx.ConvertToVector256Single(Avx2.MultiplyAddAdjacent(Avx2.MultiplyAddAdjacent(aw, Avx2.Sign(Vector256.Load((sbyte*)x2 + o), wq)), Ones16)), Vector256.Create(dw * d2[b]), a2);
            a3 = Fma.MultiplyAdd(Avx.ConvertToVector256Single(Avx2.MultiplyAddAdjacent(Avx2.MultiplyAddAdjacent(aw, Avx2.Sign(Vector256.Load((sbyte*)x3 + o), wq)), Ones16)), Vector256.Create(dw * d3[b]), a3);
        }
        result[0] = Vector256.Sum(a0); result[1] = Vector256.Sum(a1); result[2] = Vector256.Sum(a2); result[3] = Vector256.Sum(a3);
    }

    /// <summary>q4_0 × q8_0: codes 0–15 unsigned, value (q − 8)·d, so Σ(q − 8)·x = Σ q·x − 8·Σx.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void Q4_0(byte* w, int cols, byte* x0, byte* x1, byte* x2, byte* x3, float* result)
    {
        int nb = cols / 32;
        float* d0 = (float*)(x0 + cols), d1 = (float*)(x1 + cols), d2 = (float*)(x2 + cols), d3 = (float*)(x3 + cols);
        int* s0 = (int*)(d0 + nb), s1 = (int*)(d1 + nb), s2 = (int*)(d2 + nb), s3 = (int*)(d3 + nb);
        Vector256<float> a0 = default, a1 = default, a2 = default, a3 = default;
        float c0 = 0, c1 = 0, c2 = 0, c3 = 0;
        var m4 = Vector128.Create((byte)0x0F);
        for (int b = 0; b < nb; b++, w += 18)
        {
            var raw = Vector128.Load(w + 2);
            var q = Vector256.Create(raw & m4, Vector128.ShiftRightLogical(raw.AsUInt16(), 4).AsByte() & m4);
            float dw = QuantizedKernels.Half(w);
            int o = b * 32;
            float e0 = dw * d0[b], e1 = dw * d1[b], e2 = dw * d2[b], e3 = dw * d3[b];
            a0 = Fma.MultiplyAdd(Avx.ConvertToVector256Single(Madd(q, Vector256.Load((sbyte*)x0 + o), Ones16)), Vector256.Create(e0), a0);
            a1 = Fma.MultiplyAdd(Avx.ConvertToVector256Single(Madd(q, Vector256.Load((sbyte*)x1 + o), Ones16)), Vector256.Create(e1), a1);
            a2 = Fma.MultiplyAdd(Avx.ConvertToVector256Single(Madd(q, Vector256.Load((sbyte*)x2 + o), Ones16)), Vector256.Create(e2), a2);
            a3 = Fma.MultiplyAdd(Avx.ConvertToVector256Single(Madd(q, Vector256.Load((sbyte*)x3 + o), Ones16)), Vector256.Create(e3), a3);
            c0 += e0 * s0[b]; c1 += e1 * s1[b]; c2 += e2 * s2[b]; c3 += e3 * s3[b];
        }
        result[0] = Vector256.Sum(a0) - 8 * c0; result[1] = Vector256.Sum(a1) - 8 * c1;
        result[2] = Vector256.Sum(a2) - 8 * c2; result[3] = Vector256.Sum(a3) - 8 * c3;
    }

    /// <summary>
    /// q4_K × q8_K: value d·sc·q − dmin·m per sub-block of 32; Σ over the super-block of
    /// sc·(Σ q·x) in int32, the mins through the activation's 16-value sums (vpmaddwd with each min twice).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void Q4_K(byte* w, int cols, byte* x0, byte* x1, byte* x2, byte* x3, float* result)
    {
        int nsb = cols / 256;
        float* d0 = (float*)(x0 + cols), d1 = (float*)(x1 + cols), d2 = (float*)(x2 + cols), d3 = (float*)(x3 + cols);
        short* b0 = (short*)(d0 + nsb), b1 = (short*)(d1 + nsb), b2 = (short*)(d2 + nsb), b3 = (short*)(d3 + nsb);
        Vector256<float> a0 = default, a1 = default, a2 = default, a3 = default;
        Vector256<float> m0 = default, m1 = default, m2 = default, m3 = default;
        var mask = Vector256.Create((byte)0x0F);
        byte* sc = stackalloc byte[8];
        byte* mn = stackalloc byte[8];
        short* mins = stackalloc short[16];
        for (int s = 0; s < nsb; s++, w += 144)
        {
            float d = QuantizedKernels.Half(w), dmin = QuantizedKernels.Half(w + 2);
            QuantizedKernels.ScalesMinsK4(w + 4, sc, mn);
            for (int j = 0; j < 8; j++) { mins[2 * j] = mn[j]; mins[2 * j + 1] = mn[j]; }
            Vector256<int> i0 = default, i1 = default, i2 = default, i3 = default;
            byte* qs = w + 16;
            int o = s * 256;
            for (int j = 0; j < 4; j++)
            {
                var raw = Vector256.Load(qs + 32 * j);
                var lo = raw & mask;
                var hi = Vector256.ShiftRightLogical(raw.AsUInt16(), 4).AsByte() & mask;
                var sl = Vector256.Create((short)sc[2 * j]);
                var sh = Vector256.Create((short)sc[2 * j + 1]);
                int k = o + 64 * j;
                i0 += Madd(lo, Vector256.Load((sbyte*)x0 + k), sl) + Madd(hi, Vector256.Load((sbyte*)x0 + k + 32), sh);
                i1 += Madd(lo, Vector256.Load((sbyte*)x1 + k), sl) + Madd(hi, Vector256.Load((sbyte*)x1 + k + 32), sh);
                i2 += Madd(lo, Vector256.Load((sbyte*)x2 + k), sl) + Madd(hi, Vector256.Load((sbyte*)x2 + k + 32), sh);
                i3 += Madd(lo, Vector256.Load((sbyte*)x3 + k), sl) + Madd(hi, Vector256.Load((sbyte*)x3 + k + 32), sh);
            }
            var mv = Vector256.Load(mins);
            a0 = Fma.MultiplyAdd(Avx.ConvertToVector256Single(i0), Vector256.Create(d * d0[s]), a0);
            a1 = Fma.MultiplyAdd(Avx.ConvertToVector256Single(i1), Vector256.Create(d * d1[s]), a1);
            a2 = Fma.MultiplyAdd(Avx.ConvertToVector256Single(i2), Vector256.Create(d * d2[s]), a2);
            a3 = Fma.MultiplyAdd(Avx.ConvertToVector256Single(i3), Vector256.Create(d * d3[s]), a3);
            m0 = Fma.MultiplyAdd(Avx.ConvertToVector256Single(Avx2.MultiplyAddAdjacent(Vector256.Load(b0 + s * 16), mv)), Vector256.Create(dmin * d0[s]), m0);
            m1 = Fma.MultiplyAdd(Avx.ConvertToVector256Single(Avx2.MultiplyAddAdjacent(Vector256.Load(b1 + s * 16), mv)), Vector256.Create(dmin * d1[s]), m1);
            m2 = Fma.MultiplyAdd(Avx.ConvertToVector256Single(Avx2.MultiplyAddAdjacent(Vector256.Load(b2 + s * 16), mv)), Vector256.Create(dmin * d2[s]), m2);
            m3 = Fma.MultiplyAdd(Avx.ConvertToVector256Single(Avx2.MultiplyAddAdjacent(Vector256.Load(b3 + s * 16), mv)), Vector256.Create(dmin * d3[s]), m3);
        }
        result[0] = Vector256.Sum(a0) - Vector256.Sum(m0); result[1] = Vector256.Sum(a1) - Vector256.Sum(m1);
        result[2] = Vector256.Sum(a2) - Vector256.Sum(m2); result[3] = Vector256.Sum(a3) - Vector256.Sum(m3);
    }

    /// <summary>q5_K × q8_K: q4_K with a fifth bit from qh (codes 0–31).</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void Q5_K(byte* w, int cols, byte* x0, byte* x1, byte* x2, byte* x3, float* result)
    {
        int nsb = cols / 256;
        float* d0 = (float*)(x0 + cols), d1 = (float*)(x1 + cols), d2 = (float*)(x2 + cols), d3 = (float*)(x3 + cols);
        short* b0 = (short*)(d0 + nsb), b1 = (short*)(d1 + nsb), b2 = (short*)(d2 + nsb), b3 = (short*)(d3 + nsb);
        Vector256<float> a0 = default, a1 = default, a2 = default, a3 = default;
        Vector256<float> m0 = default, m1 = default, m2 = default, m3 = default;
        var mask = Vector256.Create((byte)0x0F);
        var bit4 = Vector256.Create((byte)0x10);
        byte* sc = stackalloc byte[8];
        byte* mn = stackalloc byte[8];
        short* mins = stackalloc short[16];
        for (int s = 0; s < nsb; s++, w += 176)
        {
            float d = QuantizedKernels.Half(w), dmin = QuantizedKernels.Half(w + 2);
            QuantizedKernels.ScalesMinsK4(w + 4, sc, mn);
            for (int j = 0; j < 8; j++) { mins[2 * j] = mn[j]; mins[2 * j + 1] = mn[j]; }
            Vector256<int> i0 = default, i1 = default, i2 = default, i3 = default;
            var qh = Vector256.Load(w + 16).AsUInt16();
            byte* qs = w + 48;
            int o = s * 256;
            for (int j = 0; j < 4; j++)
            {
                var raw = Vector256.Load(qs + 32 * j);
                var lo = (raw & mask) | (Vector256.ShiftLeft(qh, 4).AsByte() & bit4);
                var hi = (Vector256.ShiftRightLogical(raw.AsUInt16(), 4).AsByte() & mask) | (Vector256.ShiftLeft(qh, 3).AsByte() & bit4);
                qh = Vector256.ShiftRightLogical(qh, 2);
                var sl = Vector256.Create((short)sc[2 * j]);
                var sh = Vector256.Create((short)sc[2 * j + 1]);
                int k = o + 64 * j;
                i0 += Madd(lo, Vector256.Load((sbyte*)x0 + k), sl) + Madd(hi, Vector256.Load((sbyte*)x0 + k + 32), sh);
                i1 += Madd(lo, Vector256.Load((sbyte*)x1 + k), sl) + Madd(hi, Vector256.Load((sbyte*)x1 + k + 32), sh);
                i2 += Madd(lo, Vector256.Load((sbyte*)x2 + k), sl) + Madd(hi, Vector256.Load((sbyte*)x2 + k + 32), sh);
                i3 += Madd(lo, Vector256.Load((sbyte*)x3 + k), sl) + Madd(hi, Vector256.Load((sbyte*)x3 + k + 32), sh);
            }
            var mv = Vector256.Load(mins);
            a0 = Fma.MultiplyAdd(Avx.ConvertToVector256Single(i0), Vector256.Create(d * d0[s]), a0);
            a1 = Fma.MultiplyAdd(Avx.ConvertToVector256Single(i1), Vector256.Create(d * d1[s]), a1);
            a2 = Fma.MultiplyAdd(Avx.ConvertToVector256Single(i2), Vector256.Create(d * d2[s]), a2);
            a3 = Fma.MultiplyAdd(Avx.ConvertToVector256Single(i3), Vector256.Create(d * d3[s]), a3);
            m0 = Fma.MultiplyAdd(Avx.ConvertToVector256Single(Avx2.MultiplyAddAdjacent(Vector256.Load(b0 + s * 16), mv)), Vector256.Create(dmin * d0[s]), m0);
            m1 = Fma.MultiplyAdd(Avx.ConvertToVector256Single(Avx2.MultiplyAddAdjacent(Vector256.Load(b1 + s * 16), mv)), Vector256.Create(dmin * d1[s]), m1);
            m2 = Fma.MultiplyAdd(Avx.ConvertToVector256Single(Avx2.MultiplyAddAdjacent(Vector256.Load(b2 + s * 16), mv)), Vector256.Create(dmin * d2[s]), m2);
            m3 = Fma.MultiplyAdd(Avx.ConvertToVector256Single(Avx2.MultiplyAddAdjacent(Vector256.Load(b3 + s * 16), mv)), Vector256.Create(dmin * d3[s]), m3);
        }
        result[0] = Vector256.Sum(a0) - Vector256.Sum(m0); result[1] = Vector256.Sum(a1) - Vector256.Sum(m1);
        result[2] = Vector256.Sum(a2) - Vector256.Sum(m2); result[3] = Vector256.Sum(a3) - Vector256.Sum(m3);
    }

    /// <summary>
    /// q6_K × q8_K: codes 0–63 unsigned, value d·sc·(q − 32) with an int8 scale per 16, so the
    /// super-block's integer sum is Σ sc·(Σ q·x) − 32·Σ sc·(Σx per 16).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void Q6_K(byte* w, int cols, byte* x0, byte* x1, byte* x2, byte* x3, float* result)
    {
        int nsb = cols / 256;
        float* d0 = (float*)(x0 + cols), d1 = (float*)(x1 + cols), d2 = (float*)(x2 + cols), d3 = (float*)(x3 + cols);
        short* b0 = (short*)(d0 + nsb), b1 = (short*)(d1 + nsb), b2 = (short*)(d2 + nsb), b3 = (short*)(d3 + nsb);
        Vector256<float> a0 = default, a1 = default, a2 = default, a3 = default;
        short* sc16 = stackalloc short[16];
        for (int s = 0; s < nsb; s++, w += 210)
        {
            float d = QuantizedKernels.Half(w + 208);
            sbyte* scales = (sbyte*)(w + 192);
            for (int i = 0; i < 16; i++) sc16[i] = scales[i];
            var scv = Vector256.Load(sc16);
            int o = s * 256;
            // The −32 offset: 32·Σ sc·bsum per token, subtracted from the integer sum.
            var i0 = -Vector256.ShiftLeft(Avx2.MultiplyAddAdjacent(Vector256.Load(b0 + s * 16), scv), 5);
            var i1 = -Vector256.ShiftLeft(Avx2.MultiplyAddAdjacent(Vector256.Load(b1 + s * 16), scv), 5);
            var i2 = -Vector256.ShiftLeft(Avx2.MultiplyAddAdjacent(Vector256.Load(b2 + s * 16), scv), 5);
            var i3 = -Vector256.ShiftLeft(Avx2.MultiplyAddAdjacent(Vector256.Load(b3 + s * 16), scv), 5);
            for (int n = 0; n < 2; n++)
            {
                QuantizedKernels.UnpackQ6K(w, n, out var q0, out var q1, out var q2, out var q3);
                sbyte* sc = scales + 8 * n;
                Block6(q0, sc[0], sc[1], o + 128 * n, x0, x1, x2, x3, ref i0, ref i1, ref i2, ref i3);
                Block6(q1, sc[2], sc[3], o + 128 * n + 32, x0, x1, x2, x3, ref i0, ref i1, ref i2, ref i3);
                Block6(q2, sc[4], sc[5], o + 128 * n + 64, x0, x1, x2, x3, ref i0, ref i1, ref i2, ref i3);
                Block6(q3, sc[6], sc[7], o + 128 * n + 96, x0, x1, x2, x3, ref i0, ref i1, ref i2, ref i3);
            }
            a0 = Fma.MultiplyAdd(Avx.ConvertToVector256Single(i0), Vector256.Create(d * d0[s]), a0);
            a1 = Fma.MultiplyAdd(Avx.ConvertToVector256Single(i1), Vector256.Create(d * d1[s]), a1);
            a2 = Fma.MultiplyAdd(Avx.ConvertToVector256Single(i2), Vector256.Create(d * d2[s]), a2);
            a3 = Fma.MultiplyAdd(Avx.ConvertToVector256Single(i3), Vector256.Create(d * d3[s]), a3);
        }
        result[0] = Vector256.Sum(a0); result[1] = Vector256.Sum(a1); result[2] = Vector256.Sum(a2); result[3] = Vector256.Sum(a3);
    }

    /// <summary>One 32-value block of unsigned codes in two 16-value halves with their own scale, for four tokens.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static void Block6(Vector256<byte> q, sbyte scLo, sbyte scHi, int k, byte* x0, byte* x1, byte* x2, byte* x3,
        ref Vector256<int> i0, ref Vector256<int> i1, ref Vector256<int> i2, ref Vector256<int> i3)
    {
        // int16 lanes 0–7 of vpmaddubsw hold values 0–15, lanes 8–15 values 16–31.
        var scv = Vector256.Create(Vector128.Create((short)scLo), Vector128.Create((short)scHi));
        i0 += Madd(q, Vector256.Load((sbyte*)x0 + k), scv); // |pair| ≤ 2·63·127 fits int16
        i1 += Madd(q, Vector256.Load((sbyte*)x1 + k), scv);
        i2 += Madd(q, Vector256.Load((sbyte*)x2 + k), scv);
        i3 += Madd(q, Vector256.Load((sbyte*)x3 + k), scv);
    }

    /// <summary>
    /// q3_K × q8_K: codes low | hbit·4 in 0–7, value d·(sc − 32)·(q − 4) per 16, so the integer sum
    /// is Σ sc·(Σ q·x) − 4·Σ sc·(Σx per 16).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void Q3_K(byte* w, int cols, byte* x0, byte* x1, byte* x2, byte* x3, float* result)
    {
        int nsb = cols / 256;
        float* d0 = (float*)(x0 + cols), d1 = (float*)(x1 + cols), d2 = (float*)(x2 + cols), d3 = (float*)(x3 + cols);
        short* b0 = (short*)(d0 + nsb), b1 = (short*)(d1 + nsb), b2 = (short*)(d2 + nsb), b3 = (short*)(d3 + nsb);
        Vector256<float> a0 = default, a1 = default, a2 = default, a3 = default;
        var m3 = Vector256.Create((byte)3);
        var b2v = Vector256.Create((byte)4);
        sbyte* sc = stackalloc sbyte[16];
        short* sc16 = stackalloc short[16];
        for (int s = 0; s < nsb; s++, w += 110)
        {
            float d = QuantizedKernels.Half(w + 108);
            QuantizedKernels.ScalesK3(w + 96, sc);
            for (int i = 0; i < 16; i++) sc16[i] = sc[i];
            var scv = Vector256.Load(sc16);
            var i0 = -Vector256.ShiftLeft(Avx2.MultiplyAddAdjacent(Vector256.Load(b0 + s * 16), scv), 2);
            var i1 = -Vector256.ShiftLeft(Avx2.MultiplyAddAdjacent(Vector256.Load(b1 + s * 16), scv), 2);
            var i2 = -Vector256.ShiftLeft(Avx2.MultiplyAddAdjacent(Vector256.Load(b2 + s * 16), scv), 2);
            var i3 = -Vector256.ShiftLeft(Avx2.MultiplyAddAdjacent(Vector256.Load(b3 + s * 16), scv), 2);
            var hm = Vector256.Load(w).AsUInt16();
            int o = s * 256;
            for (int n = 0; n < 2; n++)
            {
                var q = Vector256.Load(w + 32 + 32 * n).AsUInt16();
                for (int j = 0; j < 4; j++)
                {
                    var code = (Vector256.ShiftRightLogical(q, 2 * j).AsByte() & m3) | (Vector256.ShiftLeft(hm, 2).AsByte() & b2v);
                    hm = Vector256.ShiftRightLogical(hm, 1);
                    int k = 8 * n + 2 * j;
                    Block6(code, sc[k], sc[k + 1], o + 128 * n + 32 * j, x0, x1, x2, x3, ref i0, ref i1, ref i2, ref i3);
                }
            }
            a0 = Fma.MultiplyAdd(Avx.ConvertToVector256Single(i0), Vector256.Create(d * d0[s]), a0);
            a1 = Fma.MultiplyAdd(Avx.ConvertToVector256Single(i1), Vector256.Create(d * d1[s]), a1);
            a2 = Fma.MultiplyAdd(Avx.ConvertToVector256Single(i2), Vector256.Create(d * d2[s]), a2);
            a3 = Fma.MultiplyAdd(Avx.ConvertToVector256Single(i3), Vector256.Create(d * d3[s]), a3);
        }
        result[0] = Vector256.Sum(a0); result[1] = Vector256.Sum(a1); result[2] = Vector256.Sum(a2); result[3] = Vector256.Sum(a3);
    }

    /// <summary>
    /// q2_K × q8_K: codes 0–3, value d·sc·q − dmin·m per 16 (4-bit sc and m), so the two integer
    /// sums are Σ sc·(Σ q·x) and Σ m·(Σx per 16).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void Q2_K(byte* w, int cols, byte* x0, byte* x1, byte* x2, byte* x3, float* result)
    {
        int nsb = cols / 256;
        float* d0 = (float*)(x0 + cols), d1 = (float*)(x1 + cols), d2 = (float*)(x2 + cols), d3 = (float*)(x3 + cols);
        short* b0 = (short*)(d0 + nsb), b1 = (short*)(d1 + nsb), b2 = (short*)(d2 + nsb), b3 = (short*)(d3 + nsb);
        Vector256<float> a0 = default, a1 = default, a2 = default, a3 = default;
        Vector256<float> m0 = default, m1 = default, m2 = default, m3v = default;
        var m3 = Vector256.Create((byte)3);
        short* mins = stackalloc short[16];
        for (int s = 0; s < nsb; s++, w += 84)
        {
            float d = QuantizedKernels.Half(w + 80), dmin = QuantizedKernels.Half(w + 82);
            for (int i = 0; i < 16; i++) mins[i] = (short)(w[i] >> 4);
            var mv = Vector256.Load(mins);
            Vector256<int> i0 = default, i1 = default, i2 = default, i3 = default;
            int o = s * 256;
            for (int n = 0; n < 2; n++)
            {
                var q = Vector256.Load(w + 16 + 32 * n).AsUInt16();
                for (int j = 0; j < 4; j++)
                {
                    var code = Vector256.ShiftRightLogical(q, 2 * j).AsByte() & m3;
                    int k = 8 * n + 2 * j;
                    var scv = Vector256.Create(Vector128.Create((short)(w[k] & 0xF)), Vector128.Create((short)(w[k + 1] & 0xF)));
                    int xo = o + 128 * n + 32 * j;
                    i0 += Madd(code, Vector256.Load((sbyte*)x0 + xo), scv);
                    i1 += Madd(code, Vector256.Load((sbyte*)x1 + xo), scv);
                    i2 += Madd(code, Vector256.Load((sbyte*)x2 + xo), scv);
                    i3 += Madd(code, Vector256.Load((sbyte*)x3 + xo), scv);
                }
            }
            a0 = Fma.MultiplyAdd(Avx.ConvertToVector256Single(i0), Vector256.Create(d * d0[s]), a0);
            a1 = Fma.MultiplyAdd(Avx.ConvertToVector256Single(i1), Vector256.Create(d * d1[s]), a1);
            a2 = Fma.MultiplyAdd(Avx.ConvertToVector256Single(i2), Vector256.Create(d * d2[s]), a2);
            a3 = Fma.MultiplyAdd(Avx.ConvertToVector256Single(i3), Vector256.Create(d * d3[s]), a3);
            m0 = Fma.MultiplyAdd(Avx.ConvertToVector256Single(Avx2.MultiplyAddAdjacent(Vector256.Load(b0 + s * 16), mv)), Vector256.Create(dmin * d0[s]), m0);
            m1 = Fma.MultiplyAdd(Avx.ConvertToVector256Single(Avx2.MultiplyAddAdjacent(Vector256.Load(b1 + s * 16), mv)), Vector256.Create(dmin * d1[s]), m1);
            m2 = Fma.MultiplyAdd(Avx.ConvertToVector256Single(Avx2.MultiplyAddAdjacent(Vector256.Load(b2 + s * 16), mv)), Vector256.Create(dmin * d2[s]), m2);
            m3v = Fma.MultiplyAdd(Avx.ConvertToVector256Single(Avx2.MultiplyAddAdjacent(Vector256.Load(b3 + s * 16), mv)), Vector256.Create(dmin * d3[s]), m3v);
        }
        result[0] = Vector256.Sum(a0) - Vector256.Sum(m0); result[1] = Vector256.Sum(a1) - Vector256.Sum(m1);
        result[2] = Vector256.Sum(a2) - Vector256.Sum(m2); result[3] = Vector256.Sum(a3) - Vector256.Sum(m3v);
    }
}
