using System.Xml.Linq;
using TensorCodec.Cli.Reports;

namespace TensorCodec.Tests.Cli;

public class SvgChartTests
{
    static readonly XNamespace Ns = "http://www.w3.org/2000/svg";

    static List<XElement> ByClass(XDocument d, string cls) => d.Descendants().Where(e => (string?)e.Attribute("class") == cls).ToList();

    [Fact]
    public void Markup_in_names_is_escaped_and_unplottable_points_are_left_out()
    {
        var chart = new SvgChart(800, 400);
        var p = chart.AddPanel("a <b> & \"c\"", "x", "y", logY: true);
        // NaN, infinity and (on a log axis) zero or negative values cannot be placed.
        double[] xs = [1, 2, 3, double.NaN, 5, 6], ys = [1e-3, 2e-2, 0, 1, double.PositiveInfinity, -1];
        p.Scatter("s<1>", xs, ys);
        p.Labels(["q&1", "q<2>", "zero", "nan", "inf", "neg"], xs, ys);
        var d = XDocument.Parse(chart.ToXml().ToString());
        Assert.Equal("a <b> & \"c\"", Assert.Single(ByClass(d, "title")).Value);
        var series = Assert.Single(ByClass(d, "series"));
        Assert.Equal("s<1>", (string?)series.Attribute("data-name"));
        Assert.Equal(2, series.Elements(Ns + "circle").Count());
        Assert.Equal(["q&1", "q<2>"], Assert.Single(ByClass(d, "labels")).Elements(Ns + "text").Select(t => t.Value).Order().ToArray());
    }

    [Theory]
    [InlineData(1e-6, 1e-1)]   // many decades: powers of ten
    [InlineData(2e-3, 8e-3)]   // inside one decade: 3e-3 … 8e-3
    [InlineData(2.1e-3, 2.3e-3)] // narrower than the minor ticks
    public void A_log_axis_always_has_labelled_ticks(double lo, double hi)
    {
        var chart = new SvgChart(600, 400);
        chart.AddPanel("t", "x", "y", logY: true).Scatter("s", [1, 2], [lo, hi]);
        var ticks = ByClass(chart.ToXml(), "ytick").Select(t => double.Parse(t.Value, System.Globalization.CultureInfo.InvariantCulture)).ToList();
        Assert.True(ticks.Count >= 2, string.Join(", ", ticks));
        Assert.All(ticks, t => Assert.InRange(t, lo / 2, hi * 2));
    }

    [Fact]
    public void A_narrow_linear_axis_far_from_zero_gets_a_bounded_number_of_ticks()
    {
        var chart = new SvgChart(600, 400);
        chart.AddPanel("t", "x", "y").Scatter("s", [1, 2], [1e20, 1e20 + 1e6]);
        int ticks = ByClass(chart.ToXml(), "ytick").Count;
        Assert.InRange(ticks, 2, 41);
    }

    [Fact]
    public void Only_an_svg_name_is_written()
    {
        using var dir = new ScratchDir();
        var chart = new SvgChart(300, 200);
        chart.AddPanel("t", "x", "y").Scatter("s", [1], [1]);
        foreach (var bad in new[] { "rd.png", "rd", "rd.svg.png" })
        {
            var e = Assert.Throws<ArgumentException>(() => chart.Save(dir.File(bad)));
            Assert.Contains(bad, e.Message);
            Assert.False(File.Exists(dir.File(bad)));
        }
        chart.Save(dir.File("rd.svg"));
        Assert.Equal(Ns + "svg", XDocument.Load(dir.File("rd.svg")).Root!.Name);
        Assert.Empty(Directory.GetFiles(dir.Path, "*.tmp"));
    }
}
