using System.Diagnostics;
using System.Net.Sockets;
using TensorCodec.Containers;

namespace TensorCodec.Tests.Containers;

/// <summary>The output writer replaces only regular files, writes devices and FIFOs in place, and names the output in errors.</summary>
public class AtomicFileWriterTests
{
    internal static string Run(string file, params string[] args)
    {
        var psi = new ProcessStartInfo(file) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var a in args) psi.ArgumentList.Add(a);
        using var p = Process.Start(psi)!;
        var stdout = p.StandardOutput.ReadToEnd();
        p.WaitForExit();
        return p.ExitCode == 0 ? stdout.Trim() : throw new InvalidOperationException($"{file} {string.Join(' ', args)}: exit {p.ExitCode}");
    }

    /// <summary>`stat -c %F`: the file type as the system sees it, symlinks followed.</summary>
    internal static string TypeOf(string path) => Run("stat", "-L", "-c", "%F", path);

    static string[] TempFiles(string dir) => Directory.GetFiles(dir, ".*.tmp");

    [SkippableFact]
    public void FifoIsWrittenInPlaceNotReplaced()
    {
        Skip.IfNot(OperatingSystem.IsLinux(), "mkfifo and stat are Linux tools here");
        using var dir = new ScratchDir();
        var fifo = dir.File("pipe");
        Run("mkfifo", fifo);
        var payload = new byte[300_000];
        new Random(9).NextBytes(payload);
        var reader = Task.Factory.StartNew(() => File.ReadAllBytes(fifo), TaskCreationOptions.LongRunning);
        using (var w = new AtomicFileWriter(fifo, overwrite: false)) // nothing is replaced: no -f needed
        {
            w.Stream.Write(payload);
            var e = Assert.Throws<IOException>(() => w.Stream.Position = 0); // a writer that must seek says why, naming the output
            Assert.Contains(fifo + ": this output must be a regular file", e.Message);
            Assert.Equal(payload.Length, w.BytesWritten);
            w.Commit();
        }
        Assert.True(reader.Wait(TimeSpan.FromSeconds(20)), "the FIFO's reader got no end of file: the writer did not write to the FIFO");
        Assert.Equal(payload, reader.Result);
        Assert.Equal("fifo", TypeOf(fifo));
        Assert.Empty(TempFiles(dir.Path));
    }

    [SkippableFact]
    public void DevNullStaysACharacterDevice()
    {
        Skip.IfNot(OperatingSystem.IsLinux(), "/dev/null as a character device is checked on Linux");
        Skip.IfNot(TypeOf("/dev/null") == "character special file", "/dev/null is not a character device on this machine");
        using (var w = new AtomicFileWriter("/dev/null", overwrite: true))
        {
            w.Stream.Write(new byte[100_000]);
            w.Commit();
        }
        Assert.Equal("character special file", TypeOf("/dev/null"));
    }

    [Fact]
    public void SymlinkToAFileReplacesTheTargetAndKeepsTheLink()
    {
        using var dir = new ScratchDir();
        Directory.CreateDirectory(dir.File("real"));
        var target = dir.File("real/target.bin");
        File.WriteAllText(target, "old");
        var link = dir.File("link.bin");
        File.CreateSymbolicLink(link, "real/target.bin");
        using (var w = new AtomicFileWriter(link, overwrite: true))
        {
            w.Stream.Write("new"u8);
            w.Commit();
        }
        Assert.Equal("real/target.bin", new FileInfo(link).LinkTarget);
        Assert.Equal("new", File.ReadAllText(target));
        Assert.Empty(TempFiles(dir.Path));
        Assert.Empty(TempFiles(dir.File("real")));
        Assert.Throws<IOException>(() => new AtomicFileWriter(link, overwrite: false)); // exists, through the link
    }

    [SkippableFact]
    public void SocketsAndBlockDevicesAreRefusedAndLeftAlone()
    {
        Skip.IfNot(OperatingSystem.IsLinux(), "stat is a Linux tool here");
        using var dir = new ScratchDir();
        var sock = dir.File("s.sock");
        using var listener = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        listener.Bind(new UnixDomainSocketEndPoint(sock));
        var e = Assert.Throws<IOException>(() => new AtomicFileWriter(sock, overwrite: true));
        Assert.Contains("s.sock: is a socket", e.Message);
        Assert.Equal("socket", TypeOf(sock));

        var block = dir.File("b0");
        try { Run("mknod", block, "b", "7", "250"); }
        catch (InvalidOperationException) { Skip.If(true, "mknod needs root"); }
        e = Assert.Throws<IOException>(() => new AtomicFileWriter(block, overwrite: true));
        Assert.Contains("b0: is a block device", e.Message);
        Assert.Equal("block special file", TypeOf(block));
        Assert.Empty(TempFiles(dir.Path));
    }

    [Fact]
    public void MissingFolderIsNamedNotTheTemporaryFile()
    {
        using var dir = new ScratchDir();
        var output = dir.File("no-such-folder/out.tcz");
        var e = Assert.ThrowsAny<IOException>(() => new AtomicFileWriter(output, overwrite: false));
        Assert.Contains(output, e.Message);
        Assert.Contains("no-such-folder", e.Message);
        Assert.DoesNotContain(".tmp", e.Message);
    }

    [Fact]
    public void TemporaryNameCarriesThePidAndStaleOnesOfDeadProcessesAreRemoved()
    {
        using var dir = new ScratchDir();
        int dead = Enumerable.Range(3_000_000, 1000).First(p => !Directory.Exists($"/proc/{p}"));
        var stale = dir.File($".out.tcz.tcodec-{dead}.tmp");
        var otherName = dir.File($".other.tcz.tcodec-{dead}.tmp");
        File.WriteAllText(stale, "left by a killed run");
        File.WriteAllText(otherName, "another output's: not ours to judge");
        using (var w = new AtomicFileWriter(dir.File("out.tcz"), overwrite: false))
        {
            Assert.Equal(dir.File($".out.tcz.tcodec-{Environment.ProcessId}.tmp"), w.TempPath);
            Assert.False(File.Exists(stale));
            w.Stream.Write("x"u8);
        } // disposed without commit: the temporary file goes too
        Assert.True(File.Exists(otherName));
        Assert.False(File.Exists(dir.File("out.tcz")));
        Assert.Equal([otherName], TempFiles(dir.Path));
    }

    [Fact]
    public void FileIdentityComparesTheFileNotThePath()
    {
        using var dir = new ScratchDir();
        var x = dir.File("x");
        File.WriteAllText(x, "data");
        File.WriteAllText(dir.File("y"), "data");
        Directory.CreateSymbolicLink(dir.File("dirlink"), dir.Path);
        Assert.True(FileIdentity.Same(x, dir.File("dirlink/x")));
        Assert.True(FileIdentity.Same(x, Path.Combine(dir.Path, ".", "x")));
        Assert.False(FileIdentity.Same(x, dir.File("y")));
        Assert.False(FileIdentity.Same(x, dir.File("missing")));
        Assert.Equal(x, FileIdentity.RealPath(dir.File("dirlink/dirlink/x")));
        if (OperatingSystem.IsLinux())
        {
            Run("ln", x, dir.File("hard"));
            Assert.True(FileIdentity.Same(x, dir.File("hard")));
        }
    }
}
