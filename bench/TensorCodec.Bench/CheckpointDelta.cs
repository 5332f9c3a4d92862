using System.Buffers.Binary;
using TensorCodec.Coders;
using TensorCodec.Containers;
using TensorCodec.Containers.Tcz;
using TensorCodec.Numerics;
using ZstdSharp;

namespace TensorCodec.Bench;

/// <summary>
/// "ckpt TARGET REFERENCE": what each candidate delta transform costs per tensor kind (weights, exp_avg,
/// exp_avg_sq), next to the per-file .tcz and zstd -19 of the same bytes. Every candidate goes through the
/// unchanged chunk codec (1 MiB chunks), so the figures are what an archive would hold, index aside.
/// "ctx" is an estimate, not a coder: the order-0 entropy of each XOR stream conditioned on the reference's
/// exponent byte (what coding XOR with the reference exponent as context could reach at best).
/// </summary>
public static class CheckpointDelta
{
    public static int Run(string[] args)
    {
        if (args.Length < 2) { Console.Error.WriteLine("usage: ckpt TARGET REFERENCE"); return 2; }
        string target = args[0], reference = args[1];
        var tl = TensorFileReader.Open(target);
        var rl = TensorFileReader.Open(reference);
        var tb = File.ReadAllBytes(target);
        var rb = File.ReadAllBytes(reference);
        var refs = rl.Tensors.ToDictionary(t => t.Name);
        string[] candidates = ["alone", "xor", "xor-planes", "sub-raw", "sub", "sub-float", "pred", "pred-own"];
        var kinds = new SortedDictionary<string, Row>();
        using var enc = new ChunkEncoder();
        var dst = new byte[ChunkCodec.MaxEncodedLength(TczConstants.DefaultChunkSize)];
        foreach (var t in tl.Tensors)
        {
            string kind = Kind(t.Name);
            if (!kinds.TryGetValue(kind, out var row)) kinds[kind] = row = new Row(candidates.Length);
            var data = tb.AsSpan((int)t.Offset, (int)t.Length);
            row.Raw += t.Length;
            row.Count++;
            row.Bytes.Add(data.ToArray());
            if (!refs.TryGetValue(t.Name, out var r) || r.DType != t.DType || !r.Shape.SequenceEqual(t.Shape))
            {
                long alone = Encode(enc, data, t.DType, dst);
                for (int c = 0; c < candidates.Length; c++) row.Sizes[c] += alone;
                row.Ctx += alone; row.Best += alone;
                continue;
            }
            var rd = rb.AsSpan((int)r.Offset, (int)r.Length);
            if (data.SequenceEqual(rd)) row.Identical++;
            long best = long.MaxValue;
            int e = t.DType.ElementSize();
            for (int c = 0; c < candidates.Length; c++)
            {
                var work = data.ToArray();
                DType coded = t.DType;
                switch (candidates[c])
                {
                    case "xor": DeltaTransform.Forward(DeltaKind.Xor, e, work, rd); break;
                    case "xor-planes": DeltaTransform.Forward(DeltaKind.Xor, e, work, rd); coded = e == 4 ? DType.U32 : DType.U16; break;
                    case "sub-raw": RawSub(work, rd, e); coded = e == 4 ? DType.I32 : DType.I16; break;
                    case "sub": DeltaTransform.Forward(DeltaKind.Sub, e, work, rd); coded = DeltaTransform.CodedDType(DeltaKind.Sub, t.DType); break;
                    case "sub-float": DeltaTransform.Forward(DeltaKind.Sub, e, work, rd); coded = e == 4 ? DType.F32 : DType.BF16; break;
                    case "pred":
                        if (e != 4) goto case "sub";
                        var p = Predict(t.Name, kind, data, rd, rl, rb);
                        DeltaTransform.Forward(DeltaKind.Sub, e, work, p); coded = DType.I32; break;
                    case "pred-own":
                        if (e != 4 || kind != "weights") goto case "sub";
                        var p2 = Predict(t.Name, kind, data, rd, tl, tb);
                        DeltaTransform.Forward(DeltaKind.Sub, e, work, p2); coded = DType.I32; break;
                }
                long size = Encode(enc, work, coded, dst);
                row.Sizes[c] += size;
                best = Math.Min(best, size);
                if (candidates[c] == "xor") row.Ctx += (long)Math.Ceiling(ContextBits(work, rd, t.DType) / 8);
            }
            row.Best += best;
        }

        // Baselines of the whole files, measured in the same run.
        long tczTarget = TczSize(target), zTarget = Zstd19(tb);
        Console.WriteLine($"target {Path.GetFileName(Path.GetDirectoryName(target))}/{Path.GetFileName(target)} ({tb.Length:N0} B) against {Path.GetFileName(Path.GetDirectoryName(reference))}/{Path.GetFileName(reference)}");
        Console.WriteLine($"whole file: per-file .tcz {tczTarget:N0} B, zstd -19 {zTarget:N0} B");
        Console.WriteLine();
        Console.WriteLine("| kind | tensors (identical) | raw | zstd -19 | .tcz alone | " + string.Join(" | ", candidates.Skip(1)) + " | xor+ctx (est.) | best per tensor | best vs alone |");
        Console.WriteLine("|---|---:|---:|---:|---:|" + string.Concat(candidates.Skip(1).Select(_ => "---:|")) + "---:|---:|---:|");
        var sum = new Row(candidates.Length);
        long zsum = 0;
        foreach (var (kind, row) in kinds)
        {
            long z = Zstd19(row.Bytes.SelectMany(b => b).ToArray());
            zsum += z;
            Console.WriteLine($"| {kind} | {row.Count} ({row.Identical}) | {row.Raw:N0} | {z:N0} | " + string.Join(" | ", row.Sizes.Select(s => $"{s:N0}")) +
                $" | {row.Ctx:N0} | {row.Best:N0} | {(double)row.Sizes[0] / row.Best:0.00}× |");
            sum.Raw += row.Raw; sum.Count += row.Count; sum.Identical += row.Identical; sum.Ctx += row.Ctx; sum.Best += row.Best;
            for (int c = 0; c < candidates.Length; c++) sum.Sizes[c] += row.Sizes[c];
        }
        Console.WriteLine($"| all tensors | {sum.Count} ({sum.Identical}) | {sum.Raw:N0} | {zsum:N0} | " + string.Join(" | ", sum.Sizes.Select(s => $"{s:N0}")) +
            $" | {sum.Ctx:N0} | {sum.Best:N0} | {(double)sum.Sizes[0] / sum.Best:0.00}× |");
        return 0;
    }

    /// <summary>
    /// "ckpt-archive TARGET REFERENCE [REPEATS]": the archives tcodec writes (per-file, --ref, --ref with
    /// --optimizer-bits 8 and 4), their bytes per tensor kind, and the speed of compress and decompress with
    /// --ref as a ratio to without (runs interleaved, medians; one thread).
    /// </summary>
    public static int Archive(string[] args)
    {
        string target = args[0], reference = args[1];
        int repeats = args.Length > 2 ? int.Parse(args[2]) : 5;
        string dir = Path.Combine(Path.GetTempPath(), "tcodec-ckpt-bench-" + Environment.ProcessId);
        Directory.CreateDirectory(dir);
        try
        {
            var configs = new (string Name, TczCompressOptions Options)[]
            {
                ("per-file .tcz", new TczCompressOptions()),
                ("--ref", new TczCompressOptions { Reference = reference }),
                ("--ref --optimizer-bits 8", new TczCompressOptions { Reference = reference, OptimizerBits = 8 }),
                ("--ref --optimizer-bits 4", new TczCompressOptions { Reference = reference, OptimizerBits = 4 }),
                ("--optimizer-bits 8 (no ref)", new TczCompressOptions { OptimizerBits = 8 }),
            };
            var kinds = new[] { "weights", "exp_avg", "exp_avg_sq" };
            long zstd = Zstd19(File.ReadAllBytes(target));
            Console.WriteLine($"target {Path.GetFileName(Path.GetDirectoryName(target))}/{Path.GetFileName(target)} ({new FileInfo(target).Length:N0} B) against {Path.GetFileName(reference)}; zstd -19 of the file: {zstd:N0} B");
            Console.WriteLine();
            Console.WriteLine("| archive | weights | exp_avg | exp_avg_sq | whole file | vs per-file | vs zstd -19 |");
            Console.WriteLine("|---|---:|---:|---:|---:|---:|---:|");
            long baseline = 0;
            var baseKinds = new long[3];
            foreach (var (name, options) in configs)
            {
                string outPath = Path.Combine(dir, "x.tcz");
                var r = TczWriter.CompressFile(target, outPath, true, options);
                var perKind = kinds.Select(k => r.Segments.Where(s => s.Segment.Kind == TczSegmentKind.Tensor && Kind(s.Segment.Name) == k).Sum(s => s.Segment.EncodedLength)).ToArray();
                if (baseline == 0) { baseline = r.CompressedBytes; baseKinds = perKind; }
                string Cell(int k) => perKind[k] == 0 ? "–" : $"{perKind[k]:N0} ({(double)baseKinds[k] / perKind[k]:0.00}×)";
                Console.WriteLine($"| {name} | {Cell(0)} | {Cell(1)} | {Cell(2)} | {r.CompressedBytes:N0} | {(double)baseline / r.CompressedBytes:0.00}× | {(double)zstd / r.CompressedBytes:0.00}× |");
                // Every archive must give the file back (lossless) or a file of the same length (lossy).
                using var reader = TczReader.Open(outPath);
                if (reader.Reference is { Tensors: > 0 }) reader.AttachReference(reference);
                var ms = new MemoryStream();
                reader.DecompressTo(ms);
                if (!reader.IsLossy && !ms.ToArray().AsSpan().SequenceEqual(File.ReadAllBytes(target))) throw new InvalidOperationException($"{name}: round trip failed");
            }

            // Speed: plain vs --ref, interleaved pairs, medians.
            string plainOut = Path.Combine(dir, "plain.tcz"), refOut = Path.Combine(dir, "ref.tcz");
            var cPlain = new List<double>(); var cRef = new List<double>(); var dPlain = new List<double>(); var dRef = new List<double>();
            for (int i = 0; i < repeats; i++)
            {
                cPlain.Add(Time(() => TczWriter.CompressFile(target, plainOut, true)));
                cRef.Add(Time(() => TczWriter.CompressFile(target, refOut, true, new TczCompressOptions { Reference = reference })));
                dPlain.Add(Time(() => { using var rd = TczReader.Open(plainOut); rd.DecompressTo(Stream.Null); }));
                dRef.Add(Time(() => { using var rd = TczReader.Open(refOut); rd.AttachReference(reference); rd.DecompressTo(Stream.Null); }));
            }
            double Med(List<double> x) { var s = x.Order().ToList(); return s[s.Count / 2]; }
            if (Environment.GetEnvironmentVariable("CKPT_PROFILE") is not null)
            {
                var att = new List<double>(); var dec = new List<double>(); var open = new List<double>();
                for (int i = 0; i < repeats; i++)
                {
                    open.Add(Time(() => { using var f = new TczReferenceFile(reference); }));
                    using var rd = TczReader.Open(refOut);
                    att.Add(Time(() => rd.AttachReference(reference)));
                    rd.CodedFormOnly = true;
                    dec.Add(Time(() => { try { rd.DecompressTo(Stream.Null); } catch (TensorFormatException) { } }));
                }
                var buf = new byte[1 << 20]; var rbuf = new byte[1 << 20]; new Random(1).NextBytes(buf); new Random(2).NextBytes(rbuf);
                var inv = new List<double>(); var xor = new List<double>();
                for (int i = 0; i < repeats; i++)
                {
                    inv.Add(Time(() => { for (int k = 0; k < 14; k++) DeltaTransform.Inverse(DeltaKind.Sub, 4, buf, rbuf); }));
                    xor.Add(Time(() => { for (int k = 0; k < 14; k++) DeltaTransform.Inverse(DeltaKind.Xor, 4, buf, rbuf); }));
                }
                Console.WriteLine($"profile: 14 MiB Sub inverse {Med(inv):0.000} s, Xor {Med(xor):0.000} s");
                Console.WriteLine($"profile: open reference {Med(open):0.000} s, attach {Med(att):0.000} s, decode {Med(dec):0.000} s");
            }
            Console.WriteLine();
            Console.WriteLine($"speed, 1 thread, median of {repeats} interleaved runs: compress {Med(cPlain):0.000} s plain, {Med(cRef):0.000} s --ref (×{Med(cRef) / Med(cPlain):0.00} the time); " +
                $"decompress {Med(dPlain):0.000} s plain, {Med(dRef):0.000} s --ref (×{Med(dRef) / Med(dPlain):0.00}; includes checking the reference's checksums)");
        }
        finally { Directory.Delete(dir, true); }
        return 0;
    }

    static double Time(Action a)
    {
        var sw = System.Diagnostics.Stopwatch.StartNew();
        a();
        return sw.Elapsed.TotalSeconds;
    }

    sealed class Row(int n)
    {
        public long Raw, Ctx, Best;
        public int Count, Identical;
        public readonly long[] Sizes = new long[n];
        public readonly List<byte[]> Bytes = new();
    }

    internal static string Kind(string name) =>
        name.EndsWith(".exp_avg_sq", StringComparison.Ordinal) ? "exp_avg_sq"
        : name.EndsWith(".exp_avg", StringComparison.Ordinal) ? "exp_avg"
        : "weights";

    static long Encode(ChunkEncoder enc, ReadOnlySpan<byte> data, DType dtype, byte[] dst)
    {
        long total = 0;
        int e = Math.Max(1, dtype.ElementSize());
        int step = TczConstants.DefaultChunkSize / e * e;
        for (int o = 0; o < data.Length; o += step)
        {
            var chunk = data.Slice(o, Math.Min(step, data.Length - o));
            enc.Encode(chunk, dtype, dst, out int w);
            total += w;
        }
        return total;
    }

    /// <summary>Least-squares scaled prediction from the reference: weights w_ref − c·m_ref/(√v_ref + 1e-8), moments a·ref.</summary>
    static byte[] Predict(string name, string kind, ReadOnlySpan<byte> data, ReadOnlySpan<byte> rd, TensorFile rl, byte[] rb)
    {
        int n = data.Length / 4;
        var x = new float[n]; var r = new float[n]; var basis = new float[n];
        for (int i = 0; i < n; i++) { x[i] = BitConverter.Int32BitsToSingle(BinaryPrimitives.ReadInt32LittleEndian(data[(4 * i)..])); r[i] = BitConverter.Int32BitsToSingle(BinaryPrimitives.ReadInt32LittleEndian(rd[(4 * i)..])); }
        if (kind == "weights")
        {
            var m = rl.Tensors.FirstOrDefault(t => t.Name == "optimizer." + name + ".exp_avg");
            var v = rl.Tensors.FirstOrDefault(t => t.Name == "optimizer." + name + ".exp_avg_sq");
            if (m is null || v is null) return rd.ToArray();
            for (int i = 0; i < n; i++)
            {
                float mi = BitConverter.Int32BitsToSingle(BinaryPrimitives.ReadInt32LittleEndian(rb.AsSpan((int)m.Offset + 4 * i)));
                float vi = BitConverter.Int32BitsToSingle(BinaryPrimitives.ReadInt32LittleEndian(rb.AsSpan((int)v.Offset + 4 * i)));
                basis[i] = mi / (MathF.Sqrt(vi) + 1e-8f);
            }
            double num = 0, den = 0;
            for (int i = 0; i < n; i++) { num += (r[i] - x[i]) * (double)basis[i]; den += (double)basis[i] * basis[i]; }
            float c = den > 0 ? (float)(num / den) : 0;
            var outp = new byte[data.Length];
            for (int i = 0; i < n; i++) BinaryPrimitives.WriteInt32LittleEndian(outp.AsSpan(4 * i), BitConverter.SingleToInt32Bits(r[i] - c * basis[i]));
            return outp;
        }
        else
        {
            double num = 0, den = 0;
            for (int i = 0; i < n; i++) { num += x[i] * (double)r[i]; den += (double)r[i] * r[i]; }
            float a = den > 0 ? (float)(num / den) : 1;
            var outp = new byte[data.Length];
            for (int i = 0; i < n; i++) BinaryPrimitives.WriteInt32LittleEndian(outp.AsSpan(4 * i), BitConverter.SingleToInt32Bits(a * r[i]));
            return outp;
        }
    }

    static void RawSub(Span<byte> data, ReadOnlySpan<byte> r, int e)
    {
        if (e == 4)
            for (int i = 0; i + 4 <= data.Length; i += 4)
                BinaryPrimitives.WriteUInt32LittleEndian(data[i..], BinaryPrimitives.ReadUInt32LittleEndian(data[i..]) - BinaryPrimitives.ReadUInt32LittleEndian(r[i..]));
        else
            for (int i = 0; i + 2 <= data.Length; i += 2)
                BinaryPrimitives.WriteUInt16LittleEndian(data[i..], (ushort)(BinaryPrimitives.ReadUInt16LittleEndian(data[i..]) - BinaryPrimitives.ReadUInt16LittleEndian(r[i..])));
    }

    /// <summary>Σ over the byte streams of the XOR (F32: 4, BF16: 2 bytes) of H(stream byte | reference exponent byte), in bits.</summary>
    static double ContextBits(ReadOnlySpan<byte> xor, ReadOnlySpan<byte> reference, DType dtype)
    {
        int e = dtype.ElementSize();
        int n = xor.Length / e;
        double bits = 0;
        var counts = new int[256 * 256];
        var ctxTotal = new int[256];
        for (int b = 0; b < e; b++)
        {
            Array.Clear(counts); Array.Clear(ctxTotal);
            for (int i = 0; i < n; i++)
            {
                // Reference exponent: bits 30..23 (F32) or 14..7 (BF16/F16 approx.) of the reference value.
                uint rv = e == 4 ? BinaryPrimitives.ReadUInt32LittleEndian(reference[(i * 4)..]) : BinaryPrimitives.ReadUInt16LittleEndian(reference[(i * 2)..]);
                int ctx = e == 4 ? (int)((rv >> 23) & 0xFF) : (int)((rv >> 7) & 0xFF);
                counts[ctx * 256 + xor[i * e + b]]++;
                ctxTotal[ctx]++;
            }
            for (int c = 0; c < 256; c++)
            {
                if (ctxTotal[c] == 0) continue;
                for (int s = 0; s < 256; s++)
                {
                    int k = counts[c * 256 + s];
                    if (k > 0) bits -= k * Math.Log2((double)k / ctxTotal[c]);
                }
                bits += 256 * 12; // a per-context table, as a coder would have to send
            }
        }
        return bits;
    }

    static long TczSize(string path)
    {
        var layout = TensorFileReader.Open(path);
        using var ms = new MemoryStream();
        return TczWriter.Compress(path, layout, ms).CompressedBytes;
    }

    static long Zstd19(byte[] data)
    {
        using var c = new Compressor(19);
        return c.Wrap(data).Length;
    }
}
