using System.Runtime.InteropServices;
using TensorCodec.Engine;
using TensorCodec.Tokenizers;

namespace TensorCodec.Tests.Engine;

public class TokenizerTests
{
    static Tokenizer Tok1024() => Tokenizer.LoadLlama2c(EngineFixtures.Fixture("tok1024.bin"));

    [Fact]
    public void Loads_the_vocabulary()
    {
        var t = Tok1024();
        Assert.Equal(1024, t.VocabSize);
        Assert.Equal("<s>"u8.ToArray(), t.Piece(1).ToArray());
        Assert.Equal("<0x0A>"u8.ToArray(), t.Piece(3 + 10).ToArray());
    }

    [Fact]
    public void Encodes_like_llama_cpp()
    {
        // The ids llama.cpp's own tokenizer gives for this string (shared README).
        Assert.Equal([658, 312, 375, 265, 613, 391, 358, 375], Tok1024().Encode("To be, or not to be"));
    }

    [Fact]
    public void Characters_outside_the_vocabulary_fall_back_to_bytes_and_decode_back()
    {
        var t = Tok1024();
        const string text = "naïve — 😀 ok";
        var ids = t.Encode(text, bos: true);
        Assert.Contains(3 + 0xF0, ids); // first byte of the emoji
        Assert.Equal(text, t.Decode(ids));
        Assert.Empty(t.Encode(""));
        Assert.Equal([1], t.Encode("", bos: true));
    }

    [SkippableFact]
    public void Reproduces_the_shared_shakespeare_tokenization()
    {
        var textPath = TestFiles.SharedOrSkip("data/text/shakespeare.txt");
        var tokPath = TestFiles.SharedOrSkip("data/text/shakespeare.tok1024.u16");
        var t = Tok1024();
        string text = File.ReadAllText(textPath);
        var expected = MemoryMarshal.Cast<byte, ushort>(File.ReadAllBytes(tokPath)).ToArray();
        var actual = t.EncodeParagraphs(text);
        int firstDiff = 0;
        while (firstDiff < Math.Min(actual.Length, expected.Length) && actual[firstDiff] == expected[firstDiff]) firstDiff++;
        Assert.True(firstDiff == expected.Length && actual.Length == expected.Length,
            $"tokenization differs at index {firstDiff} (ours {actual.Length} tokens, reference {expected.Length})");

        // Decoding each paragraph gives it back, with the "\n" the convention appends.
        var paragraphs = text.Split("\n\n");
        int start = 0, p = 0;
        for (int i = 1; i <= actual.Length; i++)
        {
            if (i < actual.Length && actual[i] != t.BosId) continue;
            Assert.Equal(paragraphs[p] + "\n", t.Decode(actual.AsSpan(start, i - start)));
            start = i; p++;
        }
        Assert.Equal(paragraphs.Length, p);
    }
}
