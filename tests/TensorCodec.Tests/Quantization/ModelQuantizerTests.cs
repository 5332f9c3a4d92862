using System.Buffers.Binary;
using System.Runtime.InteropServices;
using TensorCodec.Containers;
using TensorCodec.Formats;
using TensorCodec.Numerics;
using TensorCodec.Quantization;
using TensorCodec.Models;

namespace TensorCodec.Tests.Quantization;

public class ModelQuantizerTests
{
    internal static string Bf16Sample => TestFiles.Sample("bard-3m-bf16.safetensors");
    internal static string Config => TestFiles.Fixture(Path.Combine("quantize", "config.json"));
    internal static string Tokenizer => TestFiles.Fixture(Path.Combine("quantize", "tok1024.bin"));

    internal static QuantizeResult QuantizeBard(string output, string mix, string? imatrix = null, int threads = 2) =>
        ModelQuantizer.Quantize(Bf16Sample, output, new ModelQuantizeOptions
        {
            Mix = QuantMix.Get(mix), ConfigPath = Config, TokenizerPath = Tokenizer, ImatrixPath = imatrix, Threads = threads,
        });

    /// <summary>The HF source tensor in GGUF row order (Q/K permuted), as float32.</summary>
    internal static float[] SourceInGgufOrder(string ggufName)
    {
        var layout = TensorFileReader.Open(Bf16Sample);
        var t = layout.Tensors.Single(x => TensorNames.ToGguf(TensorNaming.HuggingFace, x.Name) == ggufName);
        var bytes = new byte[t.Length];
        using (var s = File.OpenRead(Bf16Sample)) { s.Position = t.Offset; s.ReadExactly(bytes); }
        var v = new float[t.ElementCount];
        BFloat16.ToFloat(MemoryMarshal.Cast<byte, ushort>(bytes), v);
        int heads = ggufName.EndsWith("attn_q.weight") ? 8 : ggufName.EndsWith("attn_k.weight") ? 4 : 0;
        return heads > 0 ? RopePermutation.ToGguf(v, (int)t.Shape[0], (int)t.Shape[1], heads) : v;
    }

    static byte[] TensorBytes(string path, GgufTensorInfo t)
    {
        var b = new byte[t.ByteSize];
        using var s = File.OpenRead(path);
        s.Position = t.Offset;
        s.ReadExactly(b);
        return b;
    }

    static GgufFile Parse(string path)
    {
        using var s = File.OpenRead(path);
        return GgufFile.Parse(s, path);
    }

    [Theory]
    [InlineData("q4_K_M")]
    [InlineData("q8_0")]
    [InlineData("q3_K_M")]
    [InlineData("f16")]
    public void BardQuantizesToAGgufThatParsesBackAndMatchesTheSource(string mix)
    {
        using var dir = new ScratchDir();
        var outPath = dir.File("bard.gguf");
        var result = QuantizeBard(outPath, mix);
        var g = Parse(outPath);

        Assert.Equal(3u, g.Version);
        Assert.Equal("llama", g.Find("general.architecture")!.AsString());
        Assert.Equal((uint)QuantMix.Get(mix).FileType, g.Find("general.file_type")!.As<uint>());
        Assert.Equal(2u, g.Find("general.quantization_version")!.As<uint>());
        Assert.Equal(256u, g.Find("llama.context_length")!.As<uint>());
        Assert.Equal(256u, g.Find("llama.embedding_length")!.As<uint>());
        Assert.Equal(4u, g.Find("llama.block_count")!.As<uint>());
        Assert.Equal(768u, g.Find("llama.feed_forward_length")!.As<uint>());
        Assert.Equal(32u, g.Find("llama.rope.dimension_count")!.As<uint>());
        Assert.Equal(8u, g.Find("llama.attention.head_count")!.As<uint>());
        Assert.Equal(4u, g.Find("llama.attention.head_count_kv")!.As<uint>());
        Assert.Equal(1e-5f, g.Find("llama.attention.layer_norm_rms_epsilon")!.As<float>());
        Assert.Equal(10000f, g.Find("llama.rope.freq_base")!.As<float>());
        Assert.Equal(1024u, g.Find("llama.vocab_size")!.As<uint>());

        Assert.Equal(2 + 1 + 4 * 9, g.Tensors.Count);
        Assert.Equal("token_embd.weight", g.Tensors[0].Name);
        var ctx = new MixContext(4, 8, 4, HasOutput: true, HasImatrix: false);
        foreach (var t in g.Tensors)
        {
            // Types are what llama.cpp's rules give, spelled out for q4_K_M.
            Assert.Equal(TensorTypeRules.Choose(QuantMix.Get(mix), t.Name, t.Dims, ctx).Type, t.GgmlType);
            if (mix == "q4_K_M")
            {
                string expected = t.Dims.Length == 1 ? "F32"
                    : t.Name == "output.weight" ? "Q6_K"
                    : (t.Name.Contains("attn_v") || t.Name.Contains("ffn_down")) && TensorTypeRules.LayerOf(t.Name) >= 2 ? "Q6_K"
                    : "Q4_K";
                Assert.Equal(expected, GgmlTypes.Get(t.GgmlType).Name);
            }

            var source = SourceInGgufOrder(t.Name);
            Assert.Equal(source.Length, t.ElementCount);
            var bytes = TensorBytes(outPath, t);
            var decoded = new float[t.ElementCount];
            if (t.GgmlType == GgmlTypes.F32)
            {
                MemoryMarshal.Cast<byte, float>(bytes).CopyTo(decoded);
                Assert.Equal(source, decoded);
                continue;
            }
            var fmt = BlockFormats.FromGgmlType(t.GgmlType)!;
            // Bit-exact with quantizing the (permuted) source directly, single-threaded.
            var direct = new byte[bytes.Length];
            fmt.Quantize(source, direct, (int)t.Dims[0]);
            Assert.True(direct.AsSpan().SequenceEqual(bytes), $"{t.Name}: bytes differ from a direct {fmt.Name} quantization");
            fmt.Dequantize(bytes, decoded);
            double err = 0, norm = 0;
            for (int i = 0; i < source.Length; i++) { err += Math.Pow(decoded[i] - source[i], 2); norm += (double)source[i] * source[i]; }
            double rel = Math.Sqrt(err / norm);
            double bound = fmt.Name switch { "f16" => 1e-3, "q8_0" => 0.01, "q6_K" => 0.03, "q5_K" => 0.06, "q4_K" => 0.12, "q3_K" => 0.25, _ => 0.5 };
            Assert.True(rel < bound, $"{t.Name} ({fmt.Name}): relative RMS error {rel:G3} ≥ {bound}");
        }
        Assert.Equal(new FileInfo(outPath).Length, result.OutputBytes);
        Assert.Equal(g.Tensors.Sum(t => t.ByteSize), result.TensorBytes);
    }

    [Fact]
    public void TokenizerIsEmbeddedForLlamaCpp()
    {
        using var dir = new ScratchDir();
        QuantizeBard(dir.File("bard.gguf"), "q8_0");
        var g = Parse(dir.File("bard.gguf"));
        Assert.Equal("llama", g.Find("tokenizer.ggml.model")!.AsString());
        var tokens = g.Find("tokenizer.ggml.tokens")!.AsArray().Get<string>();
        var scores = g.Find("tokenizer.ggml.scores")!.AsArray().Get<float>();
        var types = g.Find("tokenizer.ggml.token_type")!.AsArray().Get<int>();
        Assert.Equal(1024, tokens.Length);
        Assert.Equal(1024, scores.Length);
        Assert.Equal(["<unk>", "<s>", "</s>", "<0x00>"], tokens[..4]);
        Assert.Equal([2, 3, 3, 6], types[..4]);
        Assert.Equal("<0xFF>", tokens[258]);
        Assert.Equal(6, types[258]);
        Assert.Equal("\n", tokens[259]);
        Assert.Equal("\u2581", tokens[260]); // the space character
        Assert.Equal(1, types[260]);
        Assert.DoesNotContain(tokens, t => t.Contains(' '));
        Assert.Equal("\u2581CORIOLAN", tokens[1023]);
        Assert.Equal(-700f, scores[1023]);
        Assert.All(types[259..], t => Assert.Equal(1, t));
        Assert.Equal(1u, g.Find("tokenizer.ggml.bos_token_id")!.As<uint>());
        Assert.Equal(2u, g.Find("tokenizer.ggml.eos_token_id")!.As<uint>());
        Assert.Equal(0u, g.Find("tokenizer.ggml.unknown_token_id")!.As<uint>());

        // The pieces and scores are those of tok1024.bin.
        var raw = File.ReadAllBytes(Tokenizer);
        int p = 4;
        for (int i = 0; i < 1024; i++)
        {
            float score = BinaryPrimitives.ReadSingleLittleEndian(raw.AsSpan(p));
            int len = BinaryPrimitives.ReadInt32LittleEndian(raw.AsSpan(p + 4));
            Assert.Equal(score, scores[i]);
            Assert.Equal(System.Text.Encoding.UTF8.GetString(raw, p + 8, len).Replace(' ', '\u2581'), tokens[i]);
            p += 8 + len;
        }
    }

    [Fact]
    public void MultiThreadedOutputEqualsSingleThreaded()
    {
        using var dir = new ScratchDir();
        QuantizeBard(dir.File("a.gguf"), "q4_K_M", threads: 1);
        QuantizeBard(dir.File("b.gguf"), "q4_K_M", threads: 4);
        Assert.Equal(File.ReadAllBytes(dir.File("a.gguf")), File.ReadAllBytes(dir.File("b.gguf")));
    }

    [Fact]
    public void ConfigJsonIsFoundBesideTheModel()
    {
        using var dir = new ScratchDir();
        var model = dir.File("model.safetensors");
        File.Copy(Bf16Sample, model);
        File.Copy(Config, dir.File("config.json"));
        var r = ModelQuantizer.Quantize(model, dir.File("out.gguf"), new ModelQuantizeOptions { Mix = QuantMix.Get("q8_0") });
        Assert.False(r.TokenizerEmbedded);
        Assert.Contains(r.Notes, n => n.Contains("no tokenizer"));
        // HF checkpoints are all "model.safetensors": the folder names the model.
        Assert.Equal(Path.GetFileName(dir.Path), Parse(dir.File("out.gguf")).Find("general.name")!.AsString());
    }

    [Fact]
    public void Llama2cInputMapsNamesAndFallsBackOnOddRows()
    {
        using var dir = new ScratchDir();
        var outPath = dir.File("stories.gguf");
        var r = ModelQuantizer.Quantize(TestFiles.Sample("stories260K.bin"), outPath, new ModelQuantizeOptions { Mix = QuantMix.Get("q4_K_M") });
        var g = Parse(outPath);
        Assert.Equal(2 + 5 * 9, g.Tensors.Count); // shared classifier: no output.weight
        Assert.Null(g.Tensors.FirstOrDefault(t => t.Name == "output.weight"));
        Assert.Equal(512u, g.Find("llama.context_length")!.As<uint>());
        Assert.Equal(8u, g.Find("llama.rope.dimension_count")!.As<uint>());
        Assert.Equal(4u, g.Find("llama.attention.head_count_kv")!.As<uint>());
        Assert.Equal(172u, g.Find("llama.feed_forward_length")!.As<uint>());
        string TypeOf(string n) => GgmlTypes.Get(g.Tensors.Single(t => t.Name == n).GgmlType).Name;
        // Tied embeddings are the output: row 64 is not a K block, so Q8_0.
        Assert.Equal("Q8_0", TypeOf("token_embd.weight"));
        // Row 64: Q4_K → Q5_0. Row 172 (ffn_down): nothing of block 32 fits → F16.
        Assert.Equal("Q5_0", TypeOf("blk.0.attn_q.weight"));
        Assert.Equal("F16", TypeOf("blk.0.ffn_down.weight"));
        Assert.Contains(r.Notes, n => n.Contains("blk.0.ffn_down.weight") && n.Contains("172"));
        Assert.Contains(r.Tensors, t => t.Name == "blk.1.attn_q.weight" && t.FallbackFrom == "Q4_K" && t.Type == "Q5_0");

        // No permutation for llama2.c: the data is the checkpoint's, in order.
        var layout = TensorFileReader.Open(TestFiles.Sample("stories260K.bin"));
        var wq = layout.Tensors.Single(t => t.Name == "wq");
        var f32Path = dir.File("stories-f32.gguf");
        ModelQuantizer.Quantize(TestFiles.Sample("stories260K.bin"), f32Path, new ModelQuantizeOptions { Mix = QuantMix.Get("f32") });
        var g32 = Parse(f32Path);
        var q1 = g32.Tensors.Single(t => t.Name == "blk.1.attn_q.weight");
        var expected = new byte[64 * 64 * 4];
        using (var s = File.OpenRead(TestFiles.Sample("stories260K.bin"))) { s.Position = wq.Offset + expected.Length; s.ReadExactly(expected); }
        Assert.Equal(expected, TensorBytes(f32Path, q1));
    }

    [Fact]
    public void GgufInputIsDequantizedAndRequantized()
    {
        using var dir = new ScratchDir();
        QuantizeBard(dir.File("q8.gguf"), "q8_0");
        var r = ModelQuantizer.Quantize(dir.File("q8.gguf"), dir.File("q4.gguf"), new ModelQuantizeOptions { Mix = QuantMix.Get("q4_K_M"), Threads = 2 });
        Assert.Equal(TensorFileFormat.Gguf, r.InputFormat);
        var g = Parse(dir.File("q4.gguf"));
        Assert.Equal(15u, g.Find("general.file_type")!.As<uint>());
        Assert.Equal(1024, g.Find("tokenizer.ggml.tokens")!.AsArray().Count); // carried over
        Assert.Equal(1, g.Metadata.Count(kv => kv.Key == "general.file_type"));
        Assert.Equal("Q6_K", GgmlTypes.Get(g.Tensors.Single(t => t.Name == "blk.3.attn_v.weight").GgmlType).Name);
        Assert.Equal("Q4_K", GgmlTypes.Get(g.Tensors.Single(t => t.Name == "blk.0.attn_q.weight").GgmlType).Name);
        // No second permutation: requantizing the q8_0 data directly gives the same bytes.
        var src = Parse(dir.File("q8.gguf"));
        var q8 = src.Tensors.Single(t => t.Name == "blk.0.attn_q.weight");
        var values = new float[q8.ElementCount];
        BlockFormats.Get("q8_0").Dequantize(TensorBytes(dir.File("q8.gguf"), q8), values);
        var direct = new byte[g.Tensors.Single(t => t.Name == "blk.0.attn_q.weight").ByteSize];
        BlockFormats.Get("q4_K").Quantize(values, direct, 256);
        Assert.Equal(direct, TensorBytes(dir.File("q4.gguf"), g.Tensors.Single(t => t.Name == "blk.0.attn_q.weight")));
    }

    [Fact]
    public void ImatrixChangesImportanceAwareTypes()
    {
        using var dir = new ScratchDir();
        var rng = new Random(3);
        var w = Enumerable.Range(0, 256).Select(_ => (float)(rng.NextDouble() * 4)).ToArray();
        var imPath = dir.File("imatrix.dat");
        using (var s = File.Create(imPath)) ImportanceMatrix.WriteDat(s, [new("blk.0.attn_q.weight", w)]);
        Assert.Equal(w, ImportanceMatrix.Load(imPath).Find("blk.0.attn_q.weight"));

        QuantizeBard(dir.File("plain.gguf"), "q4_K_M");
        var r = QuantizeBard(dir.File("im.gguf"), "q4_K_M", imatrix: imPath);
        Assert.True(r.ImatrixUsed);
        Assert.Contains(r.Notes, n => n.StartsWith("imatrix: 1 of"));
        var plain = Parse(dir.File("plain.gguf"));
        var im = Parse(dir.File("im.gguf"));
        var name = "blk.0.attn_q.weight";
        var withIm = TensorBytes(dir.File("im.gguf"), im.Tensors.Single(t => t.Name == name));
        Assert.NotEqual(TensorBytes(dir.File("plain.gguf"), plain.Tensors.Single(t => t.Name == name)), withIm);
        var direct = new byte[withIm.Length];
        BlockFormats.Get("q4_K").Quantize(SourceInGgufOrder(name), direct, 256, w);
        Assert.Equal(direct, withIm);
        // Other tensors are untouched.
        var other = "blk.1.attn_q.weight";
        Assert.Equal(TensorBytes(dir.File("plain.gguf"), plain.Tensors.Single(t => t.Name == other)),
            TensorBytes(dir.File("im.gguf"), im.Tensors.Single(t => t.Name == other)));

        // A weight count that does not match the row length is refused.
        using (var s = File.Create(imPath)) ImportanceMatrix.WriteDat(s, [new("blk.0.attn_q.weight", new float[100])]);
        var e = Assert.Throws<InvalidDataException>(() => QuantizeBard(dir.File("bad.gguf"), "q4_K_M", imatrix: imPath));
        Assert.Contains("100", e.Message);
        Assert.False(File.Exists(dir.File("bad.gguf")));
    }

    [Fact]
    public void GgufImatrixIsReadAsSumsOverCounts()
    {
        using var dir = new ScratchDir();
        var path = dir.File("imatrix.gguf");
        var sums = Enumerable.Range(0, 512).Select(i => (float)i).ToArray();
        var tensors = new[]
        {
            new GgufTensor("blk.0.ffn_up.weight.in_sum2", GgmlTypes.F32, [256, 2],
                TensorByteSource.FromMemory(MemoryMarshal.AsBytes(sums.AsSpan()).ToArray())),
            new GgufTensor("blk.0.ffn_up.weight.counts", GgmlTypes.F32, [1, 2],
                TensorByteSource.FromMemory(MemoryMarshal.AsBytes(new float[] { 4, 0 }.AsSpan()).ToArray())),
        };
        using (var s = File.Create(path)) GgufWriter.Write(s, [new("general.type", GgufValue.String("imatrix"))], tensors);
        var w = ImportanceMatrix.Load(path).Find("blk.0.ffn_up.weight")!;
        Assert.Equal(512, w.Length);
        Assert.Equal(10f / 4, w[10]);
        Assert.Equal(1f, w[300]); // a matrix that never saw input counts as uniform
    }

    [Fact]
    public void NonFiniteWeightsAreRefusedNamingTensorAndIndex()
    {
        using var dir = new ScratchDir();
        var model = dir.File("model.safetensors");
        var bytes = File.ReadAllBytes(Bf16Sample);
        var t = TensorFileReader.Open(Bf16Sample).Tensors.Single(x => x.Name == "model.layers.2.mlp.up_proj.weight");
        BinaryPrimitives.WriteUInt16LittleEndian(bytes.AsSpan((int)t.Offset + 2 * 1234), 0x7FC0); // BF16 NaN
        File.WriteAllBytes(model, bytes);
        var outPath = dir.File("out.gguf");
        var opts = new ModelQuantizeOptions { Mix = QuantMix.Get("q8_0"), ConfigPath = Config };
        var e = Assert.Throws<InvalidDataException>(() => ModelQuantizer.Quantize(model, outPath, opts));
        Assert.Contains("model.layers.2.mlp.up_proj.weight", e.Message);
        Assert.Contains("1234", e.Message);
        Assert.False(File.Exists(outPath));
        Assert.Empty(Directory.GetFiles(dir.Path, "*.tmp"));

        var r = ModelQuantizer.Quantize(model, outPath, new ModelQuantizeOptions { Mix = QuantMix.Get("f32"), ConfigPath = Config, AllowNonFinite = true });
        Assert.True(File.Exists(outPath));
        Assert.Equal(TensorFileFormat.Safetensors, r.InputFormat);
    }

    [Fact]
    public void UndecodableGgufTypeIsNamed()
    {
        using var dir = new ScratchDir();
        var path = dir.File("q8_K.gguf"); // Q8_K: a ggml type (dot-product activations) with no decoder here
        var meta = new List<KeyValuePair<string, GgufValue>>
        {
            new("general.architecture", GgufValue.String("llama")),
            new("llama.embedding_length", GgufValue.UInt32(256)),
            new("llama.block_count", GgufValue.UInt32(1)),
            new("llama.attention.head_count", GgufValue.UInt32(2)),
            new("llama.feed_forward_length", GgufValue.UInt32(512)),
            new("llama.vocab_size", GgufValue.UInt32(32)),
        };
        var tensors = new[] { new GgufTensor("blk.0.attn_q.weight", GgmlTypes.Q8_K, [256, 2], TensorByteSource.FromMemory(new byte[2 * 292])) };
        using (var s = File.Create(path)) GgufWriter.Write(s, meta, tensors);
        var e = Assert.Throws<NotSupportedException>(() =>
            ModelQuantizer.Quantize(path, dir.File("out.gguf"), new ModelQuantizeOptions { Mix = QuantMix.Get("q8_0") }));
        Assert.Contains("blk.0.attn_q.weight", e.Message);
        Assert.Contains("Q8_K", e.Message);
        Assert.False(File.Exists(dir.File("out.gguf")));
    }

    [Fact]
    public void BadInputsAreRefusedBeforeAnythingIsWritten()
    {
        using var dir = new ScratchDir();
        var outPath = dir.File("out.gguf");
        // No config.json beside the model.
        var model = dir.File("model.safetensors");
        File.Copy(Bf16Sample, model);
        var e1 = Assert.Throws<FileNotFoundException>(() => ModelQuantizer.Quantize(model, outPath, new ModelQuantizeOptions { Mix = QuantMix.Get("q8_0") }));
        Assert.Contains("config.json", e1.Message);
        // Tokenizer whose vocabulary does not match the model.
        var tok = dir.File("tok.bin");
        using (var s = File.Create(tok))
        {
            var w = new BinaryWriter(s);
            w.Write(5);
            foreach (var piece in new[] { "<unk>", "<s>", "</s>" }) { w.Write(0f); w.Write(piece.Length); w.Write(System.Text.Encoding.UTF8.GetBytes(piece)); }
        }
        var e2 = Assert.Throws<InvalidDataException>(() => ModelQuantizer.Quantize(model, outPath,
            new ModelQuantizeOptions { Mix = QuantMix.Get("q8_0"), ConfigPath = Config, TokenizerPath = tok }));
        Assert.Contains("3 tokens", e2.Message);
        // A truncated tokenizer names the damage.
        File.WriteAllBytes(tok, File.ReadAllBytes(Tokenizer)[..203]);
        Assert.Throws<TensorFormatException>(() => ModelQuantizer.Quantize(model, outPath,
            new ModelQuantizeOptions { Mix = QuantMix.Get("q8_0"), ConfigPath = Config, TokenizerPath = tok }));
        Assert.False(File.Exists(outPath));
        // Existing output without Overwrite.
        File.WriteAllText(outPath, "keep");
        Assert.Throws<IOException>(() => ModelQuantizer.Quantize(model, outPath, new ModelQuantizeOptions { Mix = QuantMix.Get("q8_0"), ConfigPath = Config }));
        Assert.Equal("keep", File.ReadAllText(outPath));
        // Output over the input.
        Assert.Throws<IOException>(() => ModelQuantizer.Quantize(model, model, new ModelQuantizeOptions { Mix = QuantMix.Get("q8_0"), ConfigPath = Config, Overwrite = true }));
        Assert.Empty(Directory.GetFiles(dir.Path, "*.tmp"));
    }
}
