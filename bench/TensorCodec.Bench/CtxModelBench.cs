using TensorCodec.Coders;
using TensorCodec.Containers;
using TensorCodec.Containers.Tcz;
using TensorCodec.Numerics;
using TensorCodec.Quantization;

namespace TensorCodec.Bench;

/// <summary>
/// <c>e2e ctxmodel FILE… [synthetic]</c> (BENCHMARKS.md §1 "Context-model level"): adaptive code lengths of candidate
/// context models for the top 16 bits of float tensors (BF16 whole; F32 sign, exponent and top 7 mantissa bits, the
/// two low mantissa bytes as today), each 1 MiB chunk with fresh models as the codec sees it. Every figure is
/// Σ −log2 p of the adaptive binary models (the range coder's state counters) over the data in order, so learning
/// cost is included; the order-0 bound is the per-chunk static entropy of today's split streams.
/// </summary>
public static class CtxModelBench
{
    const int Chunk = TczConstants.DefaultChunkSize;
    static readonly double[] Cost = BuildCost();
    static readonly byte[] Shifts = BuildShifts();
    static readonly short[] StretchTab = BuildStretch();

    static double[] BuildCost()
    {
        var t = new double[65536];
        for (int p = 1; p < 65536; p++) t[p] = -Math.Log2(p / 65536.0);
        t[0] = 16;
        return t;
    }

    static byte[] BuildShifts()
    {
        var t = new byte[256];
        for (int c = 0; c < 256; c++)
            t[c] = (byte)(c == 0 ? 1 : c < 3 ? 2 : c < 7 ? 3 : c < 15 ? 4 : c < 31 ? 5 : c < 63 ? 6 : c < 127 ? 7 : c < 255 ? 8 : 9);
        return t;
    }

    static short[] BuildStretch()
    {
        var t = new short[4096];
        for (int i = 0; i < 4096; i++)
        {
            double p = (i + 0.5) / 4096;
            t[i] = (short)Math.Clamp(Math.Round(Math.Log(p / (1 - p)) * 256), -2047, 2047);
        }
        return t;
    }

    static readonly int[] SquashTab = Enumerable.Range(-2047, 4095).Select(d => (int)Math.Clamp(Math.Round(65536 / (1 + Math.Exp(-d / 256.0))), 1, 65535)).ToArray();

    static int Squash(int d) => SquashTab[Math.Clamp(d, -2047, 2047) + 2047];

    /// <summary>A bank of adaptive binary models (probability of a zero, 16 bits, and a count).</summary>
    sealed class Bank(int size, int limit)
    {
        // limit 0: the range coder's 16-bit counter (shift up to 9); otherwise a 32-bit probability moved by
        // 1/(count+1.5) until count reaches the limit.
        readonly uint[] _p = new uint[size];
        public readonly byte[] C = new byte[size];
        readonly ushort[] _c = new ushort[size];
        public readonly ushort[] P = new ushort[size];
        public void Reset() { Array.Fill(P, (ushort)32768); Array.Fill(_p, 1u << 31); Array.Clear(C); Array.Clear(_c); }
        public void Update(int i, int bit)
        {
            if (limit == 0)
            {
                int c = C[i], s = Shifts[c];
                if (c < 255) C[i] = (byte)(c + 1);
                if (bit == 0) P[i] += (ushort)((65536 - P[i]) >> s); else P[i] -= (ushort)(P[i] >> s);
                return;
            }
            int n = _c[i];
            if (n < limit) _c[i] = (ushort)(n + 1);
            long target = bit == 0 ? 0xFFFFFFFFL : 0;
            long p = _p[i];
            p += (target - p) * 2 / (2 * n + 3);
            _p[i] = (uint)p;
            P[i] = (ushort)Math.Clamp(p >> 16, 32, 65535 - 32);
        }
    }

    /// <summary>One candidate: a symbol of <c>Bits</c> bits coded MSB first through a tree per context; the contexts
    /// of several inputs are either used alone (one input) or mixed (logistic mixing, weights per tree depth).</summary>
    sealed class Candidate
    {
        public readonly string Name;
        readonly int _bits, _inputs, _lrShift;
        readonly Bank[] _banks;
        readonly int[] _w;
        readonly int[] _st;
        public double Total;
        public Candidate(string name, int bits, int[] contexts, int lrShift = 0, int limit = 0)
        {
            Name = name; _bits = bits; _inputs = contexts.Length; _lrShift = lrShift;
            _banks = contexts.Select(c => new Bank(c << bits, limit)).ToArray();
            _w = new int[_inputs * bits];
            _st = new int[_inputs];
        }
        public void Reset()
        {
            foreach (var b in _banks) b.Reset();
            Array.Fill(_w, 65536 / _inputs);
        }
        public void Code(int symbol, ReadOnlySpan<int> ctx)
        {
            int node = 1;
            for (int d = 0; d < _bits; d++)
            {
                int bit = (symbol >> (_bits - 1 - d)) & 1;
                int p;
                if (_inputs == 1) p = _banks[0].P[(ctx[0] << _bits) + node];
                else
                {
                    long dot = 0;
                    for (int k = 0; k < _inputs; k++)
                    {
                        _st[k] = StretchTab[_banks[k].P[(ctx[k] << _bits) + node] >> 4];
                        dot += (long)_w[d * _inputs + k] * _st[k];
                    }
                    p = Squash((int)(dot >> 16));
                    int err = ((bit == 0 ? 65535 : 0) - p) >> _lrShift;   // p is of a zero
                    for (int k = 0; k < _inputs; k++) _w[d * _inputs + k] += (int)(((long)_st[k] * err) >> 14);
                }
                Total += Cost[bit == 0 ? p : 65536 - p];
                for (int k = 0; k < _inputs; k++) _banks[k].Update((ctx[k] << _bits) + node, bit);
                node = (node << 1) | bit;
            }
        }
    }

    /// <summary>
    /// <c>e2e ctxmix FILE… [synthetic] [--rounds N] [--chunk BYTES]</c>: the chunk codec on every BF16/F32 tensor of each
    /// file, cut into chunks (default 4 MiB, as level 19 does), with today's options and with transforms 12/13 enabled
    /// (the level-19 options). Sizes against the per-chunk order-0 bound, round trip checked, then encode and decode
    /// speed, one thread, the two option sets interleaved per round; medians.
    /// </summary>
    public static int Codec(string[] args)
    {
        int rounds = 3, chunk = 4 << 20;
        var files = new List<string>();
        for (int i = 0; i < args.Length; i++)
        {
            if (args[i] == "--rounds") rounds = int.Parse(args[++i]);
            else if (args[i] == "--chunk") chunk = int.Parse(args[++i]);
            else files.Add(args[i]);
        }
        Console.WriteLine($"load: {File.ReadAllText("/proc/loadavg").Trim()}");
        foreach (var f in files)
        {
            var tensors = f == "synthetic" ? Synthetic(1024, 4096, DType.BF16).Concat(Synthetic(1024, 2048, DType.F32)).ToList() : Load(f);
            foreach (var group in tensors.GroupBy(t => t.DType))
                CodecOne($"{(f == "synthetic" ? "synthetic Student-t(3)" : Path.GetFileName(f))} {group.Key}", group.ToList(), chunk, rounds);
        }
        Console.WriteLine($"load: {File.ReadAllText("/proc/loadavg").Trim()}");
        return 0;
    }

    static List<(byte[] Data, DType DType, int Row)> Load(string path)
    {
        var file = TensorFileReader.Open(path);
        using var input = File.OpenRead(path);
        var tensors = new List<(byte[] Data, DType DType, int Row)>();
        foreach (var t in file.InFileOrder().Where(t => t.DType is DType.BF16 or DType.F32))
        {
            var raw = new byte[t.Length];
            input.Position = t.Offset;
            input.ReadExactly(raw);
            tensors.Add((raw, t.DType, (int)Math.Max(1, t.RowLength)));
        }
        return tensors;
    }

    static void CodecOne(string label, List<(byte[] Data, DType DType, int Row)> tensors, int chunkSize, int rounds)
    {
        var chunks = new List<(byte[] Data, DType DType, int Row)>();
        foreach (var (d, dt, row) in tensors)
            for (int o = 0; o < d.Length; o += chunkSize)
                chunks.Add((d.AsSpan(o, Math.Min(chunkSize, d.Length - o)).ToArray(), dt, row));
        long raw = chunks.Sum(c => (long)c.Data.Length);
        int es = chunks[0].DType.ElementSize();
        double bound = 0;
        foreach (var c in chunks)
        {
            int cn = c.Data.Length / es;
            var planes = new byte[es][];
            for (int k = 0; k < es; k++) planes[k] = new byte[cn];
            for (int i = 0; i < cn; i++)
            {
                int hi = c.Data[i * es + es - 1] << 8 | c.Data[i * es + es - 2];
                planes[0][i] = (byte)(hi >> 7);
                planes[1][i] = (byte)((hi >> 15) << 7 | (hi & 127));
                for (int k = 2; k < es; k++) planes[k][i] = c.Data[i * es + es - 1 - k];
            }
            foreach (var pl in planes) bound += FrequencyTable.Order0Bits(pl) / 8;
        }
        var opts = new[] { ChunkCodecOptions.Default, new ChunkCodecOptions { ZstdLevel = 19, GgmlFields = true, ContextMix = true } };
        string[] names = ["default", "ctxmix (-19)"];
        var enc = opts.Select(o => new ChunkEncoder(o)).ToArray();
        using var dec = new ChunkDecoder();
        var outs = opts.Select(_ => chunks.Select(c => new byte[ChunkCodec.MaxEncodedLength(c.Data.Length)]).ToArray()).ToArray();
        var lens = opts.Select(_ => new int[chunks.Count]).ToArray();
        var back = new byte[chunkSize];
        var times = new List<double>[4];
        for (int k = 0; k < 4; k++) times[k] = new();
        for (int r = 0; r < rounds; r++)
            for (int o = 0; o < opts.Length; o++)
            {
                double t0 = CpuSeconds();
                for (int i = 0; i < chunks.Count; i++)
                    enc[o].Encode(chunks[i].Data, chunks[i].DType, -1, chunks[i].Row, outs[o][i], out lens[o][i]);
                double t1 = CpuSeconds();
                for (int i = 0; i < chunks.Count; i++)
                    if (dec.Decode(outs[o][i].AsSpan(0, lens[o][i]), back, out int w) != System.Buffers.OperationStatus.Done || (r == 0 && !back.AsSpan(0, w).SequenceEqual(chunks[i].Data)))
                        throw new InvalidOperationException($"{label} chunk {i} did not round-trip");
                double t2 = CpuSeconds();
                times[2 * o].Add(t1 - t0);
                times[2 * o + 1].Add(t2 - t1);
            }
        double Med(List<double> l) { var s = l.OrderBy(x => x).ToList(); return s[s.Count / 2]; }
        long n = raw / es;
        Console.WriteLine($"{label}: {raw:N0} bytes in {chunks.Count} chunks of ≤ {chunkSize:N0}; order-0 bound {bound:N0} B ({8 * bound / n:F4} bits/value)");
        for (int o = 0; o < opts.Length; o++)
        {
            long size = lens[o].Sum();
            int cm = outs[o].Where((b, i) => b[0] == ChunkCodec.ModeSplit && b[1] is 12 or 13).Count();
            Console.WriteLine($"  {names[o],-13} {size,12:N0} B  {8.0 * size / n:F4} bits/value  {size / bound:F4}x bound  ctxmix chunks {cm}/{chunks.Count}  " +
                $"encode {raw / Med(times[2 * o]) / 1e6,7:F1} MB/s  decode {raw / Med(times[2 * o + 1]) / 1e6,7:F1} MB/s (thread CPU, median of {rounds})");
        }
        foreach (var e in enc) e.Dispose();
    }

    static double CpuSeconds() => System.Diagnostics.Process.GetCurrentProcess().TotalProcessorTime.TotalSeconds;

    public static int Run(string[] args)
    {
        foreach (var a in args)
        {
            if (a == "synthetic") { Measure("synthetic Student-t(3) BF16 1024x4096", Synthetic(1024, 4096, DType.BF16)); Measure("synthetic Student-t(3) F32 1024x2048", Synthetic(1024, 2048, DType.F32)); continue; }
            Measure(Path.GetFileName(a), Load(a));
        }
        return 0;
    }

    static List<(byte[] Data, DType DType, int Row)> Synthetic(int rows, int cols, DType dtype)
    {
        var rng = new Random(15);
        var x = new float[rows * cols];
        for (int i = 0; i < x.Length; i++)
        {
            // Student-t with 3 degrees of freedom: normal / sqrt(chi²(3)/3).
            double z = Normal(rng), c = 0;
            for (int k = 0; k < 3; k++) { double g = Normal(rng); c += g * g; }
            x[i] = (float)(0.02 * z / Math.Sqrt(c / 3));
        }
        var bytes = new byte[x.Length * dtype.ElementSize()];
        ModelSource.Encode(x, dtype, bytes);
        return [(bytes, dtype, cols)];
    }

    static double Normal(Random r) => Math.Sqrt(-2 * Math.Log(1 - r.NextDouble())) * Math.Cos(2 * Math.PI * r.NextDouble());

    static int Q(int e, int mode) => Math.Clamp(e - mode + 11, 0, 15);

    static void Measure(string label, List<(byte[] Data, DType DType, int Row)> tensors)
    {
        // Exponent candidates (8-bit symbols).
        var exp = new List<(Candidate C, Func<int[], int[]> Ctx)>();
        // ctx inputs computed per value into a shared array: [0]=none [1]=q(prev) [2]=q(up) [3]=q(prev)*16+q(up)
        // [4]=row EMA bucket (32) [5]=column EMA bucket (32) [6]=q(prev)*32+col EMA  [7]=prev exp (256)  [8]=q(prev2)*16+q(prev)
        Candidate E(string name, int[] sel, int lr = 0, int limit = 0)
        {
            int[] sizes = [1, 16, 16, 256, 32, 32, 512, 256, 256, 1024];
            return new Candidate(name, 8, sel.Select(s => sizes[s]).ToArray(), lr, limit) { };
        }
        var expSel = new List<(Candidate C, int[] Sel)>
        {
            (E("order-0", [0]), [0]), (E("prev exp (256 ctx)", [7]), [7]), (E("q(prev)", [1]), [1]), (E("q(up): same column, previous row", [2]), [2]),
            (E("q(prev)·q(up)", [3]), [3]), (E("row magnitude (EMA 1/4)", [4]), [4]), (E("column magnitude (EMA 1/2 per row)", [5]), [5]),
            (E("q(prev)·column magnitude", [6]), [6]), (E("q(prev2)·q(prev)", [8]), [8]),
            (E("col mag·row mag (1024)", [9]), [9]),
            (E("mix: 0,prev,up,prev·up,row,col,prev·col", [0, 7, 2, 3, 4, 5, 6]), [0, 7, 2, 3, 4, 5, 6]),
            (E("mix: prev·col, prev·up, col·row", [6, 3, 9]), [6, 3, 9]),
            (E("mix: all, lr/2", [0, 7, 2, 3, 4, 5, 6, 8, 9], 1), [0, 7, 2, 3, 4, 5, 6, 8, 9]),
            (E("mix: all, lr/8", [0, 7, 2, 3, 4, 5, 6, 8, 9], 3), [0, 7, 2, 3, 4, 5, 6, 8, 9]),
            (E("mix: all, lr/32", [0, 7, 2, 3, 4, 5, 6, 8, 9], 5), [0, 7, 2, 3, 4, 5, 6, 8, 9]),
            (E("order-0, counter limit 1023", [0], 0, 1023), [0]),
            (E("order-0, counter limit 30", [0], 0, 30), [0]),
            (E("col mag, counter limit 1023", [5], 0, 1023), [5]),
            (E("mix: all, lr/8, limit 1023", [0, 7, 2, 3, 4, 5, 6, 8, 9], 3, 1023), [0, 7, 2, 3, 4, 5, 6, 8, 9]),
            (E("mix: all, lr/8, limit 255", [0, 7, 2, 3, 4, 5, 6, 8, 9], 3, 255), [0, 7, 2, 3, 4, 5, 6, 8, 9]),
            (E("mix: 0,up,col,prev·col,col·row lr/8 lim 1023", [0, 2, 5, 6, 9], 3, 1023), [0, 2, 5, 6, 9]),
        };
        // Sign+mantissa candidates: sign (1 bit) then 7 mantissa bits. Contexts: [0] none, [1] exp (256), [2] exp·q(up) (4096), [3] exp·colmag bucket(8)
        Candidate M(string name, int bits, int[] sizes, int lr = 0, int limit = 0) => new(name, bits, sizes, lr, limit);
        var manSel = new List<(Candidate C, int[] Sel, string Kind)>
        {
            (M("sm byte order-0", 8, [1]), [0], "sm"),
            (M("sign alone + mantissa(7) | exp", 7, [256]), [1], "man"),
            (M("sign alone + mantissa(7) | exp·q(up)", 7, [4096]), [2], "man"),
            (M("sign alone + mantissa(7) | exp·col mag", 7, [256 * 32]), [3], "man"),
            (M("sign alone + mix mantissa | exp, exp·q(up), exp·col", 7, [256, 4096, 256 * 32]), [1, 2, 3], "man"),
            (M("sign alone + top 3 | exp, low 4 raw", 3, [256]), [1], "top3"),
            (M("sign alone + top 3 | exp, low 4 raw, limit 1023", 3, [256], 0, 1023), [1], "top3"),
            (M("sign alone + mix top 3 | exp, exp·up, exp·col lr/8 lim 1023", 3, [256, 4096, 256 * 32], 3, 1023), [1, 2, 3], "top3"),
            (M("sign alone + mix mantissa | ... lr/8 lim 1023", 7, [256, 4096, 256 * 32], 3, 1023), [1, 2, 3], "man"),
        };
        var sign = new[] { M("sign order-0", 1, [1]), M("sign | sign prev, sign up", 1, [4]), M("sign | sign prev, sign up, lim 1023", 1, [4], 0, 1023) };

        long values = 0;
        double h0Exp = 0, h0Sm = 0, h0Low = 0;
        Span<uint> h = stackalloc uint[256];
        var ctx = new int[10];
        var selBuf = new int[9];
        foreach (var (data, dtype, row) in tensors)
        {
            int es = dtype.ElementSize();
            for (int o = 0; o < data.Length; o += Chunk)
            {
                var c = data.AsSpan(o, Math.Min(Chunk, data.Length - o));
                int n = c.Length / es;
                var e = new byte[n];
                var sm = new byte[n];
                var lo = new byte[n * (es - 2)];
                for (int i = 0; i < n; i++)
                {
                    int v = c[i * es + es - 1] << 8 | c[i * es + es - 2];
                    e[i] = (byte)(v >> 7);
                    sm[i] = (byte)((v >> 15) << 7 | (v & 127));
                    for (int k = 0; k < es - 2; k++) lo[i * (es - 2) + k] = c[i * es + k];
                }
                FrequencyTable.Histogram(e, h);
                int mode = 0;
                for (int s = 1; s < 256; s++) if (h[s] > h[mode]) mode = s;
                h0Exp += FrequencyTable.Order0Bits(h);
                h0Sm += FrequencyTable.Order0Bits(sm);
                for (int k = 0; k < es - 2; k++)
                {
                    var plane = new byte[n];
                    for (int i = 0; i < n; i++) plane[i] = lo[i * (es - 2) + k];
                    h0Low += FrequencyTable.Order0Bits(plane);
                }
                values += n;
                foreach (var x in expSel) x.C.Reset();
                foreach (var x in manSel) x.C.Reset();
                foreach (var s in sign) s.Reset();
                var colEma = new int[row];
                Array.Fill(colEma, mode << 4);
                int rowEma = mode << 4;
                for (int i = 0; i < n; i++)
                {
                    int col = i % row;
                    int prev = col > 0 ? e[i - 1] : mode, prev2 = col > 1 ? e[i - 2] : mode;
                    int up = i >= row ? e[i - row] : mode;
                    if (col == 0) rowEma = mode << 4;
                    int rowB = Math.Clamp((rowEma >> 3) - 2 * mode + 24, 0, 31);
                    int colB = Math.Clamp((colEma[col] >> 3) - 2 * mode + 24, 0, 31);
                    ctx[0] = 0; ctx[1] = Q(prev, mode); ctx[2] = Q(up, mode); ctx[3] = ctx[1] * 16 + ctx[2];
                    ctx[4] = rowB; ctx[5] = colB; ctx[6] = ctx[1] * 32 + colB; ctx[7] = prev; ctx[8] = Q(prev2, mode) * 16 + ctx[1];
                    ctx[9] = colB * 32 + rowB;
                    Span<int> sel = selBuf;
                    foreach (var (cand, s) in expSel)
                    {
                        for (int k = 0; k < s.Length; k++) sel[k] = ctx[s[k]];
                        cand.Code(e[i], sel[..s.Length]);
                    }
                    int ei = e[i];
                    int[] mctx = [0, ei, ei * 16 + Q(up, mode), ei * 32 + colB];
                    foreach (var (cand, s, kind) in manSel)
                    {
                        for (int k = 0; k < s.Length; k++) sel[k] = mctx[s[k]];
                        int sym = kind == "sm" ? sm[i] : kind == "man" ? sm[i] & 127 : (sm[i] & 127) >> 4;
                        cand.Code(sym, sel[..s.Length]);
                        if (kind == "top3") cand.Total += 4;
                    }
                    int sg = sm[i] >> 7;
                    sign[0].Code(sg, [0]);
                    int sp = col > 0 ? sm[i - 1] >> 7 : 0, su = i >= row ? sm[i - row] >> 7 : 0;
                    sign[1].Code(sg, [sp * 2 + su]);
                    sign[2].Code(sg, [sp * 2 + su]);
                    rowEma += ((ei << 4) - rowEma) >> 2;
                    colEma[col] += ((ei << 4) - colEma[col]) >> 1;
                }
            }
        }
        double B(double total) => total / values;
        Console.WriteLine($"{label}: {values:N0} values, {tensors.Count} tensors ({string.Join(",", tensors.Select(t => t.DType).Distinct())})");
        double bound = B(h0Exp + h0Sm + h0Low);
        Console.WriteLine($"  order-0 bound (per-chunk static H0 of today's streams): exp {B(h0Exp):F4} + sm {B(h0Sm):F4} + low planes {B(h0Low):F4} = {bound:F4} bits/value; 0.98x = {0.98 * bound:F4}");
        Console.WriteLine("  exponent (adaptive, learning included), bits/value:");
        foreach (var (cand, _) in expSel) Console.WriteLine($"    {cand.Name,-46} {B(cand.Total):F4}  ({B(cand.Total) - B(h0Exp):+0.0000;-0.0000} vs H0)");
        Console.WriteLine($"  sign: order-0 {B(sign[0].Total):F4}, given prev/up sign {B(sign[1].Total):F4}, limit 1023 {B(sign[2].Total):F4}");
        Console.WriteLine("  sign + mantissa (7 bits), bits/value (sign order-0 added where alone):");
        foreach (var (cand, _, kind) in manSel)
        {
            double t = kind == "sm" ? B(cand.Total) : B(cand.Total + sign[0].Total);
            Console.WriteLine($"    {cand.Name,-46} {t:F4}  ({t - B(h0Sm):+0.0000;-0.0000} vs sm H0)");
        }
        double bestE = expSel.Min(x => x.C.Total), bestM = manSel.Min(x => x.Kind == "sm" ? x.C.Total : x.C.Total + sign[0].Total);
        double best = B(bestE + bestM + h0Low);
        Console.WriteLine($"  best exponent + best sign·mantissa + low planes at H0: {best:F4} bits/value = {best / bound:F4}x the order-0 bound");
    }
}
