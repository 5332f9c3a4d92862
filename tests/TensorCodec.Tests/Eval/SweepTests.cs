using System.Xml.Linq;
using TensorCodec.Cli.Reports;
using TensorCodec.Engine;
using TensorCodec.Eval;
using TensorCodec.Quantization;
using TensorCodec.Tests.Engine;
using Xunit.Abstractions;

namespace TensorCodec.Tests.Eval;

public class SweepTests(ITestOutputHelper output)
{
    static string Model => TestFiles.Sample("bard-3m-bf16.safetensors");
    static string Config => EngineFixtures.Fixture("config.json");

    [Fact]
    public void In_memory_mix_is_the_gguf_tcodec_quantize_writes()
    {
        using var dir = new ScratchDir();
        var gguf = dir.File("q4_K_M.gguf");
        var written = ModelQuantizer.Quantize(Model, gguf, new ModelQuantizeOptions { Mix = QuantMix.Get("q4_K_M"), ConfigPath = Config });
        using var baseModel = LlamaModel.Load(Model, new LlamaLoadOptions { ConfigPath = Config });
        using var mem = Sweep.Build(Model, "q4_K_M", new SweepOptions { Types = ["q4_K_M"], ConfigPath = Config }, baseModel.Config, [],
            out long bytes, out long elements, out _);
        using var file = LlamaModel.Load(gguf);
        Assert.Equal(written.TensorBytes, bytes);
        Assert.Equal(written.Elements, elements);
        Assert.Equal(file.Layers[3].Down.TypeName, mem.Layers[3].Down.TypeName);

        var tokens = EngineFixtures.Tokens("val.first128.tokens.csv")[..40];
        float[] Run(LlamaModel m)
        {
            using var s = m.CreateSession();
            var l = new float[tokens.Length * m.Config.VocabSize];
            s.Forward(tokens, l);
            return l;
        }
        Assert.Equal(Run(file), Run(mem)); // same bytes, same kernels: bit-identical
    }

    [Fact]
    public void Sweep_orders_types_by_damage_and_writes_report_and_plot()
    {
        using var dir = new ScratchDir();
        var tokens = EngineFixtures.Tokens("val.first128.tokens.csv");
        var r = Sweep.Run(Model, tokens, new SweepOptions { Types = ["q8_0", "q4_K_M", "nf4", "int4_g128"], Ctx = 64, ConfigPath = Config });
        Assert.Equal(2, r.Base.Result.Windows);
        Assert.Equal(16.0, r.Base.BitsPerWeight, 1);
        var by = r.Entries.ToDictionary(e => e.Type);
        foreach (var e in r.Entries)
            output.WriteLine($"{e.Type}: {e.BitsPerWeight:F3} bpw, PPL {e.Result.Ppl:F3}, KL {e.Result.Kl!.Mean:E3}, top-1 {e.Result.Kl.Top1AgreementPercent:F1}%");
        // q8_0: 34 bytes per 32 weights for every matrix, norms at F32.
        Assert.InRange(by["q8_0"].BitsPerWeight, 8.5, 8.6);
        // nf4 (64-value blocks, one F32 absmax each): 4 + 32/64 = 4.5 bits.
        Assert.InRange(by["nf4"].BitsPerWeight, 4.5, 4.55);
        Assert.True(by["q8_0"].Result.Kl!.Mean < by["q4_K_M"].Result.Kl!.Mean);
        Assert.True(by["q8_0"].Result.Kl!.Mean < by["nf4"].Result.Kl!.Mean);
        // The base's own row reads back its cached log-probabilities: its PPL is the eval's PPL.
        Assert.Equal(r.Base.Result.Ppl, by["q8_0"].Result.Kl!.BasePpl, 9);

        var md = SweepReport.Markdown(r);
        foreach (var t in new[] { "| base |", "| q8_0 |", "| q4_K_M |", "| nf4 |", "| int4_g128 |" }) Assert.Contains(t, md);
        var svgPath = dir.File("rd.svg");
        SweepReport.Plot(r, svgPath);
        // Well-formed SVG with both panels, one marker per type in each series, every type labelled in both panels.
        var svg = XDocument.Parse(File.ReadAllText(svgPath));
        XNamespace ns = "http://www.w3.org/2000/svg";
        Assert.Equal(ns + "svg", svg.Root!.Name);
        var panels = svg.Descendants(ns + "g").Where(g => (string?)g.Attribute("class") == "panel").ToList();
        Assert.Equal(2, panels.Count);
        var series = svg.Descendants(ns + "g").Where(g => (string?)g.Attribute("class") == "series")
            .ToDictionary(g => (string)g.Attribute("data-name")!, g => g.Elements(ns + "circle").Count());
        Assert.Equal(new Dictionary<string, int> { ["mean KL"] = 4, ["p99 KL"] = 4, ["quantized"] = 4 }, series);
        var hline = Assert.Single(svg.Descendants(ns + "line"), l => (string?)l.Attribute("class") == "hline");
        Assert.StartsWith("base (", (string)hline.Attribute("data-name")!);
        foreach (var panel in panels)
        {
            var labels = string.Join(" ", panel.Descendants(ns + "g").Where(g => (string?)g.Attribute("class") == "labels").Elements(ns + "text").Select(t => t.Value));
            foreach (var t in new[] { "q8_0", "q4_K_M", "nf4", "int4_g128" }) Assert.Contains(t, labels);
            Assert.Contains("bits per weight", panel.Elements(ns + "text").Select(t => t.Value));
            Assert.Contains(panel.Elements(ns + "text"), t => (string?)t.Attribute("class") == "title" && t.Value.Contains("vs size"));
            Assert.True(panel.Descendants(ns + "text").Count(t => (string?)t.Attribute("class") is "xtick") >= 3);
            Assert.NotEmpty(panel.Descendants(ns + "g").Where(g => (string?)g.Attribute("class") == "legend").Elements(ns + "text"));
        }
        // The KL panel's y axis is logarithmic: its ticks are powers of ten.
        Assert.All(panels[0].Descendants(ns + "text").Where(t => (string?)t.Attribute("class") == "ytick"), t => Assert.Matches(@"^1e-?\d+$", t.Value));

        // Charts are SVG only: a .png name is refused, naming the file, and nothing is written.
        var png = dir.File("rd.png");
        var refused = Assert.Throws<ArgumentException>(() => SweepReport.Plot(r, png));
        Assert.Contains("rd.png", refused.Message);
        Assert.Contains("SVG", refused.Message);
        Assert.False(File.Exists(png));
    }

    [Fact]
    public void Sweep_refuses_a_chart_file_name_as_its_output_folder()
    {
        using var dir = new ScratchDir();
        var png = dir.File("rd.png");
        var (code, _, err) = TensorCodec.Tests.Cli.CliTests.Tcodec("sweep", Model, "--config", Config, "--types", "q8_0",
            "--tokens", TestFiles.Sample("shakespeare-val-4k.tokens.u16"), "-o", png);
        Assert.Equal(1, code);
        Assert.Contains("rd.png", err);
        Assert.Contains("folder", err);
        Assert.False(Directory.Exists(png) || File.Exists(png));
    }

    [Fact]
    public void Unknown_type_is_named_before_any_work()
    {
        var e = Assert.Throws<ArgumentException>(() => Sweep.Run(Model, new int[300], new SweepOptions { Types = ["q8_0", "q9_X"], ConfigPath = Config }));
        Assert.Contains("'q9_X'", e.Message);
    }
}
