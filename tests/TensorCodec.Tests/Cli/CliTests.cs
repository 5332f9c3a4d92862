using System.Diagnostics;
using System.Text.Json;

namespace TensorCodec.Tests.Cli;

/// <summary>Runs the real `tcodec` executable: exit codes, messages and files on disk.</summary>
public class CliTests
{
    internal static (int Code, string Out, string Err) Tcodec(params string[] args)
    {
        var psi = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        psi.ArgumentList.Add("exec");
        psi.ArgumentList.Add(Path.Combine(AppContext.BaseDirectory, "tcodec.dll"));
        foreach (var a in args) psi.ArgumentList.Add(a);
        psi.Environment["NO_COLOR"] = "1";
        psi.Environment["COLUMNS"] = "200";
        using var p = Process.Start(psi)!;
        var stdout = p.StandardOutput.ReadToEndAsync();
        var stderr = p.StandardError.ReadToEndAsync();
        p.WaitForExit();
        return (p.ExitCode, stdout.Result, stderr.Result);
    }

    [Fact]
    public void CompressDecompressVerifyRoundTrip()
    {
        using var dir = new ScratchDir();
        var input = dir.File("model.bin");
        File.Copy(TestFiles.Sample("stories260K.bin"), input);
        var (code, _, err) = Tcodec("compress", input, "-T", "2");
        Assert.True(code == 0, err);
        Assert.True(File.Exists(input + ".tcz"));

        (code, _, err) = Tcodec("verify", input + ".tcz");
        Assert.True(code == 0, err);

        // Refuses to overwrite the existing original without -f, and says so.
        (code, _, err) = Tcodec("decompress", input + ".tcz");
        Assert.Equal(1, code);
        Assert.Contains("already exists", err);

        (code, _, err) = Tcodec("decompress", input + ".tcz", "-o", dir.File("restored.bin"));
        Assert.True(code == 0, err);
        Assert.Equal(File.ReadAllBytes(input), File.ReadAllBytes(dir.File("restored.bin")));
    }

    [Fact]
    public void JsonOutputIsMachineReadable()
    {
        using var dir = new ScratchDir();
        var (code, stdout, err) = Tcodec("compress", TestFiles.Sample("bard-3m-bf16.safetensors"), "-o", dir.File("m.tcz"), "--json");
        Assert.True(code == 0, err);
        using var doc = JsonDocument.Parse(stdout);
        Assert.Equal("Safetensors", doc.RootElement.GetProperty("format").GetString());
        Assert.True(doc.RootElement.GetProperty("bits_per_value").GetDouble() < 12);

        (code, stdout, err) = Tcodec("inspect", dir.File("m.tcz"), "--json");
        Assert.True(code == 0, err);
        using var inspect = JsonDocument.Parse(stdout);
        var tensors = inspect.RootElement.GetProperty("tensor_list");
        Assert.True(tensors.GetArrayLength() > 10);
        var embed = tensors.EnumerateArray().Single(t => t.GetProperty("name").GetString() == "model.embed_tokens.weight");
        var exp = embed.GetProperty("exponent_entropy_bits_per_value").GetDouble();
        Assert.InRange(exp, 1.5, 4.0); // DFloat11: ~2.6–3 bits in trained BF16 weights
    }

    [Fact]
    public void InspectReadsSourceFormats()
    {
        var (code, stdout, err) = Tcodec("inspect", TestFiles.Sample("stories260K.bin"));
        Assert.True(code == 0, err);
        Assert.Contains("Llama2c", stdout);
        Assert.Contains("token_embedding_table", stdout);
    }

    [Fact]
    public void ErrorsNameTheFileAndExitNonZero()
    {
        using var dir = new ScratchDir();
        var (code, _, err) = Tcodec("compress", dir.File("missing.safetensors"));
        Assert.Equal(1, code);
        Assert.Contains("missing.safetensors", err);

        var notTcz = dir.File("junk.tcz");
        File.WriteAllBytes(notTcz, new byte[100]);
        (code, _, err) = Tcodec("verify", notTcz);
        Assert.Equal(1, code);
        Assert.Contains("junk.tcz", err);
        Assert.Contains("magic", err);
    }

    [Fact]
    public void CorruptChunkIsReportedByTensorAndChunk()
    {
        using var dir = new ScratchDir();
        var tcz = dir.File("m.tcz");
        var (code, _, err) = Tcodec("compress", TestFiles.Sample("bard-3m-bf16.safetensors"), "-o", tcz);
        Assert.True(code == 0, err);
        var bytes = File.ReadAllBytes(tcz);
        bytes[bytes.Length / 2] ^= 0x40;
        File.WriteAllBytes(tcz, bytes);
        (code, _, err) = Tcodec("decompress", tcz, "-o", dir.File("out"));
        Assert.Equal(1, code);
        Assert.Contains("tensor '", err);
        Assert.Contains("chunk", err);
        Assert.False(File.Exists(dir.File("out")));
    }

    [Fact]
    public void DemoRoundTripsAndMeasuresQuantization()
    {
        var (code, stdout, err) = Tcodec("demo", "--json");
        Assert.True(code == 0, err);
        using var doc = JsonSchema.Check(stdout, "demo");
        var lossless = doc.RootElement.GetProperty("lossless");
        Assert.Equal(2, lossless.GetArrayLength());
        foreach (var row in lossless.EnumerateArray())
        {
            Assert.True(row.GetProperty("round_trip_exact").GetBoolean());
            Assert.True(row.GetProperty("compressed_bytes").GetInt64() < row.GetProperty("zstd19_bytes").GetInt64());
        }
        var entries = doc.RootElement.GetProperty("lossy").GetProperty("entries");
        var kl = entries.EnumerateArray().ToDictionary(e => e.GetProperty("quant_type").GetString()!,
            e => e.GetProperty("kl_mean").GetDouble());
        // Fewer bits, more damage: the ordering every rate–distortion curve must show.
        Assert.True(kl["q8_0"] < kl["q4_K_M"] && kl["q4_K_M"] < kl["q2_K"], string.Join(", ", kl));
    }
}

/// <summary>Every error is one line of bounded length, whatever the input holds.</summary>
public class ErrorLineTests
{
    [Fact]
    public void A_rank_10002_shape_gives_one_bounded_line()
    {
        // Regression: `logits` on a rank-10,002 shape printed the whole shape (30 KB, 3 MB at larger ranks).
        using var dir = new ScratchDir();
        var model = dir.File("model.safetensors");
        File.WriteAllBytes(model, TensorCodec.Containers.SafetensorsWriter.ToBytes(
            [new("model.embed_tokens.weight", TensorCodec.Numerics.DType.F32, [.. Enumerable.Repeat(1L, 10_002)],
                TensorCodec.Containers.TensorByteSource.FromMemory(new byte[4]))], []));
        File.Copy(TestFiles.Fixture("bard-3m/config.json"), dir.File("config.json"));
        var (code, _, err) = CliTests.Tcodec("logits", model, "--tokens", TestFiles.Fixture("engine/greedy.tokens.csv"), "-o", dir.File("l.f32"));
        Assert.Equal(1, code);
        var line = err.TrimEnd('\n');
        Assert.DoesNotContain('\n', line);
        Assert.True(line.Length <= "tcodec: error: ".Length + TensorCodec.Cli.Commands.CliCommon.MaxErrorChars, $"{line.Length} characters");
        Assert.Contains("model.safetensors", line);
        Assert.Contains("characters omitted", line);
    }

    [Fact]
    public void Short_messages_pass_unchanged_and_line_breaks_become_spaces()
    {
        Assert.Equal("a b", TensorCodec.Cli.Commands.CliCommon.OneLine("a\nb"));
        var longOne = new string('x', 5000) + "END";
        var cut = TensorCodec.Cli.Commands.CliCommon.OneLine(longOne);
        Assert.True(cut.Length <= TensorCodec.Cli.Commands.CliCommon.MaxErrorChars);
        Assert.EndsWith("END", cut);
    }
    /// <summary>Chunk mode 3 (ggml block fields) codes at 5–10 MB/s, so the default level must not use it and level 10
    /// and above must; mode 4 (the same fields with static tables, at rANS speed) is used at every level; every archive
    /// comes back byte for byte.</summary>
    [Fact]
    public void GgmlFieldModeOnlyFromLevelTen()
    {
        using var dir = new ScratchDir();
        var gguf = dir.File("q.gguf");
        File.WriteAllBytes(gguf, TensorCodec.Tests.Tcz.TczGgmlFieldsTests.MakeGguf());
        foreach (var (level, expectMode3) in new[] { ("-3", false), ("-9", false), ("-10", true), ("-19", true) })
        {
            var tcz = dir.File($"q{level}.tcz");
            var (code, _, err) = CliTests.Tcodec("compress", gguf, "-o", tcz, level, "-q");
            Assert.True(code == 0, err);
            var bytes = File.ReadAllBytes(tcz);
            using (var reader = TensorCodec.Containers.Tcz.TczReader.Open(tcz))
            {
                var modes = reader.Index.Segments.Where(s => s.Kind == TensorCodec.Containers.Tcz.TczSegmentKind.Tensor)
                    .SelectMany(s => s.Chunks).Select(c => bytes[c.FileOffset]).ToList();
                Assert.NotEmpty(modes);
                Assert.Equal(expectMode3, modes.Contains(TensorCodec.Coders.ChunkCodec.ModeGgml));
                if (!expectMode3) Assert.Contains(TensorCodec.Coders.ChunkCodec.ModeGgmlTables, modes);
            }
            (code, _, err) = CliTests.Tcodec("decompress", tcz, "-o", dir.File($"back{level}.gguf"), "-q");
            Assert.True(code == 0, err);
            Assert.Equal(File.ReadAllBytes(gguf), File.ReadAllBytes(dir.File($"back{level}.gguf")));
        }
    }
}

public class ContextMixLevelTests
{
    /// <summary>The context-mixed float transforms 12/13 code at a few MB/s, so only level 19 may use them; both archives
    /// of bard-3m's BF16 sample come back byte for byte, and level 19's is smaller.</summary>
    [Fact]
    public void ContextMixOnlyAtLevel19()
    {
        using var dir = new ScratchDir();
        string src = TensorCodec.Tests.Coders.TestData.Bard3mBf16;
        long size18 = 0, size19 = 0;
        foreach (var (level, expectMix) in new[] { ("-18", false), ("-19", true) })
        {
            var tcz = dir.File($"m{level}.tcz");
            var (code, _, err) = CliTests.Tcodec("compress", src, "-o", tcz, level, "-q");
            Assert.True(code == 0, err);
            var bytes = File.ReadAllBytes(tcz);
            using (var reader = TensorCodec.Containers.Tcz.TczReader.Open(tcz))
            {
                bool mix = reader.Index.Segments.Where(s => s.Kind == TensorCodec.Containers.Tcz.TczSegmentKind.Tensor)
                    .SelectMany(s => s.Chunks).Any(c => bytes[c.FileOffset] == TensorCodec.Coders.ChunkCodec.ModeSplit && bytes[c.FileOffset + 1] == 12);
                Assert.Equal(expectMix, mix);
            }
            if (expectMix) size19 = bytes.Length; else size18 = bytes.Length;
            (code, _, err) = CliTests.Tcodec("decompress", tcz, "-o", dir.File($"back{level}.safetensors"), "-q");
            Assert.True(code == 0, err);
            Assert.Equal(File.ReadAllBytes(src), File.ReadAllBytes(dir.File($"back{level}.safetensors")));
        }
        Assert.True(size19 < size18 * 0.995, $"-19 {size19} vs -18 {size18}");
    }
}
