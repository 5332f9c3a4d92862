using TensorCodec.Containers;
using TensorCodec.Engine;
using TensorCodec.Eval;
using TensorCodec.Quantization;

namespace TensorCodec.Tests.Quantization;

/// <summary>quantize --bpw/--size: the knapsack, the budget, and the files it writes.</summary>
public class MixedPrecisionTests
{
    static List<IReadOnlyList<KnapsackOption>> RandomInstance(Random rng, int items, int maxOptions, int maxBytes)
    {
        var list = new List<IReadOnlyList<KnapsackOption>>();
        for (int i = 0; i < items; i++)
        {
            int k = rng.Next(1, maxOptions + 1);
            list.Add(Enumerable.Range(0, k).Select(_ => new KnapsackOption(rng.Next(0, maxBytes), rng.NextDouble() * 10)).ToArray());
        }
        return list;
    }

    /// <summary>The least damage within the budget over every combination, or null when none fits.</summary>
    static double? BruteForce(IReadOnlyList<IReadOnlyList<KnapsackOption>> items, long budget)
    {
        double? best = null;
        void Go(int i, long bytes, double damage)
        {
            if (bytes > budget) return;
            if (i == items.Count)
            {
                if (best is null || damage < best) best = damage;
                return;
            }
            foreach (var o in items[i]) Go(i + 1, bytes + o.Bytes, damage + o.Damage);
        }
        Go(0, 0, 0);
        return best;
    }

    [Fact]
    public void KnapsackIsOptimalOnSmallInstancesCheckedByBruteForce()
    {
        var rng = new Random(12);
        int checkedCount = 0;
        for (int trial = 0; trial < 400; trial++)
        {
            var items = RandomInstance(rng, rng.Next(1, 7), 5, trial % 2 == 0 ? 1000 : 40);
            long min = MixedPrecisionKnapsack.MinBytes(items), max = items.Sum(o => o.Max(x => x.Bytes));
            long budget = min + (long)(rng.NextDouble() * (max - min + 1)) - (trial % 7 == 0 ? 1 : 0);
            var expected = BruteForce(items, budget);
            var got = MixedPrecisionKnapsack.Solve(items, budget);
            if (expected is null)
            {
                Assert.Null(got);
                continue;
            }
            Assert.NotNull(got);
            Assert.True(got.Exact);
            Assert.True(got.Bytes <= budget, $"trial {trial}: {got.Bytes} bytes over the budget {budget}");
            Assert.Equal(got.Bytes, got.Choice.Select((k, i) => items[i][k].Bytes).Sum());
            Assert.Equal(expected.Value, got.Damage, 9);
            checkedCount++;
        }
        Assert.True(checkedCount > 300);
    }

    [Fact]
    public void CoarseGridNeverExceedsTheBudgetAndStaysNearTheOptimum()
    {
        var rng = new Random(5);
        for (int trial = 0; trial < 300; trial++)
        {
            var items = RandomInstance(rng, rng.Next(2, 7), 5, 5000);
            long min = MixedPrecisionKnapsack.MinBytes(items), max = items.Sum(o => o.Max(x => x.Bytes));
            long budget = min + (long)(rng.NextDouble() * (max - min + 1));
            var got = MixedPrecisionKnapsack.Solve(items, budget, maxCells: 16)!;
            Assert.True(got.Bytes <= budget, $"trial {trial}: {got.Bytes} bytes over the budget {budget} on grid {got.Grid}");
            Assert.True(got.Damage >= BruteForce(items, budget)!.Value - 1e-9);
            // Optimal for the budget shrunk by the worst rounding.
            var tighter = BruteForce(items, budget - items.Count * (got.Grid - 1));
            if (tighter is not null) Assert.True(got.Damage <= tighter.Value + 1e-9, $"trial {trial}: {got.Damage} vs {tighter}");
        }
    }

    [Fact]
    public void KnapsackRefusesABudgetBelowTheCheapestChoice()
    {
        var items = new List<IReadOnlyList<KnapsackOption>> { new KnapsackOption[] { new(10, 1), new(20, 0) }, new KnapsackOption[] { new(5, 3) } };
        Assert.Equal(15, MixedPrecisionKnapsack.MinBytes(items));
        Assert.Null(MixedPrecisionKnapsack.Solve(items, 14));
        var s = MixedPrecisionKnapsack.Solve(items, 15)!;
        Assert.Equal([0, 0], s.Choice);
        Assert.Equal([1, 0], MixedPrecisionKnapsack.Solve(items, 25)!.Choice);
        Assert.Throws<ArgumentException>(() => MixedPrecisionKnapsack.Solve([Array.Empty<KnapsackOption>()], 100));
    }

    [Fact]
    public void SpearmanRanksWithTies()
    {
        Assert.Equal(1, MixedPrecision.Spearman([1, 2, 3, 4], [10, 20, 30, 400]), 12);
        Assert.Equal(-1, MixedPrecision.Spearman([1, 2, 3, 4], [4, 3, 2, 1]), 12);
        Assert.Equal(0.5, MixedPrecision.Spearman([1, 2, 3], [1, 3, 2]), 12);
        // Ties share their mean rank: ranks (1.5, 1.5, 3) vs (1, 2, 3).
        Assert.Equal(Math.Sqrt(3) / 2, MixedPrecision.Spearman([5, 5, 7], [1, 2, 3]), 12);
        Assert.True(double.IsNaN(MixedPrecision.Spearman([1, 1, 1], [1, 2, 3])));
    }

    static int[] Tokens(int n, int seed)
    {
        var rng = new Random(seed);
        return Enumerable.Range(0, n).Select(_ => rng.Next(1024)).ToArray();
    }

    static ModelQuantizeOptions Options(ICalibration? calib, double? bpw = null, long? bytes = null, QuantMethod method = QuantMethod.Gptq,
        IQuantDamageMeter? meter = null, DamageMode damage = DamageMode.Measured, int[]? types = null) => new()
    {
        Mix = QuantMix.Get("q4_K_M"), ConfigPath = ModelQuantizerTests.Config, TokenizerPath = ModelQuantizerTests.Tokenizer,
        Method = method, Calibration = calib, Threads = 2, TargetBitsPerWeight = bpw, TargetBytes = bytes,
        Damage = meter is null ? DamageMode.Proxy : damage, DamageMeter = meter, CandidateTypes = types,
    };

    [Fact]
    public void WrittenFileNeverExceedsTheBudgetAndLoads()
    {
        using var dir = new ScratchDir();
        using var model = LlamaModel.Load(ModelQuantizerTests.Bf16Sample, new LlamaLoadOptions { ConfigPath = ModelQuantizerTests.Config });
        var calib = new CalibrationStats(model, Tokens(8 * 64, 1), new ImatrixOptions { Ctx = 64, Threads = 2 }, "random-1", hessian: true);
        double previous = double.PositiveInfinity;
        foreach (double bpw in new[] { 2.9, 3.5, 4.5, 6.0 })
        {
            var path = dir.File($"b{bpw}.gguf");
            // GPTQ once (the writer's GPTQ path), the others with importance-weighted rounding (faster).
            var r = ModelQuantizer.Quantize(ModelQuantizerTests.Bf16Sample, path, Options(calib, bpw, method: bpw == 3.5 ? QuantMethod.Gptq : QuantMethod.Imatrix));
            var mp = r.MixedPrecision!;
            long size = new FileInfo(path).Length;
            Assert.Equal(size, r.OutputBytes);
            Assert.Equal(mp.PlannedBytes, size);
            Assert.True(size * 8.0 / mp.Elements <= bpw, $"{bpw}: file is {size * 8.0 / mp.Elements} bits/weight");
            Assert.Equal(mp.Elements, r.Elements);
            Assert.True(mp.BudgetBytes - size < 64 * 1024, $"{bpw}: {mp.BudgetBytes - size} bytes of the budget unused");
            Assert.True(mp.Exact);
            // A larger budget never predicts more damage.
            Assert.True(mp.PredictedDamage <= previous, $"{bpw}: predicted {mp.PredictedDamage} above the smaller budget's {previous}");
            previous = mp.PredictedDamage;
            // The header of the file says what the report says.
            using (var s = File.OpenRead(path))
            {
                var g = GgufFile.Parse(s, path);
                foreach (var t in mp.Tensors) Assert.Equal(t.Type, GgmlTypes.Get(g.Tensors.Single(x => x.Name == t.Name).GgmlType).Name);
            }
            using var q = LlamaModel.Load(path);
            Assert.True(Perplexity.Run(q, Tokens(2 * 64, 2), new EvalOptions { Ctx = 64, Base = model, Threads = 2 }).Kl!.Mean < 1);
        }

        // --size: an exact byte budget, reached to within one tensor's step.
        long budget = 1_500_000;
        var rs = ModelQuantizer.Quantize(ModelQuantizerTests.Bf16Sample, dir.File("s.gguf"), Options(calib, bytes: budget, method: QuantMethod.Imatrix));
        Assert.True(rs.OutputBytes <= budget);
        Assert.Equal(budget, rs.MixedPrecision!.BudgetBytes);
    }

    [Fact]
    public void BudgetBelowTheSmallestFileIsRefusedNamingIt()
    {
        using var dir = new ScratchDir();
        var path = dir.File("tiny.gguf");
        var e = Assert.Throws<ArgumentException>(() => ModelQuantizer.Quantize(ModelQuantizerTests.Bf16Sample, path, Options(null, 1.0, method: QuantMethod.Rtn)));
        Assert.Contains("below the smallest achievable size", e.Message);
        Assert.Matches(@"smallest achievable size, [\d,]+ bytes \(2\.\d+ bits/weight\)", e.Message);
        Assert.False(File.Exists(path));
        // The smallest size it names is accepted, and written exactly.
        long smallest = long.Parse(System.Text.RegularExpressions.Regex.Match(e.Message, @"size, ([\d,]+) bytes").Groups[1].Value.Replace(",", ""));
        var r = ModelQuantizer.Quantize(ModelQuantizerTests.Bf16Sample, path, Options(null, bytes: smallest, method: QuantMethod.Rtn));
        Assert.Equal(smallest, r.OutputBytes);
        Assert.All(r.MixedPrecision!.Tensors.Where(t => !t.Fixed), t => Assert.Equal("Q2_K", t.Type));
    }

    [Fact]
    public void MeasuredDamageIsKlOfOneTensorAndRanksLikeTheProxy()
    {
        using var dir = new ScratchDir();
        using var model = LlamaModel.Load(ModelQuantizerTests.Bf16Sample, new LlamaLoadOptions { ConfigPath = ModelQuantizerTests.Config });
        var tokens = Tokens(8 * 64, 3);
        var calib = new CalibrationStats(model, tokens, new ImatrixOptions { Ctx = 64, Threads = 2 }, "random-3", hessian: true);
        using var meter = new KldDamageMeter(ModelQuantizerTests.Bf16Sample, ModelQuantizerTests.Config, tokens, 64, 2, 2);
        var path = dir.File("m.gguf");
        int[] types = [GgmlTypes.Q2_K, GgmlTypes.Q4_K, GgmlTypes.Q8_0, GgmlTypes.F16];
        var r = ModelQuantizer.Quantize(ModelQuantizerTests.Bf16Sample, path, Options(calib, 3.5, method: QuantMethod.Imatrix, meter: meter, types: types));
        var mp = r.MixedPrecision!;
        var free = mp.Tensors.Where(t => !t.Fixed).ToList();
        Assert.Equal(30, free.Count);
        Assert.Equal(free.Sum(t => t.Options.Count), meter.Measurements);
        Assert.All(free.SelectMany(t => t.Options), o => Assert.True(o.MeasuredKld >= 0));
        // f16 alone barely moves the model; q2_K of the classifier moves it most among its options.
        var output = free.Single(t => t.Name == "output.weight");
        Assert.True(output.Options.Single(o => o.Type == "F16").MeasuredKld < output.Options.Single(o => o.Type == "Q2_K").MeasuredKld);
        Assert.True(mp.Spearman > 0.8, $"Spearman {mp.Spearman}");
        Assert.Equal(free.Sum(t => t.Damage), mp.PredictedDamage, 9);
        Assert.True(r.OutputBytes * 8.0 / mp.Elements <= 3.5);
        // The whole file's KL on the same windows is of the order the sum predicts.
        double file = meter.MeasureFile(path).Kl!.Mean;
        Assert.InRange(file, mp.PredictedDamage / 4, mp.PredictedDamage * 4);

        // Scaled: one measurement per tensor, at its cheapest type, which the scaled proxy then equals.
        int before = meter.Measurements;
        var rs = ModelQuantizer.Quantize(ModelQuantizerTests.Bf16Sample, dir.File("s.gguf"),
            Options(calib, 3.5, method: QuantMethod.Imatrix, meter: meter, damage: DamageMode.Scaled, types: types));
        var sfree = rs.MixedPrecision!.Tensors.Where(t => !t.Fixed).ToList();
        Assert.Equal(30, meter.Measurements - before);
        Assert.All(sfree, t =>
        {
            Assert.Equal(t.Options[0].MeasuredKld!.Value, t.Options[0].Predicted, 12);
            Assert.All(t.Options.Skip(1), o => Assert.Null(o.MeasuredKld));
            // Same measurement as the measured run (same bytes, same windows).
            Assert.Equal(free.Single(f => f.Name == t.Name).Options[0].MeasuredKld!.Value, t.Options[0].MeasuredKld!.Value, 12);
        });
        Assert.True(rs.OutputBytes * 8.0 / rs.MixedPrecision.Elements <= 3.5);
    }
}

/// <summary>quantize --bpw/--size on the command line.</summary>
public class MixedPrecisionCliTests
{
    [Fact]
    public void CommandJsonReportsTheChoiceAndTheFilesKl()
    {
        using var dir = new ScratchDir();
        var rng = new Random(4);
        File.WriteAllText(dir.File("c.csv"), string.Join(",", Enumerable.Range(0, 4 * 64).Select(_ => rng.Next(1024))));
        using var doc = TensorCodec.Tests.Cli.JsonSchema.Run("quantize", "quantize", ModelQuantizerTests.Bf16Sample, "-o", dir.File("b.gguf"),
            "--config", ModelQuantizerTests.Config, "--tokenizer", ModelQuantizerTests.Tokenizer, "--bpw", "3.25", "--method", "imatrix",
            "--calibration", dir.File("c.csv"), "--calibration-ctx", "64", "--damage-chunks", "2", "-T", "2");
        var mp = doc.RootElement.GetProperty("mixed_precision");
        Assert.True(mp.GetProperty("file_bits_per_value").GetDouble() <= 3.25);
        Assert.Equal(new FileInfo(dir.File("b.gguf")).Length, doc.RootElement.GetProperty("output_bytes").GetInt64());
        Assert.True(doc.RootElement.GetProperty("output_bytes").GetInt64() <= mp.GetProperty("budget_bytes").GetInt64());
        Assert.True(mp.GetProperty("measured_kl_mean").GetDouble() > 0);
        // With calibration tokens the default is the scaled proxy: one measured KL per tensor.
        Assert.Equal("scaled", mp.GetProperty("damage").GetString());
        foreach (var t in mp.GetProperty("tensors").EnumerateArray().Where(t => !t.GetProperty("fixed").GetBoolean()))
        {
            var first = t.GetProperty("options")[0];
            Assert.Equal(first.GetProperty("measured_kl_mean").GetDouble(), first.GetProperty("predicted").GetDouble(), 12);
        }
    }

    [Fact]
    public void TooSmallABudgetIsOneLineNamingTheSmallestSize()
    {
        using var dir = new ScratchDir();
        var (code, _, err) = TensorCodec.Tests.Cli.CliTests.Tcodec(["quantize", ModelQuantizerTests.Bf16Sample, "-o", dir.File("x.gguf"),
            "--config", ModelQuantizerTests.Config, "--size", "1MiB"]);
        Assert.NotEqual(0, code);
        Assert.Single(err.Trim().Split('\n'));
        Assert.Contains("below the smallest achievable size", err);
        Assert.False(File.Exists(dir.File("x.gguf")));
    }
}
