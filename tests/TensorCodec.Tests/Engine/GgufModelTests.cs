using System.Runtime.InteropServices;
using TensorCodec.Containers;
using TensorCodec.Engine;
using TensorCodec.Tokenizers;
using TensorCodec.Eval;
using TensorCodec.Formats;
using DType = TensorCodec.Numerics.DType;
using Xunit.Abstractions;
using TensorCodec.Models;

namespace TensorCodec.Tests.Engine;

/// <summary>
/// The same weights through GGUF: written here with the project's GgufWriter the way llama.cpp's
/// converter does it (HF → GGUF names, Q/K rows permuted from rotate_half to adjacent pairs).
/// </summary>
public class GgufModelTests(ITestOutputHelper output)
{
    /// <summary>Reads every tensor of a file as F32, by name.</summary>
    static Dictionary<string, (long[] Shape, float[] Data)> ReadF32(string path)
    {
        var layout = TensorFileReader.Open(path);
        var bytes = File.ReadAllBytes(path);
        var result = new Dictionary<string, (long[], float[])>();
        foreach (var t in layout.Tensors)
        {
            var raw = bytes.AsSpan((int)t.Offset, (int)t.Length);
            if (t.DType != DType.F32) throw new NotSupportedException(t.DType.ToString());
            float[] data = MemoryMarshal.Cast<byte, float>(raw).ToArray();
            result[t.Name] = (t.Shape, data);
        }
        return result;
    }

    /// <summary>llama.cpp's permute: per head, row (s·hd/2 + i) moves to (2i + s).</summary>
    static float[] PermuteForAdjacentRope(float[] w, int heads, int cols)
    {
        int rows = w.Length / cols, hd = rows / heads, half = hd / 2;
        var o = new float[w.Length];
        for (int h = 0; h < heads; h++)
            for (int s = 0; s < 2; s++)
                for (int i = 0; i < half; i++)
                    Array.Copy(w, (h * hd + s * half + i) * cols, o, (h * hd + 2 * i + s) * cols, cols);
        return o;
    }

    static string WriteBardGguf(string hfPath, string dest, string? quantType, Tokenizer? tok)
    {
        var cfg = ModelConfig.FromHfConfig(EngineFixtures.Fixture("config.json"));
        var w = ReadF32(hfPath);
        var tensors = new List<GgufTensor>();
        void Add(string name, string hf, Func<float[], float[]>? transform = null, bool quantize = true)
        {
            var (shape, data) = w[hf];
            data = transform?.Invoke(data) ?? data;
            long[] dims = shape.Reverse().ToArray();
            if (quantize && quantType is not null && shape.Length == 2)
            {
                var f = BlockFormats.Get(quantType);
                var q = new byte[data.Length / f.BlockSize * f.BlockBytes];
                f.Quantize(data, q, (int)shape[1]);
                tensors.Add(new GgufTensor(name, f.GgmlTypeId, dims, TensorByteSource.FromMemory(q)));
            }
            else tensors.Add(new GgufTensor(name, GgmlTypes.F32, dims, TensorByteSource.FromMemory(MemoryMarshal.AsBytes(data.AsSpan()).ToArray())));
        }
        Add("token_embd.weight", "model.embed_tokens.weight");
        for (int l = 0; l < cfg.Layers; l++)
        {
            string p = $"model.layers.{l}.";
            Add($"blk.{l}.attn_norm.weight", p + "input_layernorm.weight");
            Add($"blk.{l}.attn_q.weight", p + "self_attn.q_proj.weight", d => PermuteForAdjacentRope(d, cfg.Heads, cfg.Dim));
            Add($"blk.{l}.attn_k.weight", p + "self_attn.k_proj.weight", d => PermuteForAdjacentRope(d, cfg.KvHeads, cfg.Dim));
            Add($"blk.{l}.attn_v.weight", p + "self_attn.v_proj.weight");
            Add($"blk.{l}.attn_output.weight", p + "self_attn.o_proj.weight");
            Add($"blk.{l}.ffn_norm.weight", p + "post_attention_layernorm.weight");
            Add($"blk.{l}.ffn_gate.weight", p + "mlp.gate_proj.weight");
            Add($"blk.{l}.ffn_up.weight", p + "mlp.up_proj.weight");
            Add($"blk.{l}.ffn_down.weight", p + "mlp.down_proj.weight");
        }
        Add("output_norm.weight", "model.norm.weight");
        Add("output.weight", "lm_head.weight", quantize: quantType is not "q4_0"); // like llama.cpp, keep output at higher precision for q4_0
        var meta = new List<KeyValuePair<string, GgufValue>>
        {
            new("general.architecture", GgufValue.String("llama")),
            new("llama.context_length", GgufValue.UInt32((uint)cfg.MaxSeqLen)),
            new("llama.embedding_length", GgufValue.UInt32((uint)cfg.Dim)),
            new("llama.feed_forward_length", GgufValue.UInt32((uint)cfg.HiddenDim)),
            new("llama.block_count", GgufValue.UInt32((uint)cfg.Layers)),
            new("llama.attention.head_count", GgufValue.UInt32((uint)cfg.Heads)),
            new("llama.attention.head_count_kv", GgufValue.UInt32((uint)cfg.KvHeads)),
            new("llama.attention.layer_norm_rms_epsilon", GgufValue.Float32(cfg.NormEps)),
            new("llama.rope.freq_base", GgufValue.Float32(cfg.RopeTheta)),
        };
        if (tok is not null)
        {
            var pieces = Enumerable.Range(0, tok.VocabSize).Select(i => System.Text.Encoding.UTF8.GetString(tok.Piece(i)).Replace(' ', '\u2581')).ToArray();
            meta.Add(new("tokenizer.ggml.model", GgufValue.String("llama")));
            meta.Add(new("tokenizer.ggml.tokens", GgufValue.Array(new GgufArray(GgufValueType.String, pieces))));
            meta.Add(new("tokenizer.ggml.scores", GgufValue.Array(new GgufArray(GgufValueType.Float32, Enumerable.Range(0, tok.VocabSize).Select(tok.Score).ToArray()))));
            meta.Add(new("tokenizer.ggml.bos_token_id", GgufValue.UInt32(1)));
            meta.Add(new("tokenizer.ggml.eos_token_id", GgufValue.UInt32(2)));
        }
        using (var fs = File.Create(dest)) GgufWriter.Write(fs, meta, tensors);
        return dest;
    }

    static float[] Logits(LlamaModel m, int[] tokens, int batch)
    {
        using var s = m.CreateSession(new LlamaSessionOptions { MaxBatch = batch });
        var logits = new float[tokens.Length * m.Config.VocabSize];
        s.Forward(tokens, logits);
        return logits;
    }

    [SkippableFact]
    public void Bard3m_from_f32_gguf_matches_the_reference_and_carries_its_tokenizer()
    {
        var hf = TestFiles.SharedOrSkip("data/models/bard-3m/model.safetensors");
        using var dir = new ScratchDir();
        var tok = Tokenizer.LoadLlama2c(EngineFixtures.Fixture("tok1024.bin"));
        var path = WriteBardGguf(hf, dir.File("bard-f32.gguf"), null, tok);
        using var m = LlamaModel.Load(path);
        Assert.Equal(RopeStyle.AdjacentPairs, m.Config.Rope);
        Assert.False(m.Config.TiedEmbeddings);
        var tokens = EngineFixtures.Tokens("val.first128.tokens.csv");
        var (max, at) = EngineFixtures.MaxAbsDiff(Logits(m, tokens, 64), EngineFixtures.Logits("val.first128.logits.f32"));
        output.WriteLine($"GGUF F32 vs PyTorch reference: max |Δ| {max:E3} at position {at / 1024}");
        Assert.True(max <= 1e-4, $"GGUF F32 logits differ from the reference by {max} at position {at / 1024}");

        var fromGguf = Tokenizer.Load(path);
        Assert.Equal([658, 312, 375, 265, 613, 391, 358, 375], fromGguf.Encode("To be, or not to be"));
    }

    [SkippableTheory]
    [InlineData("q8_0", 5e-4)]   // measured 2.2e-5 (10 windows, ctx 128)
    [InlineData("q4_K", 0.02)]   // measured 3.7e-3
    public void Quantized_gguf_runs_packed_and_stays_close_to_f32(string type, double maxMeanKl)
    {
        var hf = TestFiles.SharedOrSkip("data/models/bard-3m/model.safetensors");
        var u16 = TestFiles.SharedOrSkip("data/text/shakespeare.tok1024.u16");
        using var dir = new ScratchDir();
        using var q = LlamaModel.Load(WriteBardGguf(hf, dir.File($"bard-{type}.gguf"), type, null));
        Assert.Equal(type, q.Layers[0].Wq.TypeName, ignoreCase: true);
        using var f32 = LlamaModel.Load(hf, new LlamaLoadOptions { ConfigPath = EngineFixtures.Fixture("config.json") });

        // Token by token runs the fused kernel (activations rounded to 8 bits per 32 values, as
        // ggml does); batches decode tiles to F32 (weights only). The activation rounding costs about
        // as much as q8_0 weights do (measured KL 6.0e-5 for q8_0, 6.8e-5 for q4_K): bound 2e-4, which a
        // wrong kernel (KL ≫ 0.01) cannot meet.
        var tokens = EngineFixtures.Tokens("val.first128.tokens.csv")[..48];
        double pathKl = MeanKl(Logits(q, tokens, 48), Logits(q, tokens, 1), q.Config.VocabSize);
        output.WriteLine($"{type}: KL(batched ‖ token-by-token) mean {pathKl:E3}");
        Assert.True(pathKl < 2e-4, $"{type}: fused (MatVec) and decoded (MatMul) paths differ by mean KL {pathKl}");

        var val = EvalData.Split(EvalData.ReadU16(u16), TokenSplit.Val).ToArray();
        var r = Perplexity.Run(q, val, new EvalOptions { Ctx = 128, MaxChunks = 10, Base = f32 });
        output.WriteLine($"{type}: PPL {r.Ppl:F3} vs base {r.Kl!.BasePpl:F3}, KL mean {r.Kl.Mean:E3}, p99 {r.Kl.P99:E3}, top-1 {r.Kl.Top1AgreementPercent:F2}%, weights {q.WeightBytes:N0} bytes");
        Assert.InRange(r.Kl.Mean, 1e-7, maxMeanKl);
        Assert.True(q.WeightBytes < f32.WeightBytes / 3);
    }

    /// <summary>Mean over rows of KL(softmax p ‖ softmax q), in double.</summary>
    internal static double MeanKl(float[] p, float[] q, int vocab)
    {
        int rows = p.Length / vocab;
        double total = 0;
        for (int r = 0; r < rows; r++)
        {
            var lp = LogSoftmax(p.AsSpan(r * vocab, vocab));
            var lq = LogSoftmax(q.AsSpan(r * vocab, vocab));
            for (int i = 0; i < vocab; i++) total += Math.Exp(lp[i]) * (lp[i] - lq[i]);
        }
        return total / rows;
    }

    static double[] LogSoftmax(ReadOnlySpan<float> x)
    {
        double max = double.NegativeInfinity;
        foreach (var v in x) max = Math.Max(max, v);
        double sum = 0;
        foreach (var v in x) sum += Math.Exp(v - max);
        double lz = max + Math.Log(sum);
        var o = new double[x.Length];
        for (int i = 0; i < x.Length; i++) o[i] = x[i] - lz;
        return o;
    }

    [Fact]
    public void Unsupported_architecture_and_missing_tensors_are_named()
    {
        using var dir = new ScratchDir();
        var meta = new List<KeyValuePair<string, GgufValue>> { new("general.architecture", GgufValue.String("gpt2")) };
        var p1 = dir.File("gpt2.gguf");
        using (var fs = File.Create(p1)) GgufWriter.Write(fs, meta, [new GgufTensor("x", GgmlTypes.F32, [4], TensorByteSource.FromMemory(new byte[16]))]);
        var e1 = Assert.Throws<NotSupportedException>(() => LlamaModel.Load(p1));
        Assert.Contains("'gpt2'", e1.Message);

        // A safetensors model with one tensor renamed.
        var hfMeta = EngineFixtures.Fixture("config.json");
        var layout = TensorFileReader.Open(TestFiles.Sample("bard-3m-bf16.safetensors"));
        var renamed = new TensorFile
        {
            Format = layout.Format, FileLength = layout.FileLength, Metadata = layout.Metadata,
            Tensors = layout.Tensors.Select(t => t.Name == "model.layers.2.mlp.up_proj.weight" ? t with { Name = "oops" } : t).ToList(),
        };
        var e2 = Assert.Throws<InvalidDataException>(() => LlamaModel.Load(renamed, TestFiles.Sample("bard-3m-bf16.safetensors"), new LlamaLoadOptions { ConfigPath = hfMeta }));
        Assert.Contains("'model.layers.2.mlp.up_proj.weight' is missing", e2.Message);

        var reshaped = new TensorFile
        {
            Format = layout.Format, FileLength = layout.FileLength, Metadata = layout.Metadata,
            Tensors = layout.Tensors.Select(t => t.Name == "model.norm.weight" ? t with { Shape = [128, 2] } : t).ToList(),
        };
        var e3 = Assert.Throws<InvalidDataException>(() => LlamaModel.Load(reshaped, TestFiles.Sample("bard-3m-bf16.safetensors"), new LlamaLoadOptions { ConfigPath = hfMeta }));
        Assert.Contains("'model.norm.weight' has shape [128, 2]", e3.Message);
    }
}
