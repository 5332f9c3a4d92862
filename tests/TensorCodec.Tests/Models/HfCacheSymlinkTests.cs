using TensorCodec.Engine;
using static TensorCodec.Tests.Cli.CliTests;

namespace TensorCodec.Tests.Models;

/// <summary>The Hugging Face cache layout: snapshots/&lt;rev&gt;/model.safetensors is a symlink into ../../blobs/.</summary>
public class HfCacheSymlinkTests
{
    /// <summary>Builds models--x/{blobs/&lt;sha&gt;, snapshots/rev/{model.safetensors, config.json}} with relative symlinks; returns the snapshot folder.</summary>
    internal static string FakeCache(ScratchDir dir)
    {
        string blobs = Path.Combine(dir.Path, "models--bard", "blobs");
        string snap = Path.Combine(dir.Path, "models--bard", "snapshots", "0123abc");
        Directory.CreateDirectory(blobs);
        Directory.CreateDirectory(snap);
        File.Copy(TestFiles.Sample("bard-3m-bf16.safetensors"), Path.Combine(blobs, "5f1d0e"));
        File.Copy(TestFiles.Sample("config.json"), Path.Combine(blobs, "c0ff1g"));
        File.CreateSymbolicLink(Path.Combine(snap, "model.safetensors"), "../../blobs/5f1d0e");
        File.CreateSymbolicLink(Path.Combine(snap, "config.json"), "../../blobs/c0ff1g");
        return snap;
    }

    [Fact]
    public void Engine_maps_the_symlink_target_not_the_link()
    {
        using var dir = new ScratchDir();
        string snap = FakeCache(dir);
        using var linked = LlamaModel.Load(Path.Combine(snap, "model.safetensors"));
        using var plain = LlamaModel.Load(TestFiles.Sample("bard-3m-bf16.safetensors"), new LlamaLoadOptions { ConfigPath = TestFiles.Sample("config.json") });
        int[] tokens = [1, 300, 301, 302];
        Assert.Equal(ModelDirectoryTests.Logits(plain, tokens), ModelDirectoryTests.Logits(linked, tokens));
    }

    [Fact]
    public void A_sharded_model_in_the_hf_cache_loads_and_quantizes()
    {
        using var dir = new ScratchDir();
        string built = ModelDirectoryTests.Shard(TestFiles.Sample("bard-3m-bf16.safetensors"), TestFiles.Sample("config.json"), dir.File("built"), 3);
        string repo = Path.Combine(dir.Path, "models--someone--bard-3m");
        string blobs = Path.Combine(repo, "blobs"), snap = Path.Combine(repo, "snapshots", "9f8e7d");
        Directory.CreateDirectory(blobs);
        Directory.CreateDirectory(snap);
        int i = 0;
        foreach (var f in Directory.EnumerateFiles(built))
        {
            string blob = $"b{i++:x8}";
            File.Move(f, Path.Combine(blobs, blob));
            File.CreateSymbolicLink(Path.Combine(snap, Path.GetFileName(f)), $"../../blobs/{blob}");
        }
        using var plain = LlamaModel.Load(TestFiles.Sample("bard-3m-bf16.safetensors"), new LlamaLoadOptions { ConfigPath = TestFiles.Sample("config.json") });
        using var cached = LlamaModel.Load(snap);
        int[] tokens = [1, 400, 401];
        Assert.Equal(ModelDirectoryTests.Logits(plain, tokens), ModelDirectoryTests.Logits(cached, tokens));

        var r = TensorCodec.Quantization.ModelQuantizer.Quantize(snap, dir.File("q.gguf"),
            new TensorCodec.Quantization.ModelQuantizeOptions { Mix = TensorCodec.Quantization.QuantMix.Get("q8_0") });
        using var s = File.OpenRead(dir.File("q.gguf"));
        Assert.Equal("bard-3m", TensorCodec.Containers.GgufFile.Parse(s, "q.gguf").Find("general.name")!.Value); // the repo, not the revision
        Assert.Equal(39, r.Tensors.Count);
    }

    [Fact]
    public void Logits_command_reads_a_file_in_the_hf_cache()
    {
        using var dir = new ScratchDir();
        string snap = FakeCache(dir);
        var (code, _, err) = Tcodec("logits", Path.Combine(snap, "model.safetensors"), "--tokens", "1,300,301", "-o", dir.File("a.f32"));
        Assert.True(code == 0, err);
        (code, _, err) = Tcodec("logits", snap, "--tokens", "1,300,301", "-o", dir.File("b.f32"));
        Assert.True(code == 0, err);
        (code, _, err) = Tcodec("logits", TestFiles.Sample("bard-3m-bf16.safetensors"), "--config", TestFiles.Sample("config.json"), "--tokens", "1,300,301", "-o", dir.File("c.f32"));
        Assert.True(code == 0, err);
        Assert.Equal(File.ReadAllBytes(dir.File("c.f32")), File.ReadAllBytes(dir.File("a.f32")));
        Assert.Equal(File.ReadAllBytes(dir.File("c.f32")), File.ReadAllBytes(dir.File("b.f32")));
    }
}
