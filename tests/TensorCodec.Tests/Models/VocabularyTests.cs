using TensorCodec.Containers;
using TensorCodec.Engine;
using TensorCodec.Tokenizers;
using TensorCodec.Eval;
using TensorCodec.Models;

namespace TensorCodec.Tests.Models;

/// <summary>One tokenizer.bin reader for the engine and the quantizer; tokenizer discovery; token files.</summary>
public class VocabularyTests
{
    static string Tok1024 => TestFiles.Fixture(Path.Combine("engine", "tok1024.bin"));

    [Fact]
    public void Reads_tokenizer_bin_and_writes_it_as_gguf_keys_that_read_back_the_same()
    {
        var v = Vocabulary.ReadLlama2c(Tok1024);
        Assert.Equal(1024, v.Count);
        Assert.Equal((1, 2, 0), (v.BosId, v.EosId, v.UnknownId));
        Assert.Equal(10, v.ByteValue(3 + 10));
        Assert.Equal(-1, v.ByteValue(600));
        var g = GgufFile.Parse(new MemoryStream(GgufWriter.ToBytes([new("general.architecture", GgufValue.String("llama")), .. v.ToGgufMetadata()], [])), "t.gguf");
        var back = Vocabulary.FromGguf(g, "t.gguf");
        Assert.Equal(v.Count, back.Count);
        for (int i = 0; i < v.Count; i++)
        {
            Assert.True(v.Piece(i).SequenceEqual(back.Piece(i)), $"piece {i}");
            Assert.Equal(v.Score(i), back.Score(i));
        }
        Assert.Equal((v.BosId, v.EosId, v.UnknownId), (back.BosId, back.EosId, back.UnknownId));
        Assert.Equal(new Tokenizer(v).Encode("To be, or not to be"), new Tokenizer(back).Encode("To be, or not to be"));
    }

    [Fact]
    public void Damaged_tokenizers_are_named()
    {
        using var dir = new ScratchDir();
        var path = dir.File("tok.bin");
        File.WriteAllBytes(path, File.ReadAllBytes(Tok1024)[..203]);
        var e = Assert.Throws<TensorFormatException>(() => Tokenizer.LoadLlama2c(path));
        Assert.Equal(path, e.FilePath);
        Assert.StartsWith("token[", e.Field);
        File.WriteAllBytes(path, [1, 0]);
        Assert.Equal("max_token_length", Assert.Throws<TensorFormatException>(() => Vocabulary.ReadLlama2c(path)).Field);
        // One token: the default BOS id 1 does not exist.
        File.WriteAllBytes(path, [4, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, (byte)'a']);
        Assert.Contains("outside the vocabulary", Assert.Throws<TensorFormatException>(() => Vocabulary.ReadLlama2c(path)).Message);
        // A piece that is not UTF-8 is fine for the encoder but cannot go into a GGUF string.
        File.WriteAllBytes(path, [4, 0, 0, 0, .. Piece("<unk>"), .. Piece("<s>"), .. Piece("</s>"), 0, 0, 0, 0, 1, 0, 0, 0, 0xC3]);
        var v = Vocabulary.ReadLlama2c(path);
        e = Assert.Throws<TensorFormatException>(() => v.ToGgufMetadata());
        Assert.Equal("token[3]", e.Field);
        Assert.Equal(4 + 13 + 11 + 12 + 8, e.Offset);
    }

    static byte[] Piece(string s) => [0, 0, 0, 0, (byte)s.Length, 0, 0, 0, .. System.Text.Encoding.ASCII.GetBytes(s)];

    [Fact]
    public void A_bad_gguf_tokenizer_key_is_named()
    {
        var meta = new List<KeyValuePair<string, GgufValue>>
        {
            new("tokenizer.ggml.tokens", GgufValue.Array(GgufArray.Of("<unk>", "<s>", "</s>", "a"))),
            new("tokenizer.ggml.bos_token_id", GgufValue.String("1")),
        };
        GgufFile Parse() => GgufFile.Parse(new MemoryStream(GgufWriter.ToBytes(meta, [])), "v.gguf");
        Assert.Equal("tokenizer.ggml.bos_token_id", Assert.Throws<TensorFormatException>(() => Vocabulary.FromGguf(Parse(), "v.gguf")).Field);
        meta[1] = new("tokenizer.ggml.scores", GgufValue.Array(GgufArray.Of(1f, 2f)));
        Assert.Equal("tokenizer.ggml.scores", Assert.Throws<TensorFormatException>(() => Vocabulary.FromGguf(Parse(), "v.gguf")).Field);
        meta[1] = new("tokenizer.ggml.model", GgufValue.String("gpt2"));
        Assert.Equal("tokenizer.ggml.model", Assert.Throws<TensorFormatException>(() => Vocabulary.FromGguf(Parse(), "v.gguf")).Field);
        meta = [new("tokenizer.ggml.model", GgufValue.String("llama"))];
        Assert.Equal("tokenizer.ggml.tokens", Assert.Throws<TensorFormatException>(() => Vocabulary.FromGguf(Parse(), "v.gguf")).Field);
    }

    [Fact]
    public void Locate_finds_tokenizer_bin_then_tok_bin_then_the_gguf_itself()
    {
        using var dir = new ScratchDir();
        var model = dir.File("model.bin");
        File.Copy(TestFiles.Sample("stories260K.bin"), model);
        Assert.Null(Vocabulary.Locate(model));
        File.Copy(Tok1024, dir.File("tok1024.bin"));
        File.Copy(Tok1024, dir.File("tok512.bin"));
        Assert.Equal(dir.File("tok1024.bin"), Vocabulary.Locate(model));
        File.Copy(Tok1024, dir.File("tokenizer.bin"));
        Assert.Equal(dir.File("tokenizer.bin"), Vocabulary.Locate(model));

        using var dir2 = new ScratchDir();
        var gguf = dir2.File("m.gguf");
        File.WriteAllBytes(gguf, GgufWriter.ToBytes([.. Vocabulary.ReadLlama2c(Tok1024).ToGgufMetadata()], []));
        Assert.Equal(gguf, Vocabulary.Locate(gguf));
        File.WriteAllBytes(gguf, GgufWriter.ToBytes([new("general.architecture", GgufValue.String("llama"))], []));
        Assert.Null(Vocabulary.Locate(gguf));
    }

    [Fact]
    public void Token_files_are_read_by_extension()
    {
        using var dir = new ScratchDir();
        File.WriteAllBytes(dir.File("t.u16"), [1, 0, 0xFF, 0xFF, 7, 1]);
        Assert.Equal([1, 65535, 263], EvalData.ReadTokens(dir.File("t.u16")));
        File.WriteAllBytes(dir.File("T.U16"), [1, 0]);
        Assert.Equal([1], EvalData.ReadTokens(dir.File("T.U16")));
        File.WriteAllText(dir.File("t.csv"), "1, 2,3\n4");
        Assert.Equal([1, 2, 3, 4], EvalData.ReadTokens(dir.File("t.csv")));
        File.WriteAllText(dir.File("t.txt"), "1,2");
        var e = Assert.Throws<ArgumentException>(() => EvalData.ReadTokens(dir.File("t.txt")));
        Assert.Contains(dir.File("t.txt"), e.Message);
        Assert.Contains(".u16", e.Message);
        File.WriteAllBytes(dir.File("odd.u16"), [1, 0, 2]);
        Assert.Contains("odd.u16", Assert.Throws<InvalidDataException>(() => EvalData.ReadTokens(dir.File("odd.u16"))).Message);
    }
}
