using System.Diagnostics;
using TensorCodec.Coders;
using TensorCodec.Containers;

namespace TensorCodec.Bench;

/// <summary>
/// `e2e ggml CHUNK_BYTES ROUNDS FILE...`: every ggml block tensor of each GGUF that chunk modes 3 and 4 code, cut into
/// chunks of whole blocks of at most CHUNK_BYTES (as the .tcz writer cuts them), coded by mode 3 (<see cref="GgmlFieldCoder"/>)
/// and mode 4 (<see cref="GgmlTableCoder"/>), sizes and thread-CPU speed of encode and decode, in interleaved rounds
/// (each round times every variant once over all chunks), medians. Every decode is checked against the input.
/// </summary>
static class GgmlTablesBench
{
    public static void Run(int chunkBytes, int rounds, string[] files)
    {
        Console.WriteLine($"chunk ≤ {chunkBytes} bytes, {rounds} rounds, medians of thread CPU time; load: {File.ReadAllText("/proc/loadavg").Trim()}");
        Console.WriteLine("| file | ggml bytes | mode 3 | mode 4 | 4 vs 3 | enc 3 MB/s | enc 4 MB/s | dec 3 MB/s | dec 4 MB/s | dec 4 scalar MB/s |");
        Console.WriteLine("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
        foreach (var path in files)
        {
            var layout = TensorFileReader.Open(path);
            var bytes = File.ReadAllBytes(path);
            var chunks = new List<(int Type, byte[] Raw)>();
            foreach (var t in layout.Tensors)
            {
                int bb = GgmlBlockFields.BlockBytes(t.GgmlType);
                if (t.GgmlType < 0 || bb == 0 || t.Length < bb) continue;
                int step = Math.Max(bb, chunkBytes / bb * bb);
                for (long o = 0; o < t.Length; o += step)
                {
                    int len = (int)Math.Min(step, t.Length - o);
                    len -= len % bb;
                    if (len > 0) chunks.Add((t.GgmlType, bytes.AsSpan((int)(t.Offset + o), len).ToArray()));
                }
            }
            long total = chunks.Sum(c => (long)c.Raw.Length);
            var m3 = new GgmlFieldCoder();
            var m4 = new GgmlTableCoder();
            var coded3 = chunks.Select(c => new byte[c.Raw.Length * 2 + 4096]).ToArray();
            var coded4 = chunks.Select(c => new byte[c.Raw.Length * 2 + 4096]).ToArray();
            var len3 = new int[chunks.Count];
            var len4 = new int[chunks.Count];
            var back = new byte[chunks.Max(c => c.Raw.Length)];
            var times = new List<double>[5];
            for (int k = 0; k < 5; k++) times[k] = [];
            for (int r = 0; r < rounds; r++)
            {
                times[0].Add(Time(() => { for (int i = 0; i < chunks.Count; i++) len3[i] = m3.Encode(chunks[i].Type, chunks[i].Raw, coded3[i]); }));
                times[1].Add(Time(() => { for (int i = 0; i < chunks.Count; i++) len4[i] = m4.Encode(chunks[i].Type, chunks[i].Raw, coded4[i]); }));
                times[2].Add(Time(() => { for (int i = 0; i < chunks.Count; i++) Check(m3.Decode(chunks[i].Type, coded3[i].AsSpan(0, len3[i]), back.AsSpan(0, chunks[i].Raw.Length))); }));
                times[3].Add(Time(() => { for (int i = 0; i < chunks.Count; i++) Check(m4.Decode(chunks[i].Type, coded4[i].AsSpan(0, len4[i]), back.AsSpan(0, chunks[i].Raw.Length))); }));
                times[4].Add(Time(() => { for (int i = 0; i < chunks.Count; i++) Check(m4.Decode(chunks[i].Type, coded4[i].AsSpan(0, len4[i]), back.AsSpan(0, chunks[i].Raw.Length), allowFast: false)); }));
                for (int i = 0; i < chunks.Count; i++)
                {
                    Check(m4.Decode(chunks[i].Type, coded4[i].AsSpan(0, len4[i]), back.AsSpan(0, chunks[i].Raw.Length)));
                    Check(back.AsSpan(0, chunks[i].Raw.Length).SequenceEqual(chunks[i].Raw));
                }
            }
            long s3 = len3.Sum(x => (long)x), s4 = len4.Sum(x => (long)x), tableBytes = 0, slots = 0;
            for (int i = 0; i < chunks.Count; i++)
            {
                m4.Encode(chunks[i].Type, chunks[i].Raw, coded4[i]);
                tableBytes += m4.LastTableBytes;
                slots += m4.LastSlots;
            }
            var blk = new GgmlBlock();
            double tj = Time(() =>
            {
                foreach (var (type, raw) in chunks)
                    for (int bb = GgmlBlockFields.BlockBytes(type), o = 0; o < raw.Length; o += bb)
                    {
                        GgmlBlockFields.Split(type, raw.AsSpan(o, bb), blk);
                        GgmlBlockFields.Join(type, blk, back.AsSpan(0, bb));
                    }
            });
            Console.Error.WriteLine($"{Path.GetFileName(path)}: {chunks.Count} chunks, {slots} tables, {tableBytes:N0} table bytes; split+join {total / 1e6 / tj:F0} MB/s");
            string Mbs(int k) => (total / 1e6 / Median(times[k])).ToString("F1");
            Console.WriteLine($"| {Path.GetFileName(path)} | {total:N0} | {s3:N0} | {s4:N0} | {100.0 * (s4 - s3) / s3:+0.00;-0.00} % | {Mbs(0)} | {Mbs(1)} | {Mbs(2)} | {Mbs(3)} | {Mbs(4)} |");
        }
    }

    static void Check(bool ok)
    {
        if (!ok) throw new InvalidOperationException("decode failed or differs");
    }

    static double Time(Action a)
    {
        double t0 = RansWideBench.ThreadCpuSeconds();
        a();
        return RansWideBench.ThreadCpuSeconds() - t0;
    }

    static double Median(List<double> v)
    {
        var s = v.Order().ToArray();
        return s.Length % 2 == 1 ? s[s.Length / 2] : (s[s.Length / 2 - 1] + s[s.Length / 2]) / 2;
    }
}
