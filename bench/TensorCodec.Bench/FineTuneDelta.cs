using System.Buffers.Binary;
using TensorCodec.Containers;
using TensorCodec.Containers.Tcz;
using TensorCodec.Engine;
using TensorCodec.Eval;
using TensorCodec.Numerics;

namespace TensorCodec.Bench;

/// <summary>
/// "ckpt-lossy FINETUNE BASE TOKENS [WINDOWS]": lossy fine-tune deltas (a measurement, not a tcodec mode). Each
/// 2-D F32 tensor's delta against the base is replaced by (a) BitDelta-style per-row sign + scale
/// (scale = mean |delta| of the row), or (b) per-row absmax symmetric N-bit quantization of the delta;
/// 1-D tensors (norms) stay exact. The rebuilt model is run with our engine and compared with the true
/// fine-tune: mean KL(fine-tune ‖ rebuilt) on the validation split, ctx 128. Bytes are the payload's
/// (signs or codes at their bit width, one F16 scale per row, 1-D tensors as F32), before any entropy coding.
/// </summary>
public static class FineTuneDelta
{
    public static int Run(string[] args)
    {
        string ftPath = args[0], basePath = args[1], tokensPath = args[2];
        int windows = args.Length > 3 ? int.Parse(args[3]) : 60;
        var ft = TensorFileReader.Open(ftPath);
        var bs = TensorFileReader.Open(basePath);
        var ftBytes = File.ReadAllBytes(ftPath);
        var baseBytes = File.ReadAllBytes(basePath);
        var tokens = EvalData.Split(EvalData.ReadTokens(tokensPath), TokenSplit.Val);
        string dir = Path.Combine(Path.GetTempPath(), "tcodec-ftdelta-" + Environment.ProcessId);
        Directory.CreateDirectory(dir);
        try
        {
            File.Copy(Path.Combine(Path.GetDirectoryName(ftPath)!, "config.json"), Path.Combine(dir, "config.json"));
            long lossless;
            using (var ms = new MemoryStream()) lossless = TczWriter.Compress(ftPath, ft, ms).CompressedBytes;
            using var truth = LlamaModel.Load(ftPath);
            Console.WriteLine($"fine-tune {Path.GetFileName(ftPath)} against {Path.GetFileName(basePath)}; lossless .tcz {lossless:N0} B; validation ctx 128, {windows} windows");
            Console.WriteLine();
            Console.WriteLine("| method | payload bytes | vs lossless .tcz | mean KLD | top-1 agreement |");
            Console.WriteLine("|---|---:|---:|---:|---:|");
            foreach (var method in new[] { "base (no delta)", "bitdelta", "delta 2-bit", "delta 3-bit", "delta 4-bit", "delta 6-bit", "delta 8-bit" })
            {
                long bytes = 0;
                var tensors = new List<SafetensorsTensor>();
                foreach (var t in ft.Tensors)
                {
                    var b = bs.Tensors.First(x => x.Name == t.Name);
                    int n = (int)(t.Length / 4);
                    var outp = new float[n];
                    for (int i = 0; i < n; i++) outp[i] = F(baseBytes, b.Offset, i);
                    if (t.Shape.Length == 1)
                    {
                        for (int i = 0; i < n; i++) outp[i] = F(ftBytes, t.Offset, i);
                        bytes += t.Length;
                    }
                    else if (method != "base (no delta)")
                    {
                        int cols = (int)t.Shape[^1], rows = n / cols;
                        int bits = method == "bitdelta" ? 1 : int.Parse(method.Split(' ')[1].Split('-')[0]);
                        bytes += rows * 2 + ((long)n * bits + 7) / 8;
                        var d = new float[cols];
                        for (int r = 0; r < rows; r++)
                        {
                            for (int c = 0; c < cols; c++) d[c] = F(ftBytes, t.Offset, r * cols + c) - F(baseBytes, b.Offset, r * cols + c);
                            if (bits == 1)
                            {
                                float scale = (float)(Half)(d.Sum(Math.Abs) / cols);
                                for (int c = 0; c < cols; c++) outp[r * cols + c] += d[c] >= 0 ? scale : -scale;
                            }
                            else
                            {
                                int q = (1 << (bits - 1)) - 1;
                                float absmax = (float)(Half)d.Max(Math.Abs);
                                for (int c = 0; c < cols; c++)
                                    outp[r * cols + c] += absmax == 0 ? 0 : MathF.Round(Math.Clamp(d[c] / absmax * q, -q, q)) * absmax / q;
                            }
                        }
                    }
                    var raw = new byte[t.Length];
                    for (int i = 0; i < n; i++) BinaryPrimitives.WriteSingleLittleEndian(raw.AsSpan(4 * i), outp[i]);
                    tensors.Add(new SafetensorsTensor(t.Name, t.DType, t.Shape, TensorByteSource.FromMemory(raw)));
                }
                string rebuilt = Path.Combine(dir, "model.safetensors");
                File.WriteAllBytes(rebuilt, SafetensorsWriter.ToBytes(tensors));
                using var model = LlamaModel.Load(rebuilt);
                var res = Perplexity.Run(model, tokens.Span, new EvalOptions { Ctx = 128, MaxChunks = windows, Base = truth, Threads = 2 });
                Console.WriteLine($"| {method} | {bytes:N0} | {(double)lossless / Math.Max(1, bytes):0.0}× | {res.Kl!.Mean:0.00000} | {res.Kl.Top1AgreementPercent:0.0}% |");
            }
        }
        finally { Directory.Delete(dir, true); }
        return 0;
    }

    static float F(byte[] data, long offset, int i) => BinaryPrimitives.ReadSingleLittleEndian(data.AsSpan((int)offset + 4 * i));
}
