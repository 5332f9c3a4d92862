namespace TensorCodec.Tokenizers;

/// <summary>
/// A model's text tokenizer, whatever file it came from (GGUF <c>tokenizer.ggml.*</c>, Hugging Face
/// <c>tokenizer.json</c>, llama2.c <c>tokenizer.bin</c>); see <see cref="TokenizerLoader"/>.
/// </summary>
public interface ITextTokenizer
{
    /// <summary>Number of token ids (the model's vocabulary, added tokens included).</summary>
    int VocabSize { get; }
    /// <summary>Beginning-of-sequence id, or −1 when the tokenizer has none.</summary>
    int BosId { get; }
    /// <summary>End-of-sequence id, or −1 when the tokenizer has none.</summary>
    int EosId { get; }

    /// <summary>
    /// Token ids of <paramref name="text"/>. <paramref name="addSpecial"/> adds what the model adds
    /// around a sequence (its BOS and/or EOS flags, or tokenizer.json's post-processor);
    /// <paramref name="parseSpecial"/> lets control tokens written in the text (e.g. <c>&lt;s&gt;</c>)
    /// become their ids instead of being tokenized as text.
    /// </summary>
    int[] Encode(string text, bool addSpecial, bool parseSpecial);

    /// <summary>Text of <paramref name="ids"/>; special tokens are dropped, byte tokens rejoin into UTF-8.</summary>
    string Decode(ReadOnlySpan<int> ids);

    /// <summary>The token's string as the vocabulary stores it (e.g. <c>▁the</c>, <c>&lt;0x0A&gt;</c>).</summary>
    string TokenText(int id);
}
