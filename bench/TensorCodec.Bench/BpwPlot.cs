using System.Globalization;
using TensorCodec.Cli.Reports;

namespace TensorCodec.Bench;

/// <summary>
/// The plot of bench/bpw-kld.sh's table (`e2e bpw-plot TSV... OUT.svg`): mean KL vs bits/weight on a log scale, one series
/// per method, drawn with the CLI's own <see cref="SvgChart"/> (the one `tcodec sweep` draws rd.svg with).
/// </summary>
public static class BpwPlot
{
    public static void Run(string[] args)
    {
        if (args.Length < 2) throw new ArgumentException("usage: e2e bpw-plot TABLE.tsv [TABLE.tsv ...] OUT.svg");
        var rows = args[..^1].SelectMany(File.ReadLines).Select(l => l.Split('\t'))
            .Where(c => c.Length >= 10 && c[0] != "model" && double.TryParse(c[4], CultureInfo.InvariantCulture, out _)).ToList();
        double D(string s) => double.Parse(s, CultureInfo.InvariantCulture);
        var chart = new SvgChart(1000, 600);
        var panel = chart.AddPanel($"{rows.FirstOrDefault()?[0] ?? "model"}: KL(F32 ‖ quantized) vs file size, held-out tokens", "bits per weight (whole file)",
            "mean KL divergence, nats (log scale)", logY: true);
        foreach (var g in rows.GroupBy(c => c[2]))
        {
            var pts = g.OrderBy(c => D(c[4])).ToArray();
            var name = g.Key == "imatrix" ? "llama.cpp mix, imatrix" : g.Key.StartsWith("bpw-", StringComparison.Ordinal) ? $"--bpw/--size ({g.Key[4..]})" : g.Key;
            panel.Scatter(name, pts.Select(c => D(c[4])).ToArray(), pts.Select(c => Math.Max(D(c[5]), 1e-9)).ToArray(),
                g.Key == "imatrix" ? SvgMarker.Open : SvgMarker.Filled);
        }
        var mixes = rows.Where(c => c[2] == "imatrix").ToArray();
        panel.Labels(mixes.Select(c => c[1]).ToArray(), mixes.Select(c => D(c[4])).ToArray(), mixes.Select(c => Math.Max(D(c[5]), 1e-9)).ToArray());
        chart.Save(args[^1]);
        Console.WriteLine($"wrote {args[^1]} ({rows.Count} points)");
    }
}
