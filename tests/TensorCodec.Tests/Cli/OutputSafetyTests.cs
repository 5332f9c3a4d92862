using System.Diagnostics;
using System.Security.Cryptography;
using TensorCodec.Tests.Containers;
using static TensorCodec.Tests.Cli.CliTests;

namespace TensorCodec.Tests.Cli;

/// <summary>The CLI never writes over its input, never replaces special files, and cleans up when interrupted.</summary>
public class OutputSafetyTests
{
    [SkippableFact]
    public void CompressToDevNullLeavesItADevice()
    {
        Skip.IfNot(OperatingSystem.IsLinux(), "/dev/null as a character device is checked on Linux");
        Skip.IfNot(AtomicFileWriterTests.TypeOf("/dev/null") == "character special file", "/dev/null is not a character device here");
        var (code, _, err) = Tcodec("compress", TestFiles.Sample("stories260K.bin"), "-o", "/dev/null", "-f");
        Assert.True(code == 0, err);
        Assert.Equal("character special file", AtomicFileWriterTests.TypeOf("/dev/null"));

        // Decompressing to /dev/null checks every chunk and writes nothing (no space reserved on a device).
        using var dir = new ScratchDir();
        Assert.Equal(0, Tcodec("compress", TestFiles.Sample("stories260K.bin"), "-o", dir.File("s.tcz")).Code);
        (code, _, err) = Tcodec("decompress", dir.File("s.tcz"), "-o", "/dev/null");
        Assert.True(code == 0, err);
        Assert.Equal("character special file", AtomicFileWriterTests.TypeOf("/dev/null"));
    }

    [Fact]
    public void OutputOnTheInputThroughAnotherNameIsRefused()
    {
        using var dir = new ScratchDir();
        var x = dir.File("x.bin");
        File.Copy(TestFiles.Sample("stories260K.bin"), x);
        var original = File.ReadAllBytes(x);
        Directory.CreateSymbolicLink(dir.File("dirlink"), dir.Path);
        var names = new List<string> { dir.File("dirlink/x.bin"), Path.Combine(dir.Path, ".", "x.bin") };
        if (OperatingSystem.IsLinux())
        {
            AtomicFileWriterTests.Run("ln", x, dir.File("hard.bin"));
            names.Add(dir.File("hard.bin"));
        }
        foreach (var name in names)
        {
            var (code, _, err) = Tcodec("compress", x, "-o", name, "-f");
            Assert.Equal(1, code);
            Assert.Contains("output would overwrite the input", err);
            Assert.Equal(original, File.ReadAllBytes(x));
        }

        var tcz = dir.File("x.tcz");
        Assert.Equal(0, Tcodec("compress", x, "-o", tcz).Code);
        var tczBytes = File.ReadAllBytes(tcz);
        var (dcode, _, derr) = Tcodec("decompress", tcz, "-o", dir.File("dirlink/x.tcz"), "-f");
        Assert.Equal(1, dcode);
        Assert.Contains("output would overwrite the input", derr);
        Assert.Equal(tczBytes, File.ReadAllBytes(tcz));
    }

    [Fact]
    public void MissingOutputFolderIsNamedNotTheTemporaryFile()
    {
        using var dir = new ScratchDir();
        var (code, _, err) = Tcodec("compress", TestFiles.Sample("stories260K.bin"), "-o", dir.File("absent/out.tcz"));
        Assert.Equal(1, code);
        Assert.Contains("absent", err);
        Assert.DoesNotContain(".tmp", err);
    }

    [SkippableFact]
    public void FullDiskNamesTheOutputAndLeavesNoTemporaryFile()
    {
        Skip.IfNot(OperatingSystem.IsLinux(), "/dev/full and tmpfs are Linux");
        var (code, _, err) = Tcodec("compress", TestFiles.Sample("stories260K.bin"), "-o", "/dev/full");
        Assert.Equal(1, code);
        Assert.Contains("No space left on device", err);
        Assert.Contains("/dev/full", err);

        using var dir = new ScratchDir();
        var mnt = dir.File("small");
        Directory.CreateDirectory(mnt);
        try { AtomicFileWriterTests.Run("mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", mnt); }
        catch (Exception e) when (e is InvalidOperationException or System.ComponentModel.Win32Exception) { Skip.If(true, "cannot mount a small tmpfs (needs root)"); }
        try
        {
            var output = Path.Combine(mnt, "s.tcz");
            (code, _, err) = Tcodec("compress", TestFiles.Sample("stories260K.bin"), "-o", output);
            Assert.Equal(1, code);
            Assert.Contains("No space left on device", err);
            Assert.Contains(output, err);
            Assert.DoesNotContain(".tmp", err);
            Assert.Empty(Directory.GetFileSystemEntries(mnt));
        }
        finally { AtomicFileWriterTests.Run("umount", mnt); }
    }

    [SkippableTheory]
    [InlineData("TERM", 143)]
    [InlineData("INT", 130)]
    public void SignalRemovesTheTemporaryFile(string signal, int expectedCode)
    {
        Skip.IfNot(OperatingSystem.IsLinux(), "signals are sent with kill(1)");
        using var dir = new ScratchDir();
        var input = dir.File("big.bin");
        using (var f = File.Create(input))
        {
            var block = new byte[1 << 20];
            for (int i = 0; i < 200; i++) { RandomNumberGenerator.Fill(block); f.Write(block); }
        }
        // A background job inherits SIGINT ignored (no Ctrl-C there); env restores the default so the test means something.
        var psi = new ProcessStartInfo("env") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var a in new[] { "--default-signal=INT", "dotnet", "exec", Path.Combine(AppContext.BaseDirectory, "tcodec.dll"), "compress", input, "-T", "1" })
            psi.ArgumentList.Add(a);
        using var p = Process.Start(psi)!;
        var stderr = p.StandardError.ReadToEndAsync();
        _ = p.StandardOutput.ReadToEndAsync();
        var sw = Stopwatch.StartNew();
        while (Directory.GetFiles(dir.Path, ".*.tmp").Length == 0 && !p.HasExited && sw.Elapsed < TimeSpan.FromSeconds(30))
            Thread.Sleep(5);
        Skip.If(p.HasExited && p.ExitCode == 125, "env has no --default-signal (coreutils < 8.31)");
        Skip.If(p.HasExited, "compress finished before it could be interrupted");
        Assert.NotEmpty(Directory.GetFiles(dir.Path, ".*.tmp"));
        AtomicFileWriterTests.Run("kill", "-" + signal, p.Id.ToString());
        Assert.True(p.WaitForExit(TimeSpan.FromSeconds(30)), "tcodec did not exit after the signal");
        Assert.Equal(expectedCode, p.ExitCode);
        Assert.Contains("interrupted", stderr.Result);
        Assert.Empty(Directory.GetFiles(dir.Path, ".*.tmp"));
        Assert.False(File.Exists(input + ".tcz"));
    }
}
