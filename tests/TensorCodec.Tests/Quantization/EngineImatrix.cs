using TensorCodec.Engine;
using TensorCodec.Quantization;

namespace TensorCodec.Tests.Quantization;

/// <summary>
/// A whole-model importance matrix from our engine, for tests: what llama-imatrix collects — for every block matrix,
/// the mean over the evaluated tokens of each input column's squared activation (sum of x² / tokens) — keyed by the
/// GGUF tensor name. The classifier is left out, as llama-imatrix does without --process-output. Tokens are run in
/// independent chunks of <c>ctx</c> from an empty cache, as llama-imatrix runs its chunks.
/// </summary>
internal static class EngineImatrix
{
    /// <summary>Sums x² per column of the inputs a matrix sees; the row range that starts at 0 counts each call once.</summary>
    sealed class Recorder(IWeightMatrix inner, string name) : IWeightMatrix
    {
        public readonly string Name = name;
        public readonly double[] Sums = new double[inner.Cols];
        public long Count;
        public int Rows => inner.Rows;
        public int Cols => inner.Cols;
        public string TypeName => inner.TypeName;
        public long ByteSize => inner.ByteSize;

        void Record(ReadOnlySpan<float> x, int n)
        {
            lock (Sums)
            {
                for (int t = 0; t < n; t++)
                {
                    var row = x.Slice(t * Cols, Cols);
                    for (int i = 0; i < row.Length; i++) Sums[i] += (double)row[i] * row[i];
                }
                Count += n;
            }
        }

        public void MatVec(ReadOnlySpan<float> x, Span<float> y, int rowStart, int rowEnd)
        {
            if (rowStart == 0) Record(x, 1);
            inner.MatVec(x, y, rowStart, rowEnd);
        }

        public void MatMul(ReadOnlySpan<float> x, int n, Span<float> y, int rowStart, int rowEnd)
        {
            if (rowStart == 0) Record(x, n);
            inner.MatMul(x, n, y, rowStart, rowEnd);
        }

        public void ReadRow(int row, Span<float> destination) => inner.ReadRow(row, destination);
    }

    /// <summary>The importance weights of <paramref name="modelPath"/> on <paramref name="tokens"/>, by GGUF name.</summary>
    public static Dictionary<string, float[]> Collect(string modelPath, ReadOnlySpan<int> tokens, int ctx, string? configPath = null)
    {
        using var model = LlamaModel.Load(modelPath, new LlamaLoadOptions { ConfigPath = configPath });
        var recorders = new List<Recorder>();
        Recorder R(IWeightMatrix m, int layer, string role)
        {
            var r = new Recorder(m, $"blk.{layer}.{role}.weight");
            recorders.Add(r);
            return r;
        }
        var layers = model.Layers.Select((l, i) => new LlamaLayer
        {
            AttnNorm = l.AttnNorm, FfnNorm = l.FfnNorm, Bq = l.Bq, Bk = l.Bk, Bv = l.Bv, Bo = l.Bo, QNorm = l.QNorm, KNorm = l.KNorm,
            Wq = R(l.Wq, i, "attn_q"), Wk = R(l.Wk, i, "attn_k"), Wv = R(l.Wv, i, "attn_v"), Wo = R(l.Wo, i, "attn_output"),
            Gate = R(l.Gate, i, "ffn_gate"), Up = R(l.Up, i, "ffn_up"), Down = R(l.Down, i, "ffn_down"),
        }).ToList();
        var recording = new LlamaModel(model.Config, model.Embedding, layers, model.FinalNorm, model.Output, model.Source);
        using (var s = recording.CreateSession(new LlamaSessionOptions { Threads = 2, Capacity = ctx }))
        {
            var logits = new float[ctx * model.Config.VocabSize];
            for (int c = 0; c + ctx <= tokens.Length; c += ctx)
            {
                s.Reset();
                s.Forward(tokens.Slice(c, ctx), logits);
            }
        }
        return recorders.ToDictionary(r => r.Name, r => r.Sums.Select(v => (float)(v / Math.Max(1, r.Count))).ToArray());
    }

    /// <summary>Writes <see cref="Collect"/>'s result as a legacy .dat imatrix (ncall = 1) and returns its path.</summary>
    public static string WriteDat(string path, Dictionary<string, float[]> weights)
    {
        using var s = File.Create(path);
        ImportanceMatrix.WriteDat(s, weights.OrderBy(kv => kv.Key, StringComparer.Ordinal));
        return path;
    }

    /// <summary>Deterministic token ids below <paramref name="vocab"/> (a stand-in for text where none is shipped).</summary>
    public static int[] PseudoText(int count, int vocab, int seed = 11)
    {
        var rng = new Random(seed);
        return Enumerable.Range(0, count).Select(_ => rng.Next(3, vocab)).ToArray();
    }
}
