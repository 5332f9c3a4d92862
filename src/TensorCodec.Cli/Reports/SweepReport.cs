using System.Globalization;
using System.Text;
using TensorCodec.Eval;

namespace TensorCodec.Cli.Reports;

/// <summary>
/// Presentation of a <see cref="SweepResult"/>: the Markdown table and the rate–distortion chart.
/// It lives in the CLI so the core library carries no plotting (ScottPlot pulls in SkiaSharp's native binaries).
/// </summary>
internal static class SweepReport
{
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
    /// The measurements as docs/JSON.md's <c>sweep</c> keys (from <c>tokens</c> on), flat: the base's
    /// figures prefixed <c>base_</c>, one entry per type; KL in nats, top-1 agreement as a fraction.
    /// </summary>
    public static object Json(SweepResult r) => new
    {
        tokens = r.Tokens, ctx = r.Base.Result.Ctx, score_from = r.Base.Result.ScoreFrom, windows = r.Base.Result.Windows, scored = r.Base.Result.Scored,
        seconds = r.Seconds, base_method = r.Base.Method, base_bytes = r.Base.Bytes, base_values = r.Base.Elements, base_bits_per_value = r.Base.BitsPerWeight,
        base_ppl = r.Base.Result.Ppl, base_ppl_std_err = r.Base.Result.PplStdErr,
        entries = r.Entries.Select(e => new
        {
            quant_type = e.Type, method = e.Method, bytes = e.Bytes, values = e.Elements, bits_per_value = e.BitsPerWeight,
            ppl = e.Result.Ppl, ppl_std_err = e.Result.PplStdErr, kl_mean = e.Result.Kl!.Mean, kl_median = e.Result.Kl.Median,
            kl_p90 = e.Result.Kl.P90, kl_p99 = e.Result.Kl.P99, kl_max = e.Result.Kl.Max, top1_agreement = e.Result.Kl.Top1AgreementPercent / 100,
            notes = e.Notes,
        }),
    };

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
