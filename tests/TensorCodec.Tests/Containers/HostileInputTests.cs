using System.Diagnostics;
using System.Text;
using System.Text.Json;
using Spectre.Console;
using TensorCodec.Cli.Commands;
using TensorCodec.Coders;
using TensorCodec.Containers;
using TensorCodec.Containers.Tcz;
using TensorCodec.Eval;
using TensorCodec.Numerics;
using TensorCodec.Quantization;
using TensorCodec.Tests.Cli;
using static TensorCodec.Tests.Containers.ContainerTestData;

namespace TensorCodec.Tests.Containers;

/// <summary>
/// Regression tests for the "hostile input" defects of issue 9: a crafted file gets a bounded amount of
/// work, memory and output, or one clear error, never a blow-up. Each test failed on the code before the fix.
/// </summary>
public class HostileInputTests
{
    // ---- inspect: bounded work per tensor and bounded output ----

    /// <summary>Order-1 entropy used to clear and scan a 65,536-entry table per stream per chunk: a header of
    /// 200,000 one-value tensors took minutes in <c>inspect</c>. It must cost about a stream's length.</summary>
    [Fact]
    public void Order1EntropyOfATinyStreamCostsItsLengthNotTheTable()
    {
        var counts = new uint[65536];
        byte[] tiny = [1, 1, 2, 1]; // context 1 is followed by 1 and 2: one bit each
        const int calls = 2_000;
        // Timed against the old full-table algorithm in the same run, rounds interleaved and the best of each
        // kept, so a loaded machine slows both alike. The old code was that algorithm; now a small fraction of it.
        double sum = 0, reference = 0;
        TimeSpan measure = TimeSpan.MaxValue, full = TimeSpan.MaxValue;
        for (int round = 0; round < 5; round++)
        {
            var sw = Stopwatch.StartNew();
            for (int i = 0; i < calls; i++) sum += FrequencyTable.Order1Bits(tiny, counts);
            if (sw.Elapsed < measure) measure = sw.Elapsed;
            sw.Restart();
            for (int i = 0; i < calls; i++) reference += FullTableOrder1Bits(tiny, counts);
            if (sw.Elapsed < full) full = sw.Elapsed;
        }
        Assert.Equal(reference, sum);
        Assert.True(sum > 0);
        Assert.True(measure < full / 4, $"{calls:N0} order-1 measures of 4 bytes took {measure.TotalMilliseconds:0.0} ms; the full-table algorithm {full.TotalMilliseconds:0.0} ms");
    }

    /// <summary>The order-1 measure as it was: clear and sum the whole 65,536-entry table.</summary>
    static double FullTableOrder1Bits(ReadOnlySpan<byte> data, uint[] counts)
    {
        Array.Clear(counts);
        int prev = 0;
        foreach (byte b in data) { counts[(prev << 8) | b]++; prev = b; }
        double bits = 0;
        for (int ctx = 0; ctx < 256; ctx++) bits += FrequencyTable.Order0Bits(new ReadOnlySpan<uint>(counts, ctx << 8, 256));
        return bits;
    }

    /// <summary>The sparse order-1 measure is bit-identical to the full-table one (inspect's figures must not move).</summary>
    [Theory]
    [InlineData(1)]
    [InlineData(5)]
    [InlineData(300)]
    [InlineData(70_000)]
    public void Order1EntropyIsUnchangedBitForBit(int length)
    {
        var rng = new Random(length);
        var data = new byte[length];
        for (int i = 0; i < length; i++) data[i] = (byte)(rng.Next(3) == 0 ? rng.Next(256) : rng.Next(8));
        var dirty = new uint[65536];
        rng.NextBytes(System.Runtime.InteropServices.MemoryMarshal.AsBytes(dirty.AsSpan())); // the table may hold anything
        double expected = FullTableOrder1Bits(data, new uint[65536]);
        Assert.Equal(expected, FrequencyTable.Order1Bits(data, dirty));
        Assert.Equal(expected, FrequencyTable.Order1Bits(data));
    }

    static string ManyTensors(ScratchDir dir, int count)
    {
        var json = new StringBuilder("{");
        for (int i = 0; i < count; i++)
            json.Append(i == 0 ? "" : ",").Append($"\"t{i}\":{{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[{4 * i},{4 * i + 4}]}}");
        json.Append('}');
        var path = dir.File("many.safetensors");
        File.WriteAllBytes(path, RawSafetensors(json.ToString(), 4 * count));
        return path;
    }

    /// <summary>The text table printed every tensor: a 200,000-tensor header took over 20 s and 1.3 GiB. It now
    /// shows <see cref="InspectCommand.MaxTableRows"/> rows and one line saying what was left out and how to get it.</summary>
    [Fact]
    public void InspectOfAHeaderWithTensOfThousandsOfTensorsIsBoundedInTimeMemoryAndOutput()
    {
        const int count = 20_000;
        using var dir = new ScratchDir();
        var path = ManyTensors(dir, count);
        var sw = Stopwatch.StartNew();
        var report = TczInspector.Inspect(path);
        var inspectTime = sw.Elapsed;
        Assert.Equal(count, report.Tensors.Count); // --json still lists every tensor
        Assert.Equal(count, report.TotalValues);

        var text = new StringWriter();
        var console = AnsiConsole.Create(new AnsiConsoleSettings { Out = new AnsiConsoleOutput(text), Ansi = AnsiSupport.No, ColorSystem = ColorSystemSupport.NoColors });
        console.Profile.Width = 200;
        long before = GC.GetAllocatedBytesForCurrentThread();
        sw.Restart();
        InspectCommand.WriteText(console, report);
        long allocated = GC.GetAllocatedBytesForCurrentThread() - before;
        var lines = text.ToString().Split('\n');
        Assert.True(lines.Length < InspectCommand.MaxTableRows + 40, $"{lines.Length} lines printed");
        Assert.Contains($"… {count - InspectCommand.MaxTableRows:N0} more tensors not shown", text.ToString());
        Assert.Contains("--json", text.ToString());
        Assert.True(allocated < 64L << 20, $"printing the table allocated {allocated >> 20} MiB");
        Assert.True(inspectTime + sw.Elapsed < TimeSpan.FromSeconds(60), $"inspect took {inspectTime.TotalSeconds:0.0} s + {sw.Elapsed.TotalSeconds:0.0} s");
    }

    [Fact]
    public void AShapeIsPrintedAsItsFirstDimensionsAndItsRank()
    {
        var huge = Enumerable.Repeat(1L, 1_000_001).ToArray();
        var s = InspectCommand.ShapeText(huge);
        Assert.True(s.Length < 80, s);
        Assert.EndsWith("… (1,000,001 dims)]", s);
        Assert.Equal("[2, 3]", InspectCommand.ShapeText([2, 3]));
        Assert.Equal("[]", InspectCommand.ShapeText([]));
    }

    /// <summary>A rank-1,000,001 safetensors shape: refused quickly, in one short line naming the tensor and the limit.</summary>
    [Fact]
    public void InspectOfARankMillionShapeFailsFastInOneLine()
    {
        using var dir = new ScratchDir();
        var path = dir.File("rank.safetensors");
        var shape = string.Join(",", Enumerable.Repeat("1", 1_000_001));
        File.WriteAllBytes(path, RawSafetensors($"{{\"x\":{{\"dtype\":\"U8\",\"shape\":[{shape}],\"data_offsets\":[0,1]}}}}", 1));
        var sw = Stopwatch.StartNew();
        var e = Assert.Throws<TensorFormatException>(() => TczInspector.Inspect(path));
        Assert.True(sw.Elapsed < TimeSpan.FromSeconds(20), $"{sw.Elapsed.TotalSeconds:0.0} s");
        Assert.Equal("x", e.Field);
        Assert.Contains("rank 1000001", e.Message);
        Assert.True(e.Message.Length < CliCommon.MaxErrorChars, e.Message.Length.ToString());
    }

    /// <summary>Summed value counts overflowed with an <see cref="OverflowException"/>; now a format error naming the tensor.</summary>
    [Fact]
    public void TotalValuesThatOverflowNameTheTensor()
    {
        TensorReportRow Row(string name, long values) => new(name, "U8", [values], values, 1, 1, 0, 0, 0, 0, 0);
        var report = new FileReport("crafted.tcz", "Tcz", 1, 1, 1, [Row("a", long.MaxValue / 2 + 1), Row("b", long.MaxValue / 2 + 1)], new Dictionary<string, string>());
        var e = Assert.Throws<TensorFormatException>(() => report.TotalValues);
        Assert.Equal("crafted.tcz", e.FilePath);
        Assert.Equal("b", e.Field);
    }

    /// <summary>Found by <see cref="ParserFuzzTests"/>: a config.json with invalid UTF-8 inside a string threw
    /// InvalidOperationException from the JSON reader; now a format error naming the file.</summary>
    [Fact]
    public void ConfigJsonWithInvalidUtf8IsAFormatError()
    {
        using var dir = new ScratchDir();
        var path = dir.File("config.json");
        var bytes = File.ReadAllBytes(Fixture("bard-3m", "config.json")).ToList();
        int quote = bytes.IndexOf((byte)'"');
        bytes.Insert(quote + 1, 0xC3); // a lead byte with no continuation, inside the first key
        File.WriteAllBytes(path, bytes.ToArray());
        var e = Assert.Throws<TensorFormatException>(() => TensorCodec.Models.ModelConfig.FromHfConfig(path));
        Assert.Equal(path, e.FilePath);
        Assert.Contains("UTF-8", e.Message);
    }

    // ---- .tcz chunk size: bounded memory per worker ----

    static string Declares64MiBChunks => Fixture("hostile", "declares-64mib-chunks.tcz");

    /// <summary>A 446-byte file declaring 64 MiB chunks made verify allocate (threads + 1) × 128 MiB
    /// (172 MiB RSS at -T 1, 2.1 GiB at -T 16): buffers now fit the chunks the file has.</summary>
    [Theory]
    [InlineData(1)]
    [InlineData(4)]
    [InlineData(16)]
    public void VerifyOfASmallFileDeclaringHugeChunksAllocatesLittle(int threads)
    {
        using var reader = TczReader.Open(Declares64MiBChunks);
        Assert.Equal(TczConstants.MaxChunkSize, reader.Index.NominalChunkSize);
        Assert.True(reader.FileLength < 1024);
        long before = GC.GetAllocatedBytesForCurrentThread(), beforeAll = GC.GetTotalAllocatedBytes(precise: true);
        reader.DecompressTo(null, threads);
        long mine = GC.GetAllocatedBytesForCurrentThread() - before, all = GC.GetTotalAllocatedBytes(precise: true) - beforeAll;
        // The slots are allocated on this thread; other tests running meanwhile only add to `all`, which is reported.
        Assert.True(mine < 4L << 20, $"verify -T {threads} allocated {mine >> 10} KiB on its thread ({all >> 10} KiB process-wide)");

        before = GC.GetAllocatedBytesForCurrentThread();
        var report = TczInspector.InspectTcz(Declares64MiBChunks);
        Assert.Equal(4, report.Tensors.Count);
        long inspect = GC.GetAllocatedBytesForCurrentThread() - before;
        Assert.True(inspect < 16L << 20, $"inspect allocated {inspect >> 10} KiB");
        before = GC.GetAllocatedBytesForCurrentThread();
        reader.ReadTensor("w1", Stream.Null);
        Assert.Equal(32, reader.ReadTensor("w2").Length);
        Assert.True(GC.GetAllocatedBytesForCurrentThread() - before < 4L << 20);
    }

    /// <summary>The writer allocated two buffers of the chunk size per slot whatever the input: compressing a
    /// 400-byte file with 64 MiB chunks at -T 4 took 5 × 128 MiB.</summary>
    [Fact]
    public void CompressOfASmallFileWithHugeChunksAllocatesLittleAndReadsBack()
    {
        using var dir = new ScratchDir();
        var input = dir.File("small.safetensors");
        File.WriteAllBytes(input, SmallSafetensors());
        var tcz = dir.File("small.tcz");
        long before = GC.GetAllocatedBytesForCurrentThread();
        TczWriter.CompressFile(input, tcz, false, new TczCompressOptions { ChunkSize = TczConstants.MaxChunkSize, Threads = 4 });
        long allocated = GC.GetAllocatedBytesForCurrentThread() - before;
        Assert.True(allocated < 16L << 20, $"compress allocated {allocated >> 10} KiB");
        using var reader = TczReader.Open(tcz);
        var back = new MemoryStream();
        reader.DecompressTo(back, threads: 4);
        Assert.Equal(File.ReadAllBytes(input), back.ToArray());
    }

    [Fact]
    public void WorkersAreBoundedByChunksAndTheBufferBudget()
    {
        Assert.Equal(1, ChunkPipeline.Workers(16, 0, 100));
        Assert.Equal(5, ChunkPipeline.Workers(16, 5, 100));
        Assert.Equal(8, ChunkPipeline.Workers(8, 1000, 2L << 20));
        // 16 workers of 64 MiB chunks (two buffers each) would hold 17 × 128 MiB; the budget allows two (three slots).
        long slot = TczConstants.MaxChunkSize + (long)ChunkCodec.MaxEncodedLength(TczConstants.MaxChunkSize);
        int w = ChunkPipeline.Workers(16, 1000, slot);
        Assert.Equal(2, w);
        Assert.True((w + 1) * slot <= ChunkPipeline.SlotBudgetBytes);
        Assert.Equal(1, ChunkPipeline.Workers(16, 1000, long.MaxValue / 4));
    }

    /// <summary>The hidden --chunk-size refuses a size readers would refuse, in one line.</summary>
    [Fact]
    public void CompressRefusesAChunkSizeAboveTheReadersLimit()
    {
        using var dir = new ScratchDir();
        var input = dir.File("x.bin");
        File.WriteAllBytes(input, Bytes(100, 1));
        var (code, _, err) = CliTests.Tcodec("compress", input, "--chunk-size", (TczConstants.MaxChunkSize + 1).ToString());
        Assert.Equal(1, code);
        Assert.Contains(TczConstants.MaxChunkSize.ToString(), err);
        Assert.Single(err.Trim().Split('\n'));
        Assert.False(File.Exists(input + ".tcz"));
        Assert.Single(Directory.GetFiles(dir.Path));
    }

    // ---- inspect says it did not verify ----

    /// <summary>inspect decodes tensor chunks only: a .tcz whose opaque bytes were damaged passed with exit 0 and
    /// no word. It now says it did not verify (text and JSON) and points to verify, which fails.</summary>
    [Fact]
    public void InspectOfATczWithDamagedOpaqueBytesSaysItDidNotVerify()
    {
        using var dir = new ScratchDir();
        var input = dir.File("small.safetensors");
        File.WriteAllBytes(input, SmallSafetensors());
        var tcz = dir.File("damaged.tcz");
        TczWriter.CompressFile(input, tcz, false);
        long at;
        using (var r = TczReader.Open(tcz))
        {
            var header = r.Index.Segments[0];
            Assert.Equal(TczSegmentKind.Opaque, header.Kind);
            at = header.Chunks[0].FileOffset + header.Chunks[0].EncodedLength / 2;
        }
        var bytes = File.ReadAllBytes(tcz);
        bytes[at] ^= 0x20;
        File.WriteAllBytes(tcz, bytes);

        Assert.False(TczInspector.Inspect(tcz).Verified);
        Assert.Null(TczInspector.Inspect(input).Verified);

        var (code, stdout, err) = CliTests.Tcodec("inspect", tcz);
        Assert.True(code == 0, err);
        Assert.Contains($"tcodec verify {tcz}", stdout.ReplaceLineEndings(""));
        (code, stdout, err) = CliTests.Tcodec("inspect", tcz, "--json");
        Assert.True(code == 0, err);
        using (var doc = JsonDocument.Parse(stdout))
            Assert.False(doc.RootElement.GetProperty("verified").GetBoolean());
        (code, _, err) = CliTests.Tcodec("verify", tcz);
        Assert.NotEqual(0, code);
        Assert.Contains("checksum", err);
    }

    // ---- containers where raw values are expected ----

    [Fact]
    public void SniffTellsTheContainersApart()
    {
        using var dir = new ScratchDir();
        var st = SmallSafetensors();
        Assert.Equal(ContainerKind.Safetensors, ContainerSniff.Sniff(st, st.Length));
        Assert.Equal(ContainerKind.None, ContainerSniff.Sniff(st, 9)); // a header longer than the file is not safetensors
        Assert.Equal(ContainerKind.Gguf, ContainerSniff.Sniff(SmallGguf(), SmallGguf().Length));
        var tcz = File.ReadAllBytes(Declares64MiBChunks);
        Assert.Equal(ContainerKind.Tcz, ContainerSniff.Sniff(tcz, tcz.Length));
        Assert.Equal(ContainerKind.Tkv, ContainerSniff.Sniff("TCODECKV\0"u8, 100));
        Assert.Equal(ContainerKind.None, ContainerSniff.Sniff(File.ReadAllBytes(Stories260K).AsSpan(0, 9), 1_056_540));
        Assert.Equal(ContainerKind.None, ContainerSniff.Sniff("GGU"u8, 3));
        Assert.True(TczConstants.Magic.SequenceEqual(ContainerSniff.TczMagic));
        // Detection for reading is unchanged: the same files are recognised.
        Assert.Equal(TensorFileFormat.Safetensors, TensorFileReader.Detect(BardBf16));
        Assert.Equal(TensorFileFormat.Llama2c, TensorFileReader.Detect(Stories260K));
    }

    /// <summary><c>tensor stats</c> on a .safetensors read its JSON header as floats.</summary>
    [Fact]
    public void TensorStatsOnASafetensorsFileSaysWhatItIs()
    {
        var e = Assert.Throws<InvalidDataException>(() => RawTensorTool.Stats("q8_0", 32, BardBf16));
        Assert.StartsWith($"{BardBf16} is a safetensors file, not raw float32 values", e.Message);
        Assert.Contains("tcodec inspect", e.Message);
    }

    /// <summary><c>tensor dequantize -t q4_K</c> on a whole GGUF exited 0 with garbage.</summary>
    [Fact]
    public void DequantizeOfAWholeGgufFileIsRefusedAndWritesNothing()
    {
        using var dir = new ScratchDir();
        var gguf = dir.File("model.gguf");
        var bytes = SmallGguf();
        Array.Resize(ref bytes, (bytes.Length + 143) / 144 * 144); // whole q4_K blocks, as a real model would often be
        File.WriteAllBytes(gguf, bytes);
        var output = dir.File("out.f32");
        var e = Assert.Throws<InvalidDataException>(() => RawTensorTool.Dequantize("q4_K", 256, gguf, output));
        Assert.StartsWith($"{gguf} is a GGUF file, not raw q4_K blocks", e.Message);
        Assert.False(File.Exists(output));

        var (code, _, err) = CliTests.Tcodec("tensor", "dequantize", gguf, "-t", "q4_K", "-n", "256", "-o", output);
        Assert.Equal(1, code);
        Assert.Contains("is a GGUF file", err);
        Assert.Single(err.Trim().Split('\n'));
        Assert.False(File.Exists(output));

        var e2 = Assert.Throws<InvalidDataException>(() => RawTensorTool.Dequantize("q8_0", 32, Declares64MiBChunks, output));
        Assert.Contains("is a .tcz archive", e2.Message);
        Assert.Contains("tcodec decompress", e2.Message);
    }

    /// <summary><c>--tokens x.txt</c> read text as uint16 ids ("id 26950 out of range": "Fi").</summary>
    [Fact]
    public void TextGivenAsTokensPointsToText()
    {
        using var dir = new ScratchDir();
        var txt = dir.File("x.txt");
        File.WriteAllText(txt, "First Citizen:\nBefore we proceed any further, hear me speak.\n");
        var e = Assert.Throws<ArgumentException>(() => EvalData.ReadTokens(txt));
        Assert.Contains("--text", e.Message);
        var u16 = dir.File("x.u16");
        File.Copy(txt, u16);
        var e2 = Assert.Throws<InvalidDataException>(() => EvalData.ReadTokens(u16));
        Assert.StartsWith($"{u16}: reads as text", e2.Message);
        Assert.Contains("--text", e2.Message);

        var gguf = dir.File("model.u16");
        File.WriteAllBytes(gguf, SmallGguf().AsSpan(0, SmallGguf().Length & ~1).ToArray());
        Assert.Contains("is a GGUF file, not raw uint16 token ids", Assert.Throws<InvalidDataException>(() => EvalData.ReadTokens(gguf)).Message);
        var csv = dir.File("model.csv");
        File.WriteAllBytes(csv, SmallSafetensors());
        Assert.Contains("is a safetensors file", Assert.Throws<InvalidDataException>(() => EvalData.ReadTokens(csv)).Message);

        // Real token files still read.
        Assert.Equal(4096, EvalData.ReadTokens(TestFiles.Sample("shakespeare-val-4k.tokens.u16")).Length);
        Assert.NotEmpty(EvalData.ReadTokens(Fixture("engine", "greedy.tokens.csv")));
    }
}
