using System.Diagnostics;
using TensorCodec.Containers;
using TensorCodec.Containers.Tcz;
using static TensorCodec.Tests.Containers.ContainerTestData;

namespace TensorCodec.Tests.Containers;

/// <summary>Inputs that are not regular files are refused in one line before they are opened;
/// a file that looks like a container but does not parse is compressed as opaque bytes.</summary>
public class InputFileTests
{
    static readonly TimeSpan Quick = TimeSpan.FromSeconds(20);

    static void SkipUnlessUnix() => Skip.IfNot(OperatingSystem.IsLinux() || OperatingSystem.IsMacOS(), "device files, /proc and FIFOs are Unix features");

    /// <summary>Runs <paramref name="open"/> on a worker so a blocking open fails the test instead of hanging the suite.</summary>
    static IOException RefusedQuickly(Action open)
    {
        var task = Task.Run(open);
        Assert.True(((IAsyncResult)task).AsyncWaitHandle.WaitOne(Quick), "the open blocked");
        var e = Assert.IsAssignableFrom<IOException>(task.Exception?.InnerException);
        Assert.DoesNotContain('\n', e.Message);
        return e;
    }

    static string MakeFifo(ScratchDir dir)
    {
        var path = dir.File("pipe");
        using var p = Process.Start(new ProcessStartInfo("mkfifo", [path]) { UseShellExecute = false })!;
        p.WaitForExit();
        Skip.If(p.ExitCode != 0, "mkfifo failed");
        return path;
    }

    [SkippableFact]
    public void CharacterDeviceIsRefused()
    {
        SkipUnlessUnix();
        var e = RefusedQuickly(() => TensorFileReader.Open("/dev/zero", strict: false));
        Assert.Contains("/dev/zero is not a regular file (character device)", e.Message);
        RefusedQuickly(() => TczReader.Open("/dev/zero"));
    }

    [SkippableFact]
    public void ProcFileIsRefused()
    {
        Skip.IfNot(File.Exists("/proc/self/status"), "no /proc");
        var e = RefusedQuickly(() => TensorFileReader.Open("/proc/self/status", strict: false));
        Assert.Contains("reports length 0 but has content", e.Message);
    }

    [SkippableFact]
    public void FifoIsRefusedWithoutBlocking()
    {
        SkipUnlessUnix();
        using var dir = new ScratchDir();
        var fifo = MakeFifo(dir);
        Assert.Contains("(FIFO)", RefusedQuickly(() => TensorFileReader.Open(fifo)).Message);
        RefusedQuickly(() => TensorFileReader.Detect(fifo));
        RefusedQuickly(() => TczReader.Open(fifo));
        RefusedQuickly(() => TczInspector.Inspect(fifo));
        RefusedQuickly(() => TensorCodec.Engine.KvContext.Read(fifo)); // kv load
    }

    [SkippableFact]
    public void SymlinkToARegularFileIsAccepted()
    {
        SkipUnlessUnix();
        using var dir = new ScratchDir();
        var target = dir.File("real.bin");
        File.WriteAllBytes(target, Bytes(100, 1));
        var link = dir.File("link.bin");
        File.CreateSymbolicLink(link, target);
        Assert.Equal(100, TensorFileReader.Open(link).FileLength);
        File.WriteAllBytes(dir.File("empty.bin"), []);
        Assert.Equal(0, TensorFileReader.Open(dir.File("empty.bin")).FileLength);
    }

    [SkippableFact]
    public void CliRefusesSpecialInputsInOneLine()
    {
        SkipUnlessUnix();
        using var dir = new ScratchDir();
        var fifo = MakeFifo(dir);
        foreach (var (input, kind) in new[] { ("/dev/zero", "character device"), ("/proc/self/status", "length 0"), (fifo, "FIFO"), (dir.Path, "directory") })
        {
            if (!File.Exists(input) && !Directory.Exists(input)) continue;
            foreach (var cmd in new[] { "compress", "verify", "inspect" })
            {
                var args = cmd == "compress" ? new[] { cmd, input, "-o", dir.File("out.tcz") } : [cmd, input];
                var (code, err) = TcodecWithin(Quick, args);
                Assert.True(code != 0, $"{cmd} {input} exited 0");
                // compress takes a model folder: this one is refused for the FIFO inside it, before anything is written.
                var (named, what) = cmd == "compress" && input == dir.Path ? (fifo, "FIFO") : (input, kind);
                Assert.Contains($"{named} is not a regular file", err);
                Assert.Contains(what, err);
                Assert.Single(err.Trim().Split('\n'));
            }
            Assert.False(File.Exists(dir.File("out.tcz")));
        }
    }

    static (int Code, string Err) TcodecWithin(TimeSpan limit, string[] args)
    {
        var psi = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        psi.ArgumentList.Add("exec");
        psi.ArgumentList.Add(Path.Combine(AppContext.BaseDirectory, "tcodec.dll"));
        foreach (var a in args) psi.ArgumentList.Add(a);
        psi.Environment["NO_COLOR"] = "1";
        using var p = Process.Start(psi)!;
        var stderr = p.StandardError.ReadToEndAsync();
        _ = p.StandardOutput.ReadToEndAsync();
        if (!p.WaitForExit(limit))
        {
            p.Kill(entireProcessTree: true);
            Assert.Fail($"tcodec {string.Join(' ', args)} still running after {limit.TotalSeconds} s");
        }
        return (p.ExitCode, stderr.Result);
    }

    public static TheoryData<string, byte[]> LookalikeContainers() => new()
    {
        { "magic-only.gguf", "GGUF"u8.ToArray() },
        { "truncated.gguf", SmallGguf()[..40] },
        { "truncated.safetensors", SmallSafetensors()[..^4] },
        { "bad-json.safetensors", RawSafetensors("{\"a\": oops}", 4) },
    };

    [Theory]
    [MemberData(nameof(LookalikeContainers))]
    public void LookalikeContainersCompressAsOpaqueBytesExactly(string name, byte[] content)
    {
        using var dir = new ScratchDir();
        var input = dir.File(name);
        File.WriteAllBytes(input, content);
        // Commands that need a model still get the parse error…
        Assert.Throws<TensorFormatException>(() => TensorFileReader.Open(input));
        Assert.Throws<TensorFormatException>(() => TczInspector.Inspect(input));
        // …but compress takes any file, says why it did not parse it, and restores it byte-exact.
        var result = TczWriter.CompressFile(input, dir.File("x.tcz"), false);
        Assert.Equal(TensorFileFormat.Opaque, result.Format);
        Assert.Contains(name, result.OpaqueReason);
        using (var r = TczReader.Open(dir.File("x.tcz"))) r.DecompressToFile(dir.File("back"), false);
        Assert.Equal(content, File.ReadAllBytes(dir.File("back")));
    }

    [Fact]
    public void CliCompressesAMagicOnlyGgufAsOpaqueAndInspectNamesTheProblem()
    {
        using var dir = new ScratchDir();
        var input = dir.File("x.gguf");
        File.WriteAllBytes(input, "GGUF"u8.ToArray());
        var (code, err) = TcodecWithin(TimeSpan.FromMinutes(1), ["compress", input]);
        Assert.True(code == 0, err);
        Assert.Contains("stored as opaque bytes", err);
        Assert.Contains("field 'version'", err);
        (code, err) = TcodecWithin(TimeSpan.FromMinutes(1), ["decompress", input + ".tcz", "-o", dir.File("back")]);
        Assert.True(code == 0, err);
        Assert.Equal("GGUF"u8.ToArray(), File.ReadAllBytes(dir.File("back")));
        (code, err) = TcodecWithin(TimeSpan.FromMinutes(1), ["inspect", input]);
        Assert.NotEqual(0, code);
        Assert.Contains("field 'version'", err);
    }
}
