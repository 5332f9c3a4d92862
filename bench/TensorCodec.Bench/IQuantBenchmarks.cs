using System.Numerics.Tensors;
using BenchmarkDotNet.Attributes;
using BenchmarkDotNet.Configs;
using BenchmarkDotNet.Jobs;
using BenchmarkDotNet.Toolchains.InProcess.Emit;
using TensorCodec.Engine;
using TensorCodec.Formats;

namespace TensorCodec.Bench;

/// <summary>
/// The i-quants, iq4_nl/iq4_xs and q1_0/q2_0, one thread, per type (<see cref="Type"/>):
/// <list type="bullet">
/// <item>quantize and dequantize 4096 values (as <see cref="FormatBenchmarks"/>; f32 GB/s = 16384 B / mean).
///   Dequantize pairs our scalar reference (baseline) with the public entry point (the same code for the
///   types without a fast path, so a ratio of 1 there says so). The quantizers are the scalar references;
///   those that require an importance matrix get one, the others run without.</item>
/// <item>a 16 × 4096 mat-vec (the weights sit in L2): decode each row to F32 and dot it (the engine's
///   path before the fused kernels, baseline), the fused kernel's scalar form, and the kernel as dispatched
///   (AVX2 here), both on activations already in ggml's q8_K/q8_0 layout.</item>
/// <item>a 64-token batch through the same 16 × 4096 matrix: decoded row tiles into the F32 GEMM (what
///   batches of 4 or more use, baseline) against the fused kernel per token (activations quantized once).</item>
/// </list>
/// In-process with a short job (1 warm-up, 5 iterations) so the 88 cases finish in minutes.
/// Run: dotnet bench/TensorCodec.Bench/bin/Release/net10.0/TensorCodec.Bench.dll --filter '*IQuantBenchmarks*'
/// </summary>
[Config(typeof(Config))]
[MemoryDiagnoser]
[GroupBenchmarksBy(BenchmarkLogicalGroupRule.ByCategory, BenchmarkLogicalGroupRule.ByParams)]
[CategoriesColumn]
public unsafe class IQuantBenchmarks
{
    private const int N = FormatBenchmarks.N, Rows = 16;

    private sealed class Config : ManualConfig
    {
        public Config() => AddJob(Job.Default.WithToolchain(InProcessEmitToolchain.Instance)
            .WithLaunchCount(1).WithWarmupCount(1).WithIterationCount(5));
    }

    [Params("iq2_xxs", "iq2_xs", "iq2_s", "iq3_xxs", "iq3_s", "iq1_s", "iq1_m", "iq4_nl", "iq4_xs", "q1_0", "q2_0")]
    public string Type { get; set; } = "iq2_xxs";

    private readonly float[] _x = new float[N];
    private readonly float[] _imatrix = new float[N];
    private readonly float[] _y = new float[N];
    private readonly float[] _out = new float[Rows];
    private byte[] _buf = [], _q = [], _w = [], _xq = [];
    private float[] _wx = [];
    private IBlockFormat _f = null!;
    private delegate*<byte*, byte*, int, float> _dot, _scalar;
    private int _rowBytes;
    private const int Batch = 64;
    private float[] _xs = [], _ys = [];
    private byte[] _xqs = [];
    private IQuantMatrix _m = null!;

    [GlobalSetup]
    public void Setup()
    {
        var rng = new Random(42);
        for (int i = 0; i < N; i++)
        {
            _x[i] = (float)((rng.NextDouble() + rng.NextDouble() + rng.NextDouble() - 1.5) * 0.05);
            _imatrix[i] = (float)rng.NextDouble() + 0.01f;
        }
        _f = BlockFormats.Get(Type);
        _buf = new byte[N / _f.BlockSize * _f.BlockBytes];
        _q = new byte[_buf.Length];
        _f.Quantize(_x, _q, N, BlockFormats.RequiresImportance(_f) ? _imatrix : default);

        _wx = new float[Rows * N];
        for (int i = 0; i < _wx.Length; i++) _wx[i] = (float)((rng.NextDouble() + rng.NextDouble() + rng.NextDouble() - 1.5) * 0.05);
        var imat = new float[N];
        Array.Fill(imat, 1f);
        _rowBytes = _buf.Length;
        _w = GC.AllocateArray<byte>(Rows * _rowBytes, pinned: true);
        _f.Quantize(_wx, _w, N, imat);
        var kind = GgmlActivations.For(Type);
        _xq = GC.AllocateArray<byte>(GgmlQ8.RowBytes(kind, N), pinned: true);
        fixed (float* px = _x) fixed (byte* pq = _xq) GgmlQ8.Quantize(kind, px, N, pq);
        _xs = new float[Batch * N];
        for (int i = 0; i < _xs.Length; i++) _xs[i] = (float)(rng.NextDouble() * 2 - 1);
        _ys = new float[Batch * Rows];
        _xqs = GC.AllocateArray<byte>(Batch * _xq.Length, pinned: true);
        fixed (byte* pw = _w) _m = IQuantMatrix.TryCreate(_f.GgmlTypeId, pw, Rows, N, _w)!; // _w is pinned
        switch (Type)
        {
            case "iq2_xxs": _dot = &IQuantKernels.DotIQ2_XXS; _scalar = &IQuantKernels.IQ2_XXSScalar; break;
            case "iq2_xs": _dot = &IQuantKernels.DotIQ2_XS; _scalar = &IQuantKernels.IQ2_XSScalar; break;
            case "iq2_s": _dot = &IQuantKernels.DotIQ2_S; _scalar = &IQuantKernels.IQ2_SScalar; break;
            case "iq3_xxs": _dot = &IQuantKernels.DotIQ3_XXS; _scalar = &IQuantKernels.IQ3_XXSScalar; break;
            case "iq3_s": _dot = &IQuantKernels.DotIQ3_S; _scalar = &IQuantKernels.IQ3_SScalar; break;
            case "iq1_s": _dot = &IQuantKernels.DotIQ1_S; _scalar = &IQuantKernels.IQ1_SScalar; break;
            case "iq1_m": _dot = &IQuantKernels.DotIQ1_M; _scalar = &IQuantKernels.IQ1_MScalar; break;
            case "iq4_nl": _dot = &IQuantKernels.DotIQ4_NL; _scalar = &IQuantKernels.IQ4_NLScalar; break;
            case "iq4_xs": _dot = &IQuantKernels.DotIQ4_XS; _scalar = &IQuantKernels.IQ4_XSScalar; break;
            case "q1_0": _dot = &IQuantKernels.DotQ1_0; _scalar = &IQuantKernels.Q1_0Scalar; break;
            case "q2_0": _dot = &IQuantKernels.DotQ2_0; _scalar = &IQuantKernels.Q2_0Scalar; break;
            default: throw new ArgumentException(Type);
        }
    }

    [Benchmark, BenchmarkCategory("quantize")]
    public void Quantize() => _f.Quantize(_x, _buf, N, BlockFormats.RequiresImportance(_f) ? _imatrix : default);

    [Benchmark(Baseline = true), BenchmarkCategory("dequantize")]
    public void Dequantize_ref()
    {
        if (Type == "iq3_xxs") IQ3_XXS.DequantizeReference(_q, _y);
        else if (Type == "iq3_s") IQ3_S.DequantizeReference(_q, _y);
        else _f.Dequantize(_q, _y); // no separate fast path: the reference is the entry point
    }

    [Benchmark, BenchmarkCategory("dequantize")]
    public void Dequantize() => _f.Dequantize(_q, _y);

    [Benchmark(Baseline = true), BenchmarkCategory("matvec 16x4096")]
    public void DecodeRowThenDot()
    {
        for (int r = 0; r < Rows; r++)
        {
            _f.Dequantize(_w.AsSpan(r * _rowBytes, _rowBytes), _y);
            _out[r] = TensorPrimitives.Dot(_y, _x);
        }
    }

    [Benchmark, BenchmarkCategory("matvec 16x4096")]
    public void FusedScalar()
    {
        fixed (byte* pw = _w) fixed (byte* pq = _xq)
            for (int r = 0; r < Rows; r++) _out[r] = _scalar(pw + r * _rowBytes, pq, N);
    }

    [Benchmark, BenchmarkCategory("matvec 16x4096")]
    public void Fused()
    {
        fixed (byte* pw = _w) fixed (byte* pq = _xq)
            for (int r = 0; r < Rows; r++) _out[r] = _dot(pw + r * _rowBytes, pq, N);
    }

    [Benchmark(Baseline = true), BenchmarkCategory("batch 64x16x4096")]
    public void BatchDecodedTiles() => WeightMatrix.MatMulByDecodedTiles(_m, _xs, Batch, _ys, 0, Rows);

    [Benchmark, BenchmarkCategory("batch 64x16x4096")]
    public void BatchFusedPerToken()
    {
        int stride = _xq.Length;
        fixed (float* px = _xs) fixed (byte* pq = _xqs) fixed (float* py = _ys)
        {
            for (int t = 0; t < Batch; t++) GgmlQ8.Quantize(_m.Activation, px + t * N, N, pq + t * stride);
            _m.MatMulGgml(pq, stride, Batch, py, 0, Rows);
        }
    }
}
