using System.Runtime.InteropServices;
using System.Text.Json;

namespace TensorCodec.Tests.Cli;

/// <summary>`tcodec tensor …` through the real executable: ggml goldens byte for byte, and the bad-input errors.</summary>
public class TensorCommandTests
{
    private static readonly string Golden = Path.Combine(AppContext.BaseDirectory, "Fixtures", "ggml");
    private static string G(string name) => Path.Combine(Golden, name);
    private static (int Code, string Out, string Err) Tcodec(params string[] args) => CliTests.Tcodec(args);

    /// <summary>tcodec <paramref name="args"/> exits 1 and says <paramref name="expected"/> on stderr; returns stderr.</summary>
    private static string Refused(string expected, params string[] args)
    {
        var (code, _, err) = Tcodec(args);
        Assert.Equal(1, code);
        Assert.Contains(expected, err);
        return err;
    }

    [Theory]
    [InlineData("stories260k", "q4_0", 256, false)]
    [InlineData("stories260k", "q4_K", 256, false)]
    [InlineData("synth", "q6_K", 256, false)]
    [InlineData("synth", "iq4_xs", 256, false)]
    [InlineData("synth", "q4_K", 512, true)]
    [InlineData("synth", "iq4_nl", 512, true)]
    public void Reproduces_ggml_goldens_from_the_command_line(string @case, string type, int row, bool imatrix)
    {
        using var dir = new ScratchDir();
        string stem = imatrix ? $"{@case}.{type}.imat" : $"{@case}.{type}";
        var args = new List<string> { "tensor", "quantize", "--type", type, "--row", row.ToString(), G(@case + ".f32"), "-o", dir.File("q.bin") };
        if (imatrix) args.AddRange(["--imatrix", G(@case + ".imatrix.f32")]);
        var (code, _, err) = Tcodec([.. args]);
        Assert.True(code == 0, err);
        Assert.Equal(File.ReadAllBytes(G(stem + ".bin")), File.ReadAllBytes(dir.File("q.bin")));

        (code, _, err) = Tcodec("tensor", "dequantize", "--type", type, "--row", row.ToString(), G(stem + ".bin"), "-o", dir.File("d.f32"));
        Assert.True(code == 0, err);
        Assert.Equal(File.ReadAllBytes(G(stem + ".dequant.f32")), File.ReadAllBytes(dir.File("d.f32")));
    }

    [Fact]
    public void Our_formats_round_trip_and_stats_report_json()
    {
        using var dir = new ScratchDir();
        foreach (var type in new[] { "nf4", "int4_g128", "llm_int8", "mxfp6_e2m3" })
        {
            string q = dir.File(type + ".bin"), d = dir.File(type + ".f32");
            var (code, _, err) = Tcodec("tensor", "quantize", "-t", type, "-n", "256", G("stories260k.f32"), "-o", q);
            Assert.True(code == 0, type + ": " + err);
            (code, _, err) = Tcodec("tensor", "dequantize", "-t", type, "-n", "256", q, "-o", d);
            Assert.True(code == 0, type + ": " + err);
            Assert.Equal(new FileInfo(G("stories260k.f32")).Length, new FileInfo(d).Length);
        }
        var (c, stdout, e) = Tcodec("tensor", "stats", "--type", "q4_K", "--row", "256", G("stories260k.f32"), "--json");
        Assert.True(c == 0, e);
        using var doc = JsonDocument.Parse(stdout);
        Assert.Equal(4.5, doc.RootElement.GetProperty("bits_per_value").GetDouble(), 6);
        Assert.True(doc.RootElement.GetProperty("sqnr_db").GetDouble() > 15);
        Assert.True(doc.RootElement.GetProperty("cosine").GetDouble() > 0.98);
        (c, stdout, e) = Tcodec("tensor", "stats", "--type", "nf4", "--row", "256", G("stories260k.f32"));
        Assert.True(c == 0, e);
        Assert.Contains("SQNR", stdout);
    }

    [Fact]
    public void Row_length_that_does_not_fit_the_block_is_a_clear_error()
    {
        using var dir = new ScratchDir();
        Refused("row length 128 is not a multiple of the block size 256", "tensor", "quantize", "--type", "q4_K", "--row", "128", G("synth.f32"), "-o", dir.File("q.bin"));
        Assert.False(File.Exists(dir.File("q.bin")));
        Refused("not a whole number of rows of 96", "tensor", "quantize", "--type", "q8_0", "--row", "96", G("synth.f32"), "-o", dir.File("q.bin"));
    }

    [Fact]
    public void Nonfinite_input_is_refused_with_its_index_unless_allowed()
    {
        using var dir = new ScratchDir();
        var x = new float[64];
        for (int i = 0; i < x.Length; i++) x[i] = i * 0.01f;
        x[37] = float.NaN;
        File.WriteAllBytes(dir.File("x.f32"), MemoryMarshal.AsBytes(x.AsSpan()).ToArray());
        var err = Refused("index 37", "tensor", "quantize", "--type", "q8_0", "--row", "32", dir.File("x.f32"), "-o", dir.File("q.bin"));
        Assert.Contains("--allow-nonfinite", err);
        Assert.False(File.Exists(dir.File("q.bin")));
        var (code, _, stderr) = Tcodec("tensor", "quantize", "--type", "q8_0", "--row", "32", "--allow-nonfinite", dir.File("x.f32"), "-o", dir.File("q.bin"));
        Assert.True(code == 0, stderr);
        Assert.Equal(2 * 34, new FileInfo(dir.File("q.bin")).Length);
    }

    [Fact]
    public void Unknown_type_lists_the_known_types()
    {
        using var dir = new ScratchDir();
        var err = Refused("unknown quantization type 'q9_K'", "tensor", "quantize", "--type", "q9_K", "--row", "256", G("synth.f32"), "-o", dir.File("q.bin"));
        foreach (var t in new[] { "q4_0", "q4_K", "iq4_xs", "tq1_0", "mxfp4", "nf4", "fp4", "int8_block", "mxfp8_e4m3", "ocp_mxfp4", "mxint8", "nvfp4_16", "int4_g128", "llm_int8" })
            Assert.Contains(t, err);
    }

    [Fact]
    public void Existing_output_is_kept_without_force()
    {
        using var dir = new ScratchDir();
        File.WriteAllText(dir.File("q.bin"), "keep me");
        Refused("already exists", "tensor", "quantize", "--type", "q8_0", "--row", "256", G("synth.f32"), "-o", dir.File("q.bin"));
        Assert.Equal("keep me", File.ReadAllText(dir.File("q.bin")));
        var (code, _, err) = Tcodec("tensor", "quantize", "--type", "q8_0", "--row", "256", G("synth.f32"), "-o", dir.File("q.bin"), "-f");
        Assert.True(code == 0, err);
        Assert.Equal(File.ReadAllBytes(G("synth.q8_0.bin")), File.ReadAllBytes(dir.File("q.bin")));
        Assert.Single(Directory.GetFiles(dir.Path)); // no temporary files left behind
    }

    [Fact]
    public void Dequantize_checks_the_data_length()
    {
        using var dir = new ScratchDir();
        File.WriteAllBytes(dir.File("bad.bin"), new byte[100]);
        Refused("not a whole number of rows", "tensor", "dequantize", "--type", "q4_0", "--row", "256", dir.File("bad.bin"), "-o", dir.File("d.f32"));
        Assert.False(File.Exists(dir.File("d.f32")));
    }
}
