using System.Text.Json;
using TensorCodec.Containers.Tkv;
using TensorCodec.Engine;
using TensorCodec.Eval;
using TensorCodec.Tests.Engine;
using static TensorCodec.Tests.Cli.CliTests;

namespace TensorCodec.Tests.Kv;

/// <summary>.tkv contexts: lossless restore is bit-exact, lossy restore is close, damage and wrong models are refused.</summary>
public class KvContextTests
{
    static LlamaModel Bard() => LlamaModel.Load(TestFiles.Sample("bard-3m-bf16.safetensors"), new LlamaLoadOptions { ConfigPath = EngineFixtures.Fixture("config.json") });

    static int[] Prompt => EngineFixtures.Tokens("val.first128.tokens.csv")[..100];
    static int[] Continuation => EngineFixtures.Tokens("val.first128.tokens.csv")[100..120];

    static byte[] Save(KvContext ctx, string codec)
    {
        var ms = new MemoryStream();
        ctx.Write(ms, KvCodecSpec.Parse(codec, ctx.Layers));
        return ms.ToArray();
    }

    [Theory]
    [InlineData("f32")]
    [InlineData("q4")]
    [InlineData("q5:delta=anchor,anchor=8")]
    [InlineData("q3:kl=4/4/3/3,vl=2/3/3/4,delta=prev")]
    [InlineData("f16")]
    public void Save_load_continue(string codec)
    {
        using var model = Bard();
        var ctx = KvContext.Capture(model, Prompt);
        var back = KvContext.Read(Save(ctx, codec), "mem", model);
        Assert.Equal(ctx.Tokens, back.Tokens);
        var r = KvContinuation.Run(model, back, Continuation, generate: 8, compare: true);
        Assert.True(r.Compared);
        if (codec == "f32")
        {
            for (int l = 0; l < ctx.Layers; l++) { Assert.Equal(ctx.Keys[l], back.Keys[l]); Assert.Equal(ctx.Values[l], back.Values[l]); }
            Assert.True(r.BitIdentical, "lossless restore must reproduce the fresh prompt's logits bit for bit");
            Assert.True(r.SameTokens);
            Assert.Equal(0, r.KlMax);
        }
        else
        {
            Assert.False(r.BitIdentical);
            Assert.True(r.KlMean < 0.05, $"{codec}: KL mean {r.KlMean}");
        }
    }

    [Fact]
    public void Corruption_and_truncation_are_refused_with_the_place_named()
    {
        using var model = Bard();
        var file = Save(KvContext.Capture(model, Prompt[..40]), "q4");
        var rng = new Random(5);
        // Every region: fixed header, bit depths/tokens, sections, trailer.
        var offsets = new[] { 0, 9, 20, 33, 49, 53, 60, 100, file.Length / 3, file.Length / 2, file.Length - 20, file.Length - 1 }
            .Concat(Enumerable.Range(0, 40).Select(_ => rng.Next(file.Length)));
        foreach (int at in offsets)
        {
            var bad = (byte[])file.Clone();
            bad[at] ^= (byte)(1 << rng.Next(8));
            var e = Assert.Throws<TensorFormatException>(() => KvContext.Read(bad, "ctx.tkv", model));
            Assert.Contains("ctx.tkv", e.Message);
            Assert.True(e.Message.Contains("offset") || e.Message.Contains("checksum") || e.Message.Contains("magic") || e.Message.Contains("different model"), e.Message);
        }
        foreach (int len in new[] { 0, 7, 55, 100, file.Length / 2, file.Length - 9, file.Length - 1 })
        {
            var e = Assert.Throws<TensorFormatException>(() => KvContext.Read(file[..len], "ctx.tkv", model));
            Assert.Contains("offset", e.Message);
        }
        var longer = file.Concat(new byte[3]).ToArray();
        Assert.Contains("unexpected bytes", Assert.Throws<TensorFormatException>(() => KvContext.Read(longer, "ctx.tkv", model)).Message);
    }

    [Fact]
    public void A_different_model_is_refused()
    {
        using var model = Bard();
        var file = Save(KvContext.Capture(model, Prompt[..20]), "f32");
        // Same shape, different weights: the identity hash differs.
        var e = Assert.Throws<InvalidDataException>(() => KvContext.Read(file, "ctx.tkv", model, modelId: new byte[16]));
        Assert.Contains("different model", e.Message);
        // Different shape.
        using var other = LlamaModel.Load(TestFiles.Sample("stories260K.bin"));
        e = Assert.Throws<InvalidDataException>(() => KvContext.Read(file, "ctx.tkv", other));
        Assert.Contains("saved for a model with 4 layers", e.Message);
    }

    [Fact]
    public void Cli_save_then_load_is_bit_identical_and_mismatch_is_an_error()
    {
        using var dir = new ScratchDir();
        var model = TestFiles.Sample("bard-3m-bf16.safetensors");
        var config = EngineFixtures.Fixture("config.json");
        var tok = EngineFixtures.Fixture("tok1024.bin");
        var text = dir.File("prompt.txt");
        File.WriteAllText(text, "First Citizen:\nBefore we proceed any further, hear me speak.\n\nAll:\nSpeak, speak.\n");
        var ctx = dir.File("ctx.tkv");
        var (code, stdout, err) = Tcodec("kv", "save", model, "--config", config, "--tokenizer", tok, "--text", text, "-o", ctx, "--json");
        Assert.True(code == 0, err);
        using (var saved = JsonDocument.Parse(stdout)) Assert.True(saved.RootElement.GetProperty("lossless").GetBoolean());

        (code, stdout, err) = Tcodec("kv", "load", model, ctx, "--config", config, "--tokenizer", tok, "--continue", "First Citizen:", "--generate", "5", "--json");
        Assert.True(code == 0, err);
        using (var loaded = JsonDocument.Parse(stdout)) Assert.True(loaded.RootElement.GetProperty("bit_identical").GetBoolean(), stdout);

        (code, _, err) = Tcodec("kv", "load", TestFiles.Sample("stories260K.bin"), ctx, "--tokenizer", tok, "--continue", "x");
        Assert.Equal(1, code);
        Assert.Contains("saved for a model with", err);
    }
}
