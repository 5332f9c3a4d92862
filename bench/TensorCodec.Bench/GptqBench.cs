using System.Diagnostics;
using TensorCodec.Formats;
using TensorCodec.Quantization;

namespace TensorCodec.Bench;

/// <summary>
/// GPTQ per-layer time at real shapes on one thread: a random weight matrix [rows][cols] and a random positive-definite
/// H (diagonal plus 64 random rank-one terms), timing the factor (Cholesky of H⁻¹) and the rounding separately, beside
/// the type's own round-to-nearest on the same matrix. Wall seconds, with the process's CPU seconds in parentheses
/// (the honest figure on a shared machine: the rounding runs on one thread). Usage: e2e gptq ROWS COLS [TYPE] [REPEATS].
/// </summary>
public static class GptqBench
{
    public static void Run(string[] args)
    {
        int rows = int.Parse(args[0]), cols = int.Parse(args[1]);
        string type = args.Length > 2 ? args[2] : "q4_K";
        int repeats = args.Length > 3 ? int.Parse(args[3]) : 1;
        var fmt = BlockFormats.Get(type);
        var rng = new Random(1);
        var w = new float[(long)rows * cols];
        for (long i = 0; i < w.LongLength; i++) w[i] = (float)(rng.NextDouble() - 0.5) * 0.1f;
        var h = new float[(long)cols * cols];
        var v = new float[cols];
        for (int k = 0; k < 64; k++)
        {
            for (int i = 0; i < cols; i++) v[i] = (float)(rng.NextDouble() * 2 - 1);
            for (int i = 0; i < cols; i++)
                System.Numerics.Tensors.TensorPrimitives.MultiplyAdd(v, v[i], h.AsSpan(i * cols, cols), h.AsSpan(i * cols, cols));
        }
        for (int i = 0; i < cols; i++) h[(long)i * cols + i] += 1 + (float)rng.NextDouble();
        var imp = Enumerable.Range(0, cols).Select(i => h[(long)i * cols + i]).ToArray();
        var bytes = new byte[(long)rows * cols / fmt.BlockSize * fmt.BlockBytes];
        var factorS = new List<double>();
        var roundS = new List<double>();
        var rtnS = new List<double>();
        var factorCpu = new List<double>();
        var roundCpu = new List<double>();
        var me = Process.GetCurrentProcess();
        double Cpu() { me.Refresh(); return me.TotalProcessorTime.TotalSeconds; }
        for (int r = 0; r < repeats; r++)
        {
            var sw = Stopwatch.StartNew();
            fmt.Quantize(w, bytes, cols, imp);
            rtnS.Add(sw.Elapsed.TotalSeconds);
            sw.Restart();
            double c0 = Cpu();
            var f = Gptq.Factor(h, cols);
            factorS.Add(sw.Elapsed.TotalSeconds);
            factorCpu.Add(Cpu() - c0);
            var work = (float[])w.Clone();
            sw.Restart();
            c0 = Cpu();
            Gptq.Quantize(work, rows, cols, f, fmt, imp, bytes, threads: 1);
            roundS.Add(sw.Elapsed.TotalSeconds);
            roundCpu.Add(Cpu() - c0);
        }
        static double Median(List<double> x) { x.Sort(); return x[x.Count / 2]; }
        double fm = Median(factorS), qm = Median(roundS), rm = Median(rtnS), fc = Median(factorCpu), qc = Median(roundCpu);
        Console.WriteLine($"| {rows}×{cols} | {type} | {fm:0.00} ({fc:0.00}) | {qm:0.00} ({qc:0.00}) | {fm + qm:0.00} ({fc + qc:0.00}) | {rm:0.00} | {(fm + qm) / rm:0} | " +
            $"{Process.GetCurrentProcess().PeakWorkingSet64 / 1048576.0:0} |");
    }

    /// <summary>
    /// Calibration/evaluation text a model writes itself: COUNT sequences of LENGTH tokens sampled at temperature 1 from
    /// BOS (id 1), seeds SEED, SEED+1, …, written as raw uint16. Usage: e2e sample MODEL COUNT LENGTH SEED OUT.u16.
    /// </summary>
    public static void Sample(string[] args)
    {
        string modelPath = args[0], outPath = args[4];
        int count = int.Parse(args[1]), length = int.Parse(args[2]), seed = int.Parse(args[3]);
        using var model = TensorCodec.Engine.LlamaModel.Load(modelPath);
        using var session = model.CreateSession(new TensorCodec.Engine.LlamaSessionOptions { Capacity = length });
        var ids = new List<ushort>();
        var p = new double[model.Config.VocabSize];
        for (int sIndex = 0; sIndex < count; sIndex++)
        {
            var rng = new Random(seed + sIndex);
            session.Reset();
            int token = 1;
            ids.Add((ushort)token);
            for (int t = 1; t < length; t++)
            {
                var logits = session.Forward(token);
                float max = float.NegativeInfinity;
                foreach (var l in logits) max = Math.Max(max, l);
                double z = 0;
                for (int i = 0; i < p.Length; i++) z += p[i] = Math.Exp(logits[i] - max);
                double u = rng.NextDouble() * z;
                token = p.Length - 1;
                for (int i = 0; i < p.Length; i++) if ((u -= p[i]) <= 0) { token = i; break; }
                ids.Add((ushort)token);
            }
        }
        using var f = File.Create(outPath);
        foreach (var id in ids) { f.WriteByte((byte)id); f.WriteByte((byte)(id >> 8)); }
        Console.WriteLine($"{outPath}: {count} sequences × {length} tokens sampled from {modelPath} (seeds {seed}…{seed + count - 1})");
    }
}
