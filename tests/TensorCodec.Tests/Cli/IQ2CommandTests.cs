namespace TensorCodec.Tests.Cli;

/// <summary>`tcodec tensor quantize|dequantize|stats --type iq2_xxs …` for the iq2/iq1 families, against ggml's goldens.</summary>
public class IQ2CommandTests
{
    static readonly string Golden = Path.Combine(AppContext.BaseDirectory, "Fixtures", "ggml-iq");
    static string G(string name) => Path.Combine(Golden, name);

    [Theory]
    [InlineData("stories260k", "iq2_xxs", 256, true)]
    [InlineData("synth", "iq2_xs", 512, true)]
    [InlineData("stories260k", "iq2_s", 256, false)]
    [InlineData("synth", "iq1_s", 512, true)]
    [InlineData("synth", "iq1_m", 256, false)]
    [InlineData("stories260k", "iq1_m", 256, true)]
    public void Quantize_dequantize_and_stats_reproduce_ggml(string @case, string type, int row, bool imatrix)
    {
        using var dir = new ScratchDir();
        string stem = imatrix ? $"{@case}.{type}.imat" : $"{@case}.{type}";
        var args = new List<string> { "tensor", "quantize", "--type", type, "--row", row.ToString(), G(@case + ".f32"), "-o", dir.File("q.bin") };
        if (imatrix) args.AddRange(["--imatrix", G(@case + ".imatrix.f32")]);
        var (code, _, err) = CliTests.Tcodec([.. args]);
        Assert.True(code == 0, err);
        var expected = File.ReadAllBytes(G(stem + ".bin"));
        Assert.Equal(expected, File.ReadAllBytes(dir.File("q.bin")).AsSpan(0, expected.Length).ToArray());

        (code, _, err) = CliTests.Tcodec("tensor", "dequantize", "--type", type, "--row", row.ToString(), G(stem + ".bin"), "-o", dir.File("d.f32"));
        Assert.True(code == 0, err);
        Assert.Equal(File.ReadAllBytes(G(stem + ".dequant.f32")), File.ReadAllBytes(dir.File("d.f32")));

        args[1] = "stats";
        args.RemoveRange(args.Count - (imatrix ? 4 : 2), 2); // drop -o q.bin
        (code, var stdout, err) = CliTests.Tcodec([.. args]);
        Assert.True(code == 0, err);
        Assert.Contains(type, stdout);
    }

    [Theory]
    [InlineData("iq2_xxs")]
    [InlineData("iq2_xs")]
    [InlineData("iq1_s")]
    public void Quantizing_without_an_importance_matrix_is_refused(string type)
    {
        using var dir = new ScratchDir();
        var (code, _, err) = CliTests.Tcodec("tensor", "quantize", "--type", type, "--row", "256", G("synth.f32"), "-o", dir.File("q.bin"));
        Assert.Equal(1, code);
        Assert.Contains($"{type}: quantizing needs an importance matrix", err);
        Assert.False(File.Exists(dir.File("q.bin")));
    }
}
