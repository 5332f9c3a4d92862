using BenchmarkDotNet.Attributes;
using BenchmarkDotNet.Columns;
using BenchmarkDotNet.Configs;
using BenchmarkDotNet.Reports;
using BenchmarkDotNet.Running;
using TensorCodec.Formats;

namespace TensorCodec.Bench;

/// <summary>
/// Block-format throughput on one thread over 4096 values (16 KiB of f32, so everything sits in
/// L1), reported as f32 GB/s to compare with ggml's test-quantize-perf figures.
/// Every quantize/dequantize call writes into preallocated buffers (MemoryDiagnoser shows 0 B).
/// Run: dotnet run -c Release --project bench/TensorCodec.Bench -- --filter '*FormatBenchmarks*'
/// </summary>
[SimpleJob(warmupCount: 2, iterationCount: 5)]
[Config(typeof(Config))]
[MemoryDiagnoser]
[GroupBenchmarksBy(BenchmarkLogicalGroupRule.ByCategory)]
[CategoriesColumn]
public class FormatBenchmarks
{
    public const int N = 4096;

    private sealed class Config : ManualConfig
    {
        public Config() => AddColumn(new F32ThroughputColumn());
    }

    private readonly float[] _x = new float[N];
    private readonly float[] _y = new float[N];
    private byte[] _q40 = [], _q80 = [], _q4k = [], _q6k = [];
    private readonly byte[] _buf = new byte[N * 2];
    private IBlockFormat _f40 = null!, _f80 = null!, _f4k = null!, _f6k = null!;

    [GlobalSetup]
    public void Setup()
    {
        // Gaussian-ish weights (sum of uniforms), the kind of data these formats are built for.
        var rng = new Random(42);
        for (int i = 0; i < N; i++)
            _x[i] = (float)((rng.NextDouble() + rng.NextDouble() + rng.NextDouble() - 1.5) * 0.05);
        _f40 = BlockFormats.Get("q4_0"); _f80 = BlockFormats.Get("q8_0");
        _f4k = BlockFormats.Get("q4_K"); _f6k = BlockFormats.Get("q6_K");
        _q40 = Quant(_f40); _q80 = Quant(_f80); _q4k = Quant(_f4k); _q6k = Quant(_f6k);
    }

    private byte[] Quant(IBlockFormat f)
    {
        var b = new byte[N / f.BlockSize * f.BlockBytes];
        f.Quantize(_x, b, N);
        return b;
    }

    // Each category pairs the scalar reference (baseline) with the public entry point (fast path
    // where there is one), so the ratio column is meaningful even when the machine is loaded.
    [Benchmark(Baseline = true), BenchmarkCategory("Q4_0 quantize")] public void Q4_0_quantize_ref() => Q4_0.QuantizeReference(_x, _buf);
    [Benchmark, BenchmarkCategory("Q4_0 quantize")] public void Q4_0_quantize() => _f40.Quantize(_x, _buf, N);
    [Benchmark(Baseline = true), BenchmarkCategory("Q8_0 quantize")] public void Q8_0_quantize_ref() => Q8_0.QuantizeReference(_x, _buf);
    [Benchmark, BenchmarkCategory("Q8_0 quantize")] public void Q8_0_quantize() => _f80.Quantize(_x, _buf, N);
    [Benchmark(Baseline = true), BenchmarkCategory("Q4_K quantize")] public void Q4_K_quantize_ref() => KQuant45.QuantizeReference(_x, _buf, default, 15, 144, -1f, 20);
    [Benchmark, BenchmarkCategory("Q4_K quantize")] public void Q4_K_quantize() => _f4k.Quantize(_x, _buf, N);
    [Benchmark(Baseline = true), BenchmarkCategory("Q6_K quantize")] public void Q6_K_quantize_ref() => Q6_K.QuantizeReference(_x, _buf, default);
    [Benchmark, BenchmarkCategory("Q6_K quantize")] public void Q6_K_quantize() => _f6k.Quantize(_x, _buf, N);
    [Benchmark(Baseline = true), BenchmarkCategory("Q4_0 dequantize")] public void Q4_0_dequantize_ref() => Q4_0.DequantizeReference(_q40, _y);
    [Benchmark, BenchmarkCategory("Q4_0 dequantize")] public void Q4_0_dequantize() => _f40.Dequantize(_q40, _y);
    [Benchmark(Baseline = true), BenchmarkCategory("Q4_K dequantize")] public void Q4_K_dequantize_ref() => KQuant45.DequantizeReference(_q4k, _y, 15, 144);
    [Benchmark, BenchmarkCategory("Q4_K dequantize")] public void Q4_K_dequantize() => _f4k.Dequantize(_q4k, _y);
    [Benchmark(Baseline = true), BenchmarkCategory("Q8_0 dequantize")] public void Q8_0_dequantize_ref() => Q8_0.DequantizeReference(_q80, _y);
    [Benchmark, BenchmarkCategory("Q8_0 dequantize")] public void Q8_0_dequantize() => _f80.Dequantize(_q80, _y);
    [Benchmark(Baseline = true), BenchmarkCategory("Q6_K dequantize")] public void Q6_K_dequantize_ref() => Q6_K.DequantizeReference(_q6k, _y);
    [Benchmark, BenchmarkCategory("Q6_K dequantize")] public void Q6_K_dequantize() => _f6k.Dequantize(_q6k, _y);

    /// <summary>Bytes of f32 processed per second: 4096 × 4 over the mean time.</summary>
    private sealed class F32ThroughputColumn : IColumn
    {
        public string Id => "F32GBps";
        public string ColumnName => "f32 GB/s";
        public bool AlwaysShow => true;
        public ColumnCategory Category => ColumnCategory.Custom;
        public int PriorityInCategory => 0;
        public bool IsNumeric => true;
        public UnitType UnitType => UnitType.Dimensionless;
        public string Legend => "f32 input/output bytes per second (4096 values × 4 bytes / mean), 10^9";
        public bool IsAvailable(Summary summary) => true;
        public bool IsDefault(Summary summary, BenchmarkCase benchmarkCase) => false;
        public string GetValue(Summary summary, BenchmarkCase benchmarkCase) => GetValue(summary, benchmarkCase, SummaryStyle.Default);
        public string GetValue(Summary summary, BenchmarkCase benchmarkCase, SummaryStyle style)
        {
            var r = summary[benchmarkCase];
            if (r?.ResultStatistics is null) return "NA";
            return (N * 4.0 / r.ResultStatistics.Mean).ToString("0.00"); // bytes per ns = GB/s
        }
    }
}
