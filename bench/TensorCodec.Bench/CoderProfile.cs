using System.Diagnostics;
using System.IO.Hashing;
using TensorCodec.Coders;
using TensorCodec.Containers;
using TensorCodec.Containers.Tcz;
using TensorCodec.Numerics;

namespace TensorCodec.Bench;

/// <summary>
/// Where the time of single-thread compress and decompress goes. Every 1 MiB BF16 chunk of a file's tensors goes
/// through the stages of the chunk codec and of the pipeline around it in the order they run (so each stage sees
/// the data as warm as it really is), each stage timed on its own; next to them, the whole chunk codec and the
/// whole pipeline (TczWriter/TczReader, -T 1, output discarded) in the same run. Best of N passes.
/// </summary>
static class CoderProfile
{
    public static void Run(string path, int repeats)
    {
        var layout = TensorFileReader.Open(path);
        var chunks = new List<(long Offset, int Length)>();
        foreach (var t in layout.Tensors.Where(t => t.DType == DType.BF16))
            for (long o = 0; o < t.Length; o += TczConstants.DefaultChunkSize)
                chunks.Add((t.Offset + o, (int)Math.Min(TczConstants.DefaultChunkSize, t.Length - o)));
        long total = chunks.Sum(c => (long)c.Length);
        int cap = TczConstants.DefaultChunkSize;
        byte[] raw = new byte[cap], streams = new byte[cap], coded = new byte[cap + 4096], back = new byte[cap];
        byte[] encoded = new byte[ChunkCodec.MaxEncodedLength(cap)], decoded = new byte[cap];
        var words = new ushort[RansWideCoder.WordScratchLength(cap)];
        uint[] hist = new uint[256], smHist = new uint[256];
        byte[] lengths = new byte[256];
        ushort[] freqs = new ushort[256];
        using var encoder = new ChunkEncoder();
        using var decoder = new ChunkDecoder();
        using var handle = File.OpenHandle(path);
        string tmp = Path.Combine("/dev/shm", $"profile-{Environment.ProcessId}.out");

        string[] names =
        [
            "enc: read chunk (page cache → buffer)", "enc: whole-file hash (XxHash3)", "enc: split exp/sm", "enc: histogram exp", "enc: histogram sm (as the codec: a quarter when ≥ 128 KiB)",
            "enc: tables exp (Huffman lengths, rANS freqs, size estimates)", "enc: sm stored/coded decision (order-0 bound)", "enc: rANS encode exp (method 5, or 3 under 16 KiB)",
            "enc: copy sm into the chunk", "enc: raw chunk hash", "enc: encoded chunk hash", "enc: write chunk (FileStream, tmpfs)",
            "enc: = ChunkEncoder.Encode, whole codec",
            "dec: read chunk", "dec: encoded chunk hash", "dec: rANS decode exp (method 5, or 3 under 16 KiB)", "dec: merge exp/sm", "dec: raw chunk hash",
            "dec: whole-file hash", "dec: write chunk (FileStream, tmpfs)", "dec: = ChunkDecoder.Decode, whole codec",
        ];
        var best = Enumerable.Repeat(double.MaxValue, names.Length + 2).ToArray();
        var expCoded = new List<byte[]>();
        var expLen = new List<int>();
        byte[] pairOut = new byte[cap], pairOut2 = new byte[cap];
        double pairSingle = double.MaxValue, pairBoth = double.MaxValue;
        for (int r = 0; r < repeats; r++)
        {
            var sec = new double[names.Length];
            var fileHash = new XxHash3();
            var decHash = new XxHash3();
            using var fs = new FileStream(tmp, FileMode.Create, FileAccess.Write, FileShare.None, 1 << 16);
            foreach (var (off, len) in chunks)
            {
                int n = len / 2, k = 0;
                long t = Stopwatch.GetTimestamp();
                void Lap(ref long t0) { long t1 = Stopwatch.GetTimestamp(); sec[k++] += (t1 - t0) / (double)Stopwatch.Frequency; t0 = t1; }
                var rawSpan = raw.AsSpan(0, len);
                TczReader.ReadExactly(handle, rawSpan, off, path); Lap(ref t);
                fileHash.Append(rawSpan); Lap(ref t);
                FloatSplit.Split(SplitTransform.BF16, rawSpan, streams); Lap(ref t);
                FrequencyTable.Histogram(streams.AsSpan(0, n), hist); Lap(ref t);
                if (n >= ChunkEncoder.SampleMinimum) FrequencyTable.SampleHistogram(streams.AsSpan(n, n), smHist);
                else FrequencyTable.Histogram(streams.AsSpan(n, n), smHist);
                Lap(ref t);
                HuffmanCoder.BuildCodeLengths(hist, lengths); HuffmanCoder.EstimateSize(hist, lengths);
                RansCoder.NormalizeFrequencies(hist, freqs); RansCoder.EstimateSize(hist, freqs); Lap(ref t);
                _ = FrequencyTable.Order0Bits(smHist) / 8 < n - (n >> 7) - 7; Lap(ref t); // (the sampled test is the same arithmetic)
                // As the codec: method 5 (32 states) for long streams, method 3 below RansWideCoder.MinimumLength.
                bool wide = n >= RansWideCoder.MinimumLength;
                int w;
                if (wide) RansWideCoder.Encode(streams.AsSpan(0, n), freqs, coded, out w, words);
                else RansCoder.Encode(streams.AsSpan(0, n), freqs, coded, out w, words);
                Lap(ref t);
                if (r == 0)
                {   // the pair rows below compare method 3 one chunk at a time and two at a time
                    RansCoder.Encode(streams.AsSpan(0, n), freqs, back, out int w3, words);
                    expCoded.Add(back.AsSpan(0, w3).ToArray()); expLen.Add(n); t = Stopwatch.GetTimestamp();
                }
                streams.AsSpan(n, n).CopyTo(back); Lap(ref t);
                TczHash.Of(rawSpan); Lap(ref t);
                encoder.Encode(rawSpan, DType.BF16, encoded, out int el);
                t = Stopwatch.GetTimestamp();
                TczHash.Of(encoded.AsSpan(0, el)); Lap(ref t);
                fs.Write(encoded, 0, el); Lap(ref t);
                encoder.Encode(rawSpan, DType.BF16, encoded, out el); Lap(ref t);

                RandomAccess.Read(handle, back.AsSpan(0, el), off); Lap(ref t);
                TczHash.Of(encoded.AsSpan(0, el)); Lap(ref t);
                if (wide) RansWideCoder.Decode(coded.AsSpan(0, w), streams.AsSpan(0, n));
                else RansCoder.Decode(coded.AsSpan(0, w), streams.AsSpan(0, n));
                Lap(ref t);
                FloatSplit.Merge(SplitTransform.BF16, streams, decoded.AsSpan(0, len)); Lap(ref t);
                TczHash.Of(decoded.AsSpan(0, len)); Lap(ref t);
                decHash.Append(decoded.AsSpan(0, len)); Lap(ref t);
                fs.Write(decoded, 0, len); Lap(ref t);
                decoder.Decode(encoded.AsSpan(0, el), decoded, out _); Lap(ref t);
            }
            for (int i = 0; i < names.Length; i++) best[i] = Math.Min(best[i], sec[i]);
            // Consecutive chunks' exponent streams two at a time (RansCoder.DecodePair) against one at a time.
            var one = Stopwatch.StartNew();
            for (int c = 0; c < expCoded.Count; c++) RansCoder.Decode(expCoded[c], pairOut.AsSpan(0, expLen[c]));
            double single = one.Elapsed.TotalSeconds;
            one.Restart();
            for (int c = 0; c + 1 < expCoded.Count; c += 2)
                RansCoder.DecodePair(expCoded[c], pairOut.AsSpan(0, expLen[c]), out _, expCoded[c + 1], pairOut2.AsSpan(0, expLen[c + 1]), out _);
            pairSingle = Math.Min(pairSingle, single);
            pairBoth = Math.Min(pairBoth, one.Elapsed.TotalSeconds);
        }
        File.Delete(tmp);

        // The whole pipeline on the same file (its non-BF16 tensors and headers included; all BF16 here).
        var tcz = Path.Combine("/dev/shm", $"profile-{Environment.ProcessId}.tcz");
        TczWriter.CompressFile(path, tcz, true);
        for (int r = 0; r < repeats; r++)
        {
            var sw = Stopwatch.StartNew();
            TczWriter.Compress(path, layout, Stream.Null, new TczCompressOptions { Threads = 1 });
            best[^2] = Math.Min(best[^2], sw.Elapsed.TotalSeconds);
            sw.Restart();
            using (var reader = TczReader.Open(tcz)) reader.DecompressTo(Stream.Null, 1);
            best[^1] = Math.Min(best[^1], sw.Elapsed.TotalSeconds);
        }
        File.Delete(tcz);

        Console.WriteLine($"file: {Path.GetFileName(path)}, {total:N0} BF16 tensor bytes in {chunks.Count} chunks, best of {repeats}, 1 thread, " +
            $"load average {File.ReadAllText("/proc/loadavg").Split(' ')[0]}");
        Console.WriteLine("| stage | ms per MiB | MB/s | share of the pipeline |");
        Console.WriteLine("|---|---:|---:|---:|");
        double mib = total / 1048576.0;
        void Row(string name, double s, double whole) =>
            Console.WriteLine($"| {name} | {s * 1e3 / mib:0.000} | {total / 1e6 / s:0} | {100 * s / whole:0}% |");
        double sumEnc = 0, sumDec = 0;
        for (int i = 0; i < names.Length; i++)
        {
            bool enc = names[i].StartsWith("enc");
            if (!names[i].Contains("= ")) { if (enc) sumEnc += best[i]; else sumDec += best[i]; }
            Row(names[i], best[i], enc ? best[^2] : best[^1]);
            if (names[i] == "enc: = ChunkEncoder.Encode, whole codec") Row("enc: sum of the stages above", sumEnc, best[^2]);
        }
        Row("dec: sum of the stages above", sumDec, best[^1]);
        Row("dec: method-3 rANS decode exp, one chunk at a time (all chunks)", pairSingle, best[^1]);
        Row("dec: rANS decode exp, two chunks at a time (RansCoder.DecodePair)", pairBoth, best[^1]);
        Row("pipe: TczWriter.Compress -T 1 (output discarded)", best[^2], best[^2]);
        Row("pipe: TczReader.DecompressTo -T 1 (output discarded)", best[^1], best[^1]);
    }
}
