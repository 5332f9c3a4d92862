using System.CommandLine;
using TensorCodec.Eval;

namespace TensorCodec.Cli.Commands;

/// <summary>The evaluation-text options eval and sweep share: --text with --tokenizer, or --tokens; then --split.</summary>
sealed class EvalTextOptions
{
    public Option<string?> Text { get; } = new("--text") { Description = "Text file, tokenized as llama-perplexity does: the whole file as one string (BOS first), BOS written over each window's first token" };
    public Option<bool> Paragraphs { get; } = new("--text-paragraphs") { Description = "Tokenize --text paragraph by paragraph instead (BOS + paragraph + \"\\n\", how shakespeare.tok1024.u16 was made); windows are fed unchanged" };
    public Option<string?> Tokenizer { get; } = new("--tokenizer") { Description = "Tokenizer for --text (default: the model's own, see tcodec tokenize): GGUF, tokenizer.json, model folder, or llama2.c tokenizer.bin" };
    public Option<string?> Tokens { get; } = new("--tokens") { Description = "Token ids: raw uint16 file (.u16) or comma-separated (.csv)" };
    public Option<TokenSplit> Split { get; } = new("--split") { Description = "Part of the tokens to evaluate: all, train, or val (the last n/20 tokens)", DefaultValueFactory = _ => TokenSplit.All };

    /// <summary>The paths the options name, as docs/JSON.md's <c>text</c>, <c>tokenizer</c> and <c>tokens_file</c> (null when not given).</summary>
    public object JsonPaths(ParseResult p) => new { text = p.GetValue(Text), tokenizer = p.GetValue(Tokenizer), tokens_file = p.GetValue(Tokens) };

    /// <summary>docs/JSON.md's <c>text_mode</c>: "llama-perplexity", "paragraphs", or null for --tokens.</summary>
    public string? TextMode(ParseResult p) => p.GetValue(Text) is null ? null : p.GetValue(Paragraphs) ? "paragraphs" : "llama-perplexity";

    /// <summary>
    /// The selected split of the token ids the options name, as the windows of <paramref name="ctx"/> will
    /// be fed: in the default --text mode each window's first token is replaced by BOS (llama-perplexity).
    /// </summary>
    public ReadOnlyMemory<int> Read(ParseResult p, string modelPath, int ctx)
    {
        string? textPath = p.GetValue(Text), tokPath = p.GetValue(Tokenizer), tokensPath = p.GetValue(Tokens);
        if ((textPath is null) == (tokensPath is null))
            throw new ArgumentException("give either --tokens FILE or --text FILE");
        if (tokensPath is not null && p.GetValue(Paragraphs))
            throw new ArgumentException("--text-paragraphs applies to --text, not --tokens");
        if (tokensPath is not null) return EvalData.Split(EvalData.ReadTokens(tokensPath), p.GetValue(Split));
        var tokenizer = CliCommon.ResolveTokenizer(tokPath, modelPath);
        if (p.GetValue(Paragraphs)) return EvalData.Split(EvalData.Tokenize(textPath!, tokenizer), p.GetValue(Split));
        return EvalData.TextWindows(textPath!, tokenizer, p.GetValue(Split), ctx);
    }
}
