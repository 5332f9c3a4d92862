using System.Text.Json;
using TensorCodec.Containers;

namespace TensorCodec.Tokenizers;

/// <summary>
/// Opens a model's own tokenizer from whatever holds it: a GGUF (its <c>tokenizer.ggml.*</c> keys), a
/// model folder (<c>tokenizer.json</c> with <c>tokenizer_config.json</c>, else <c>tokenizer.bin</c>), a
/// <c>tokenizer.json</c>, or llama2.c's <c>tokenizer.bin</c>. A kind of tokenizer we do not implement is
/// refused by name (<see cref="NotSupportedException"/>) rather than tokenized wrongly.
/// </summary>
public static class TokenizerLoader
{
    /// <summary>The tokenizer at <paramref name="path"/> (see the type's summary for what it may be).</summary>
    public static ITextTokenizer Load(string path)
    {
        if (Directory.Exists(path))
        {
            var json = Path.Combine(path, "tokenizer.json");
            if (File.Exists(json)) return FromTokenizerJson(json);
            var bin = Path.Combine(path, "tokenizer.bin");
            if (File.Exists(bin)) return Tokenizer.LoadLlama2c(bin);
            throw new FileNotFoundException($"{path}: the folder has no tokenizer.json or tokenizer.bin", json);
        }
        InputFile.EnsureRegular(path);
        bool gguf, jsonText;
        using (var s = File.OpenRead(path))
        {
            gguf = GgufFile.HasMagic(s);
            s.Position = 0;
            int first;
            do first = s.ReadByte(); while (first is ' ' or '\t' or '\r' or '\n' or 0xEF or 0xBB or 0xBF); // whitespace, BOM
            jsonText = first == '{';
        }
        if (gguf)
        {
            using var s = File.OpenRead(path);
            return FromGguf(GgufFile.Parse(s, path), path);
        }
        return jsonText ? FromTokenizerJson(path) : Tokenizer.LoadLlama2c(path);
    }

    /// <summary>
    /// The tokenizer for <paramref name="modelPath"/> when the user names none: the model's own
    /// (GGUF metadata, or tokenizer.json in or beside a model folder/file), else llama2.c's tokenizer.bin
    /// (or the first tok*.bin) beside it. Null when there is none.
    /// </summary>
    public static string? Locate(string modelPath)
    {
        var dir = Directory.Exists(modelPath) ? Path.GetFullPath(modelPath) : Path.GetDirectoryName(Path.GetFullPath(modelPath))!;
        if (File.Exists(modelPath))
        {
            using var s = File.OpenRead(modelPath);
            if (GgufFile.HasMagic(s) && GgufFile.Parse(s, modelPath).Find("tokenizer.ggml.model") is not null) return modelPath;
        }
        var json = Path.Combine(dir, "tokenizer.json");
        if (File.Exists(json)) return json;
        return new[] { Path.Combine(dir, "tokenizer.bin") }
            .Concat(Directory.EnumerateFiles(dir, "tok*.bin").Order(StringComparer.Ordinal))
            .FirstOrDefault(File.Exists);
    }

    /// <summary>The tokenizer in a GGUF's metadata, by <c>tokenizer.ggml.model</c>.</summary>
    public static ITextTokenizer FromGguf(GgufFile gguf, string path)
    {
        string? model = gguf.Find("tokenizer.ggml.model")?.Value as string;
        return model switch
        {
            null => throw new TensorFormatException(path, null, "tokenizer.ggml.model", "is missing: the file has no tokenizer"),
            "llama" => SpmTokenizer.FromGguf(gguf, path),
            "gpt2" => ByteLevelBpeTokenizer.FromGguf(gguf, path),
            _ => throw new NotSupportedException($"{path}: tokenizer.ggml.model '{model}' is not supported"),
        };
    }

    /// <summary>A tokenizer.json, with the tokenizer_config.json beside it when there is one.</summary>
    public static ITextTokenizer FromTokenizerJson(string path)
    {
        InputFile.EnsureRegular(path);
        JsonDocument json;
        try { json = JsonDocument.Parse(File.ReadAllBytes(path)); }
        catch (JsonException e) { throw new TensorFormatException(path, e.BytePositionInLine, "tokenizer.json", $"is not valid JSON: {e.Message}"); }
        using (json)
        {
            var cfgPath = Path.Combine(Path.GetDirectoryName(Path.GetFullPath(path))!, "tokenizer_config.json");
            using var cfg = File.Exists(cfgPath) ? JsonDocument.Parse(File.ReadAllBytes(cfgPath)) : null;
            var root = json.RootElement;
            string modelType = root.TryGetProperty("model", out var m) && m.TryGetProperty("type", out var t) ? t.GetString() ?? "?" : "?";
            if (modelType == "BPE" && IsByteLevel(root)) return ByteLevelBpeTokenizer.FromTokenizerJson(path);
            if (HfSentencePieceTokenizer.Handles(root)) return HfSentencePieceTokenizer.FromTokenizerJson(json, path, cfg);
            throw new NotSupportedException($"{path}: tokenizer.json model '{modelType}'{(modelType == "BPE" ? " without byte_fallback or ByteLevel" : "")} is not supported");
        }
    }

    /// <summary>Whether the pre-tokenizer or decoder is (or contains) ByteLevel: GPT-2's byte-to-unicode BPE.</summary>
    static bool IsByteLevel(JsonElement root) =>
        (root.TryGetProperty("pre_tokenizer", out var p) && Mentions(p, "ByteLevel")) || (root.TryGetProperty("decoder", out var d) && Mentions(d, "ByteLevel"));

    static bool Mentions(JsonElement e, string type) => e.ValueKind switch
    {
        JsonValueKind.Object => (e.TryGetProperty("type", out var t) && t.ValueKind == JsonValueKind.String && t.GetString() == type)
            || e.EnumerateObject().Any(p => Mentions(p.Value, type)),
        JsonValueKind.Array => e.EnumerateArray().Any(x => Mentions(x, type)),
        _ => false,
    };
}
