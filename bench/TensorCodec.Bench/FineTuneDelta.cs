using System.Diagnostics;
using System.Globalization;
using System.Text;
using TensorCodec.Coders;
using TensorCodec.Containers;
using TensorCodec.Containers.Tcz;
using TensorCodec.Engine;
using TensorCodec.Eval;
using TensorCodec.Numerics;

namespace TensorCodec.Bench;

/// <summary>
/// "ckpt-lossy FINETUNE BASE TOKENS [WINDOWS] [REPEATS] [SVG]": the archives <c>tcodec compress FINETUNE --ref BASE
/// --delta-lossy METHOD</c> writes (TczWriter with the same options), for each method and parameter. Each archive is
/// decompressed against the base (TczReader, as <c>tcodec decompress --ref</c>), the rebuilt model runs in our engine
/// and is compared with the true fine-tune: mean KL(fine-tune ‖ rebuilt) on the validation split, ctx 128. Bytes: the
/// whole archive, against the fine-tune's lossless .tcz alone and with lossless --ref; the raw payload of the lossy
/// tensors (what their chunks hold before the chunk codec) against what the codec made of it. Speed: medians of
/// REPEATS interleaved compress/decompress runs, as ratios to lossless --ref. SVG: archive bytes against KLD.
/// </summary>
public static class FineTuneDelta
{
    static readonly string[] Methods =
    [
        "bitdelta", "bits:2", "bits:3", "bits:4",
        "lowrank:8", "lowrank:16", "lowrank:32", "lowrank:64",
        "lowrank:8+bits:2", "lowrank:16+bits:2", "lowrank:32+bits:2", "lowrank:64+bits:2", "lowrank:16+bits:3",
    ];

    public static int Run(string[] args)
    {
        string ftPath = args[0], basePath = args[1], tokensPath = args[2];
        int windows = args.Length > 3 ? int.Parse(args[3], CultureInfo.InvariantCulture) : 40;
        int repeats = args.Length > 4 ? int.Parse(args[4], CultureInfo.InvariantCulture) : 3;
        string? svg = args.Length > 5 ? args[5] : null;
        var tokens = EvalData.Split(EvalData.ReadTokens(tokensPath), TokenSplit.Val);
        string dir = Path.Combine(Path.GetTempPath(), "tcodec-ftdelta-" + Environment.ProcessId);
        Directory.CreateDirectory(dir);
        try
        {
            File.Copy(Path.Combine(Path.GetDirectoryName(ftPath)!, "config.json"), Path.Combine(dir, "config.json"));
            string archive = Path.Combine(dir, "ft.tcz"), rebuilt = Path.Combine(dir, "model.safetensors");
            long alone = TczWriter.CompressFile(ftPath, archive, true).CompressedBytes;
            var losslessRef = new TczCompressOptions { Reference = basePath };
            long withRef = TczWriter.CompressFile(ftPath, archive, true, losslessRef).CompressedBytes;
            using var truth = LlamaModel.Load(ftPath);
            Console.WriteLine($"fine-tune {Path.GetFileName(ftPath)} against {Path.GetFileName(basePath)}: lossless .tcz {alone:N0} B, lossless --ref {withRef:N0} B; " +
                $"validation ctx 128, {windows} windows; speed: median of {repeats} interleaved runs, one thread");
            Console.WriteLine();
            Console.WriteLine("| --delta-lossy | archive bytes | vs lossless .tcz | vs lossless --ref | lossy tensors: raw payload → coded | mean KLD | top-1 | compress × | decompress × |");
            Console.WriteLine("|---|---:|---:|---:|---:|---:|---:|---:|---:|");
            var points = new List<(string Name, double Bytes, double Kld)>();
            foreach (var m in Methods)
            {
                var spec = LossyDeltaSpec.Parse(m);
                var options = new TczCompressOptions { Reference = basePath, DeltaLossy = spec };
                var res = TczWriter.CompressFile(ftPath, archive, true, options);
                long payload = 0, coded = 0;
                using (var reader = TczReader.Open(archive))
                {
                    var lossy = reader.Index.Segments.Where((s, i) => reader.LossyDeltaEntry(i) is not null).ToList();
                    foreach (var s in lossy)
                    {
                        int w = s.DType.ElementSize();
                        foreach (var c in s.Chunks)
                        {
                            long first = (c.OriginalOffset - s.OriginalOffset) / w;
                            int n = c.RawLength / w;
                            payload += LossyDelta.Fits(spec, (int)s.Shape[1], first, n, s.DType) ? LossyDelta.PayloadBytes(spec, (int)s.Shape[1], first, n) : c.RawLength;
                            coded += c.EncodedLength;
                        }
                    }
                    reader.AttachReference(basePath);
                    reader.DecompressToFile(rebuilt, true);
                }
                using var model = LlamaModel.Load(rebuilt);
                var kl = Perplexity.Run(model, tokens.Span, new EvalOptions { Ctx = 128, MaxChunks = windows, Base = truth, Threads = 2 }).Kl!;

                // Speed against lossless --ref, interleaved.
                var (cLossy, cRef, dLossy, dRef) = (new List<double>(), new List<double>(), new List<double>(), new List<double>());
                string refArchive = Path.Combine(dir, "ref.tcz");
                for (int k = 0; k < repeats; k++)
                {
                    cRef.Add(Time(() => TczWriter.CompressFile(ftPath, refArchive, true, losslessRef)));
                    cLossy.Add(Time(() => TczWriter.CompressFile(ftPath, archive, true, options)));
                    dRef.Add(Time(() => Decompress(refArchive, basePath)));
                    dLossy.Add(Time(() => Decompress(archive, basePath)));
                }
                Console.WriteLine($"| `{m}` | {res.CompressedBytes:N0} | {(double)alone / res.CompressedBytes:0.0}× | {(double)withRef / res.CompressedBytes:0.0}× | " +
                    $"{payload:N0} → {coded:N0} ({100.0 * coded / Math.Max(1, payload):0}%) | {kl.Mean:0.00000} | {kl.Top1AgreementPercent:0.0}% | " +
                    $"×{Median(cLossy) / Median(cRef):0.00} | ×{Median(dLossy) / Median(dRef):0.00} |");
                points.Add((m, res.CompressedBytes, kl.Mean));
            }
            Console.WriteLine();
            Console.WriteLine($"goal: ≥ 8× smaller than the lossless .tcz ({alone / 8.0:N0} B) at mean KLD ≤ 0.01; met by: " +
                string.Join(", ", points.Where(p => p.Kld <= 0.01 && alone / p.Bytes >= 8).Select(p => $"{p.Name} ({alone / p.Bytes:0.0}×, {p.Kld:0.0000})")));
            if (svg is not null)
            {
                File.WriteAllText(svg, Svg($"{Path.GetFileName(ftPath)} ← {Path.GetFileName(basePath)}: --delta-lossy archives", alone, points));
                Console.WriteLine($"wrote {svg}");
            }
        }
        finally { Directory.Delete(dir, true); }
        return 0;
    }

    static void Decompress(string archive, string reference)
    {
        using var r = TczReader.Open(archive);
        r.AttachReference(reference);
        r.DecompressTo(Stream.Null);
    }

    static double Time(Action a)
    {
        var sw = Stopwatch.StartNew();
        a();
        return sw.Elapsed.TotalSeconds;
    }

    static double Median(List<double> xs)
    {
        var s = xs.Order().ToArray();
        return s.Length % 2 == 1 ? s[s.Length / 2] : (s[s.Length / 2 - 1] + s[s.Length / 2]) / 2;
    }

    /// <summary>A log–log scatter of archive bytes (x) against mean KLD (y), with the goal box (≤ lossless/8, ≤ 0.01).</summary>
    static string Svg(string title, long lossless, List<(string Name, double Bytes, double Kld)> points)
    {
        const int W = 760, H = 480, L = 70, R = 20, T = 40, B = 50;
        double x0 = Math.Floor(Math.Log10(points.Min(p => p.Bytes))), x1 = Math.Ceiling(Math.Log10(Math.Max(lossless, points.Max(p => p.Bytes))));
        double y0 = Math.Floor(Math.Log10(Math.Max(1e-7, points.Min(p => p.Kld)))), y1 = Math.Ceiling(Math.Log10(points.Max(p => p.Kld)));
        double X(double v) => L + (Math.Log10(v) - x0) / (x1 - x0) * (W - L - R);
        double Y(double v) => T + (y1 - Math.Log10(Math.Max(v, Math.Pow(10, y0)))) / (y1 - y0) * (H - T - B);
        static string N(double v) => v.ToString("0.#", CultureInfo.InvariantCulture);
        var sb = new StringBuilder();
        sb.Append($"<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{W}\" height=\"{H}\" viewBox=\"0 0 {W} {H}\" font-family=\"DejaVu Sans, Helvetica, Arial, sans-serif\" font-size=\"12\">\n");
        sb.Append($"<rect width=\"{W}\" height=\"{H}\" fill=\"white\"/>\n<text x=\"{W / 2}\" y=\"22\" text-anchor=\"middle\" font-size=\"14\">{Esc(title)}</text>\n");
        for (double e = x0; e <= x1; e++)
            sb.Append($"<line x1=\"{N(X(Math.Pow(10, e)))}\" y1=\"{T}\" x2=\"{N(X(Math.Pow(10, e)))}\" y2=\"{H - B}\" stroke=\"#ddd\"/><text x=\"{N(X(Math.Pow(10, e)))}\" y=\"{H - B + 16}\" text-anchor=\"middle\">1e{e}</text>\n");
        for (double e = y0; e <= y1; e++)
            sb.Append($"<line x1=\"{L}\" y1=\"{N(Y(Math.Pow(10, e)))}\" x2=\"{W - R}\" y2=\"{N(Y(Math.Pow(10, e)))}\" stroke=\"#ddd\"/><text x=\"{L - 6}\" y=\"{N(Y(Math.Pow(10, e)) + 4)}\" text-anchor=\"end\">1e{e}</text>\n");
        sb.Append($"<text x=\"{(L + W - R) / 2}\" y=\"{H - 12}\" text-anchor=\"middle\">archive bytes (log)</text>\n");
        sb.Append($"<text x=\"16\" y=\"{(T + H - B) / 2}\" text-anchor=\"middle\" transform=\"rotate(-90 16 {(T + H - B) / 2})\">mean KL(fine-tune ‖ rebuilt), nats (log)</text>\n");
        // Goal region: at most lossless/8 bytes and KLD at most 0.01.
        sb.Append($"<rect x=\"{L}\" y=\"{N(Y(0.01))}\" width=\"{N(X(lossless / 8.0) - L)}\" height=\"{N(H - B - Y(0.01))}\" fill=\"#2a2\" fill-opacity=\"0.08\" stroke=\"#2a2\" stroke-dasharray=\"4 3\"/>\n");
        sb.Append($"<text x=\"{N(X(lossless / 8.0) - 4)}\" y=\"{N(Y(0.01) + 14)}\" text-anchor=\"end\" fill=\"#2a2\">goal: ≥ 8× smaller than lossless, KLD ≤ 0.01</text>\n");
        sb.Append($"<line x1=\"{N(X(lossless))}\" y1=\"{T}\" x2=\"{N(X(lossless))}\" y2=\"{H - B}\" stroke=\"#888\" stroke-dasharray=\"2 2\"/><text x=\"{N(X(lossless) - 4)}\" y=\"{T + 12}\" text-anchor=\"end\" fill=\"#666\">lossless .tcz</text>\n");
        foreach (var (name, bytes, kld) in points)
        {
            string color = name.StartsWith("lowrank", StringComparison.Ordinal) ? (name.Contains('+') ? "#c60" : "#36c") : name == "bitdelta" ? "#a3a" : "#222";
            sb.Append($"<circle cx=\"{N(X(bytes))}\" cy=\"{N(Y(kld))}\" r=\"4.5\" fill=\"{color}\"/><text x=\"{N(X(bytes) + 7)}\" y=\"{N(Y(kld) - 6)}\" font-size=\"10\" fill=\"{color}\">{Esc(name)}</text>\n");
        }
        sb.Append($"<rect x=\"{L}\" y=\"{T}\" width=\"{W - L - R}\" height=\"{H - T - B}\" fill=\"none\" stroke=\"#444\"/>\n</svg>\n");
        return sb.ToString();
    }

    static string Esc(string s) => s.Replace("&", "&amp;").Replace("<", "&lt;").Replace(">", "&gt;");
}

/// <summary>
/// "ckpt-lossy-layout FINETUNE BASE": how the per-row N-bit codes of the delta are best laid out for the chunk codec:
/// packed at N bits (what the archive stores) and coded as bytes (zstd), against one code per byte coded as bytes (zstd)
/// or as signed 8-bit integers (the codec's integer path). Codes only (scales aside), summed over the 2-D tensors.
/// </summary>
public static class FineTuneDeltaLayout
{
    public static int Run(string[] args)
    {
        var ft = TensorFileReader.Open(args[0]);
        var bs = TensorFileReader.Open(args[1]);
        var ftBytes = File.ReadAllBytes(args[0]);
        var baseBytes = File.ReadAllBytes(args[1]);
        using var encoder = new ChunkEncoder(ChunkCodecOptions.Default);
        Console.WriteLine("| bits | codes | packed, raw | packed → zstd | byte each → zstd | byte each → integer path |");
        Console.WriteLine("|---:|---:|---:|---:|---:|---:|");
        foreach (int bits in new[] { 2, 3, 4 })
        {
            long n = 0, packedRaw = 0, packedCoded = 0, byteZstd = 0, byteInt = 0;
            int level = (1 << (bits - 1)) - 1;
            foreach (var t in ft.Tensors.Where(t => t.Shape.Length == 2))
            {
                var b = bs.Tensors.First(x => x.Name == t.Name);
                int count = (int)(t.Length / t.DType.ElementSize()), cols = (int)t.Shape[1];
                var tv = new float[count];
                var bv = new float[count];
                LossyDelta.ToFloat(ftBytes.AsSpan((int)t.Offset, (int)t.Length), t.DType, tv);
                LossyDelta.ToFloat(baseBytes.AsSpan((int)b.Offset, (int)b.Length), t.DType, bv);
                var codes = new sbyte[count];
                for (int r = 0; r < count / cols; r++)
                {
                    float max = 0;
                    for (int c = 0; c < cols; c++) max = Math.Max(max, Math.Abs(tv[r * cols + c] - bv[r * cols + c]));
                    double s = (double)LossyDelta.ScaleFor(max, level);
                    for (int c = 0; c < cols; c++)
                        codes[r * cols + c] = (sbyte)(s == 0 ? 0 : Math.Clamp((int)Math.Round((tv[r * cols + c] - bv[r * cols + c]) / s, MidpointRounding.ToEven), -level, level));
                }
                var packed = new byte[((long)count * bits + 7) / 8];
                for (long i = 0; i < count; i++)
                {
                    uint code = (uint)(codes[i] + level);
                    for (int k = 0; k < bits; k++)
                        if ((code >> k & 1) != 0) packed[(i * bits + k) >> 3] |= (byte)(1 << (int)((i * bits + k) & 7));
                }
                var offset = codes.Select(c => (byte)(c + level)).ToArray();
                var signed = codes.Select(c => (byte)c).ToArray();
                long Coded(byte[] raw, DType dtype)
                {
                    var dst = new byte[ChunkCodec.MaxEncodedLength(raw.Length)];
                    encoder.Encode(raw, dtype, dst, out int len, null);
                    return len;
                }
                n += count;
                packedRaw += packed.Length;
                packedCoded += Coded(packed, DType.U8);
                byteZstd += Coded(offset, DType.U8);
                byteInt += Coded(signed, DType.I8);
            }
            Console.WriteLine($"| {bits} | {n:N0} | {packedRaw:N0} | {packedCoded:N0} ({packedCoded * 8.0 / n:0.00} b/v) | {byteZstd:N0} ({byteZstd * 8.0 / n:0.00} b/v) | {byteInt:N0} ({byteInt * 8.0 / n:0.00} b/v) |");
        }
        return 0;
    }
}
