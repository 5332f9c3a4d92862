using TensorCodec.Containers;
using TensorCodec.Formats;

namespace TensorCodec.Quantization;

/// <summary>How <c>quantize --bpw/--size</c> predicts the damage of storing one tensor as one type.</summary>
public enum DamageMode : byte
{
    /// <summary>H-weighted squared error of the actual quantized tensor: Σ over rows of e·H·eᵀ per calibration token
    /// (H = XᵀX of its input; the importance weights' diagonal when there is no H; plain squared error without either).</summary>
    Proxy,
    /// <summary>Mean KL divergence on calibration tokens with only that tensor quantized at that type
    /// (<see cref="ModelQuantizeOptions.DamageMeter"/>); the proxy is computed too, for the rank correlation.</summary>
    Measured,
    /// <summary>The proxy scaled per tensor so that it equals the measured KL divergence at the tensor's cheapest type: one
    /// measurement per tensor instead of one per (tensor, type); KL and the proxy are both second order in the error.</summary>
    Scaled,
}

/// <summary>Measures the damage of one tensor stored as one type, the rest of the model unquantized.</summary>
public interface IQuantDamageMeter
{
    /// <summary>The damage (mean KL divergence, nats) of the model with only <paramref name="tensor"/> replaced by
    /// <paramref name="data"/>: <paramref name="rows"/> rows of <paramref name="cols"/> values stored as ggml type <paramref name="ggmlType"/>.</summary>
    double Measure(string tensor, int ggmlType, int rows, int cols, ReadOnlySpan<byte> data);
}

/// <summary>One candidate type of one tensor under <c>--bpw/--size</c>.</summary>
/// <param name="Type">ggml type name.</param>
/// <param name="Bytes">Bytes it takes in the file, alignment padding included.</param>
/// <param name="Proxy">H-weighted squared error per calibration token (see <see cref="DamageMode.Proxy"/>).</param>
/// <param name="MeasuredKld">Mean KL divergence with only this tensor at this type, when measured.</param>
/// <param name="Predicted">The damage the choice used (the proxy, the measured KL, or the scaled proxy, by <see cref="DamageMode"/>).</param>
public sealed record MixedPrecisionOption(string Type, long Bytes, double Proxy, double? MeasuredKld, double Predicted);

/// <summary>The type chosen for one tensor under <c>--bpw/--size</c>, and the alternatives it was chosen from.</summary>
/// <param name="Name">GGUF tensor name.</param>
/// <param name="Type">Chosen ggml type name.</param>
/// <param name="Fixed">Whether the type was not the budget's to choose (1-D tensors, <c>--tensor-type</c> and the like).</param>
/// <param name="Elements">Number of weights.</param>
/// <param name="Bytes">Bytes in the file, alignment padding included.</param>
/// <param name="Damage">Predicted damage of the chosen type (0 for fixed tensors).</param>
/// <param name="Options">Every candidate, cheapest first (empty for fixed tensors).</param>
public sealed record MixedPrecisionTensor(string Name, string Type, bool Fixed, long Elements, long Bytes, double Damage, IReadOnlyList<MixedPrecisionOption> Options);

/// <summary>What <c>--bpw/--size</c> chose and why.</summary>
/// <param name="BudgetBytes">The byte budget the whole file must fit in.</param>
/// <param name="SmallestBytes">The smallest file the candidates allow.</param>
/// <param name="LargestBytes">The file with every tensor at its largest candidate.</param>
/// <param name="PlannedBytes">The predicted size of the written file (header, metadata, tensor data and alignment).</param>
/// <param name="HeaderBytes">Header and metadata, padded to the alignment.</param>
/// <param name="Elements">Weights in the file (1-D tensors included), the bits/weight denominator.</param>
/// <param name="Damage">How the damage was predicted.</param>
/// <param name="PredictedDamage">Σ of the chosen options' damage (mean KL divergence in <see cref="DamageMode.Measured"/> mode).</param>
/// <param name="Grid">Byte grid of the knapsack's dynamic programme.</param>
/// <param name="Exact">Whether the grid divides every cost (the choice is then the exact optimum).</param>
/// <param name="Spearman">Rank correlation of proxy and measured damage over every (tensor, type), when measured.</param>
/// <param name="SpearmanWithinType">Mean over types of the rank correlation across tensors at that type, when measured.</param>
/// <param name="Tensors">Every output tensor, in file order.</param>
/// <param name="Seconds">Time spent predicting the damage and solving.</param>
public sealed record MixedPrecisionReport(long BudgetBytes, long SmallestBytes, long LargestBytes, long PlannedBytes, long HeaderBytes, long Elements,
    DamageMode Damage, double PredictedDamage, long Grid, bool Exact, double? Spearman, double? SpearmanWithinType,
    IReadOnlyList<MixedPrecisionTensor> Tensors, double Seconds)
{
    /// <summary>Bits per weight of the budget: <see cref="BudgetBytes"/> × 8 / <see cref="Elements"/>.</summary>
    public double BudgetBitsPerWeight => Elements == 0 ? 0 : BudgetBytes * 8.0 / Elements;
    /// <summary>Bits per weight of the planned file.</summary>
    public double PlannedBitsPerWeight => Elements == 0 ? 0 : PlannedBytes * 8.0 / Elements;
}

/// <summary>
/// Mixed precision to an exact budget (<c>quantize --bpw/--size</c>): for every quantizable 2-D tensor, each candidate
/// type the engine and llama.cpp run whose block fits the row length (<see cref="CandidatesFor"/>) is quantized with the
/// run's method, its damage predicted (<see cref="DamageMode"/>), and a <see cref="MixedPrecisionKnapsack"/> picks one
/// type per tensor with the least total damage such that the whole file (header, metadata, every tensor, alignment) fits.
/// </summary>
internal static class MixedPrecision
{
    /// <summary>
    /// Candidate types for a row length: the k-quants and iq4_xs for whole 256-blocks, else the 32-blocks llama.cpp falls
    /// back to (q4_0, iq4_nl, q5_0, q5_1); q8_0 and f16 for any row of whole 32-blocks; f16 alone otherwise.
    /// </summary>
    public static IReadOnlyList<int> CandidatesFor(long rowLength)
    {
        if (rowLength % 256 == 0)
            return [GgmlTypes.Q2_K, GgmlTypes.Q3_K, GgmlTypes.IQ4_XS, GgmlTypes.Q4_K, GgmlTypes.Q5_K, GgmlTypes.Q6_K, GgmlTypes.Q8_0, GgmlTypes.F16];
        if (rowLength % 32 == 0)
            return [GgmlTypes.Q4_0, GgmlTypes.IQ4_NL, GgmlTypes.Q5_0, GgmlTypes.Q5_1, GgmlTypes.Q8_0, GgmlTypes.F16];
        return [GgmlTypes.F16];
    }

    /// <summary>The byte budget for <paramref name="bitsPerWeight"/> over <paramref name="elements"/> weights, rounded down.</summary>
    public static long BudgetFor(double bitsPerWeight, long elements) => (long)Math.Floor(bitsPerWeight * elements / 8.0);

    /// <summary>Header and metadata bytes of the file, padded to the alignment (they do not depend on the tensor types).</summary>
    public static long HeaderBytes(ModelQuantizer.Plan plan, uint alignment)
    {
        // Tensor infos have fixed-size fields, so zero-sized tensors with the same names and ranks give the same header.
        var empty = plan.Tensors.Select(t => new GgufTensor(t.Name, GgmlTypes.F32, new long[t.Dims.Length], TensorByteSource.FromMemory(ReadOnlyMemory<byte>.Empty)));
        var ms = new MemoryStream();
        GgufWriter.Write(ms, plan.Metadata, empty);
        return GgufFile.AlignUp(ms.Length, alignment);
    }

    static uint AlignmentOf(ModelQuantizer.Plan plan) =>
        plan.Metadata.FirstOrDefault(kv => kv.Key == GgufFile.AlignmentKey).Value?.As<uint>() ?? GgufFile.DefaultAlignment;

    /// <summary>
    /// Rewrites <paramref name="plan"/>'s tensor types to the least-damage choice within the budget.
    /// </summary>
    /// <exception cref="ArgumentException">The budget is below the smallest achievable size (named in the message), or measured
    /// damage was asked for without a meter.</exception>
    public static MixedPrecisionReport Apply(ModelQuantizer.Plan plan, ModelQuantizeOptions o, string inputPath)
    {
        var sw = System.Diagnostics.Stopwatch.StartNew();
        if (o.Damage != DamageMode.Proxy && o.DamageMeter is null)
            throw new ArgumentException($"--damage {o.Damage.ToString().ToLowerInvariant()} needs calibration tokens (--calibration FILE)");
        uint align = AlignmentOf(plan);
        long header = HeaderBytes(plan, align);
        long elements = plan.Tensors.Sum(t => t.Elements);
        long budget = o.TargetBytes ?? BudgetFor(o.TargetBitsPerWeight ?? throw new ArgumentException("no budget given"), elements);
        var pinned = ModelQuantizer.TypeOverridesOf(o);

        // Which tensors are the budget's to choose, and their candidates' exact sizes.
        var free = new List<int>();
        var candidates = new List<int[]>();
        long fixedBytes = header;
        for (int i = 0; i < plan.Tensors.Count; i++)
        {
            var t = plan.Tensors[i];
            if (IsChoosable(t, pinned))
            {
                free.Add(i);
                var allowed = CandidatesFor(t.RowLength).Where(ty => GgmlTypes.Get(ty).ByteSize(t.RowLength) is not null).ToArray();
                candidates.Add(o.CandidateTypes is { } only && allowed.Intersect(only).ToArray() is { Length: > 0 } kept ? kept : allowed);
            }
            else fixedBytes += GgufFile.AlignUp(t.Bytes, align);
        }
        long SizeOf(ModelQuantizer.PlannedTensor t, int type) => GgufFile.AlignUp(GgmlTypes.Get(type).ByteSize(t.Elements)!.Value, align);
        long smallest = fixedBytes, largest = fixedBytes;
        for (int j = 0; j < free.Count; j++)
        {
            smallest += candidates[j].Min(ty => SizeOf(plan.Tensors[free[j]], ty));
            largest += candidates[j].Max(ty => SizeOf(plan.Tensors[free[j]], ty));
        }
        if (budget < smallest)
            throw new ArgumentException(string.Create(System.Globalization.CultureInfo.InvariantCulture,
                $"{inputPath}: a budget of {budget:N0} bytes ({budget * 8.0 / elements:0.0000} bits/weight) is below the smallest achievable size, ") +
                string.Create(System.Globalization.CultureInfo.InvariantCulture, $"{smallest:N0} bytes ({smallest * 8.0 / elements:0.0000} bits/weight)"));

        // Damage of every candidate.
        var damage = new MixedPrecisionDamage(o);
        var options = new List<MixedPrecisionOption[]>();
        for (int j = 0; j < free.Count; j++)
        {
            o.Cancellation.ThrowIfCancellationRequested();
            var t = plan.Tensors[free[j]];
            options.Add(damage.Evaluate(t, candidates[j], ty => SizeOf(t, ty)));
        }

        var items = options.Select(opts => (IReadOnlyList<KnapsackOption>)opts.Select(x => new KnapsackOption(x.Bytes, x.Predicted)).ToArray()).ToList();
        var solution = MixedPrecisionKnapsack.Solve(items, budget - fixedBytes)
            ?? throw new InvalidOperationException("knapsack found no solution above the smallest size"); // smallest ≤ budget was checked

        var report = new List<MixedPrecisionTensor>();
        int next = 0;
        for (int i = 0; i < plan.Tensors.Count; i++)
        {
            var t = plan.Tensors[i];
            if (next < free.Count && free[next] == i)
            {
                int k = solution.Choice[next];
                int type = candidates[next][k];
                var fmt = BlockFormats.FromGgmlType(type);
                plan.Tensors[i] = t with { Choice = new TypeChoice(type, null), Importance = fmt is { UsesImportance: true } ? t.ImportanceWeights : null };
                report.Add(new MixedPrecisionTensor(t.Name, ModelQuantizer.TypeName(type), false, t.Elements, options[next][k].Bytes,
                    items[next][k].Damage, options[next].OrderBy(x => x.Bytes).ToList()));
                next++;
            }
            else report.Add(new MixedPrecisionTensor(t.Name, ModelQuantizer.TypeName(t.Choice.Type), true, t.Elements, GgufFile.AlignUp(t.Bytes, align), 0, []));
        }
        double? rho = null, rhoType = null;
        if (o.Damage != DamageMode.Proxy)
        {
            var all = options.SelectMany(x => x).Where(x => x.MeasuredKld is not null).ToList();
            rho = Spearman(all.Select(x => x.Proxy).ToArray(), all.Select(x => x.MeasuredKld!.Value).ToArray());
            var perType = all.GroupBy(x => x.Type).Where(g => g.Count() >= 3)
                .Select(g => Spearman(g.Select(x => x.Proxy).ToArray(), g.Select(x => x.MeasuredKld!.Value).ToArray())).Where(double.IsFinite).ToList();
            rhoType = perType.Count > 0 ? perType.Average() : null;
        }
        return new MixedPrecisionReport(budget, smallest, largest, fixedBytes + solution.Bytes, header, elements, o.Damage, solution.Damage,
            solution.Grid, solution.Exact, rho, rhoType, report, sw.Elapsed.TotalSeconds);
    }

    /// <summary>Whether the budget chooses the type of <paramref name="t"/>: a quantizable 2-D weight that no llama-quantize option pins.</summary>
    static bool IsChoosable(ModelQuantizer.PlannedTensor t, TypeOverrides pinned)
    {
        if (!TensorTypeRules.IsQuantizable(t.Name, t.Dims)) return false;
        var cat = TensorTypeRules.CategoryOf(t.Name);
        if (pinned.LeaveOutput && t.Name == "output.weight") return false;
        if (pinned.OutputType is not null && cat == TensorTypeRules.Category.Output) return false;
        if (pinned.TokenEmbeddingType is not null && cat == TensorTypeRules.Category.TokenEmbd) return false;
        return pinned.TensorTypes is not { } pats || !pats.Any(p => p.Pattern.IsMatch(t.Name));
    }

    /// <summary>Spearman's rank correlation (ties get their mean rank); NaN when either side is constant.</summary>
    internal static double Spearman(double[] a, double[] b)
    {
        if (a.Length != b.Length) throw new ArgumentException("lengths differ");
        var ra = Ranks(a);
        var rb = Ranks(b);
        double ma = ra.Average(), mb = rb.Average(), sab = 0, saa = 0, sbb = 0;
        for (int i = 0; i < a.Length; i++)
        {
            sab += (ra[i] - ma) * (rb[i] - mb);
            saa += (ra[i] - ma) * (ra[i] - ma);
            sbb += (rb[i] - mb) * (rb[i] - mb);
        }
        return saa == 0 || sbb == 0 ? double.NaN : sab / Math.Sqrt(saa * sbb);
    }

    static double[] Ranks(double[] v)
    {
        var order = Enumerable.Range(0, v.Length).OrderBy(i => v[i]).ToArray();
        var r = new double[v.Length];
        for (int i = 0; i < order.Length;)
        {
            int j = i;
            while (j + 1 < order.Length && v[order[j + 1]] == v[order[i]]) j++;
            double mean = (i + j) / 2.0 + 1;
            for (int k = i; k <= j; k++) r[order[k]] = mean;
            i = j + 1;
        }
        return r;
    }
}
