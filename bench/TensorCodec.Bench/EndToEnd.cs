using System.Buffers;
using System.Buffers.Binary;
using System.Diagnostics;
using System.Text;
using TensorCodec.Coders;
using TensorCodec.Containers;
using TensorCodec.Containers.Tcz;
using TensorCodec.Eval;
using TensorCodec.Numerics;
using TensorCodec.Tokenizers;
using ZstdSharp;

namespace TensorCodec.Bench;

/// <summary>
/// End-to-end measurements recorded in BENCHMARKS.md. Every speed is measured side by side
/// with zstd on the same bytes in the same process, and reported as a ratio, because these
/// machines are noisy.
/// </summary>
public static class EndToEnd
{
    public static int Run(string[] args)
    {
        switch (args.FirstOrDefault())
        {
            case "ratio": Ratio(args.Skip(1).ToArray()); return 0;
            case "speed": Speed(args[1], args.Length > 2 ? int.Parse(args[2]) : 5); return 0;
            case "threads": Threads(args[1]); return 0;
            case "gen": Generate(args[1], long.Parse(args[2])); return 0;
            case "gen-llama": GenerateLlama(args[1..]); return 0;
            case "repeat": Repeat(args[1], args[2], long.Parse(args[3])); return 0;
            case "ggml": GgmlTablesBench.Run(int.Parse(args[1]), int.Parse(args[2]), args[3..]); return 0;
            case "wide": RansWideBench.Run(args[1], args.Length > 2 ? int.Parse(args[2]) : 5); return 0;
            case "profile": CoderProfile.Run(args[1], args.Length > 2 ? int.Parse(args[2]) : 3); return 0;
            case "gemm-vs-base": GemmVsBase.Run(int.Parse(args[1]), int.Parse(args[2]), int.Parse(args[3]), args.Length > 4 ? int.Parse(args[4]) : 9); return 0;
            case "gemm": Gemm(args.Length > 1 ? int.Parse(args[1]) : 2048, args.Length > 2 ? int.Parse(args[2]) : 2048, args.Length > 3 ? int.Parse(args[3]) : 64); return 0;
            case "gen-bandwidth": GenBandwidth(args[1], args.Length > 2 ? int.Parse(args[2]) : 1, args.Length > 3 ? int.Parse(args[3]) : 64); return 0;
            case "tokenize": Tokenize(args[1], args[2], args.Length > 3 ? int.Parse(args[3]) : 5); return 0;
            case "gptq": GptqBench.Run(args[1..]); return 0;
            case "sample": GptqBench.Sample(args[1..]); return 0;
            case "fp8-cast": return Fp8Bench.Cast(args[1..]);
            case "fp8": return Fp8Bench.Measure(args[1..]);
            case "ctxmodel": return CtxModelBench.Run(args[1..]);
            case "ctxmix": return CtxModelBench.Codec(args[1..]);
            case "bpw-plot": BpwPlot.Run(args[1..]); return 0;
            default:
                Console.Error.WriteLine("usage: e2e ratio FILE... | e2e speed FILE [REPEATS] | e2e threads FILE | e2e gen OUT.safetensors MIB | e2e repeat IN.safetensors OUT.safetensors MIB | e2e profile FILE [REPEATS] | e2e wide FILE [ROUNDS] | e2e gen-llama DIR HIDDEN LAYERS FFN VOCAB HEADS KV_HEADS SHARDS | e2e tokenize TOKENIZER TEXT [REPEATS] | e2e gen-bandwidth MODEL [THREADS] [TOKENS] | e2e gemm [ROWS] [COLS] [TOKENS] | e2e gemm-vs-base ROWS COLS TOKENS [ROUNDS] | e2e gptq ROWS COLS TYPE | e2e fp8-cast IN OUT [e4m3|e5m2] [BLOCK|row] | e2e fp8 FILE [REPEATS]");
                return 2;
        }
    }

    /// <summary>
    /// Batch-1 generation against memory bandwidth: weight bytes read per generated token × tokens/s,
    /// as a fraction of the measured copy bandwidth (bytes read per second by a multi-threaded
    /// memcpy of 256 MiB buffers, median of 5) at the same thread count.
    /// </summary>
    static unsafe void GenBandwidth(string path, int threads, int tokens)
    {
        using var model = TensorCodec.Engine.LlamaModel.Load(path);
        var timing = GenerationBenchmark.Run(model, [model.Config.BosId >= 0 ? model.Config.BosId : 1], tokens, threads, runs: 5);
        const int size = 256 << 20;
        var src = GC.AllocateUninitializedArray<byte>(size, pinned: true);
        var dst = GC.AllocateUninitializedArray<byte>(size, pinned: true);
        new Random(1).NextBytes(src);
        src.AsSpan().CopyTo(dst); // fault both in
        var rates = new List<double>();
        for (int r = 0; r < 5; r++)
        {
            var sw = Stopwatch.StartNew();
            Parallel.For(0, threads, new ParallelOptions { MaxDegreeOfParallelism = threads }, t =>
            {
                long a = (long)size * t / threads, b = (long)size * (t + 1) / threads;
                src.AsSpan((int)a, (int)(b - a)).CopyTo(dst.AsSpan((int)a, (int)(b - a)));
            });
            rates.Add(size / sw.Elapsed.TotalSeconds);
        }
        rates.Sort();
        double copy = rates[rates.Count / 2];
        long perToken = model.WeightBytesPerToken;
        double reached = perToken * timing.TokensPerSecond;
        Console.WriteLine($"{Path.GetFileName(path)} -T {threads}: {timing.TokensPerSecond:F1} tokens/s (median of {timing.Runs}) x {perToken / 1e6:F1} MB of weights per token = {reached / 1e9:F2} GB/s; " +
            $"copy bandwidth {copy / 1e9:F2} GB/s read; {100 * reached / copy:F0}% of it");
    }

    /// <summary>
    /// One thread, one ROWS×COLS matrix per type, TOKENS activations: the default batch product
    /// (F32 GEMM; quantized types decode row tiles to F32 first) against --like-llama-cpp's integer
    /// GEMM (activation quantization included). Rounds interleave the two; medians of 7.
    /// </summary>
    static unsafe void Gemm(int rows, int cols, int n)
    {
        var rng = new Random(3);
        var w = new float[rows * cols];
        for (int i = 0; i < w.Length; i++) w[i] = (float)(rng.NextDouble() - 0.5) * 0.1f;
        var x = new float[n * cols];
        for (int i = 0; i < x.Length; i++) x[i] = (float)(rng.NextDouble() - 0.5);
        var y = new float[n * rows];
        Console.WriteLine($"{rows}x{cols} weights, {n} tokens, one thread: GMAC/s (median of 7)");
        Console.WriteLine("| type | default (F32 GEMM) | --like-llama-cpp (integer GEMM) | ratio |");
        Console.WriteLine("|---|---:|---:|---:|");
        fixed (float* pw = w, px = x, py = y)
        {
            var f32 = new TensorCodec.Engine.F32Matrix(pw, rows, cols);
            double Time(Action a) { var sw = Stopwatch.StartNew(); a(); return sw.Elapsed.TotalSeconds; }
            double macs = (double)rows * cols * n / 1e9;
            var tf = new List<double>();
            for (int r = 0; r < 7; r++) tf.Add(Time(() => f32.MatMul(x, n, y, 0, rows)));
            tf.Sort();
            Console.WriteLine($"| f32 | {macs / tf[3]:F2} | | |");
            foreach (var type in new[] { "q8_0", "q4_0", "q4_K", "q5_K", "q6_K", "q3_K", "q2_K" })
            {
                var fmt = Formats.BlockFormats.Get(type);
                var packed = GC.AllocateUninitializedArray<byte>(rows * cols / fmt.BlockSize * fmt.BlockBytes, pinned: true);
                fmt.Quantize(w, packed, cols, default);
                fixed (byte* pp = packed)
                {
                    var m = TensorCodec.Engine.QuantizedMatrix.TryCreate(fmt.GgmlTypeId, pp, rows, cols, null)!;
                    int stride = TensorCodec.Engine.GgmlQ8.RowBytes(m.Activation, cols);
                    var xq = GC.AllocateUninitializedArray<byte>(n * stride, pinned: true);
                    var td = new List<double>(); var tg = new List<double>();
                    fixed (byte* pq = xq)
                    {
                        byte* q = pq;
                        float* xs = px, ys = py;
                        for (int r = 0; r < 7; r++)
                        {
                            td.Add(Time(() => TensorCodec.Engine.WeightMatrix.MatMulByDecodedTiles(m, x, n, y, 0, rows)));
                            tg.Add(Time(() =>
                            {
                                for (int t = 0; t < n; t++) TensorCodec.Engine.GgmlQ8.Quantize(m.Activation, xs + (long)t * cols, cols, q + (long)t * stride);
                                m.MatMulGgml(q, stride, n, ys, 0, rows);
                            }));
                        }
                    }
                    td.Sort(); tg.Sort();
                    Console.WriteLine($"| {type} | {macs / td[3]:F2} | {macs / tg[3]:F2} | {td[3] / tg[3]:F2}x |");
                }
            }
        }
    }

    static void Ratio(string[] files)
    {
        Console.WriteLine("| file | original | .tcz | bits/value | H0 bound (bits/value) | .tcz / bound | zstd -3 | zstd -19 | .tcz vs zstd -19 |");
        Console.WriteLine("|---|---:|---:|---:|---:|---:|---:|---:|---:|");
        foreach (var f in files)
        {
            var r = LosslessComparison.Run(f);
            if (!r.RoundTripExact) throw new InvalidOperationException($"{f}: round trip failed");
            Console.WriteLine($"| {r.File} | {r.OriginalBytes:N0} | {r.TczBytes:N0} | {r.BitsPerValue:0.000} | {r.EntropyBoundBitsPerValue:0.000} | " +
                $"{r.BitsPerValue / r.EntropyBoundBitsPerValue:0.000} | {r.Zstd3Bytes:N0} | {r.Zstd19Bytes:N0} | {100.0 * (r.TczBytes - r.Zstd19Bytes) / r.Zstd19Bytes:+0.0;-0.0}% |");
        }
    }

    /// <summary>Single-thread chunk codec speed on every tensor of a file vs zstd -3 on the same 1 MiB chunks.</summary>
    static void Speed(string path, int repeats)
    {
        var layout = TensorFileReader.Open(path);
        var bytes = File.ReadAllBytes(path);
        var chunks = new List<(int Offset, int Length, DType DType)>();
        foreach (var t in layout.Tensors)
            for (long o = 0; o < t.Length; o += TczConstants.DefaultChunkSize)
                chunks.Add(((int)(t.Offset + o), (int)Math.Min(TczConstants.DefaultChunkSize, t.Length - o), t.DType));
        long total = chunks.Sum(c => (long)c.Length);
        var encoded = chunks.Select(c => new byte[ChunkCodec.MaxEncodedLength(c.Length)]).ToArray();
        var encodedLength = new int[chunks.Count];
        var zstd = new byte[chunks.Count][];
        var output = new byte[TczConstants.DefaultChunkSize];
        using var compressor = new Compressor(3);
        using var decompressor = new Decompressor();

        double Best(Action a)
        {
            double best = double.MaxValue;
            for (int r = 0; r < repeats; r++) { var sw = Stopwatch.StartNew(); a(); best = Math.Min(best, sw.Elapsed.TotalSeconds); }
            return best;
        }
        // One context each, held for the whole run, as the pipeline's workers do.
        using var encoder = new ChunkEncoder();
        using var decoder = new ChunkDecoder();
        double tczEnc = Best(() => { for (int i = 0; i < chunks.Count; i++) { var c = chunks[i]; if (encoder.Encode(bytes.AsSpan(c.Offset, c.Length), c.DType, encoded[i], out encodedLength[i]) != OperationStatus.Done) throw new InvalidOperationException("encode failed"); } });
        double tczDec = Best(() => { for (int i = 0; i < chunks.Count; i++) { var c = chunks[i]; if (decoder.Decode(encoded[i].AsSpan(0, encodedLength[i]), output.AsSpan(0, c.Length), out _) != OperationStatus.Done) throw new InvalidOperationException("decode failed"); } });
        double zEnc = Best(() => { for (int i = 0; i < chunks.Count; i++) { var c = chunks[i]; zstd[i] = compressor.Wrap(bytes.AsSpan(c.Offset, c.Length)).ToArray(); } });
        double zDec = Best(() => { for (int i = 0; i < chunks.Count; i++) decompressor.Unwrap(zstd[i], output, 0); });
        for (int i = 0; i < chunks.Count; i++)
        {   // the timing loop must also have been correct
            var c = chunks[i];
            decoder.Decode(encoded[i].AsSpan(0, encodedLength[i]), output.AsSpan(0, c.Length), out _);
            if (!output.AsSpan(0, c.Length).SequenceEqual(bytes.AsSpan(c.Offset, c.Length))) throw new InvalidOperationException("round trip failed");
        }
        long tczSize = encodedLength.Sum(x => (long)x), zSize = zstd.Sum(z => (long)z.Length);
        double mb = total / 1e6;
        Console.WriteLine($"file: {Path.GetFileName(path)}, tensor bytes {total:N0} in {chunks.Count} chunks, best of {repeats}, 1 thread");
        Console.WriteLine("| codec | size | encode MB/s | decode MB/s (output) |");
        Console.WriteLine("|---|---:|---:|---:|");
        Console.WriteLine($"| tcz chunk codec | {100.0 * tczSize / total:0.00}% | {mb / tczEnc:0} | {mb / tczDec:0} |");
        Console.WriteLine($"| zstd -3 (ZstdSharp) | {100.0 * zSize / total:0.00}% | {mb / zEnc:0} | {mb / zDec:0} |");
        Console.WriteLine($"| ratio tcz / zstd -3 | | {zEnc / tczEnc:0.00}× | {zDec / tczDec:0.00}× |");
    }

    /// <summary>Whole-pipeline throughput (read, code, hash; output discarded) at 1 and 2 threads.</summary>
    static void Threads(string path)
    {
        var layout = TensorFileReader.Open(path);
        File.ReadAllBytes(path); // warm the page cache
        var tcz = Path.Combine(Path.GetTempPath(), $"bench-{Guid.NewGuid():N}.tcz");
        try
        {
            TczWriter.CompressFile(path, tcz, true);
            Console.WriteLine("| threads | compress MB/s | decompress (verify) MB/s |");
            Console.WriteLine("|---:|---:|---:|");
            foreach (int t in new[] { 1, 2 })
            {
                double c = double.MaxValue, d = double.MaxValue;
                for (int r = 0; r < 3; r++)
                {
                    var sw = Stopwatch.StartNew();
                    TczWriter.Compress(path, layout, Stream.Null, new TczCompressOptions { Threads = t });
                    c = Math.Min(c, sw.Elapsed.TotalSeconds);
                    sw.Restart();
                    using (var reader = TczReader.Open(tcz)) reader.DecompressTo(null, t);
                    d = Math.Min(d, sw.Elapsed.TotalSeconds);
                }
                Console.WriteLine($"| {t} | {layout.FileLength / 1e6 / c:0} | {layout.FileLength / 1e6 / d:0} |");
            }
        }
        finally { File.Delete(tcz); }
    }

    /// <summary>
    /// Writes a large BF16 safetensors file of Gaussian-like weights (for the memory benchmark),
    /// streaming so the generator itself uses little memory.
    /// </summary>
    /// <summary>A random BF16 Llama-shaped HF model folder (config.json, shards, index).</summary>
    static void GenerateLlama(string[] a)
    {
        var m = new LlamaShapedModel(int.Parse(a[1]), int.Parse(a[2]), int.Parse(a[3]), int.Parse(a[4]), int.Parse(a[5]), int.Parse(a[6]));
        long bytes = m.Write(a[0], int.Parse(a[7]));
        Console.WriteLine($"wrote {a[0]}: {m.Tensors().Count} tensors, {bytes:N0} bytes of BF16 weights, largest tensor {m.LargestTensorBytes:N0} bytes");
    }

    /// <summary>A safetensors file holding every tensor of <paramref name="input"/> repeated (renamed "rep{j}.{name}")
    /// until the data reaches about <paramref name="mib"/> MiB: real weights at a size where the pipeline, not JIT warm-up, is timed.</summary>
    static void Repeat(string input, string output, long mib)
    {
        var all = File.ReadAllBytes(input);
        long hlen = BinaryPrimitives.ReadInt64LittleEndian(all);
        using var doc = System.Text.Json.JsonDocument.Parse(all.AsMemory(8, (int)hlen));
        var data = all.AsMemory((int)(8 + hlen));
        int reps = (int)Math.Max(1, ((mib << 20) + data.Length - 1) / data.Length);
        var header = new StringBuilder("{");
        bool first = true;
        for (int j = 0; j < reps; j++)
            foreach (var p in doc.RootElement.EnumerateObject())
            {
                if (p.Name == "__metadata__") continue;
                var off = p.Value.GetProperty("data_offsets");
                long a = off[0].GetInt64() + (long)j * data.Length, b = off[1].GetInt64() + (long)j * data.Length;
                header.Append(first ? "" : ",").Append($"\"rep{j}.{p.Name}\":{{\"dtype\":\"{p.Value.GetProperty("dtype").GetString()}\",\"shape\":{p.Value.GetProperty("shape").GetRawText()},\"data_offsets\":[{a},{b}]}}");
                first = false;
            }
        header.Append('}');
        while (header.Length % 8 != 0) header.Append(' ');
        using var fs = File.Create(output);
        var len = new byte[8];
        BinaryPrimitives.WriteInt64LittleEndian(len, header.Length);
        fs.Write(len);
        fs.Write(Encoding.UTF8.GetBytes(header.ToString()));
        for (int j = 0; j < reps; j++) fs.Write(data.Span);
        Console.WriteLine($"wrote {output}: {reps} copies of {input}'s tensors, {fs.Length:N0} bytes");
    }

    static void Generate(string path, long mib)
    {
        const long tensorBytes = 64L << 20;
        int count = (int)Math.Max(1, (mib << 20) / tensorBytes);
        var header = new StringBuilder("{\"__metadata__\":{\"generator\":\"tensorcodec-bench\"}");
        for (int i = 0; i < count; i++)
            header.Append($",\"layer.{i}.weight\":{{\"dtype\":\"BF16\",\"shape\":[{tensorBytes / 2 / 4096},4096],\"data_offsets\":[{i * tensorBytes},{(i + 1) * tensorBytes}]}}");
        header.Append('}');
        while (header.Length % 8 != 0) header.Append(' ');
        var rng = new Random(1);
        var block = new byte[tensorBytes];
        using var fs = File.Create(path);
        var len = new byte[8];
        BinaryPrimitives.WriteInt64LittleEndian(len, header.Length);
        fs.Write(len);
        fs.Write(Encoding.ASCII.GetBytes(header.ToString()));
        for (int i = 0; i < count; i++)
        {
            // Four distinct tensors, then repeats: generating gigabytes of random numbers would dominate the run.
            if (i < 4)
            for (int j = 0; j < block.Length; j += 2)
            {
                // Sum of uniforms ≈ Gaussian, scaled like a trained weight (σ ≈ 0.02).
                float v = (float)((rng.NextDouble() + rng.NextDouble() + rng.NextDouble() - 1.5) * 0.04);
                uint u = BitConverter.SingleToUInt32Bits(v);
                ushort b = (ushort)((u + 0x7FFF + ((u >> 16) & 1)) >> 16);
                BinaryPrimitives.WriteUInt16LittleEndian(block.AsSpan(j), b);
            }
            fs.Write(block);
        }
        Console.WriteLine($"wrote {path}: {count} tensors, {fs.Length:N0} bytes");
    }

    /// <summary>Single-thread encode of a whole text file (one string, and the eval paragraph convention): best of REPEATS after a warm-up.</summary>
    static void Tokenize(string tokenizerPath, string textPath, int repeats)
    {
        var sw = Stopwatch.StartNew();
        var tok = TokenizerLoader.Load(tokenizerPath);
        double load = sw.Elapsed.TotalSeconds;
        string text = File.ReadAllText(textPath);
        double Best(Func<int> run, out int tokens)
        {
            tokens = run();
            double best = double.MaxValue;
            for (int i = 0; i < repeats; i++) { sw.Restart(); run(); best = Math.Min(best, sw.Elapsed.TotalSeconds); }
            return best;
        }
        double whole = Best(() => tok.Encode(text, addSpecial: true, parseSpecial: false).Length, out int n1);
        double paras = Best(() => EvalData.EncodeParagraphs(text, tok).Length, out int n2);
        long bytes = Encoding.UTF8.GetByteCount(text);
        Console.WriteLine($"{Path.GetFileName(tokenizerPath)} ({tok.GetType().Name}, load {load:0.000} s) on {Path.GetFileName(textPath)} ({bytes:N0} bytes):");
        Console.WriteLine($"  whole text : {n1:N0} tokens in {whole:0.000} s ({bytes / whole / 1e6:0.0} MB/s)");
        Console.WriteLine($"  paragraphs : {n2:N0} tokens in {paras:0.000} s ({bytes / paras / 1e6:0.0} MB/s)");
    }
}
