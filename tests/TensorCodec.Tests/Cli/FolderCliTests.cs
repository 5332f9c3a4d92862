using System.Text.Json;
using TensorCodec.Tests.Models;
using Xunit;

namespace TensorCodec.Tests.Cli;

/// <summary>compress/decompress of a sharded model folder through the CLI, held to docs/JSON.md.</summary>
public class FolderCliTests
{
    [Fact]
    public void Sharded_folder_round_trips_through_compress_and_decompress()
    {
        using var dir = new ScratchDir();
        string model = TinyHfModel.Write(dir.File("model"), shards: 3);
        File.WriteAllText(Path.Combine(model, "README.md"), "tiny model\n");
        string packed = dir.File("packed"), back = dir.File("back");

        var (code, stdout, err) = CliTests.Tcodec("compress", model, "-o", packed, "--json");
        Assert.True(code == 0, err);
        using (var doc = JsonDocument.Parse(stdout))
        {
            JsonSchema.CheckObject(doc.RootElement, "compress");
            Assert.Equal("Folder", doc.RootElement.GetProperty("format").GetString());
            var actions = doc.RootElement.GetProperty("files").EnumerateArray().Select(f => f.GetProperty("action").GetString()).ToList();
            Assert.Equal(3, actions.Count(a => a == "compressed"));
            Assert.Equal(3, actions.Count(a => a == "copied")); // config.json, the index, README.md
        }
        Assert.Equal(3, Directory.GetFiles(packed, "*.safetensors.tcz").Length);
        Assert.Empty(Directory.GetFiles(packed, "*.safetensors"));

        (code, stdout, err) = CliTests.Tcodec("-d", packed, "-o", back, "--json");
        Assert.True(code == 0, err);
        using (var doc = JsonDocument.Parse(stdout))
        {
            JsonSchema.CheckObject(doc.RootElement, "decompress");
            Assert.True(doc.RootElement.GetProperty("verified").GetBoolean());
        }
        foreach (var f in Directory.GetFiles(model))
            Assert.Equal(File.ReadAllBytes(f), File.ReadAllBytes(Path.Combine(back, Path.GetFileName(f))));
        Assert.Equal(Directory.GetFiles(model).Length, Directory.GetFiles(back).Length);
    }

    [Fact]
    public void Folder_refuses_stdout_and_rm()
    {
        using var dir = new ScratchDir();
        string model = TinyHfModel.Write(dir.File("model"), shards: 2);
        var (code, _, err) = CliTests.Tcodec("compress", model, "-c");
        Assert.Equal(1, code);
        Assert.Contains("cannot share standard output", err);
        (code, _, err) = CliTests.Tcodec("compress", model, "--rm");
        Assert.Equal(1, code);
        Assert.Contains("--rm is not supported for a folder", err);
        Assert.Empty(Directory.GetFiles(model, "*.tcz"));
    }

    [Fact]
    public void A_folder_without_tensor_files_is_refused_and_nothing_is_created()
    {
        using var dir = new ScratchDir();
        Directory.CreateDirectory(dir.File("notes"));
        File.WriteAllText(dir.File("notes/a.txt"), "hello");
        var (code, _, err) = CliTests.Tcodec("compress", dir.File("notes"), "-o", dir.File("out"));
        Assert.Equal(1, code);
        Assert.Contains("no safetensors, GGUF or llama2.c file in this folder", err);
        Assert.False(Directory.Exists(dir.File("out")));
        (code, _, err) = CliTests.Tcodec("decompress", dir.File("notes"), "-o", dir.File("out"));
        Assert.Equal(1, code);
        Assert.Contains("no .tcz file in this folder", err);
        Assert.False(Directory.Exists(dir.File("out")));
    }

    [Fact]
    public void Inspect_text_of_a_sharded_folder_has_a_shard_column()
    {
        using var dir = new ScratchDir();
        string model = TinyHfModel.Write(dir.File("model"), shards: 3);
        var (code, stdout, err) = CliTests.Tcodec("inspect", model);
        Assert.True(code == 0, err);
        static string Header(string text) => text.Split('\n').First(l => l.Contains("dtype") && l.Contains("shape"));
        Assert.Contains("shard", Header(stdout));
        foreach (var shard in Directory.GetFiles(model, "*.safetensors"))
            Assert.Contains(Path.GetFileName(shard), stdout);
        (code, stdout, err) = CliTests.Tcodec("inspect", Path.Combine(model, "model-00001-of-00003.safetensors"));
        Assert.True(code == 0, err);
        Assert.DoesNotContain("shard", Header(stdout));
    }
}
