using System.Buffers;
using System.Diagnostics;
using TensorCodec.Coders;
using TensorCodec.Containers;
using TensorCodec.Containers.Tcz;
using TensorCodec.Numerics;
using TensorCodec.Quantization;
using ZstdSharp;

namespace TensorCodec.Bench;

/// <summary>
/// FP8 weights (BENCHMARKS.md §1 "FP8 weights"). <c>e2e fp8-cast</c> writes the measurement input with our
/// own numerics (<see cref="MiniFloat"/>: round to nearest even, saturating), laid out as a DeepSeek-V3 FP8
/// checkpoint: every 2-D linear weight becomes F8_E4M3 (or F8_E5M2) with an F32 <c>weight_scale_inv</c> of
/// one scale per 128×128 block (dequantized weight = fp8 value × scale), embeddings, the output head and
/// the norms stay BF16. <c>e2e fp8</c> measures the FP8 tensors' entropies and the chunk codec on them.
/// </summary>
public static class Fp8Bench
{
    /// <summary><c>e2e fp8-cast IN.safetensors OUT.safetensors [e4m3|e5m2] [BLOCK|row]</c>.</summary>
    public static int Cast(string[] args)
    {
        if (args.Length < 2)
        {
            Console.Error.WriteLine("usage: e2e fp8-cast IN.safetensors OUT.safetensors [e4m3|e5m2] [BLOCK (default 128) | row]");
            return 2;
        }
        var element = (args.Length > 2 ? args[2] : "e4m3") switch
        {
            "e4m3" => MiniFloat.E4M3,
            "e5m2" => MiniFloat.E5M2,
            var other => throw new ArgumentException($"format {other}: must be e4m3 or e5m2"),
        };
        bool perRow = args.Length > 3 && args[3] == "row";
        int block = args.Length > 3 && !perRow ? int.Parse(args[3]) : 128;
        DType fp8 = element == MiniFloat.E4M3 ? DType.F8E4M3 : DType.F8E5M2;

        var file = TensorFileReader.Open(args[0]);
        if (file.Format != TensorFileFormat.Safetensors) throw new ArgumentException($"{args[0]}: not a safetensors file");
        using var input = File.OpenRead(args[0]);
        var tensors = new List<SafetensorsTensor>();
        double err2 = 0, sig2 = 0;
        long fp8Values = 0, bf16Values = 0;
        foreach (var t in file.InFileOrder())
        {
            var raw = new byte[t.Length];
            input.Position = t.Offset;
            input.ReadExactly(raw);
            var x = new float[t.ElementCount];
            if (!ModelSource.DecodeFloats(t.DType, raw, x)) throw new ArgumentException($"{args[0]}: tensor '{t.Name}' is {t.DType}, not a float type");
            bool linear = t.Shape.Length == 2 && t.Name.EndsWith(".weight", StringComparison.Ordinal)
                && !t.Name.Contains("embed", StringComparison.Ordinal) && !t.Name.Contains("lm_head", StringComparison.Ordinal);
            if (!linear)
            {
                var bf = new byte[x.Length * 2];
                ModelSource.Encode(x, DType.BF16, bf);
                tensors.Add(new SafetensorsTensor(t.Name, DType.BF16, t.Shape, TensorByteSource.FromMemory(bf)));
                bf16Values += x.Length;
                continue;
            }
            int rows = (int)t.Shape[0], cols = (int)t.Shape[1];
            int br = perRow ? 1 : block, bc = perRow ? cols : block;
            int nbr = (rows + br - 1) / br, nbc = (cols + bc - 1) / bc;
            var scales = new float[nbr * nbc];
            var q = new byte[x.Length];
            for (int bi = 0; bi < nbr; bi++)
            for (int bj = 0; bj < nbc; bj++)
            {
                int r0 = bi * br, r1 = Math.Min(rows, r0 + br), c0 = bj * bc, c1 = Math.Min(cols, c0 + bc);
                float amax = 0;
                for (int r = r0; r < r1; r++)
                    for (int c = c0; c < c1; c++) amax = Math.Max(amax, Math.Abs(x[(long)r * cols + c]));
                float s = amax > 0 ? amax / element.MaxFinite : 1f;
                scales[bi * nbc + bj] = s;
                for (int r = r0; r < r1; r++)
                    for (int c = c0; c < c1; c++)
                    {
                        long i = (long)r * cols + c;
                        q[i] = element.Encode(x[i] / s, saturate: true);
                        double d = element.Decode(q[i]) * (double)s - x[i];
                        err2 += d * d;
                        sig2 += (double)x[i] * x[i];
                    }
            }
            var scaleBytes = new byte[scales.Length * 4];
            ModelSource.Encode(scales, DType.F32, scaleBytes);
            tensors.Add(new SafetensorsTensor(t.Name, fp8, t.Shape, TensorByteSource.FromMemory(q)));
            tensors.Add(new SafetensorsTensor(t.Name[..^"weight".Length] + "weight_scale_inv", DType.F32, [nbr, nbc], TensorByteSource.FromMemory(scaleBytes)));
            fp8Values += x.Length;
        }
        string layout = perRow ? "per-row scales" : $"{block}x{block} block scales";
        var metadata = new Dictionary<string, string>
        {
            ["format"] = "pt",
            ["tcodec_fp8_cast"] = $"{element.Name}, {layout} (weight_scale_inv = amax / {element.MaxFinite}), from {Path.GetFileName(args[0])}",
        };
        using (var w = new AtomicFileWriter(args[1], overwrite: true))
        {
            SafetensorsWriter.Write(w.Stream, tensors, metadata, new SafetensorsWriteOptions { Order = SafetensorsTensorOrder.AsGiven });
            w.Commit();
        }
        Console.WriteLine($"wrote {args[1]}: {new FileInfo(args[1]).Length:N0} bytes; {fp8Values:N0} values {fp8} ({layout}), {bf16Values:N0} BF16; " +
            $"FP8 relative RMS error {Math.Sqrt(err2 / sig2):F4}");
        return 0;
    }

    /// <summary>
    /// <c>e2e fp8 FILE [REPEATS]</c>: over the file's FP8 tensors, cut into the container's 1 MiB chunks (each chunk
    /// with its own histograms, as the codec sees them), the order-0 entropy of the byte and of the candidate field
    /// splits, the conditional entropies a context model could reach, the chunk codec's sizes with transform 0 and
    /// with the FP8 transform, zstd -19 on the same chunks, and encode/decode speed of both transforms, interleaved.
    /// </summary>
    public static int Measure(string[] args)
    {
        string path = args[0];
        int repeats = args.Length > 1 ? int.Parse(args[1]) : 7;
        var file = TensorFileReader.Open(path);
        using var input = File.OpenRead(path);
        var chunks = new List<(byte[] Data, DType DType, int Row)>();
        foreach (var t in file.InFileOrder().Where(t => t.DType is DType.F8E4M3 or DType.F8E5M2))
        {
            var raw = new byte[t.Length];
            input.Position = t.Offset;
            input.ReadExactly(raw);
            for (int o = 0; o < raw.Length; o += TczConstants.DefaultChunkSize)
                chunks.Add((raw.AsSpan(o, Math.Min(TczConstants.DefaultChunkSize, raw.Length - o)).ToArray(), t.DType, (int)t.RowLength));
        }
        if (chunks.Count == 0) { Console.Error.WriteLine($"{path}: no F8_E4M3/F8_E5M2 tensors"); return 1; }
        long n = chunks.Sum(c => (long)c.Data.Length);

        // Entropies, in total bits.
        double hByte = 0, hMagSign = 0, hExpSm = 0, hExpManSign = 0, hMagGivenPrevExp = 0;
        Span<uint> h = stackalloc uint[256];
        var pairs = new uint[65536];
        foreach (var (d, dtype, row) in chunks)
        {
            int m = dtype == DType.F8E5M2 ? 2 : 3;
            hByte += FrequencyTable.Order0Bits(d);
            double neg = d.Count(b => b >= 0x80), signBits = BinaryEntropy(neg / d.Length) * d.Length;
            hMagSign += Order0(d, b => b & 0x7F, h) + signBits;
            hExpSm += Order0(d, b => (b & 0x7F) >> m, h) + Order0(d, b => ((b >> 7) << m) | (b & ((1 << m) - 1)), h);
            hExpManSign += Order0(d, b => (b & 0x7F) >> m, h) + Order0(d, b => b & ((1 << m) - 1), h) + signBits;
            hMagGivenPrevExp += Conditional(d, row, m, pairs) + signBits;
        }
        double Bits(double total) => total / n;
        Console.WriteLine($"{Path.GetFileName(path)}: {chunks.Count} chunks, {n:N0} FP8 values ({string.Join(", ", chunks.Select(c => c.DType).Distinct())})");
        Console.WriteLine($"  order-0 bits/value: byte {Bits(hByte):F4} | mag + sign (transforms 10/11) {Bits(hMagSign):F4} | exp + sign·mantissa (BF16-style) {Bits(hExpSm):F4} | exp + mantissa + sign {Bits(hExpManSign):F4}");
        Console.WriteLine($"  mantissa given exponent gains {Bits(hExpManSign - hMagSign):F4}; context bound: mag given the previous exponent in the row (+ sign) {Bits(hMagGivenPrevExp):F4}");

        // Codec sizes (transform 0 vs the FP8 transform) and zstd -19 on the same chunks.
        using var fp8Enc = new ChunkEncoder();
        using var byteEnc = new ChunkEncoder(new ChunkCodecOptions { Fp8Fields = false });
        using var dec = new ChunkDecoder();
        using var zstd = new Compressor(19);
        var encF = chunks.Select(c => new byte[ChunkCodec.MaxEncodedLength(c.Data.Length)]).ToArray();
        var encB = chunks.Select(c => new byte[ChunkCodec.MaxEncodedLength(c.Data.Length)]).ToArray();
        var lenF = new int[chunks.Count];
        var lenB = new int[chunks.Count];
        long z19 = 0;
        int split = 0;
        var back = new byte[TczConstants.DefaultChunkSize];
        for (int i = 0; i < chunks.Count; i++)
        {
            var c = chunks[i];
            fp8Enc.Encode(c.Data, c.DType, encF[i], out lenF[i]);
            byteEnc.Encode(c.Data, c.DType, encB[i], out lenB[i]);
            if (encF[i][0] == ChunkCodec.ModeSplit && encF[i][1] is 10 or 11) split++;
            foreach (var (e, l) in new[] { (encF[i], lenF[i]), (encB[i], lenB[i]) })
            {
                if (dec.Decode(e.AsSpan(0, l), back, out int w) != OperationStatus.Done || !back.AsSpan(0, w).SequenceEqual(c.Data))
                    throw new InvalidOperationException($"chunk {i} did not round-trip");
            }
            z19 += zstd.Wrap(c.Data).Length;
        }
        long sizeF = lenF.Sum(), sizeB = lenB.Sum();
        Console.WriteLine($"  chunk codec: transform 0 {sizeB:N0} B ({8.0 * sizeB / n:F4} bits/value, {100.0 * sizeB / n:F2}% of raw); " +
            $"FP8 transform {sizeF:N0} B ({8.0 * sizeF / n:F4}, {100.0 * sizeF / n:F2}%; chosen for {split}/{chunks.Count} chunks); zstd -19 {z19:N0} B ({100.0 * z19 / n:F2}%)");

        // Speed, one thread: rounds alternate the two transforms; medians.
        var times = new List<double>[5];
        for (int k = 0; k < 5; k++) times[k] = new();
        var hist = new uint[256];
        for (int r = 0; r < repeats + 1; r++)
        {
            double eb = Time(() => { for (int i = 0; i < chunks.Count; i++) byteEnc.Encode(chunks[i].Data, chunks[i].DType, encB[i], out _); });
            double ef = Time(() => { for (int i = 0; i < chunks.Count; i++) fp8Enc.Encode(chunks[i].Data, chunks[i].DType, encF[i], out _); });
            double db = Time(() => { for (int i = 0; i < chunks.Count; i++) dec.Decode(encB[i].AsSpan(0, lenB[i]), back, out _); });
            double df = Time(() => { for (int i = 0; i < chunks.Count; i++) dec.Decode(encF[i].AsSpan(0, lenF[i]), back, out _); });
            double choose = Time(() => { foreach (var c in chunks) Fp8Split.Choose(c.Data, c.DType, hist); });
            if (r == 0) continue; // warm-up
            times[0].Add(eb); times[1].Add(ef); times[2].Add(db); times[3].Add(df); times[4].Add(choose);
        }
        double Mbs(List<double> s) { s.Sort(); return n / s[s.Count / 2] / 1e6; }
        Console.WriteLine($"  speed (MB/s of FP8 bytes, median of {repeats}): encode transform 0 {Mbs(times[0]):F0}, FP8 transform {Mbs(times[1]):F0}; " +
            $"decode transform 0 {Mbs(times[2]):F0}, FP8 transform {Mbs(times[3]):F0}; the choice alone (Fp8Split.Choose) {Mbs(times[4]):F0}");
        return 0;
    }

    static double Time(Action a)
    {
        var sw = Stopwatch.StartNew();
        a();
        return sw.Elapsed.TotalSeconds;
    }

    static double BinaryEntropy(double p) => p <= 0 || p >= 1 ? 0 : -(p * Math.Log2(p) + (1 - p) * Math.Log2(1 - p));

    /// <summary>Order-0 bits of a byte field mapped from each value.</summary>
    static double Order0(byte[] d, Func<byte, int> field, Span<uint> h)
    {
        h.Clear();
        foreach (byte b in d) h[field(b)]++;
        return FrequencyTable.Order0Bits(h);
    }

    /// <summary>Bits of the 7-bit magnitude given the previous element's exponent in the same row (first of a row: context 255).</summary>
    static double Conditional(byte[] d, int row, int mantissaBits, uint[] pairs)
    {
        Array.Clear(pairs);
        for (int i = 0; i < d.Length; i++)
        {
            int ctx = i % row == 0 ? 255 : (d[i - 1] & 0x7F) >> mantissaBits;
            pairs[ctx * 256 + (d[i] & 0x7F)]++;
        }
        double bits = 0;
        for (int c = 0; c < 256; c++) bits += FrequencyTable.Order0Bits(pairs.AsSpan(c * 256, 256));
        return bits;
    }
}
