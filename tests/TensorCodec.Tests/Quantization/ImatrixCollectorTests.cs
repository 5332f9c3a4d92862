using TensorCodec.Engine;
using TensorCodec.Eval;
using TensorCodec.Quantization;

namespace TensorCodec.Tests.Quantization;

/// <summary>tcodec imatrix: the statistics, both of llama.cpp's file formats, and refusal of another model's matrix.</summary>
public class ImatrixCollectorTests
{
    static LlamaModel Bard() => LlamaModel.Load(ModelQuantizerTests.Bf16Sample, new LlamaLoadOptions { ConfigPath = ModelQuantizerTests.Config });

    static int[] Tokens(int n, int vocab, int seed)
    {
        var rng = new Random(seed);
        return Enumerable.Range(0, n).Select(_ => rng.Next(vocab)).ToArray();
    }

    [Fact]
    public void FirstLayerInputIsTheMeanSquareOfTheNormedEmbeddings()
    {
        using var m = Bard();
        var c = m.Config;
        var tokens = Tokens(3 * 40, c.VocabSize, 5);
        var r = ImatrixCollector.Collect(m, tokens, new ImatrixOptions { Ctx = 40 });
        Assert.Equal(3, r.Chunks);
        Assert.Equal(120, r.Tokens);
        // Directly: x = embed(token), attn_norm(x) = x / rms(x) · w; mean of its squares per column over all tokens.
        var expect = new double[c.Dim];
        var row = new float[c.Dim];
        foreach (int t in tokens)
        {
            m.Embedding.ReadRow(t, row);
            double ss = 0;
            foreach (var v in row) ss += (double)v * v;
            double scale = 1 / Math.Sqrt(ss / c.Dim + c.NormEps);
            for (int j = 0; j < c.Dim; j++) { double y = row[j] * scale * m.Layers[0].AttnNorm[j]; expect[j] += y * y; }
        }
        foreach (var name in new[] { "blk.0.attn_q.weight", "blk.0.attn_k.weight", "blk.0.attn_v.weight" })
        {
            var got = r.MeanSquares(name)!;
            for (int j = 0; j < c.Dim; j++) Assert.Equal(expect[j] / tokens.Length, got[j], 1e-5 * (expect[j] / tokens.Length) + 1e-9);
        }
        // Every linear weight of every layer has an entry, with its input's width; output.weight only on request.
        Assert.Equal(7 * c.Layers, r.Names.Count);
        Assert.Equal(c.HiddenDim, r.MeanSquares("blk.3.ffn_down.weight")!.Length);
        Assert.Null(r.MeanSquares("output.weight"));
        var withOutput = ImatrixCollector.Collect(m, tokens, new ImatrixOptions { Ctx = 40, ProcessOutput = true });
        Assert.Equal(c.Dim, withOutput.MeanSquares("output.weight")!.Length);
    }

    [Fact]
    public void BothFormatsRoundTripAndAgree()
    {
        using var m = Bard();
        using var dir = new ScratchDir();
        var r = ImatrixCollector.Collect(m, Tokens(256, m.Config.VocabSize, 9), new ImatrixOptions { Ctx = 64 });
        string gguf = dir.File("im.gguf"), dat = dir.File("im.dat");
        r.Save(gguf, "calib.txt", legacy: false, overwrite: false);
        r.Save(dat, "calib.txt", legacy: true, overwrite: false);
        var a = ImportanceMatrix.Load(gguf);
        var b = ImportanceMatrix.Load(dat);
        Assert.Equal(r.Names, a.Names.Order(StringComparer.Ordinal));
        Assert.Equal(r.Names, b.Names.Order(StringComparer.Ordinal));
        Assert.Equal(["calib.txt"], a.Datasets);
        Assert.Equal(["calib.txt"], b.Datasets);
        Assert.Equal(4, a.ChunkCount);
        Assert.Equal(4, b.ChunkCount);
        foreach (var name in r.Names)
        {
            var want = r.MeanSquares(name)!;
            Assert.Equal(want, a.Find(name)); // GGUF keeps the sums and counts: exact
            var fromDat = b.Find(name)!;     // .dat stores (sum/count)·ncall: one rounding each way
            for (int j = 0; j < want.Length; j++) Assert.Equal(want[j], fromDat[j], 1e-6f * want[j]);
        }
        // The GGUF carries llama-imatrix's keys.
        using var s = File.OpenRead(gguf);
        var g = TensorCodec.Containers.GgufFile.Parse(s, gguf);
        Assert.Equal("imatrix", g.Find("general.type")!.AsString());
        Assert.Equal(64u, g.Find("imatrix.chunk_size")!.As<uint>());
        Assert.Equal(2 * r.Names.Count, g.Tensors.Count);
        Assert.Equal([1L], g.Tensors.Single(t => t.Name == "blk.0.attn_q.weight.counts").Dims);
        Assert.Equal([256L], g.Tensors.Single(t => t.Name == "blk.0.attn_q.weight.in_sum2").Dims);
    }

    [Fact]
    public void AnotherModelsImatrixIsRefusedNamingTheFirstMismatch()
    {
        using var dir = new ScratchDir();
        var im = dir.File("other.dat");
        // A matrix for a model of width 64 (stories260K's): the first entry in name order does not fit bard-3m's 256 columns.
        using (var s = File.Create(im))
            ImportanceMatrix.WriteLegacy(s, [new ImatrixEntry("blk.0.attn_q.weight", new float[64], 1), new ImatrixEntry("blk.0.attn_k.weight", new float[64], 1)], "x", 1, 1);
        var e = Assert.Throws<InvalidDataException>(() => ModelQuantizerTests.QuantizeBard(dir.File("bad.gguf"), "q4_K_M", imatrix: im));
        Assert.Contains("'blk.0.attn_k.weight' has 64 weights", e.Message);
        Assert.Contains("another model", e.Message);
        Assert.False(File.Exists(dir.File("bad.gguf")));

        // A name the model does not have (a deeper model's layer) is refused too.
        using (var s = File.Create(im))
            ImportanceMatrix.WriteLegacy(s, [new ImatrixEntry("blk.0.attn_q.weight", new float[256], 1), new ImatrixEntry("blk.9.attn_q.weight", new float[256], 1)], "x", 1, 1);
        e = Assert.Throws<InvalidDataException>(() => ModelQuantizerTests.QuantizeBard(dir.File("bad.gguf"), "q4_K_M", imatrix: im));
        Assert.Contains("'blk.9.attn_q.weight' names no tensor of the model", e.Message);
    }

    [Fact]
    public void CommandJsonMatchesTheSchemaAndTheFileLoads()
    {
        using var dir = new ScratchDir();
        var ids = string.Join(",", Tokens(200, 1024, 3));
        File.WriteAllText(dir.File("t.csv"), ids);
        var output = dir.File("im.dat");
        using var doc = TensorCodec.Tests.Cli.JsonSchema.Run("imatrix", "imatrix", ModelQuantizerTests.Bf16Sample, "--config", ModelQuantizerTests.Config,
            "--tokens", dir.File("t.csv"), "--ctx", "64", "-o", output);
        Assert.Equal("dat", doc.RootElement.GetProperty("format").GetString());
        Assert.Equal(3, doc.RootElement.GetProperty("chunks").GetInt32());
        Assert.Equal(28, doc.RootElement.GetProperty("entries").GetInt32());
        Assert.Equal(28, ImportanceMatrix.Load(output).Names.Count);
    }
}
