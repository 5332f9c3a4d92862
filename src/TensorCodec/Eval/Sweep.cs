using System.Diagnostics;
using System.Globalization;
using System.Runtime.InteropServices;
using System.Text;
using TensorCodec.Containers;
using TensorCodec.Engine;
using TensorCodec.Formats;
using TensorCodec.Numerics;
using TensorCodec.Quantization;
using TensorCodec.Models;

namespace TensorCodec.Eval;

public sealed record SweepOptions
{
    /// <summary>llama.cpp mixes ("q4_K_M") or any <see cref="QuantFormats"/> name ("nf4", "ocp_mxfp4", "int4_g128").</summary>
    public required IReadOnlyList<string> Types { get; init; }
    public int Ctx { get; init; } = 256;
    public int MaxChunks { get; init; }
    public int Threads { get; init; } = 1;
    /// <summary>HF config.json for a safetensors model (default: beside it).</summary>
    public string? ConfigPath { get; init; }
}

/// <summary>One quantized variant: how it was made, its exact size, and its evaluation against the base.</summary>
public sealed record SweepEntry(string Type, string Method, long Bytes, long Elements, EvalResult Result, IReadOnlyList<string> Notes)
{
    /// <summary>Stored bits over all tensors (norm vectors included, at their stored type), per weight.</summary>
    public double BitsPerWeight => Bytes * 8.0 / Elements;
}

public sealed record SweepResult(string Model, int Tokens, SweepEntry Base, IReadOnlyList<SweepEntry> Entries, double Seconds);

/// <summary>Step is 0 for the base, 1… for the types; Window is 0 while a type is being quantized.</summary>
public readonly record struct SweepProgress(int Step, int Steps, string Label, int Window, int Windows, double RunningPpl);

/// <summary>
/// A rate–distortion sweep: for each type, quantize the model in memory, evaluate it with
/// <see cref="Perplexity"/> against the unquantized model (whose log-probabilities are computed
/// once and read back from a <see cref="BaseLogitsFile"/> cache), and record exact storage.
/// <list type="bullet">
/// <item>llama.cpp mixes use <see cref="ModelQuantizer"/>'s plan, so each tensor gets exactly the
///   type <c>tcodec quantize</c> would give it, and the weights stay packed (fused kernels).</item>
/// <item>Any other format quantizes every 2-D weight (embeddings and classifier included) and leaves
///   1-D norms at F32. ggml block types stay packed; formats the engine cannot run packed (nf4,
///   ocp_mxfp4, nvfp4_16, int4_g128 …) are encoded, their exact encoded size counted, and decoded
///   to F32 for evaluation: the same values, so the same damage.</item>
/// </list>
/// </summary>
public static class Sweep
{
    public static SweepResult Run(string modelPath, ReadOnlyMemory<int> tokens, SweepOptions o,
        IProgress<SweepProgress>? progress = null, CancellationToken ct = default)
    {
        if (o.Types.Count == 0) throw new ArgumentException("no types to sweep");
        foreach (var t in o.Types)
            if (FindMix(t) is null && !QuantFormats.TryGet(t, out _))
                throw new ArgumentException($"unknown type '{t}': give a llama.cpp mix ({string.Join(", ", QuantMix.All.Select(m => m.Name))}) or a format ({QuantFormats.KnownNamesText})");

        var sw = Stopwatch.StartNew();
        int steps = o.Types.Count + 1;
        using var baseModel = LlamaModel.Load(modelPath, new LlamaLoadOptions { ConfigPath = o.ConfigPath });
        string cache = Path.Combine(Path.GetTempPath(), $"tcodec-sweep-{Environment.ProcessId}-{Guid.NewGuid():N}.logprobs");
        try
        {
            var eval = new EvalOptions { Ctx = o.Ctx, MaxChunks = o.MaxChunks, Threads = o.Threads };
            var baseResult = Perplexity.Run(baseModel, tokens.Span, eval with { SaveLogitsPath = cache }, Adapter(progress, 0, steps, "base"), ct);
            var layout = TensorFileReader.Open(modelPath);
            var baseEntry = new SweepEntry("base", $"{DominantType(layout)} as stored", layout.Tensors.Sum(t => t.Length),
                layout.Tensors.Sum(t => t.ElementCount), baseResult, []);

            var entries = new List<SweepEntry>();
            for (int i = 0; i < o.Types.Count; i++)
            {
                ct.ThrowIfCancellationRequested();
                string type = o.Types[i];
                progress?.Report(new SweepProgress(i + 1, steps, $"quantizing {type}", 0, baseResult.Windows, double.NaN));
                var notes = new List<string>();
                using var q = Build(modelPath, type, o, baseModel.Config, notes, out long bytes, out long elements, out string method);
                var r = Perplexity.Run(q, tokens.Span, eval with { BaseLogitsPath = cache }, Adapter(progress, i + 1, steps, type), ct);
                entries.Add(new SweepEntry(type, method, bytes, elements, r, notes));
            }
            return new SweepResult(modelPath, tokens.Length, baseEntry, entries, sw.Elapsed.TotalSeconds);
        }
        finally { File.Delete(cache); }
    }

    static QuantMix? FindMix(string name) => QuantMix.All.FirstOrDefault(m => string.Equals(m.Name, name, StringComparison.OrdinalIgnoreCase));

    static string DominantType(TensorFile f) =>
        f.Tensors.GroupBy(t => t.GgmlType >= 0 && GgmlTypes.TryGet(t.GgmlType, out var g) ? g.Name : t.DType.ToString().ToLowerInvariant())
            .OrderByDescending(g => g.Sum(t => t.ElementCount)).First().Key;

    static IProgress<EvalProgress>? Adapter(IProgress<SweepProgress>? p, int step, int steps, string label) =>
        p is null ? null : new EvalAdapter(p, step, steps, label);

    sealed class EvalAdapter(IProgress<SweepProgress> p, int step, int steps, string label) : IProgress<EvalProgress>
    {
        public void Report(EvalProgress e) => p.Report(new SweepProgress(step, steps, label, e.Window, e.Windows, e.RunningPpl));
    }

    /// <summary>
    /// The model quantized to <paramref name="type"/>, in memory. Tensors come from the quantizer's
    /// plan, in GGUF names and row order (HF Q/K rows already permuted), hence adjacent-pair RoPE.
    /// </summary>
    public static LlamaModel Build(string modelPath, string type, SweepOptions o, ModelConfig config, List<string> notes,
        out long bytes, out long elements, out string method)
    {
        var mix = FindMix(type);
        var format = mix is null ? QuantFormats.Get(type) : null;
        using var plan = ModelQuantizer.CreatePlan(modelPath, new ModelQuantizeOptions { Mix = mix ?? QuantMix.Get("f32"), ConfigPath = o.ConfigPath });
        var matrices = new Dictionary<string, IWeightMatrix>(StringComparer.Ordinal);
        var vectors = new Dictionary<string, float[]>(StringComparer.Ordinal);
        bytes = 0; elements = 0;
        bool decoded = false;
        foreach (var t in plan.Tensors)
        {
            float[] v = t.Load();
            elements += t.Elements;
            if (t.Dims.Length != 2)
            {
                vectors[t.Name] = v;
                bytes += t.Bytes; // 1-D tensors stay F32 in every mix
                continue;
            }
            int cols = checked((int)t.Dims[0]), rows = checked((int)t.Dims[1]);
            if (mix is not null)
            {
                matrices[t.Name] = Ggml(t.Choice.Type, v, rows, cols, o.Threads);
                bytes += t.Bytes;
            }
            else if (cols % format!.RowMultiple != 0)
            {
                notes.Add($"{t.Name}: row length {cols} is not a multiple of {format.Name}'s {format.RowMultiple}; kept at F32");
                matrices[t.Name] = Ggml(GgmlTypes.F32, v, rows, cols, o.Threads);
                bytes += (long)v.Length * 4;
            }
            else if (format is BlockMatrixFormat { Format.GgmlTypeId: >= 0 and var id })
            {
                matrices[t.Name] = Ggml(id, v, rows, cols, o.Threads);
                bytes += GgmlTypes.Get(id).ByteSize(v.Length)!.Value;
            }
            else
            {
                var enc = new byte[format.GetEncodedLength(v, cols)];
                int n = format.Encode(v, cols, enc);
                var values = GC.AllocateUninitializedArray<float>(v.Length, pinned: true);
                format.Decode(enc.AsSpan(0, n), cols, values);
                matrices[t.Name] = Pinned(values, rows, cols);
                bytes += n;
                decoded = true;
            }
        }
        method = mix is not null ? "llama.cpp mix, packed"
            : decoded ? "every 2-D weight; encoded, decoded to F32 to run"
            : "every 2-D weight, packed";

        IWeightMatrix M(string name) => matrices.TryGetValue(name, out var m) ? m : throw new InvalidDataException($"{modelPath}: tensor '{name}' is missing");
        float[] V(string name) => vectors.TryGetValue(name, out var x) ? x : throw new InvalidDataException($"{modelPath}: tensor '{name}' is missing");
        IWeightMatrix Mat(TensorRole role, int layer = -1) => M(TensorNames.Name(TensorNaming.Gguf, role, layer));
        float[] Vec(TensorRole role, int layer = -1) => V(TensorNames.Name(TensorNaming.Gguf, role, layer));
        var layers = new LlamaLayer[config.Layers];
        for (int l = 0; l < config.Layers; l++)
            layers[l] = new LlamaLayer
            {
                AttnNorm = Vec(TensorRole.AttentionNorm, l), FfnNorm = Vec(TensorRole.FfnNorm, l),
                Wq = Mat(TensorRole.Query, l), Wk = Mat(TensorRole.Key, l), Wv = Mat(TensorRole.Value, l),
                Wo = Mat(TensorRole.AttentionOutput, l), Gate = Mat(TensorRole.FfnGate, l), Up = Mat(TensorRole.FfnUp, l),
                Down = Mat(TensorRole.FfnDown, l),
            };
        var embedding = Mat(TensorRole.TokenEmbedding);
        bool tied = !matrices.ContainsKey(TensorNames.Name(TensorNaming.Gguf, TensorRole.Output));
        var cfg = config with { Rope = TensorNames.Rope(TensorNaming.Gguf), TiedEmbeddings = tied };
        return new LlamaModel(cfg, embedding, layers, Vec(TensorRole.OutputNorm), tied ? embedding : Mat(TensorRole.Output), $"{modelPath} as {type}");
    }

    static unsafe IWeightMatrix Pinned(float[] pinned, int rows, int cols)
    {
        fixed (float* p = pinned) return new F32Matrix(p, rows, cols, pinned); // pinned heap: the address stays valid
    }

    /// <summary>A matrix of ggml type <paramref name="type"/> over a pinned copy of the encoded rows.</summary>
    static unsafe IWeightMatrix Ggml(int type, float[] v, int rows, int cols, int threads)
    {
        switch (type)
        {
            case GgmlTypes.F32:
                var f = GC.AllocateUninitializedArray<float>(v.Length, pinned: true);
                v.CopyTo(f, 0);
                return Pinned(f, rows, cols);
            case GgmlTypes.F16:
            case GgmlTypes.BF16:
                var h = GC.AllocateUninitializedArray<ushort>(v.Length, pinned: true);
                if (type == GgmlTypes.F16) Fp16.FromFloat(v, h); else BFloat16.FromFloat(v, h);
                fixed (ushort* p = h) return WeightMatrix.Create(type == GgmlTypes.F16 ? DType.F16 : DType.BF16, (byte*)p, rows, cols, h);
        }
        var fmt = BlockFormats.FromGgmlType(type) ?? throw new NotSupportedException($"no encoder for ggml type {type}");
        int rowBytes = cols / fmt.BlockSize * fmt.BlockBytes;
        var data = GC.AllocateUninitializedArray<byte>(checked(rows * rowBytes), pinned: true);
        int chunk = Math.Max(1, 65536 / cols);
        Parallel.For(0, (rows + chunk - 1) / chunk, new ParallelOptions { MaxDegreeOfParallelism = Math.Max(1, threads) }, c =>
        {
            int r0 = c * chunk, n = Math.Min(chunk, rows - r0);
            fmt.Quantize(v.AsSpan(r0 * cols, n * cols), data.AsSpan(r0 * rowBytes, n * rowBytes), cols);
        });
        fixed (byte* p = data) return WeightMatrix.Create(DType.Packed, p, rows, cols, data, ggmlType: type);
    }

    static string Size(long n) => n >= 1 << 20 ? $"{n / 1048576.0:0.00} MiB" : $"{n / 1024.0:0.0} KiB";

    static string F(double x, string fmt) => x.ToString(fmt, CultureInfo.InvariantCulture);

    /// <summary>The report table as Markdown (sorted by bits per weight, base first).</summary>
    public static string Markdown(SweepResult r, string? command = null)
    {
        var b = r.Base.Result;
        var sb = new StringBuilder();
        sb.AppendLine($"# Rate–distortion: {Path.GetFileName(Path.GetDirectoryName(Path.GetFullPath(r.Model)))}/{Path.GetFileName(r.Model)}");
        sb.AppendLine();
        if (command is not null) sb.AppendLine($"```\n{command}\n```\n");
        sb.AppendLine($"{r.Tokens:N0} tokens, ctx {b.Ctx}, {b.Windows} windows, {b.Scored:N0} scored predictions per model " +
            $"(positions {b.ScoreFrom}…{b.Ctx - 2} of each window; protocol in docs/EVAL.md). KL is KL(base ‖ quantized) " +
            $"per scored position, in nats. Bits per weight count every stored byte of every tensor (1-D norms at F32 included). " +
            $"Sweep time {r.Seconds:F0} s.");
        sb.AppendLine();
        sb.AppendLine("| type | method | bits/weight | size | PPL ± err | ln(PPL/PPL_base) | KLD mean | KLD p99 | top-1 % |");
        sb.AppendLine("|---|---|--:|--:|--:|--:|--:|--:|--:|");
        sb.AppendLine($"| base | {r.Base.Method} | {F(r.Base.BitsPerWeight, "0.00")} | {Size(r.Base.Bytes)} | {F(b.Ppl, "0.000")} ± {F(b.PplStdErr, "0.000")} | 0 | 0 | 0 | 100 |");
        foreach (var e in r.Entries.OrderByDescending(e => e.BitsPerWeight))
        {
            var x = e.Result;
            var k = x.Kl!;
            sb.AppendLine($"| {e.Type} | {e.Method} | {F(e.BitsPerWeight, "0.00")} | {Size(e.Bytes)} | {F(x.Ppl, "0.000")} ± {F(x.PplStdErr, "0.000")} | " +
                $"{F(Math.Log(x.Ppl / k.BasePpl), "0.0000")} | {F(k.Mean, "0.00000")} | {F(k.P99, "0.0000")} | {F(k.Top1AgreementPercent, "0.00")} |");
        }
        var notes = r.Entries.SelectMany(e => e.Notes.Select(n => $"{e.Type}: {n}")).ToList();
        if (notes.Count > 0)
        {
            sb.AppendLine();
            sb.AppendLine("Notes:");
            foreach (var n in notes) sb.AppendLine($"- {n}");
        }
        return sb.ToString();
    }

    /// <summary>
    /// Two panels: mean and p99 KL (log scale) against bits per weight, and perplexity against bits
    /// per weight with the base's as a dashed line. Every point is labelled with its type.
    /// </summary>
    public static void Plot(SweepResult r, string pngPath, int width = 1400, int height = 600)
    {
        var pts = r.Entries.OrderBy(e => e.BitsPerWeight).ToArray();
        double[] bpw = pts.Select(e => e.BitsPerWeight).ToArray();
        // Log axis by plotting log10 and labelling ticks as powers of ten; a zero KL (lossless type) is floored.
        double[] klMean = pts.Select(e => Math.Log10(Math.Max(e.Result.Kl!.Mean, 1e-9))).ToArray();
        double[] klP99 = pts.Select(e => Math.Log10(Math.Max(e.Result.Kl!.P99, 1e-9))).ToArray();
        double[] ppl = pts.Select(e => e.Result.Ppl).ToArray();

        var mp = new ScottPlot.Multiplot();
        // ScottPlot's extension methods are called statically, to keep its type names out of scope.
        while (ScottPlot.IMultiplotExtensions.Count(mp) < 2) ScottPlot.IMultiplotExtensions.AddPlot(mp);
        mp.Layout = new ScottPlot.MultiplotLayouts.Columns();
        var left = ScottPlot.IMultiplotExtensions.GetPlot(mp, 0);
        var right = ScottPlot.IMultiplotExtensions.GetPlot(mp, 1);
        string model = Path.GetFileName(Path.GetDirectoryName(Path.GetFullPath(r.Model))) ?? r.Model;

        var mean = left.Add.ScatterPoints(bpw, klMean);
        mean.LegendText = "mean KL";
        mean.MarkerSize = 9;
        var p99 = left.Add.ScatterPoints(bpw, klP99);
        p99.LegendText = "p99 KL";
        p99.MarkerSize = 7;
        p99.MarkerShape = ScottPlot.MarkerShape.OpenCircle;
        left.Axes.Left.TickGenerator = new ScottPlot.TickGenerators.NumericAutomatic
        {
            MinorTickGenerator = new ScottPlot.TickGenerators.LogMinorTickGenerator(),
            IntegerTicksOnly = true,
            LabelFormatter = y => $"1e{y:0}",
        };
        left.Title($"{model}: KL(base ‖ quantized) vs size");
        left.XLabel("bits per weight");
        left.YLabel("KL divergence, nats (log scale)");
        left.ShowLegend(ScottPlot.Alignment.UpperRight);

        var pp = right.Add.ScatterPoints(bpw, ppl);
        pp.MarkerSize = 9;
        pp.LegendText = "quantized";
        var baseLine = right.Add.HorizontalLine(r.Base.Result.Ppl);
        baseLine.LinePattern = ScottPlot.LinePattern.Dashed;
        baseLine.LegendText = $"base ({r.Base.Method}) {r.Base.Result.Ppl:F2}";
        right.Title($"{model}: perplexity vs size (ctx {r.Base.Result.Ctx})");
        right.XLabel("bits per weight");
        right.YLabel("perplexity");
        right.ShowLegend(ScottPlot.Alignment.UpperRight);

        foreach (var p in new[] { left, right })
        {
            // Room on the right for the last point's label.
            p.Axes.AutoScale();
            var lim = p.Axes.GetLimits();
            double dx = lim.Right - lim.Left, dy = lim.Top - lim.Bottom;
            p.Axes.SetLimits(lim.Left - 0.04 * dx, lim.Right + 0.12 * dx, lim.Bottom - 0.06 * dy, lim.Top + 0.1 * dy);
        }
        string[] names = pts.Select(e => e.Type).ToArray();
        PlaceLabels(left, names, bpw, klMean, width / 2 - 110, height - 110);
        PlaceLabels(right, names, bpw, ppl, width / 2 - 110, height - 110);
        ScottPlot.IMultiplotExtensions.SavePng(mp, pngPath, width, height);
    }

    /// <summary>
    /// Labels each point to its right, moving a label up or down (in steps of one line) until it
    /// overlaps no label already placed; points at the same spot share one label. Pixel positions
    /// are estimated from the axis limits and the approximate data-area size.
    /// </summary>
    static void PlaceLabels(ScottPlot.Plot p, string[] names, double[] xs, double[] ys, double areaW, double areaH)
    {
        var lim = p.Axes.GetLimits();
        double Px(double x) => (x - lim.Left) / (lim.Right - lim.Left) * areaW;
        double Py(double y) => (lim.Top - y) / (lim.Top - lim.Bottom) * areaH;
        const double CharW = 7.5, LineH = 15;
        var placed = new List<(double L, double T, double R, double B)>();
        var done = new bool[names.Length];
        // Top to bottom, so a crowded column fans out downwards in reading order.
        foreach (int i in Enumerable.Range(0, names.Length).OrderBy(i => Py(ys[i])))
        {
            if (done[i]) continue;
            var same = Enumerable.Range(0, names.Length).Where(j => !done[j] && Math.Abs(Px(xs[j]) - Px(xs[i])) < 1 && Math.Abs(Py(ys[j]) - Py(ys[i])) < 1).ToList();
            foreach (int j in same) done[j] = true;
            string text = string.Join(" = ", same.Select(j => names[j]));
            double x0 = Px(xs[i]) + 8, y0 = Py(ys[i]), w = CharW * text.Length;
            double best = 0;
            foreach (double dy in Enumerable.Range(0, 21).Select(k => (k % 2 == 1 ? 1 : -1) * ((k + 1) / 2) * LineH))
            {
                var box = (L: x0, T: y0 + dy - LineH / 2, R: x0 + w, B: y0 + dy + LineH / 2);
                bool inside = box.T >= 0 && box.B <= areaH;
                if (inside && !placed.Any(b => b.L < box.R && box.L < b.R && b.T < box.B && box.T < b.B)) { best = dy; break; }
                best = double.NaN;
            }
            if (double.IsNaN(best)) best = 0; // nowhere free: overlap rather than drop the label
            placed.Add((x0, y0 + best - LineH / 2, x0 + w, y0 + best + LineH / 2));
            var t = p.Add.Text(text, xs[i], ys[i]);
            t.LabelFontSize = 12;
            t.LabelAlignment = ScottPlot.Alignment.MiddleLeft;
            t.OffsetX = 8;
            t.OffsetY = (float)best;
            if (best != 0)
            {
                // A leader line from the point to a label that had to move.
                var line = p.Add.Line(xs[i], ys[i], lim.Left + (x0 - 2) / areaW * (lim.Right - lim.Left), lim.Top - (y0 + best) / areaH * (lim.Top - lim.Bottom));
                line.LineWidth = 0.7f;
                line.Color = ScottPlot.Colors.Gray;
            }
        }
    }
}
