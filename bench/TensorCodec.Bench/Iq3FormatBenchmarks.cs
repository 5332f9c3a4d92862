using BenchmarkDotNet.Attributes;
using BenchmarkDotNet.Configs;
using TensorCodec.Formats;

namespace TensorCodec.Bench;

/// <summary>
/// IQ3_XXS, IQ3_S, Q1_0 and Q2_0 on one thread over 4096 values (as <see cref="FormatBenchmarks"/>;
/// f32 GB/s = 16384 B / mean). Dequantize pairs the scalar reference (baseline) with the dispatcher.
/// Run: dotnet run -c Release --project bench/TensorCodec.Bench -- --filter '*Iq3FormatBenchmarks*'
/// </summary>
[SimpleJob(warmupCount: 2, iterationCount: 5)]
[MemoryDiagnoser]
[GroupBenchmarksBy(BenchmarkLogicalGroupRule.ByCategory)]
[CategoriesColumn]
public class Iq3FormatBenchmarks
{
    private const int N = FormatBenchmarks.N;
    private readonly float[] _x = new float[N];
    private readonly float[] _imatrix = new float[N];
    private readonly float[] _y = new float[N];
    private readonly byte[] _buf = new byte[N * 2];
    private byte[] _qxxs = [], _qs = [], _q1 = [], _q2 = [];
    private IBlockFormat _xxs = null!, _s = null!, _f1 = null!, _f2 = null!;

    [GlobalSetup]
    public void Setup()
    {
        var rng = new Random(42);
        for (int i = 0; i < N; i++)
        {
            _x[i] = (float)((rng.NextDouble() + rng.NextDouble() + rng.NextDouble() - 1.5) * 0.05);
            _imatrix[i] = (float)rng.NextDouble() + 0.01f;
        }
        _xxs = BlockFormats.Get("iq3_xxs"); _s = BlockFormats.Get("iq3_s");
        _f1 = BlockFormats.Get("q1_0"); _f2 = BlockFormats.Get("q2_0");
        _qxxs = Quant(_xxs); _qs = Quant(_s); _q1 = Quant(_f1); _q2 = Quant(_f2);
    }

    private byte[] Quant(IBlockFormat f)
    {
        var b = new byte[N / f.BlockSize * f.BlockBytes];
        f.Quantize(_x, b, N);
        return b;
    }

    [Benchmark, BenchmarkCategory("IQ3_XXS quantize")] public void IQ3_XXS_quantize() => _xxs.Quantize(_x, _buf, N);
    [Benchmark, BenchmarkCategory("IQ3_XXS quantize")] public void IQ3_XXS_quantize_imatrix() => _xxs.Quantize(_x, _buf, N, _imatrix);
    [Benchmark, BenchmarkCategory("IQ3_S quantize")] public void IQ3_S_quantize() => _s.Quantize(_x, _buf, N);
    [Benchmark, BenchmarkCategory("IQ3_S quantize")] public void IQ3_S_quantize_imatrix() => _s.Quantize(_x, _buf, N, _imatrix);
    [Benchmark, BenchmarkCategory("Q1_0 quantize")] public void Q1_0_quantize() => _f1.Quantize(_x, _buf, N);
    [Benchmark, BenchmarkCategory("Q2_0 quantize")] public void Q2_0_quantize() => _f2.Quantize(_x, _buf, N);
    [Benchmark(Baseline = true), BenchmarkCategory("IQ3_XXS dequantize")] public void IQ3_XXS_dequantize_ref() => IQ3_XXS.DequantizeReference(_qxxs, _y);
    [Benchmark, BenchmarkCategory("IQ3_XXS dequantize")] public void IQ3_XXS_dequantize() => _xxs.Dequantize(_qxxs, _y);
    [Benchmark(Baseline = true), BenchmarkCategory("IQ3_S dequantize")] public void IQ3_S_dequantize_ref() => IQ3_S.DequantizeReference(_qs, _y);
    [Benchmark, BenchmarkCategory("IQ3_S dequantize")] public void IQ3_S_dequantize() => _s.Dequantize(_qs, _y);
    [Benchmark, BenchmarkCategory("Q1_0 dequantize")] public void Q1_0_dequantize() => _f1.Dequantize(_q1, _y);
    [Benchmark, BenchmarkCategory("Q2_0 dequantize")] public void Q2_0_dequantize() => _f2.Dequantize(_q2, _y);
}
