using System.Diagnostics;
using System.Text.Json.Nodes;
using TensorCodec.Containers.Tcz;
using TensorCodec.Tests.Containers;
using static TensorCodec.Tests.Cli.CliTests;

namespace TensorCodec.Tests.Cli;

/// <summary>TCODEC_TIMING=1 (whole-process stage times for benchmarking) and the runtime settings tcodec ships with.</summary>
public class TimingTests
{
    static (int Code, string Err) Run(bool timing, params string[] args)
    {
        var psi = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        psi.ArgumentList.Add("exec");
        psi.ArgumentList.Add(Path.Combine(AppContext.BaseDirectory, "tcodec.dll"));
        foreach (var a in args) psi.ArgumentList.Add(a);
        psi.Environment["NO_COLOR"] = "1";
        if (timing) psi.Environment["TCODEC_TIMING"] = "1"; else psi.Environment.Remove("TCODEC_TIMING");
        using var p = Process.Start(psi)!;
        _ = p.StandardOutput.ReadToEndAsync();
        var stderr = p.StandardError.ReadToEndAsync();
        p.WaitForExit();
        return (p.ExitCode, stderr.Result);
    }

    [Fact]
    public void TimingDumpListsStagesOnlyWhenAskedAndChangesNothingElse()
    {
        using var dir = new ScratchDir();
        var input = dir.File("model.bin");
        File.Copy(TestFiles.Sample("stories260K.bin"), input);
        Assert.Equal(0, Tcodec("compress", input, "-o", dir.File("m.tcz"), "-T", "1").Code);

        var (code, err) = Run(true, "decompress", dir.File("m.tcz"), "-o", dir.File("a.bin"), "-q", "-T", "1");
        Assert.True(code == 0, err);
        string[] stages = ["start-up (runtime, to Main)", "build command tree", "parse arguments", "open archive, read index", "decode, check, write, commit", "exit"];
        var lines = err.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.Equal(stages.Length, lines.Length);
        for (int i = 0; i < stages.Length; i++)
        {
            Assert.StartsWith("timing: " + stages[i], lines[i]);
            Assert.Matches(@"wall +\d+\.\d ms  cpu +\d+\.\d ms", lines[i]);
        }
        Assert.Equal(File.ReadAllBytes(input), File.ReadAllBytes(dir.File("a.bin")));

        (code, err) = Run(false, "decompress", dir.File("m.tcz"), "-o", dir.File("b.bin"), "-q", "-T", "1");
        Assert.True(code == 0, err);
        Assert.DoesNotContain("timing:", err);
        Assert.Equal(File.ReadAllBytes(input), File.ReadAllBytes(dir.File("b.bin")));
    }

    [Fact]
    public void CorruptChunkIsStillRefusedWithTimingOn()
    {
        using var dir = new ScratchDir();
        var input = dir.File("model.bin");
        File.Copy(TestFiles.Sample("stories260K.bin"), input);
        var tcz = dir.File("m.tcz");
        Assert.Equal(0, Tcodec("compress", input, "-o", tcz, "-T", "1").Code);
        var bytes = File.ReadAllBytes(tcz);
        bytes[TczConstants.HeaderSize + 100] ^= 0x10; // inside the first chunk's stored bytes
        File.WriteAllBytes(tcz, bytes);
        var (code, err) = Run(true, "decompress", tcz, "-o", dir.File("a.bin"), "-q", "-T", "1");
        Assert.NotEqual(0, code);
        Assert.Contains("checksum mismatch in the compressed data", err);
        Assert.False(File.Exists(dir.File("a.bin")));
    }

    /// <summary>Dynamic PGO is off for tcodec (its instrumented tiers cost more than they return within a run of
    /// seconds; BENCHMARKS.md has the paired measurement): guard the setting against being dropped.</summary>
    [Fact]
    public void TcodecRunsWithoutDynamicPgo()
    {
        var config = JsonNode.Parse(File.ReadAllText(Path.Combine(AppContext.BaseDirectory, "tcodec.runtimeconfig.json")))!;
        Assert.False(config["runtimeOptions"]!["configProperties"]!["System.Runtime.TieredPGO"]!.GetValue<bool>());
    }
}
