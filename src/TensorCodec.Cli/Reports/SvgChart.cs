using System.Globalization;
using System.Text;
using System.Xml;
using System.Xml.Linq;
using TensorCodec.Containers;

namespace TensorCodec.Cli.Reports;

/// <summary>How a scatter series draws its points.</summary>
internal enum SvgMarker { Filled, Open }

/// <summary>
/// A small SVG scatter-chart writer: panels side by side, each with a title, axes with ticks,
/// grid and labels (linear, or log10 on y), point series, dashed horizontal reference lines,
/// point labels that avoid each other, and a legend. The output is plain XML, so the tool needs no
/// graphics library or native code to draw its charts (a browser or any SVG viewer shows them).
/// </summary>
internal sealed class SvgChart(int width, int height)
{
    internal const string Ns = "http://www.w3.org/2000/svg";
    internal const string Font = "DejaVu Sans, Helvetica, Arial, sans-serif";
    readonly List<SvgPanel> _panels = [];

    /// <summary>Adds a panel to the right of the existing ones; panels share the width equally.</summary>
    public SvgPanel AddPanel(string title, string xLabel, string yLabel, bool logY = false)
    {
        var p = new SvgPanel(title, xLabel, yLabel, logY);
        _panels.Add(p);
        return p;
    }

    /// <summary>The chart as an SVG document.</summary>
    public XDocument ToXml()
    {
        XNamespace ns = Ns;
        var svg = new XElement(ns + "svg",
            new XAttribute("width", width), new XAttribute("height", height),
            new XAttribute("viewBox", $"0 0 {width} {height}"),
            new XAttribute("font-family", Font),
            new XElement(ns + "title", string.Join("; ", _panels.Select(p => p.Title))),
            new XElement(ns + "rect", new XAttribute("width", width), new XAttribute("height", height), new XAttribute("fill", "white")));
        double panelW = (double)width / Math.Max(1, _panels.Count);
        for (int i = 0; i < _panels.Count; i++)
            svg.Add(_panels[i].Render(i * panelW, panelW, height));
        return new XDocument(svg);
    }

    /// <summary>Writes the chart to <paramref name="path"/> (temporary file + rename); only a .svg name is accepted.</summary>
    /// <exception cref="ArgumentException"><paramref name="path"/> does not end in .svg (a .png name, say).</exception>
    public void Save(string path)
    {
        // Charts are SVG only: a .png name would get SVG bytes, which no PNG reader opens.
        if (!path.EndsWith(".svg", StringComparison.OrdinalIgnoreCase))
            throw new ArgumentException($"{path}: charts are written as SVG (no PNG renderer is bundled); give the file a .svg name");
        using var w = new AtomicFileWriter(path, overwrite: true);
        using (var xml = XmlWriter.Create(w.Stream, new XmlWriterSettings { Indent = true, Encoding = new UTF8Encoding(false), CloseOutput = false }))
            ToXml().Save(xml);
        w.Commit();
    }

    internal static string N(double v) => Math.Round(v, 2).ToString(CultureInfo.InvariantCulture);
}

/// <summary>One panel of an <see cref="SvgChart"/>: its axes and what is drawn in them.</summary>
internal sealed class SvgPanel(string title, string xLabel, string yLabel, bool logY)
{
    static readonly string[] Palette = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b"];
    const double CharW = 7.0, LineH = 15, FontSize = 12;
    const double MarginL = 80, MarginR = 20, MarginT = 45, MarginB = 60;

    sealed record Series(string Name, double[] Xs, double[] Ys, SvgMarker Marker, double Radius, string Color);
    sealed record HLine(string Name, double Y, string Color);

    readonly List<Series> _series = [];
    readonly List<HLine> _lines = [];
    (string[] Names, double[] Xs, double[] Ys)? _labels;

    public string Title => title;

    string NextColor => Palette[(_series.Count + _lines.Count) % Palette.Length];

    /// <summary>A series of points, shown in the legend under <paramref name="name"/>.</summary>
    public void Scatter(string name, double[] xs, double[] ys, SvgMarker marker = SvgMarker.Filled, double radius = 4.5)
    {
        if (xs.Length != ys.Length) throw new ArgumentException($"series '{name}': {xs.Length} x values but {ys.Length} y values");
        _series.Add(new Series(name, xs, ys, marker, radius, NextColor));
    }

    /// <summary>A dashed horizontal line across the panel at <paramref name="y"/>, shown in the legend.</summary>
    public void HorizontalLine(string name, double y) => _lines.Add(new HLine(name, y, NextColor));

    /// <summary>Labels each point with its name (points at the same spot share one label).</summary>
    public void Labels(string[] names, double[] xs, double[] ys) => _labels = (names, xs, ys);

    bool Drawable(double x, double y) => double.IsFinite(x) && double.IsFinite(y) && (!logY || y > 0);
    double Ty(double y) => logY ? Math.Log10(y) : y;

    internal XElement Render(double left, double panelW, double height)
    {
        XNamespace ns = SvgChart.Ns;
        double ax = left + MarginL, aw = panelW - MarginL - MarginR, ay = MarginT, ah = height - MarginT - MarginB;

        // Axis limits over everything drawn, in axis units (log10 for a log axis), with room on the
        // right for the last point's label and a little above for the legend.
        var pts = _series.SelectMany(s => s.Xs.Zip(s.Ys)).Where(p => Drawable(p.First, p.Second)).ToList();
        var xs = pts.Select(p => p.First).DefaultIfEmpty(0).ToArray();
        var ys = pts.Select(p => Ty(p.Second)).Concat(_lines.Where(l => Drawable(0, l.Y)).Select(l => Ty(l.Y))).DefaultIfEmpty(0).ToArray();
        var (x0, x1) = Pad(xs.Min(), xs.Max(), 0.04, 0.12);
        var (y0, y1) = Pad(ys.Min(), ys.Max(), 0.06, 0.10);
        double Px(double x) => ax + (x - x0) / (x1 - x0) * aw;
        double Py(double y) => ay + (y1 - Ty(y)) / (y1 - y0) * ah;

        var g = new XElement(ns + "g", new XAttribute("class", "panel"));
        XElement Text(string s, double x, double y, string anchor, double size, params object[] extra) =>
            new(ns + "text", new XAttribute("x", SvgChart.N(x)), new XAttribute("y", SvgChart.N(y)),
                new XAttribute("text-anchor", anchor), new XAttribute("font-size", SvgChart.N(size)), extra, s);
        XElement Line(double xa, double ya, double xb, double yb, string stroke, double w, params object[] extra) =>
            new(ns + "line", new XAttribute("x1", SvgChart.N(xa)), new XAttribute("y1", SvgChart.N(ya)),
                new XAttribute("x2", SvgChart.N(xb)), new XAttribute("y2", SvgChart.N(yb)),
                new XAttribute("stroke", stroke), new XAttribute("stroke-width", SvgChart.N(w)), extra);

        g.Add(Text(title, ax + aw / 2, 24, "middle", 15, new XAttribute("font-weight", "bold"), new XAttribute("class", "title")));

        // Grid and ticks first, so the data is drawn over them.
        var grid = new XElement(ns + "g", new XAttribute("class", "grid"));
        var ticks = new XElement(ns + "g", new XAttribute("class", "ticks"));
        var xTicks = LinearTicks(x0, x1, out var xMinor);
        foreach (var (v, label) in xTicks)
        {
            double px = Px(v);
            grid.Add(Line(px, ay, px, ay + ah, "#e5e5e5", 1));
            ticks.Add(Line(px, ay + ah, px, ay + ah + 5, "black", 1));
            ticks.Add(Text(label, px, ay + ah + 19, "middle", FontSize, new XAttribute("class", "xtick")));
        }
        foreach (var v in xMinor) ticks.Add(Line(Px(v), ay + ah, Px(v), ay + ah + 3, "black", 0.8));
        var yTicks = logY ? LogTicks(y0, y1, out var yMinor) : LinearTicks(y0, y1, out yMinor);
        foreach (var (v, label) in yTicks)
        {
            double py = ay + (y1 - v) / (y1 - y0) * ah;
            grid.Add(Line(ax, py, ax + aw, py, "#e5e5e5", 1));
            ticks.Add(Line(ax - 5, py, ax, py, "black", 1));
            ticks.Add(Text(label, ax - 8, py, "end", FontSize, new XAttribute("dy", "0.35em"), new XAttribute("class", "ytick")));
        }
        foreach (var v in yMinor)
        {
            double py = ay + (y1 - v) / (y1 - y0) * ah;
            ticks.Add(Line(ax - 3, py, ax, py, "black", 0.8));
        }
        g.Add(grid, ticks);
        g.Add(new XElement(ns + "rect", new XAttribute("x", SvgChart.N(ax)), new XAttribute("y", SvgChart.N(ay)),
            new XAttribute("width", SvgChart.N(aw)), new XAttribute("height", SvgChart.N(ah)),
            new XAttribute("fill", "none"), new XAttribute("stroke", "black")));
        g.Add(Text(xLabel, ax + aw / 2, ay + ah + 44, "middle", 15, new XAttribute("font-weight", "bold"), new XAttribute("class", "xlabel")));
        double ylx = left + 18, yly = ay + ah / 2;
        g.Add(Text(yLabel, ylx, yly, "middle", 15, new XAttribute("font-weight", "bold"), new XAttribute("class", "ylabel"),
            new XAttribute("transform", $"rotate(-90 {SvgChart.N(ylx)} {SvgChart.N(yly)})")));

        foreach (var l in _lines.Where(l => Drawable(0, l.Y)))
            g.Add(Line(ax, Py(l.Y), ax + aw, Py(l.Y), l.Color, 2, new XAttribute("stroke-dasharray", "8 5"),
                new XAttribute("class", "hline"), new XAttribute("data-name", l.Name)));
        foreach (var s in _series)
        {
            var sg = new XElement(ns + "g", new XAttribute("class", "series"), new XAttribute("data-name", s.Name));
            for (int i = 0; i < s.Xs.Length; i++)
                if (Drawable(s.Xs[i], s.Ys[i])) sg.Add(Marker(ns, Px(s.Xs[i]), Py(s.Ys[i]), s));
            g.Add(sg);
        }
        // Every drawn marker is an obstacle a label moves off, as are the labels placed before it.
        var markers = _series.SelectMany(s => s.Xs.Zip(s.Ys).Where(p => Drawable(p.First, p.Second))
            .Select(p => (Px(p.First) - s.Radius, Py(p.Second) - s.Radius, Px(p.First) + s.Radius, Py(p.Second) + s.Radius))).ToList();
        if (_labels is { } lab) g.Add(PlaceLabels(ns, lab.Names, lab.Xs, lab.Ys, Px, Py, ay, ax + aw, ay + ah, markers, Line));
        g.Add(Legend(ns, ax + aw - 10, ay + 10, Text));
        return g;
    }

    static XElement Marker(XNamespace ns, double x, double y, Series s) =>
        new(ns + "circle", new XAttribute("cx", SvgChart.N(x)), new XAttribute("cy", SvgChart.N(y)), new XAttribute("r", SvgChart.N(s.Radius)),
            s.Marker == SvgMarker.Filled
                ? new XAttribute("fill", s.Color)
                : new XAttribute("fill", "none"),
            new XAttribute("stroke", s.Color), new XAttribute("stroke-width", 1.2));

    /// <summary>Legend box anchored at its top-right corner.</summary>
    XElement Legend(XNamespace ns, double right, double top, Func<string, double, double, string, double, object[], XElement> text)
    {
        var entries = _series.Select(s => (s.Name, Series: (Series?)s, Line: (HLine?)null))
            .Concat(_lines.Select(l => (l.Name, Series: (Series?)null, Line: (HLine?)l))).ToList();
        var g = new XElement(ns + "g", new XAttribute("class", "legend"));
        if (entries.Count == 0) return g;
        double w = entries.Max(e => e.Name.Length) * CharW + 46, h = entries.Count * 20 + 10, left = right - w;
        g.Add(new XElement(ns + "rect", new XAttribute("x", SvgChart.N(left)), new XAttribute("y", SvgChart.N(top)),
            new XAttribute("width", SvgChart.N(w)), new XAttribute("height", SvgChart.N(h)),
            new XAttribute("fill", "white"), new XAttribute("stroke", "#444")));
        for (int i = 0; i < entries.Count; i++)
        {
            double cy = top + 15 + i * 20;
            var (name, s, l) = entries[i];
            if (s is not null) g.Add(Marker(ns, left + 16, cy, s));
            else g.Add(new XElement(ns + "line", new XAttribute("x1", SvgChart.N(left + 6)), new XAttribute("y1", SvgChart.N(cy)),
                new XAttribute("x2", SvgChart.N(left + 26)), new XAttribute("y2", SvgChart.N(cy)),
                new XAttribute("stroke", l!.Color), new XAttribute("stroke-width", 2), new XAttribute("stroke-dasharray", "5 3")));
            g.Add(text(name, left + 34, cy, "start", FontSize, [new XAttribute("dy", "0.35em")]));
        }
        return g;
    }

    /// <summary>
    /// Labels each point to its right, moving a label up or down (in steps of one line) until it
    /// overlaps no marker and no label already placed, with a grey leader line when it moved; points at the same
    /// spot share one label. Label widths are estimated from the character count.
    /// </summary>
    static XElement PlaceLabels(XNamespace ns, string[] names, double[] xs, double[] ys, Func<double, double> px, Func<double, double> py,
        double areaT, double areaR, double areaB, List<(double L, double T, double R, double B)> obstacles,
        Func<double, double, double, double, string, double, object[], XElement> line)
    {
        var g = new XElement(ns + "g", new XAttribute("class", "labels"), new XAttribute("font-size", SvgChart.N(FontSize)));
        var idx = Enumerable.Range(0, names.Length).Where(i => double.IsFinite(xs[i]) && double.IsFinite(ys[i]) && double.IsFinite(py(ys[i]))).ToList();
        var placed = new List<(double L, double T, double R, double B)>(obstacles);
        var done = new bool[names.Length];
        // Top to bottom, so a crowded column fans out downwards in reading order.
        foreach (int i in idx.OrderBy(i => py(ys[i])))
        {
            if (done[i]) continue;
            var same = idx.Where(j => !done[j] && Math.Abs(px(xs[j]) - px(xs[i])) < 1 && Math.Abs(py(ys[j]) - py(ys[i])) < 1).ToList();
            foreach (int j in same) done[j] = true;
            string text = string.Join(" = ", same.Select(j => names[j]));
            double x0 = px(xs[i]) + 8, y0 = py(ys[i]), w = CharW * text.Length;
            double best = double.NaN;
            foreach (double dy in Enumerable.Range(0, 21).Select(k => (k % 2 == 1 ? 1 : -1) * ((k + 1) / 2) * LineH))
            {
                var box = (L: x0, T: y0 + dy - LineH / 2, R: x0 + w, B: y0 + dy + LineH / 2);
                bool inside = box.T >= areaT && box.B <= areaB && box.R <= areaR;
                if (inside && !placed.Any(b => b.L < box.R && box.L < b.R && b.T < box.B && box.T < b.B)) { best = dy; break; }
            }
            if (double.IsNaN(best)) best = 0; // nowhere free: overlap rather than drop the label
            placed.Add((x0, y0 + best - LineH / 2, x0 + w, y0 + best + LineH / 2));
            if (best != 0) g.Add(line(px(xs[i]), y0, x0 - 2, y0 + best, "#999", 0.7, []));
            g.Add(new XElement(ns + "text", new XAttribute("x", SvgChart.N(x0)), new XAttribute("y", SvgChart.N(y0 + best)),
                new XAttribute("dy", "0.35em"), new XAttribute("fill", "#222"), text));
        }
        return g;
    }

    static (double Lo, double Hi) Pad(double lo, double hi, double below, double above)
    {
        double d = hi - lo;
        if (d <= 0) d = Math.Max(Math.Abs(hi) * 0.1, 1); // one value: a window around it
        return (lo - below * d, hi + above * d);
    }

    /// <summary>Ticks at 1, 2 or 5 × 10^k, about eight across the range, with unlabelled minor ticks between.</summary>
    static List<(double V, string Label)> LinearTicks(double lo, double hi, out List<double> minor)
    {
        double raw = (hi - lo) / 8, mag = Math.Pow(10, Math.Floor(Math.Log10(raw)));
        double m = raw / mag <= 1 ? 1 : raw / mag <= 2 ? 2 : raw / mag <= 5 ? 5 : 10, step = m * mag;
        int decimals = Math.Max(0, -(int)Math.Floor(Math.Log10(step) + 1e-9));
        var major = new List<(double, string)>();
        minor = [];
        double sub = step / (m == 2 ? 4 : 5);
        // Counted, not stepped until past hi: at values far larger than the range, v + sub == v.
        double first = Math.Ceiling(lo / sub);
        for (int i = 0; i <= 40 && (first + i) * sub <= hi; i++)
        {
            double v = (first + i) * sub;
            double r = v / step;
            if (Math.Abs(r - Math.Round(r)) < 1e-6)
                major.Add((v, Math.Round(v, decimals).ToString("0.##########", CultureInfo.InvariantCulture)));
            else minor.Add(v);
        }
        return major;
    }

    /// <summary>Log10 axis: labelled ticks at powers of ten (1e-3), minor ticks at 2…9 × 10^k.
    /// A range inside one decade labels its minor ticks instead, or evenly spaced ones if it has too few.</summary>
    static List<(double V, string Label)> LogTicks(double lo, double hi, out List<double> minor)
    {
        var major = new List<(double, string)>();
        minor = [];
        for (int k = (int)Math.Floor(lo); k <= (int)Math.Ceiling(hi); k++)
        {
            if (k >= lo && k <= hi) major.Add((k, $"1e{k}"));
            for (int mlt = 2; mlt <= 9; mlt++)
            {
                double v = k + Math.Log10(mlt);
                if (v >= lo && v <= hi) minor.Add(v);
            }
        }
        if (major.Count < 2)
        {
            major.AddRange(minor.Select(v => (v, Math.Pow(10, v).ToString("G2", CultureInfo.InvariantCulture))));
            minor = [];
        }
        // Narrower still: evenly spaced ticks in log units, labelled with their values.
        if (major.Count < 2)
            major = LinearTicks(lo, hi, out minor).Select(t => (t.V, Math.Pow(10, t.V).ToString("G3", CultureInfo.InvariantCulture))).ToList();
        return major;
    }
}
