using System.Diagnostics;
using System.Text.Json;
using TensorCodec.Containers.Tcz;
using static TensorCodec.Tests.Cli.CliTests;

namespace TensorCodec.Tests.Cli;

/// <summary>zstd's habits: <c>tcodec FILE...</c>, <c>-d</c>, <c>-t</c>, <c>-c</c>, <c>-</c> for stdin/stdout, several
/// inputs per call, <c>--rm</c> after a verified write, <c>-q</c>/<c>-v</c>, <c>-#</c> levels, and <c>--json</c> on all of them.</summary>
public class ZstdHabitsTests
{
    /// <summary>Runs tcodec with <paramref name="stdin"/> piped in and stdout kept as bytes.</summary>
    internal static (int Code, byte[] Out, string Err) Pipe(byte[]? stdin, IDictionary<string, string>? env, params string[] args)
    {
        var psi = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true, RedirectStandardInput = true, UseShellExecute = false };
        psi.ArgumentList.Add("exec");
        psi.ArgumentList.Add(Path.Combine(AppContext.BaseDirectory, "tcodec.dll"));
        foreach (var a in args) psi.ArgumentList.Add(a);
        psi.Environment["NO_COLOR"] = "1";
        psi.Environment["COLUMNS"] = "200";
        foreach (var (k, v) in env ?? new Dictionary<string, string>()) psi.Environment[k] = v;
        using var p = Process.Start(psi)!;
        var stdout = new MemoryStream();
        var copy = p.StandardOutput.BaseStream.CopyToAsync(stdout);
        var stderr = p.StandardError.ReadToEndAsync();
        if (stdin is not null)
        {
            try { p.StandardInput.BaseStream.Write(stdin); } catch (IOException) { } // it may exit before reading all
        }
        p.StandardInput.Close();
        p.WaitForExit();
        copy.Wait();
        return (p.ExitCode, stdout.ToArray(), stderr.Result);
    }

    static byte[] Opaque(int n)
    {
        // Compressible but not trivial: text-like bytes with repeats, as a tar of sources would be.
        var rng = new Random(7);
        var words = new[] { "tensor ", "chunk ", "index ", "zstd ", "level ", "\n", "{ ", "} ", "return ", "0x1F " };
        var b = new List<byte>(n);
        while (b.Count < n) b.AddRange(System.Text.Encoding.ASCII.GetBytes(words[rng.Next(words.Length)] + rng.Next(100)));
        return [.. b.Take(n)];
    }

    [Fact]
    public void Root_compresses_several_files_and_decompresses_them_with_d()
    {
        using var dir = new ScratchDir();
        var a = dir.File("a.safetensors");
        var b = dir.File("b.bin");
        File.Copy(TestFiles.Sample("bard-3m-bf16.safetensors"), a);
        File.Copy(TestFiles.Sample("stories260K.bin"), b);
        var (code, _, err) = Tcodec(a, b);
        Assert.True(code == 0, err);
        Assert.True(File.Exists(a + ".tcz") && File.Exists(b + ".tcz"));

        var restored = dir.File("restored");
        Directory.CreateDirectory(restored);
        (code, _, err) = Tcodec("-d", a + ".tcz", b + ".tcz", "--output-dir-flat", restored);
        Assert.True(code == 0, err);
        Assert.Equal(File.ReadAllBytes(a), File.ReadAllBytes(Path.Combine(restored, "a.safetensors")));
        Assert.Equal(File.ReadAllBytes(b), File.ReadAllBytes(Path.Combine(restored, "b.bin")));

        // The subcommands take the same flags and several inputs too.
        (code, _, err) = Tcodec("verify", a + ".tcz", b + ".tcz", "-q");
        Assert.True(code == 0, err);
        (code, _, err) = Tcodec("-t", a + ".tcz", b + ".tcz", "-q");
        Assert.True(code == 0, err);
    }

    [Fact]
    public void An_error_in_one_input_does_not_stop_the_others_and_the_exit_is_non_zero()
    {
        using var dir = new ScratchDir();
        var good = dir.File("good.bin");
        File.Copy(TestFiles.Sample("stories260K.bin"), good);
        var (code, _, err) = Tcodec("compress", dir.File("missing.bin"), good);
        Assert.Equal(1, code);
        Assert.Contains("missing.bin", err);
        Assert.True(File.Exists(good + ".tcz"), "the good input after the bad one was still compressed");

        var junk = dir.File("junk.tcz");
        File.WriteAllBytes(junk, new byte[100]);
        (code, var stdout, err) = Tcodec("decompress", junk, good + ".tcz", "-o", dir.File("x"));
        Assert.Equal(1, code);
        Assert.Contains("-o names one output", err);
        Assert.False(File.Exists(dir.File("x")));

        File.Delete(good);
        (code, stdout, err) = Tcodec("-d", junk, good + ".tcz", "--json");
        Assert.Equal(1, code);
        Assert.Contains("junk.tcz", err);
        Assert.Equal(File.ReadAllBytes(TestFiles.Sample("stories260K.bin")), File.ReadAllBytes(good));
        using var doc = JsonDocument.Parse(stdout);
        var rows = doc.RootElement.EnumerateArray().ToList();
        Assert.Equal(2, rows.Count);
        Assert.False(rows[0].GetProperty("ok").GetBoolean());
        Assert.True(rows[1].GetProperty("ok").GetBoolean());
    }

    [Fact]
    public void A_pipeline_goes_through_stdin_and_stdout()
    {
        using var dir = new ScratchDir();
        var data = Opaque(3_000_000); // three chunks: the stream path cuts it without knowing its length
        var (code, archive, err) = Pipe(data, null, "-c", "-");
        Assert.True(code == 0, err);
        Assert.True(TczReader.HasMagic(archive));
        Assert.True(archive.Length < data.Length / 2, $"{archive.Length} bytes");
        Assert.Contains("opaque", err); // says plainly that stdin is not parsed
        (code, var report, err) = Pipe(data, null, "-", "-o", dir.File("z.tcz"), "--json");
        Assert.True(code == 0, err);
        using (var doc = JsonDocument.Parse(report))
        {
            Assert.Equal("Opaque", doc.RootElement.GetProperty("format").GetString());
            Assert.Contains("not parsed", doc.RootElement.GetProperty("opaque_reason").GetString());
        }
        File.WriteAllBytes(dir.File("x.tcz"), archive);

        // Back through a file and through stdin (spooled to a temporary file that must not stay).
        (code, var restored, err) = Pipe(null, null, "-d", "-c", dir.File("x.tcz"));
        Assert.True(code == 0, err);
        Assert.Equal(data, restored);
        (code, restored, err) = Pipe(null, null, "-d", "-c", dir.File("x.tcz"), dir.File("x.tcz")); // zstd -dc a b: concatenated
        Assert.True(code == 0, err);
        Assert.Equal([.. data, .. data], restored);
        var tmp = dir.File("tmp");
        Directory.CreateDirectory(tmp);
        var env = new Dictionary<string, string> { ["TMPDIR"] = tmp + "/" };
        (code, restored, err) = Pipe(archive, env, "decompress", "-c", "-");
        Assert.True(code == 0, err);
        Assert.Equal(data, restored);
        (code, _, err) = Pipe(archive, env, "verify", "-");
        Assert.True(code == 0, err);
        Assert.Empty(Directory.GetFileSystemEntries(tmp));

        // Damaged input on stdin: one clear line, and the spool is gone too.
        var bad = (byte[])archive.Clone();
        bad[bad.Length / 2] ^= 1;
        (code, restored, err) = Pipe(bad, env, "-d", "-c", "-");
        Assert.Equal(1, code);
        Assert.Contains("stdin", err);
        Assert.Contains("checksum", err);
        Assert.Empty(Directory.GetFileSystemEntries(tmp));

        // "-" reads stdin and, without -o, writes stdout; with -o it writes the file.
        (code, _, err) = Pipe(data, null, "-", "-o", dir.File("y.tcz"), "-q");
        Assert.True(code == 0, err);
        Assert.Equal("", err);
        Assert.Equal(archive, File.ReadAllBytes(dir.File("y.tcz")));

        // Compressed data is not written to several outputs at once on stdout.
        (code, _, err) = Pipe(null, null, "-c", TestFiles.Sample("stories260K.bin"), TestFiles.Sample("bard-3m-bf16.safetensors"));
        Assert.Equal(1, code);
        Assert.Contains("standard output", err);
    }

    [SkippableFact]
    public void Output_to_dev_stdout_keeps_the_summary_out_of_the_data()
    {
        Skip.IfNot(OperatingSystem.IsLinux() || OperatingSystem.IsMacOS(), "/dev/stdout is Unix");
        using var dir = new ScratchDir();
        var expected = dir.File("s.tcz");
        Assert.Equal(0, Tcodec("compress", TestFiles.Sample("stories260K.bin"), "-o", expected).Code);
        // Regression: the summary line was printed into the archive on stdout.
        foreach (var args in new[] { new[] { "compress", TestFiles.Sample("stories260K.bin"), "-o", "/dev/stdout", "-f" }, ["-c", TestFiles.Sample("stories260K.bin")] })
        {
            var (code, stdout, err) = Pipe(null, null, args);
            Assert.True(code == 0, err);
            Assert.Equal(File.ReadAllBytes(expected), stdout);
            Assert.Contains("stories260K.bin", err);
        }
        var (c, json, e) = Pipe(null, null, "-c", TestFiles.Sample("stories260K.bin"), "--json");
        Assert.True(c == 0, e);
        Assert.Equal(File.ReadAllBytes(expected), json);
        Assert.Equal("compress", JsonDocument.Parse(e).RootElement.GetProperty("command").GetString());
    }

    [Fact]
    public void Rm_removes_an_input_only_after_a_verified_write()
    {
        using var dir = new ScratchDir();
        var x = dir.File("x.bin");
        var original = File.ReadAllBytes(TestFiles.Sample("stories260K.bin"));
        File.WriteAllBytes(x, original);

        // Standard output: --rm is ignored (as zstd does), the input stays.
        var (code, _, err) = Pipe(null, null, "--rm", "-c", x);
        Assert.True(code == 0, err);
        Assert.True(File.Exists(x));
        Assert.Contains("--rm ignored", err);

        // A device keeps nothing: the input must stay, and that is an error.
        if (OperatingSystem.IsLinux())
        {
            (code, _, err) = Tcodec("compress", x, "--rm", "-o", "/dev/null");
            Assert.Equal(1, code);
            Assert.Contains("kept, not removed", err);
            Assert.True(File.Exists(x));
        }

        (code, var stdout, err) = Tcodec("compress", x, "--rm", "--json");
        Assert.True(code == 0, err);
        Assert.True(JsonDocument.Parse(stdout).RootElement.GetProperty("input_removed").GetBoolean());
        Assert.False(File.Exists(x));
        (code, _, err) = Tcodec("-d", x + ".tcz", "--rm");
        Assert.True(code == 0, err);
        Assert.False(File.Exists(x + ".tcz"));
        Assert.Equal(original, File.ReadAllBytes(x));

        // A failed write removes nothing.
        Assert.Equal(0, Tcodec(x).Code);
        (code, _, err) = Tcodec("-d", x + ".tcz", "--rm"); // x exists: refused without -f
        Assert.Equal(1, code);
        Assert.True(File.Exists(x + ".tcz"));
        Assert.Contains("contradict", Tcodec(x, "--rm", "-k", "-f").Err);
    }

    [Fact]
    public void Quiet_prints_nothing_and_verbose_prints_settings_and_streams()
    {
        using var dir = new ScratchDir();
        var (code, stdout, err) = Tcodec("compress", TestFiles.Sample("bard-3m-bf16.safetensors"), "-o", dir.File("m.tcz"), "-q");
        Assert.True(code == 0, err);
        Assert.Equal("", stdout + err);
        (code, stdout, err) = Tcodec("-d", dir.File("m.tcz"), "-o", dir.File("m"), "-q");
        Assert.True(code == 0, err);
        Assert.Equal("", stdout + err);
        (code, stdout, err) = Tcodec("compress", TestFiles.Sample("bard-3m-bf16.safetensors"), "-o", dir.File("m.tcz"), "-f", "-v");
        Assert.True(code == 0, err);
        Assert.Contains("level 3", stdout);
        Assert.Contains("MB/s", stdout);
        Assert.Contains("BF16.", stdout); // the per-stream coding methods
    }

    [Fact]
    public void Levels_are_zstd_spelled_and_change_what_zstd_codes()
    {
        using var dir = new ScratchDir();
        var data = dir.File("text.bin");
        File.WriteAllBytes(data, Opaque(2_000_000));
        long Size(params string[] level)
        {
            var (code, stdout, err) = Tcodec(["compress", data, "-o", dir.File("o.tcz"), "-f", "--json", .. level]);
            Assert.True(code == 0, err);
            return JsonDocument.Parse(stdout).RootElement.GetProperty("compressed_bytes").GetInt64();
        }
        long l1 = Size("-1"), fast = Size("--fast"), l3 = Size(), l19 = Size("-19"), level19 = Size("--level", "19");
        Assert.Equal(l1, fast);
        Assert.Equal(l19, level19);
        Assert.True(l19 < l3 && l3 < l1, $"-1 {l1}, -3 {l3}, -19 {l19}");
        Assert.Equal(0, Tcodec("verify", dir.File("o.tcz"), "-q").Code);

        // A negative number stays a number for other commands, and -# means nothing to -d.
        Assert.Contains("levels apply when compressing", Tcodec("-d", "-19", dir.File("o.tcz")).Err);
        Assert.Contains("outside 1..19", Tcodec("compress", data, "--level", "22").Err);
    }

    [Fact]
    public void Json_reports_follow_the_convention_on_compress_decompress_and_verify()
    {
        using var dir = new ScratchDir();
        var m = dir.File("m.safetensors");
        File.Copy(TestFiles.Sample("bard-3m-bf16.safetensors"), m);
        var runs = new (string Command, string[] Args)[]
        {
            ("compress", ["compress", m, "--json"]),
            ("verify", ["verify", m + ".tcz", "--json"]),
            ("decompress", ["decompress", m + ".tcz", "-o", dir.File("r"), "--json"]),
            ("verify", ["-t", m + ".tcz", "--json"]),
        };
        foreach (var (command, args) in runs)
        {
            var (code, stdout, err) = Tcodec(args);
            Assert.True(code == 0, err);
            using var doc = JsonDocument.Parse(stdout);
            var props = doc.RootElement.EnumerateObject().ToList();
            Assert.Equal("command", props[0].Name);
            Assert.Equal(command, props[0].Value.GetString());
            Assert.Equal(args.First(a => a.StartsWith(dir.Path)), doc.RootElement.GetProperty("input").GetString());
            Assert.True(doc.RootElement.GetProperty("ok").GetBoolean());
            Assert.Equal(7348808, doc.RootElement.GetProperty("original_bytes").GetInt64());
            foreach (var p in props)
            {
                Assert.Matches("^[a-z][a-z0-9_]*$", p.Name);
                if (p.Name.EndsWith("_bytes") || p.Name.EndsWith("_seconds") || p.Name is "chunks" or "tensors" or "values" or "ratio")
                    Assert.Equal(JsonValueKind.Number, p.Value.ValueKind);
            }
        }
        Assert.Equal(File.ReadAllBytes(m), File.ReadAllBytes(dir.File("r")));
        var (c, many, e) = Tcodec("verify", m + ".tcz", m + ".tcz", "--json");
        Assert.True(c == 0, e);
        Assert.Equal(2, JsonDocument.Parse(many).RootElement.GetArrayLength());
    }

    [Fact]
    public void The_stream_writer_gives_the_same_archive_as_the_file_writer_for_opaque_bytes()
    {
        var data = Opaque(2_500_000);
        using var dir = new ScratchDir();
        var path = dir.File("d.bin");
        File.WriteAllBytes(path, data);
        foreach (int threads in new[] { 1, 3 })
        {
            var options = new TczCompressOptions { Threads = threads, ChunkSize = 1 << 20 };
            var fromFile = new MemoryStream();
            TczWriter.Compress(path, TensorCodec.Containers.TensorFileReader.Open(path, strict: false), fromFile, options);
            var fromStream = new MemoryStream();
            var result = TczWriter.CompressStream(new MemoryStream(data), "mem", fromStream, options);
            Assert.Equal(fromFile.ToArray(), fromStream.ToArray());
            Assert.Equal(data.Length, result.OriginalBytes);
            using var reader = TczReader.OpenStream(new MemoryStream(fromStream.ToArray()), "mem", dir.Path);
            var restored = new MemoryStream();
            reader.DecompressTo(restored, threads);
            Assert.Equal(data, restored.ToArray());
        }
        var empty = new MemoryStream();
        TczWriter.CompressStream(new MemoryStream(), "empty", empty);
        using (var r = TczReader.OpenStream(new MemoryStream(empty.ToArray()), "empty", dir.Path))
            Assert.Equal(0, r.Index.OriginalLength);
        Assert.Throws<TensorCodec.TensorFormatException>(() => TczReader.OpenStream(new MemoryStream(new byte[10]), "junk", dir.Path));
        Assert.Single(Directory.GetFileSystemEntries(dir.Path)); // d.bin only: no spool left
    }

    [Fact]
    public void The_interruption_line_is_printed_once()
    {
        // Regression: after a slow unwind (over the 3 s grace) both the command and the grace exit printed it.
        var saved = Console.Error;
        var captured = new StringWriter();
        Console.SetError(captured);
        try
        {
            TensorCodec.Cli.Interrupts.Announce("interrupted; no output was written");
            TensorCodec.Cli.Interrupts.Announce("interrupted; no output was written");
        }
        finally { Console.SetError(saved); }
        Assert.Equal(1, captured.ToString().Split("interrupted").Length - 1);
    }

    [SkippableFact]
    public void An_interrupt_while_stdin_blocks_exits_once_and_leaves_no_temporary_file()
    {
        Skip.IfNot(OperatingSystem.IsLinux(), "signals are sent with kill(1)");
        using var dir = new ScratchDir();
        var output = dir.File("x.tcz");
        var psi = new ProcessStartInfo("env") { RedirectStandardOutput = true, RedirectStandardError = true, RedirectStandardInput = true, UseShellExecute = false };
        foreach (var a in new[] { "--default-signal=INT", "dotnet", "exec", Path.Combine(AppContext.BaseDirectory, "tcodec.dll"), "-", "-o", output })
            psi.ArgumentList.Add(a);
        using var p = Process.Start(psi)!;
        var stderr = p.StandardError.ReadToEndAsync();
        _ = p.StandardOutput.ReadToEndAsync();
        p.StandardInput.BaseStream.Write(new byte[1000]); // then nothing more, and the pipe stays open: the read blocks
        p.StandardInput.BaseStream.Flush();
        var sw = Stopwatch.StartNew();
        while (Directory.GetFiles(dir.Path, ".*.tmp").Length == 0 && !p.HasExited && sw.Elapsed < TimeSpan.FromSeconds(30))
            Thread.Sleep(5);
        Skip.If(p.HasExited && p.ExitCode == 125, "env has no --default-signal (coreutils < 8.31)");
        Assert.False(p.HasExited, stderr.IsCompleted ? stderr.Result : "exited early");
        TensorCodec.Tests.Containers.AtomicFileWriterTests.Run("kill", "-INT", p.Id.ToString());
        // The command cannot unwind (it is inside a read): the grace-period exit cleans up and reports.
        Assert.True(p.WaitForExit(TimeSpan.FromSeconds(30)), "tcodec did not exit after the signal");
        p.StandardInput.Close();
        Assert.Equal(130, p.ExitCode);
        Assert.Equal(1, stderr.Result.Split("interrupted").Length - 1);
        Assert.Empty(Directory.GetFiles(dir.Path, ".*.tmp"));
        Assert.False(File.Exists(output));
    }

    [Fact]
    public void A_chunk_size_outside_the_readers_limit_is_one_line_naming_the_option()
    {
        using var dir = new ScratchDir();
        var (code, _, err) = Tcodec("compress", TestFiles.Sample("stories260K.bin"), "-o", dir.File("x.tcz"), "--chunk-size", (TczConstants.MaxChunkSize + 1).ToString());
        Assert.Equal(1, code);
        Assert.Contains($"--chunk-size {TczConstants.MaxChunkSize + 1} is outside", err);
        Assert.DoesNotContain("Parameter", err);
        Assert.Single(err.Trim().Split('\n'));
        Assert.False(File.Exists(dir.File("x.tcz")));
    }
}
