using System.CommandLine;
using System.Text.Json;
using TensorCodec.Tokenizers;

namespace TensorCodec.Cli.Commands;

/// <summary><c>tcodec tokenize</c>: a text's token ids by the model's own tokenizer.</summary>
static class TokenizeCommand
{
    public static Command Create()
    {
        var model = new Argument<string>("model") { Description = "GGUF (its vocabulary), model folder, tokenizer.json, or llama2.c tokenizer.bin" };
        var text = new Option<string?>("--text") { Description = "The text to tokenize" };
        var file = new Option<string?>("--file") { Description = "Tokenize this file's text (UTF-8) instead" };
        var noBos = new Option<bool>("--no-bos") { Description = "Do not add what the model adds around a sequence (BOS/EOS)" };
        var noSpecial = new Option<bool>("--no-parse-special") { Description = "Tokenize control tokens written in the text (e.g. <s>) as plain text" };
        var ids = new Option<bool>("--ids") { Description = "Print the ids as one JSON array on one line" };
        var json = CliCommon.Json();
        json.Description = "Machine-readable JSON on stdout: the ids and their pieces";
        var cmd = new Command("tokenize", "Token ids of a text, as the model's own tokenizer gives them") { model, text, file, noBos, noSpecial, ids, json };
        cmd.SetGuardedAction((p, _) =>
        {
            string input = p.GetValue(text) is { } t
                ? p.GetValue(file) is null ? t : throw new ArgumentException("give either --text or --file, not both")
                : p.GetValue(file) is { } f ? File.ReadAllText(f) : throw new ArgumentException("give --text \"…\" or --file FILE");
            if (p.GetValue(ids) && p.GetValue(json)) throw new ArgumentException("give either --ids or --json, not both");
            string path = p.GetValue(model)!;
            var tok = TokenizerLoader.Load(Directory.Exists(path) || File.Exists(path) ? path : throw new FileNotFoundException($"{path}: no such file or folder"));
            var tokens = tok.Encode(input, addSpecial: !p.GetValue(noBos), parseSpecial: !p.GetValue(noSpecial));
            if (p.GetValue(json))
            {
                JsonOutput.Write("tokenize", new
                {
                    input = path, text_file = p.GetValue(file), tokens = tokens.Length, token_ids = tokens,
                    pieces = tokens.Select(tok.TokenText).ToArray(),
                });
            }
            else if (p.GetValue(ids)) Console.Out.WriteLine(JsonSerializer.Serialize(tokens));
            else
            {
                foreach (int id in tokens) Console.Out.WriteLine($"{id,7} {JsonSerializer.Serialize(tok.TokenText(id))}");
                Console.Out.WriteLine($"{tokens.Length} tokens");
            }
            return 0;
        });
        return cmd;
    }
}
