using System.Buffers;
using System.Diagnostics;
using TensorCodec.Coders;
using TensorCodec.Containers;
using TensorCodec.Containers.Tcz;
using TensorCodec.Numerics;

namespace TensorCodec.Bench;

/// <summary>
/// `e2e wide FILE [ROUNDS]`: the exponent streams of every 1 MiB BF16 chunk of FILE through the 16-state rANS
/// (method 3) and the 32-state one (method 5), encode and decode, vector and scalar, plus the histogram, in
/// interleaved rounds (each round times every variant once over all chunks), medians. Paired in one process so
/// the shared machine's load hits all variants alike; the ratios are what to read.
/// </summary>
static class RansWideBench
{
    [System.Runtime.InteropServices.DllImport("libc", EntryPoint = "clock_gettime")]
    static extern int ClockGetTime(int clock, out TimeSpec ts);

    struct TimeSpec { public long Sec, Nsec; }

    /// <summary>CPU time of the calling thread (CLOCK_THREAD_CPUTIME_ID = 3, Linux).</summary>
    internal static double ThreadCpuSeconds() => ClockGetTime(3, out var ts) == 0 ? ts.Sec + ts.Nsec * 1e-9 : throw new InvalidOperationException("clock_gettime failed");

    public static void Run(string path, int rounds)
    {
        var layout = TensorFileReader.Open(path);
        var bytes = File.ReadAllBytes(path);
        var exps = new List<byte[]>();
        var raws = new List<byte[]>();
        foreach (var t in layout.Tensors.Where(t => t.DType == DType.BF16))
            for (long o = 0; o < t.Length; o += TczConstants.DefaultChunkSize)
            {
                int len = (int)Math.Min(TczConstants.DefaultChunkSize, t.Length - o);
                var streams = new byte[len];
                FloatSplit.Split(SplitTransform.BF16, bytes.AsSpan((int)(t.Offset + o), len), streams);
                exps.Add(streams[..(len / 2)]);
                raws.Add(bytes.AsSpan((int)(t.Offset + o), len).ToArray());
            }
        int count = exps.Count;
        long symbols = exps.Sum(e => (long)e.Length);
        var freqs = new ushort[count][];
        var hist = new uint[256];
        for (int i = 0; i < count; i++)
        {
            FrequencyTable.Histogram(exps[i], hist);
            freqs[i] = new ushort[256];
            RansCoder.NormalizeFrequencies(hist, freqs[i]);
        }
        int cap = TczConstants.DefaultChunkSize;
        var words = new ushort[RansWideCoder.WordScratchLength(cap)];
        var narrow = new byte[count][];
        var wide = new byte[count][];
        var tmp = new byte[RansWideCoder.MaxEncodedLength(cap)];
        var outBuf = new byte[cap];
        long narrowSize = 0, wideSize = 0;
        for (int i = 0; i < count; i++)
        {
            RansCoder.Encode(exps[i], freqs[i], tmp, out int w, words);
            narrow[i] = tmp[..w]; narrowSize += w;
            RansWideCoder.Encode(exps[i], freqs[i], tmp, out w, words);
            wide[i] = tmp[..w]; wideSize += w;
            if (RansWideCoder.Decode(wide[i], outBuf.AsSpan(0, exps[i].Length)) != OperationStatus.Done || !outBuf.AsSpan(0, exps[i].Length).SequenceEqual(exps[i]))
                throw new InvalidOperationException("method 5 round trip failed");
        }

        // Whole chunks through the chunk codec (this build: method 5 for long exponent streams) and ZstdSharp -3.
        using var encoder = new ChunkEncoder();
        using var decoder = new ChunkDecoder();
        using var zc = new ZstdSharp.Compressor(3);
        using var zd = new ZstdSharp.Decompressor();
        var chunkEnc = raws.Select(r => new byte[ChunkCodec.MaxEncodedLength(r.Length)]).ToArray();
        var chunkLen = new int[count];
        var zEnc = raws.Select(r => new byte[ZstdSharp.Compressor.GetCompressBound(r.Length)]).ToArray();
        var zLen = new int[count];
        for (int i = 0; i < count; i++)
        {
            encoder.Encode(raws[i], DType.BF16, chunkEnc[i], out chunkLen[i]);
            zLen[i] = zc.Wrap(raws[i], zEnc[i]);
        }
        var hists = new uint[count][];
        for (int i = 0; i < count; i++) { hists[i] = new uint[256]; FrequencyTable.Histogram(exps[i], hists[i]); }
        var scratchFreqs = new ushort[256];
        var splitBuf = new byte[cap];
        (string Name, Action Run)[] variants =
        [
            ("histogram exp (FrequencyTable.Histogram)", () => { for (int i = 0; i < count; i++) FrequencyTable.Histogram(exps[i], hist); }),
            ("histogram exp, scalar 4 tables (the base kernel)", () => { for (int i = 0; i < count; i++) FrequencyTable.HistogramScalar(exps[i], hist); }),
            ("split BF16 chunk (best SIMD)", () => { for (int i = 0; i < count; i++) FloatSplit.Split(SplitTransform.BF16, raws[i], splitBuf); }),
            ("split BF16 capped at AVX2 (the Vector128 loop)", () => { using var c = Simd.Force(SimdLevel.Avx2); for (int i = 0; i < count; i++) FloatSplit.Split(SplitTransform.BF16, raws[i], splitBuf); }),
            ("merge BF16 chunk (best SIMD)", () => { for (int i = 0; i < count; i++) FloatSplit.Merge(SplitTransform.BF16, splitBuf.AsSpan(0, raws[i].Length), outBuf.AsSpan(0, raws[i].Length)); }),
            ("merge BF16 capped at AVX2 (the Vector128 loop)", () => { using var c = Simd.Force(SimdLevel.Avx2); for (int i = 0; i < count; i++) FloatSplit.Merge(SplitTransform.BF16, splitBuf.AsSpan(0, raws[i].Length), outBuf.AsSpan(0, raws[i].Length)); }),
            ("normalise frequencies (per chunk)", () => { for (int i = 0; i < count; i++) RansCoder.NormalizeFrequencies(hists[i], scratchFreqs); }),
            ("encode m3 (16 states, AVX2)", () => { for (int i = 0; i < count; i++) RansCoder.Encode(exps[i], freqs[i], tmp, out _, words, allowSimd: true); }),
            ("encode m5 (32 states, best SIMD)", () => { for (int i = 0; i < count; i++) RansWideCoder.Encode(exps[i], freqs[i], tmp, out _, words, allowSimd: true); }),
            ("encode m5 capped at AVX2 (VDIVPD)", () => { using var c = Simd.Force(SimdLevel.Avx2); for (int i = 0; i < count; i++) RansWideCoder.Encode(exps[i], freqs[i], tmp, out _, words, allowSimd: true); }),
            ("encode m5 scalar", () => { for (int i = 0; i < count; i++) RansWideCoder.Encode(exps[i], freqs[i], tmp, out _, words, allowSimd: false); }),
            ("decode m3 (16 states, best SIMD)", () => { for (int i = 0; i < count; i++) RansCoder.Decode(narrow[i], outBuf.AsSpan(0, exps[i].Length)); }),
            ("decode m3 pairs (DecodePair)", () => { for (int i = 0; i + 1 < count; i += 2) RansCoder.DecodePair(narrow[i], outBuf.AsSpan(0, exps[i].Length), out _, narrow[i + 1], tmp.AsSpan(0, exps[i + 1].Length), out _); }),
            ("decode m5 (32 states, best SIMD)", () => { for (int i = 0; i < count; i++) RansWideCoder.Decode(wide[i], outBuf.AsSpan(0, exps[i].Length), allowSimd: true); }),
            ("decode m5 capped at AVX2 (table by scalar loads)", () => { using var c = Simd.Force(SimdLevel.Avx2); for (int i = 0; i < count; i++) RansWideCoder.Decode(wide[i], outBuf.AsSpan(0, exps[i].Length), allowSimd: true); }),
            ("chunk encode (ChunkEncoder, whole BF16 chunk)", () => { for (int i = 0; i < count; i++) encoder.Encode(raws[i], DType.BF16, chunkEnc[i], out chunkLen[i]); }),
            ("zstd -3 compress (ZstdSharp, same chunks)", () => { for (int i = 0; i < count; i++) zLen[i] = zc.Wrap(raws[i], zEnc[i]); }),
            ("chunk decode (ChunkDecoder)", () => { for (int i = 0; i < count; i++) decoder.Decode(chunkEnc[i].AsSpan(0, chunkLen[i]), outBuf.AsSpan(0, raws[i].Length), out _); }),
            ("zstd -3 decompress", () => { for (int i = 0; i < count; i++) zd.Unwrap(zEnc[i].AsSpan(0, zLen[i]), outBuf); }),
            ("decode m5 scalar", () => { for (int i = 0; i < count; i++) RansWideCoder.Decode(wide[i], outBuf.AsSpan(0, exps[i].Length), allowSimd: false); }),
        ];

        // Thread CPU time, not wall time: on the shared machine (load 20–40 on 2 cores) wall time is mostly waiting.
        // Each variant runs `Inner` passes a round so a sample spans many scheduler quanta.
        const int Inner = 8;
        var times = variants.Select(_ => new List<double>()).ToArray();
        for (int r = 0; r < rounds; r++)
            for (int v = 0; v < variants.Length; v++)
            {
                double t0 = ThreadCpuSeconds();
                for (int k = 0; k < Inner; k++) variants[v].Run();
                times[v].Add((ThreadCpuSeconds() - t0) / Inner);
            }
        double Median(List<double> l) { var s = l.OrderBy(x => x).ToArray(); return s[s.Length / 2]; }
        Console.WriteLine($"file: {Path.GetFileName(path)}, {count} BF16 exponent streams, {symbols:N0} symbols, {rounds} interleaved rounds, medians of thread CPU time, load {File.ReadAllText("/proc/loadavg").Split(' ')[0]}, SIMD {Simd.Hardware}");
        Console.WriteLine($"payload: m3 {narrowSize:N0} B, m5 {wideSize:N0} B (+{wideSize - narrowSize:N0}); chunks {chunkLen.Sum(x => (long)x):N0} B, zstd -3 {zLen.Sum(x => (long)x):N0} B, raw {2 * symbols:N0} B");
        Console.WriteLine("(rows up to 'decode m5' time the exponent stream only; 'chunk'/'zstd' rows whole chunks; all per MiB of BF16 input)");
        Console.WriteLine("| stage | ms per MiB of BF16 | M symbols/s |");
        Console.WriteLine("|---|---:|---:|");
        double mib = 2.0 * symbols / (1 << 20);
        for (int v = 0; v < variants.Length; v++)
        {
            double m = Median(times[v]);
            Console.WriteLine($"| {variants[v].Name} | {1000 * m / mib:0.000} | {symbols / m / 1e6:0} |");
        }
    }
}
