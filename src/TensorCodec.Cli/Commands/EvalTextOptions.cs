using System.CommandLine;
using TensorCodec.Eval;

namespace TensorCodec.Cli.Commands;

/// <summary>The evaluation-text options eval and sweep share: --text with --tokenizer, or --tokens; then --split.</summary>
sealed class EvalTextOptions
{
    public Option<string?> Text { get; } = new("--text") { Description = "Text file, tokenized paragraph by paragraph (BOS + paragraph + \"\\n\")" };
    public Option<string?> Tokenizer { get; } = new("--tokenizer") { Description = "Tokenizer for --text (default: the model's own, see tcodec tokenize): GGUF, tokenizer.json, model folder, or llama2.c tokenizer.bin" };
    public Option<string?> Tokens { get; } = new("--tokens") { Description = "Token ids: raw uint16 file (.u16) or comma-separated (.csv)" };
    public Option<TokenSplit> Split { get; } = new("--split") { Description = "Part of the tokens to evaluate: all, train, or val (the last n/20 tokens)", DefaultValueFactory = _ => TokenSplit.All };

    /// <summary>The paths the options name, as docs/JSON.md's <c>text</c>, <c>tokenizer</c> and <c>tokens_file</c> (null when not given).</summary>
    public object JsonPaths(ParseResult p) => new { text = p.GetValue(Text), tokenizer = p.GetValue(Tokenizer), tokens_file = p.GetValue(Tokens) };

    /// <summary>The selected split of the token ids the options name.</summary>
    public ReadOnlyMemory<int> Read(ParseResult p, string modelPath)
    {
        string? textPath = p.GetValue(Text), tokPath = p.GetValue(Tokenizer), tokensPath = p.GetValue(Tokens);
        if ((textPath is null) == (tokensPath is null))
            throw new ArgumentException("give either --tokens FILE or --text FILE");
        int[] all = tokensPath is not null
            ? EvalData.ReadTokens(tokensPath)
            : EvalData.Tokenize(textPath!, CliCommon.ResolveTokenizer(tokPath, modelPath));
        return EvalData.Split(all, p.GetValue(Split));
    }
}
