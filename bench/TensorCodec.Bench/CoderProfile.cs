using System.Buffers;
using System.Diagnostics;
using System.IO.Hashing;
using TensorCodec.Coders;
using TensorCodec.Containers;
using TensorCodec.Containers.Tcz;
using TensorCodec.Numerics;

namespace TensorCodec.Bench;

/// <summary>
/// Where the time of single-thread compress and decompress goes: each stage of the chunk codec and of the
/// pipeline around it, timed alone over every 1 MiB chunk of a file's tensors (best of N), next to the whole
/// chunk codec and the whole pipeline (TczWriter/TczReader, output discarded) in the same run.
/// </summary>
static class CoderProfile
{
    public static void Run(string path, int repeats)
    {
        var layout = TensorFileReader.Open(path);
        var bytes = File.ReadAllBytes(path);
        var chunks = new List<(int Offset, int Length, DType DType)>();
        foreach (var t in layout.Tensors)
            for (long o = 0; o < t.Length; o += TczConstants.DefaultChunkSize)
                chunks.Add(((int)(t.Offset + o), (int)Math.Min(TczConstants.DefaultChunkSize, t.Length - o), t.DType));
        long total = chunks.Sum(c => (long)c.Length);
        int cap = TczConstants.DefaultChunkSize;
        var slot = new byte[cap];
        var enc = chunks.Select(c => new byte[ChunkCodec.MaxEncodedLength(c.Length)]).ToArray();
        var encLen = new int[chunks.Count];
        var streams = new byte[2 * cap];
        var scratch = new byte[2 * cap];
        var words = new ushort[cap + 2];
        var output = new byte[cap];
        using var encoder = new ChunkEncoder();
        using var decoder = new ChunkDecoder();
        using var handle = File.OpenHandle(path);
        var rows = new List<(string Stage, double Seconds)>();

        double Time(string stage, Action<int> perChunk)
        {
            double best = double.MaxValue;
            for (int r = 0; r < repeats; r++)
            {
                var sw = Stopwatch.StartNew();
                for (int i = 0; i < chunks.Count; i++) perChunk(i);
                best = Math.Min(best, sw.Elapsed.TotalSeconds);
            }
            rows.Add((stage, best));
            return best;
        }
        Span<byte> Raw(int i) => bytes.AsSpan(chunks[i].Offset, chunks[i].Length);
        bool IsBf16(int i) => chunks[i].DType == DType.BF16;

        // Encode stages, BF16 chunks as the codec codes them (exp coded, sm stored).
        Console.WriteLine($"file: {Path.GetFileName(path)}, {total:N0} tensor bytes in {chunks.Count} chunks, best of {repeats}, 1 thread");
        Time("enc: read chunk (page cache → buffer)", i => RandomAccess.Read(handle, slot.AsSpan(0, chunks[i].Length), chunks[i].Offset));
        var fileHash = new XxHash3();
        Time("enc: whole-file hash (XxHash3 append)", i => fileHash.Append(Raw(i)));
        Time("enc: raw chunk hash", i => TczHash.Of(Raw(i)));
        Time("enc: split exp/sm", i => FloatSplit.Split(FloatSplit.ForDType(chunks[i].DType), Raw(i), streams));
        uint[] hist = new uint[256];
        Time("enc: histograms (2 streams)", i =>
        {
            int n = chunks[i].Length / 2;
            FrequencyTable.Histogram(streams.AsSpan(0, n), hist);
            FrequencyTable.Histogram(streams.AsSpan(n, n), hist);
        });
        var lengths = new byte[256];
        var freqs = new ushort[256];
        Time("enc: tables (Huffman lengths, rANS freqs, estimates; 2 streams)", i =>
        {
            int n = chunks[i].Length / 2;
            for (int k = 0; k < 2; k++)
            {
                FrequencyTable.Histogram(streams.AsSpan(k * n, n), hist);
                HuffmanCoder.BuildCodeLengths(hist, lengths);
                HuffmanCoder.EstimateSize(hist, lengths);
                RansCoder.NormalizeFrequencies(hist, freqs);
                RansCoder.EstimateSize(hist, freqs);
            }
        });
        double histOnly = rows[^2].Seconds;
        rows[^1] = (rows[^1].Stage + " minus histograms", rows[^1].Seconds - histOnly);
        var expFreqs = new ushort[256];
        Time("enc: rANS exp stream", i =>
        {
            FloatSplit.Split(SplitTransform.BF16, Raw(i), streams);
            int n = chunks[i].Length / 2;
            FrequencyTable.Histogram(streams.AsSpan(0, n), hist);
            RansCoder.NormalizeFrequencies(hist, expFreqs);
            RansCoder.Encode(streams.AsSpan(0, n), expFreqs, scratch, out _, words);
        });
        rows[^1] = (rows[^1].Stage + " (minus split, histogram)", rows[^1].Seconds - rows.First(r => r.Stage.StartsWith("enc: split")).Seconds - histOnly / 2);
        Time("enc: copies (sm into payload, chunk into slot)", i =>
        {
            int n = chunks[i].Length / 2;
            streams.AsSpan(n, n).CopyTo(scratch);
            scratch.AsSpan(0, n + n / 3).CopyTo(output);
        });
        Time("enc: ChunkEncoder.Encode (whole codec)", i => encoder.Encode(Raw(i), chunks[i].DType, enc[i], out encLen[i]));
        Time("enc: encoded chunk hash", i => TczHash.Of(enc[i].AsSpan(0, encLen[i])));
        string tmp = Path.Combine("/dev/shm", $"profile-{Environment.ProcessId}.out");
        using (var fs = new FileStream(tmp, FileMode.Create, FileAccess.Write, FileShare.None, 1 << 16))
            Time("enc: write encoded chunk (FileStream to tmpfs)", i => { if (i == 0) fs.Position = 0; fs.Write(enc[i], 0, encLen[i]); });

        // Decode stages.
        Time("dec: read encoded chunk", i => RandomAccess.Read(handle, slot.AsSpan(0, encLen[i]), chunks[i].Offset));
        Time("dec: encoded chunk hash", i => TczHash.Of(enc[i].AsSpan(0, encLen[i])));
        var expEnc = new byte[chunks.Count][];
        for (int i = 0; i < chunks.Count; i++)
        {
            FloatSplit.Split(FloatSplit.ForDType(chunks[i].DType), Raw(i), streams);
            int n = chunks[i].Length / 2;
            FrequencyTable.Histogram(streams.AsSpan(0, n), hist);
            RansCoder.NormalizeFrequencies(hist, expFreqs);
            RansCoder.Encode(streams.AsSpan(0, n), expFreqs, scratch, out int w, words);
            expEnc[i] = scratch.AsSpan(0, w).ToArray();
        }
        Time("dec: rANS exp stream", i => RansCoder.Decode(expEnc[i], streams.AsSpan(0, chunks[i].Length / 2)));
        Time("dec: rANS exp stream, scalar path", i => RansCoder.Decode(expEnc[i], streams.AsSpan(0, chunks[i].Length / 2), allowSimd: false));
        Time("dec: merge exp/sm", i => FloatSplit.Merge(FloatSplit.ForDType(chunks[i].DType), streams, output.AsSpan(0, chunks[i].Length)));
        Time("dec: ChunkDecoder.Decode (whole codec)", i => decoder.Decode(enc[i].AsSpan(0, encLen[i]), output, out _));
        Time("dec: raw chunk hash", i => TczHash.Of(Raw(i)));
        Time("dec: whole-file hash", i => fileHash.Append(Raw(i)));
        using (var fs = new FileStream(tmp, FileMode.Create, FileAccess.Write, FileShare.None, 1 << 16))
            Time("dec: write raw chunk (FileStream to tmpfs)", i => { if (i == 0) fs.Position = 0; fs.Write(bytes, chunks[i].Offset, chunks[i].Length); });
        File.Delete(tmp);

        // Whole pipeline in process, output discarded.
        var tcz = Path.Combine("/dev/shm", $"profile-{Environment.ProcessId}.tcz");
        TczWriter.CompressFile(path, tcz, true);
        double pc = double.MaxValue, pd = double.MaxValue;
        for (int r = 0; r < repeats; r++)
        {
            var sw = Stopwatch.StartNew();
            TczWriter.Compress(path, layout, Stream.Null, new TczCompressOptions { Threads = 1 });
            pc = Math.Min(pc, sw.Elapsed.TotalSeconds);
            sw.Restart();
            using (var reader = TczReader.Open(tcz)) reader.DecompressTo(Stream.Null, 1);
            pd = Math.Min(pd, sw.Elapsed.TotalSeconds);
        }
        File.Delete(tcz);
        rows.Add(("pipe: TczWriter.Compress -T 1 (to Stream.Null)", pc));
        rows.Add(("pipe: TczReader.DecompressTo -T 1 (to Stream.Null)", pd));

        Console.WriteLine("| stage | ms per MiB | MB/s | share of its whole |");
        Console.WriteLine("|---|---:|---:|---:|");
        double encWhole = pc, decWhole = pd;
        foreach (var (stage, s) in rows)
        {
            double whole = stage.StartsWith("enc") ? encWhole : stage.StartsWith("dec") ? decWhole : s;
            Console.WriteLine($"| {stage} | {s * 1e3 / (total / 1048576.0):0.000} | {total / 1e6 / s:0} | {100 * s / whole:0}% |");
        }
    }
}
