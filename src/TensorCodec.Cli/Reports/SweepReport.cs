using System.Globalization;
using System.Text;
using TensorCodec.Eval;

namespace TensorCodec.Cli.Reports;

/// <summary>
/// Presentation of a <see cref="SweepResult"/>: the Markdown table and the rate–distortion chart
/// (SVG, drawn by <see cref="SvgChart"/>). It lives in the CLI so the core library carries no plotting.
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
    /// The rate–distortion chart as SVG, two panels: mean and p99 KL (log scale) against bits per
    /// weight, and perplexity against bits per weight with the base's as a dashed line. Every point
    /// is labelled with its type.
    /// </summary>
    /// <exception cref="ArgumentException"><paramref name="svgPath"/> is not a .svg name.</exception>
    public static void Plot(SweepResult r, string svgPath, int width = 1400, int height = 600) => Chart(r, width, height).Save(svgPath);

    internal static SvgChart Chart(SweepResult r, int width = 1400, int height = 600)
    {
        var pts = r.Entries.OrderBy(e => e.BitsPerWeight).ToArray();
        double[] bpw = pts.Select(e => e.BitsPerWeight).ToArray();
        // A zero KL (lossless type) is floored so the log axis can show it.
        double[] klMean = pts.Select(e => Math.Max(e.Result.Kl!.Mean, 1e-9)).ToArray();
        double[] klP99 = pts.Select(e => Math.Max(e.Result.Kl!.P99, 1e-9)).ToArray();
        double[] ppl = pts.Select(e => e.Result.Ppl).ToArray();
        string[] names = pts.Select(e => e.Type).ToArray();
        string model = Path.GetFileName(Path.GetDirectoryName(Path.GetFullPath(r.Model))) ?? r.Model;

        var chart = new SvgChart(width, height);
        var left = chart.AddPanel($"{model}: KL(base ‖ quantized) vs size", "bits per weight", "KL divergence, nats (log scale)", logY: true);
        left.Scatter("mean KL", bpw, klMean, SvgMarker.Filled, 4.5);
        left.Scatter("p99 KL", bpw, klP99, SvgMarker.Open, 3.5);
        left.Labels(names, bpw, klMean);

        var right = chart.AddPanel($"{model}: perplexity vs size (ctx {r.Base.Result.Ctx})", "bits per weight", "perplexity");
        right.Scatter("quantized", bpw, ppl, SvgMarker.Filled, 4.5);
        right.HorizontalLine($"base ({r.Base.Method}) {F(r.Base.Result.Ppl, "F2")}", r.Base.Result.Ppl);
        right.Labels(names, bpw, ppl);
        return chart;
    }
}
