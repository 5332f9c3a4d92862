using System.Runtime.InteropServices;
using System.Text.Json;
using static TensorCodec.Tests.Cli.CliTests;

namespace TensorCodec.Tests.Engine;

/// <summary>`tcodec logits` and `tcodec eval` end to end through the real executable.</summary>
public class EngineCliTests
{
    [Fact]
    public void Logits_writes_the_reference_layout()
    {
        using var dir = new ScratchDir();
        var outPath = dir.File("out.f32");
        var (code, _, err) = Tcodec("logits", TestFiles.Sample("stories260K.bin"), "--tokens", EngineFixtures.Fixture("random.tokens.csv"), "-o", outPath);
        Assert.True(code == 0, err);
        var ours = MemoryMarshal.Cast<byte, float>(File.ReadAllBytes(outPath)).ToArray();
        var (max, _) = EngineFixtures.MaxAbsDiff(ours, EngineFixtures.Logits("random.logits.f32"));
        Assert.True(max <= 1e-4, $"max |Δ| {max}");

        (code, _, err) = Tcodec("logits", TestFiles.Sample("stories260K.bin"), "--tokens", "1,2,600", "-o", dir.File("bad.f32"));
        Assert.Equal(1, code);
        Assert.Contains("token 2 has id 600", err);
        Assert.False(File.Exists(dir.File("bad.f32")));
    }

    [Fact]
    public void Eval_json_with_base_and_cached_logits()
    {
        using var dir = new ScratchDir();
        var tokens = dir.File("tokens.csv");
        File.WriteAllText(tokens, string.Join(",", Enumerable.Range(0, 200).Select(i => EngineFixtures.Tokens("greedy.tokens.csv")[i % 96])));
        var model = TestFiles.Sample("stories260K.bin");
        var cache = dir.File("base.tclp");

        var (code, stdout, err) = Tcodec("eval", model, "--tokens", tokens, "--ctx", "64", "--save-logits", cache, "--json");
        Assert.True(code == 0, err);
        using var first = JsonDocument.Parse(stdout);
        Assert.Equal(3, first.RootElement.GetProperty("windows").GetInt32());
        Assert.Equal(3 * 31, first.RootElement.GetProperty("scored").GetInt32());
        double ppl = first.RootElement.GetProperty("ppl").GetDouble();

        (code, stdout, err) = Tcodec("eval", model, "--tokens", tokens, "--ctx", "64", "--base-logits", cache, "--json");
        Assert.True(code == 0, err);
        using var second = JsonDocument.Parse(stdout);
        var kl = second.RootElement;
        Assert.Equal(0, kl.GetProperty("kl_mean").GetDouble(), 1e-9);
        Assert.Equal(1, kl.GetProperty("top1_agreement").GetDouble());
        Assert.Equal(ppl, kl.GetProperty("base_ppl").GetDouble(), 1e-9);

        // Failure prints no JSON at all.
        (code, stdout, err) = Tcodec("eval", model, "--tokens", tokens, "--ctx", "256", "--json");
        Assert.Equal(1, code);
        Assert.Equal("", stdout.Trim());
        Assert.Contains("fewer than one window", err);
    }
}
