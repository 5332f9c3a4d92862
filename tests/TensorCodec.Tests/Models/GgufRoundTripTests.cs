using System.Runtime.InteropServices;
using System.Text;
using System.Text.Json;
using CsCheck;
using TensorCodec.Containers;
using TensorCodec.Engine;
using TensorCodec.Tokenizers;
using TensorCodec.Models;
using TensorCodec.Numerics;
using TensorCodec.Quantization;
using Xunit.Abstractions;

namespace TensorCodec.Tests.Models;

/// <summary>
/// Whatever the writer accepts, the reader accepts: small random Hugging Face models of many
/// shapes go through <c>tcodec quantize</c>'s path (<see cref="ModelQuantizer"/> → GgufWriter) and
/// the engine loads each GGUF back with the same config and the same logits.
/// </summary>
public class GgufRoundTripTests(ITestOutputHelper output)
{
    public sealed record Shape(int Dim, int Heads, int KvHeads, int Hidden, int Layers, int Vocab, bool Tied,
        float Theta, float Eps, DType DType, bool Tokenizer)
    {
        public override string ToString() =>
            $"dim {Dim}, {Heads}/{KvHeads} heads (head {Dim / Heads}), ffn {Hidden}, {Layers} layers, vocab {Vocab}, {(Tied ? "tied" : "untied")}, " +
            $"theta {Theta}, eps {Eps}, {DType}{(Tokenizer ? ", tokenizer" : "")}";
    }

    /// <summary>
    /// Tolerance on |logit| differences, relative to the largest |logit|. The GGUF holds the very
    /// same weight values (F32, F16 and BF16 copy exactly; Q/K rows are only reordered), so the two
    /// runs differ only in the order of the sums inside each head's q·k (adjacent-pair vs
    /// rotate_half layout): a few float32 ulps. 2e-6 is about 16 ulps (2^-23 ≈ 1.2e-7); measured at
    /// most 3e-7 (under 3 ulps) over the shapes below and 40 random ones.
    /// </summary>
    const float RelativeTolerance = 2e-6f;

    static float[] Random(Random rng, int n, float scale, float offset = 0)
    {
        var v = new float[n];
        for (int i = 0; i < n; i++) v[i] = offset + scale * (float)(2 * rng.NextDouble() - 1);
        return v;
    }

    static SafetensorsTensor Tensor(string name, DType dtype, long[] shape, float[] v)
    {
        byte[] bytes;
        if (dtype == DType.F32) bytes = MemoryMarshal.AsBytes(v.AsSpan()).ToArray();
        else
        {
            var h = new ushort[v.Length];
            if (dtype == DType.F16) Fp16.FromFloat(v, h); else BFloat16.FromFloat(v, h);
            bytes = MemoryMarshal.AsBytes(h.AsSpan()).ToArray();
        }
        return new SafetensorsTensor(name, dtype, shape, TensorByteSource.FromMemory(bytes));
    }

    /// <summary>Writes model.safetensors, config.json and (if asked) tok.bin into <paramref name="dir"/>; returns the model path.</summary>
    static string WriteModel(string dir, Shape s, int seed)
    {
        var rng = new Random(seed);
        int d = s.Dim, kv = s.Dim / s.Heads * s.KvHeads, h = s.Hidden;
        var tensors = new List<SafetensorsTensor>();
        void Add(TensorRole role, int layer, long[] shape, float scale, float offset = 0) =>
            tensors.Add(Tensor(TensorNames.Name(TensorNaming.HuggingFace, role, layer), s.DType, shape,
                Random(rng, checked((int)shape.Aggregate(1L, (a, b) => a * b)), scale, offset)));
        float w = 1.5f / MathF.Sqrt(d);
        Add(TensorRole.TokenEmbedding, -1, [s.Vocab, d], 1f);
        for (int l = 0; l < s.Layers; l++)
        {
            Add(TensorRole.AttentionNorm, l, [d], 0.2f, 1f);
            Add(TensorRole.Query, l, [d, d], w);
            Add(TensorRole.Key, l, [kv, d], w);
            Add(TensorRole.Value, l, [kv, d], w);
            Add(TensorRole.AttentionOutput, l, [d, d], w);
            Add(TensorRole.FfnNorm, l, [d], 0.2f, 1f);
            Add(TensorRole.FfnGate, l, [h, d], w);
            Add(TensorRole.FfnUp, l, [h, d], w);
            Add(TensorRole.FfnDown, l, [d, h], 1.5f / MathF.Sqrt(h));
        }
        Add(TensorRole.OutputNorm, -1, [d], 0.2f, 1f);
        if (!s.Tied) Add(TensorRole.Output, -1, [s.Vocab, d], w);
        string model = Path.Combine(dir, "model.safetensors");
        using (var f = File.Create(model)) SafetensorsWriter.Write(f, tensors);

        File.WriteAllText(Path.Combine(dir, "config.json"), JsonSerializer.Serialize(new Dictionary<string, object>
        {
            ["architectures"] = new[] { "LlamaForCausalLM" }, ["model_type"] = "llama", ["hidden_size"] = d, ["intermediate_size"] = h,
            ["num_hidden_layers"] = s.Layers, ["num_attention_heads"] = s.Heads, ["num_key_value_heads"] = s.KvHeads,
            ["vocab_size"] = s.Vocab, ["max_position_embeddings"] = 64, ["rms_norm_eps"] = s.Eps, ["rope_theta"] = s.Theta,
            ["tie_word_embeddings"] = s.Tied, ["bos_token_id"] = 1, ["eos_token_id"] = 2, ["hidden_act"] = "silu", ["rope_scaling"] = null!,
        }));
        if (s.Tokenizer) WriteTokenizer(Path.Combine(dir, "tok.bin"), s.Vocab);
        return model;
    }

    /// <summary>A llama2.c tokenizer.bin of <paramref name="n"/> pieces: the three specials, then letters and spaced letters.</summary>
    static void WriteTokenizer(string path, int n)
    {
        using var bw = new BinaryWriter(File.Create(path));
        bw.Write(8);
        for (int i = 0; i < n; i++)
        {
            string piece = i switch
            {
                0 => "<unk>", 1 => "<s>", 2 => "</s>",
                _ => (i % 2 == 0 ? " " : "") + (char)('a' + (i - 3) / 2 % 26) + new string('b', (i - 3) / 52),
            };
            var b = Encoding.UTF8.GetBytes(piece);
            bw.Write(-(float)i);
            bw.Write(b.Length);
            bw.Write(b);
        }
    }

    static float[] Logits(LlamaModel m, int[] tokens)
    {
        using var s = m.CreateSession(new LlamaSessionOptions { MaxBatch = 5 });
        var logits = new float[tokens.Length * m.Config.VocabSize];
        s.Forward(tokens, logits);
        return logits;
    }

    float Check(Shape s, int seed)
    {
        using var dir = new ScratchDir();
        string model = WriteModel(dir.Path, s, seed);
        string gguf = dir.File("model.gguf");
        string mix = s.DType switch { DType.F32 => "f32", DType.F16 => "f16", _ => "bf16" };
        var result = ModelQuantizer.Quantize(model, gguf, new ModelQuantizeOptions
        {
            Mix = QuantMix.Get(mix), TokenizerPath = s.Tokenizer ? dir.File("tok.bin") : null,
        });
        Assert.Equal(s.Tokenizer, result.TokenizerEmbedded);

        using var st = LlamaModel.Load(model);
        using var gg = LlamaModel.Load(gguf);
        Assert.Equal(st.Config with { Rope = RopeStyle.AdjacentPairs }, gg.Config);
        Assert.Equal(s.Tied, ReferenceEquals(gg.Output, gg.Embedding));

        var rng = new Random(seed + 1);
        var tokens = Enumerable.Range(0, 13).Select(_ => rng.Next(s.Vocab)).ToArray();
        var a = Logits(st, tokens);
        var b = Logits(gg, tokens);
        float max = 0, big = 0;
        for (int i = 0; i < a.Length; i++) { max = Math.Max(max, Math.Abs(a[i] - b[i])); big = Math.Max(big, Math.Abs(a[i])); }
        Assert.True(max <= RelativeTolerance * Math.Max(1, big), $"{s}: GGUF logits differ from safetensors by {max} (largest |logit| {big})");

        if (s.Tokenizer)
        {
            const string text = "ab a ba cab\nbb";
            Assert.Equal(Tokenizer.LoadLlama2c(dir.File("tok.bin")).Encode(text, bos: true), Tokenizer.Load(gguf).Encode(text, bos: true));
        }
        return max / Math.Max(1, big);
    }

    public static TheoryData<Shape> Shapes => new()
    {
        new(64, 4, 4, 96, 2, 40, Tied: false, 10000f, 1e-5f, DType.F32, Tokenizer: true),     // MHA
        new(64, 8, 2, 80, 2, 37, Tied: true, 500000f, 1e-6f, DType.F32, Tokenizer: false),    // GQA, head 8
        new(128, 4, 2, 160, 1, 50, Tied: false, 10000f, 1e-5f, DType.BF16, Tokenizer: true),  // GQA, head 32
        new(96, 6, 1, 64, 2, 29, Tied: true, 1e6f, 1e-5f, DType.F16, Tokenizer: true),        // MQA, head 16
        new(32, 16, 8, 48, 3, 16, Tied: false, 10000f, 1e-5f, DType.F16, Tokenizer: false),   // head 2
        new(256, 2, 1, 64, 1, 20, Tied: true, 10000f, 1e-6f, DType.F32, Tokenizer: false),    // head 128
    };

    [Theory]
    [MemberData(nameof(Shapes))]
    public void Quantizer_output_loads_in_the_engine_with_the_same_logits(Shape shape)
    {
        float max = Check(shape, 17);
        output.WriteLine($"{shape}: max |Δ logit| / max |logit| = {max:E2}");
    }

    [Fact]
    public void Random_configs_round_trip()
    {
        var gen =
            from headDim in Gen.Int[1, 16].Select(x => 2 * x)
            from heads in Gen.Int[1, 8]
            from kvDiv in Gen.Int[1, 8].Where(k => heads % k == 0)
            from hidden in Gen.Int[1, 96]
            from layers in Gen.Int[1, 2]
            from vocab in Gen.Int[3, 60]
            from tied in Gen.Bool
            from theta in Gen.OneOfConst(10000f, 500000f, 1e6f, 1234.5f)
            from eps in Gen.OneOfConst(1e-5f, 1e-6f, 3e-4f)
            from dtype in Gen.OneOfConst(DType.F32, DType.F16, DType.BF16)
            from tok in Gen.Bool
            from seed in Gen.Int[0, 1000]
            select (new Shape(heads * headDim, heads, heads / kvDiv, hidden, layers, vocab, tied, theta, eps, dtype, tok), seed);
        float worst = 0;
        gen.Sample(x => worst = Math.Max(worst, Check(x.Item1, x.seed)), iter: 40, threads: 1, seed: "0b7ZpZ2dYq51");
        output.WriteLine($"worst max |Δ logit| / max |logit| over 40 random configs: {worst:E2}");
    }

    public static TheoryData<string> Mixes => new(QuantMix.All.Select(m => m.Name));

    /// <summary>
    /// The mixes llama-quantize refuses without an importance matrix get one of all ones (plain squared-error
    /// weighting), keyed by the GGUF names of the model's matrices; the others get none, as before.
    /// </summary>
    internal static string? UniformImatrixIfNeeded(string mix, string model, ScratchDir dir)
    {
        if (mix is not ("iq1_s" or "iq1_m" or "iq2_xxs" or "iq2_xs" or "iq2_s" or "iq2_m" or "iq3_xxs" or "iq3_xs" or "q2_K_S")) return null;
        string f32 = dir.File("names.gguf");
        ModelQuantizer.Quantize(model, f32, new ModelQuantizeOptions { Mix = QuantMix.Get("f32"), Overwrite = true });
        GgufFile g;
        using (var fs = File.OpenRead(f32)) g = GgufFile.Parse(fs, f32);
        string path = dir.File("ones.imatrix.dat");
        using var s = File.Create(path);
        ImportanceMatrix.WriteDat(s, g.Tensors.Where(t => t.Dims.Length == 2).Select(t => new KeyValuePair<string, float[]>(t.Name, Enumerable.Repeat(1f, (int)t.Dims[0]).ToArray())));
        return path;
    }

    /// <summary>
    /// Every mix the quantizer writes (block types, and their fallbacks where rows are not a
    /// multiple of 256) loads in the engine with the same config and runs.
    /// </summary>
    [Theory]
    [MemberData(nameof(Mixes))]
    public void Every_mix_the_quantizer_writes_the_engine_loads(string mix)
    {
        foreach (var s in new Shape[]
        {
            new(64, 8, 2, 96, 2, 40, Tied: false, 10000f, 1e-5f, DType.BF16, Tokenizer: true),
            new(256, 2, 1, 512, 1, 33, Tied: true, 500000f, 1e-6f, DType.F32, Tokenizer: false),
        })
        {
            using var dir = new ScratchDir();
            string model = WriteModel(dir.Path, s, 3);
            string gguf = dir.File("model.gguf");
            ModelQuantizer.Quantize(model, gguf, new ModelQuantizeOptions
            {
                Mix = QuantMix.Get(mix), TokenizerPath = s.Tokenizer ? dir.File("tok.bin") : null, ImatrixPath = UniformImatrixIfNeeded(mix, model, dir),
            });
            using var st = LlamaModel.Load(model);
            using var gg = LlamaModel.Load(gguf);
            Assert.Equal(st.Config with { Rope = RopeStyle.AdjacentPairs }, gg.Config);
            var logits = Logits(gg, [1, 4, 9, 16, 25 % s.Vocab]);
            Assert.All(logits, x => Assert.True(float.IsFinite(x), $"{mix}, {s}: non-finite logit"));
        }
    }
}
