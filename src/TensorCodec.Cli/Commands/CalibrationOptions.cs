using System.CommandLine;
using TensorCodec.Engine;
using TensorCodec.Eval;
using TensorCodec.Quantization;

namespace TensorCodec.Cli.Commands;

/// <summary>quantize's --method and the calibration options GPTQ (and --method imatrix without --imatrix) read.</summary>
sealed class CalibrationOptions
{
    public Option<string?> Method { get; } = new("--method")
    {
        Description = "rtn: llama-quantize's exact bytes (the default; importance weights only from --imatrix); imatrix: the same quantizers with importance " +
            "weights from --imatrix or computed from --calibration; gptq: GPTQ error-compensating rounding into the same ggml blocks, from --calibration",
    };
    public Option<string?> Calibration { get; } = new("--calibration") { Description = "Calibration data: token ids (.u16 raw uint16, .csv) or a text file (tokenized as llama-imatrix does: the whole file as one string, BOS over each chunk's first token)" };
    public Option<int> Ctx { get; } = new("--calibration-ctx") { Description = "Tokens per calibration chunk", DefaultValueFactory = _ => 128 };
    public Option<int> Chunks { get; } = new("--calibration-chunks") { Description = "Use at most N calibration chunks (0 = all)", DefaultValueFactory = _ => 64 };
    public Option<TokenSplit> Split { get; } = new("--calibration-split") { Description = "Part of the calibration tokens to use: all, train, or val (the last n/20 tokens)", DefaultValueFactory = _ => TokenSplit.All };

    public IEnumerable<Option> All => [Method, Calibration, Ctx, Chunks, Split];

    public static QuantMethod ParseMethod(string? s) => s?.ToLowerInvariant() switch
    {
        null or "rtn" => QuantMethod.Rtn,
        "imatrix" => QuantMethod.Imatrix,
        "gptq" => QuantMethod.Gptq,
        _ => throw new ArgumentException($"--method {s}: use rtn, imatrix or gptq"),
    };

    /// <summary>The calibration run, or null when no --calibration was given or nothing reads it (the method, or a
    /// <paramref name="budget"/> run's damage prediction, which also needs H). The returned model must stay loaded while
    /// quantizing (layer-by-layer H re-runs it).</summary>
    public (LlamaModel Model, CalibrationStats Stats, ReadOnlyMemory<int> Tokens)? Build(ParseResult p, string modelPath, string? configPath, string? tokenizerPath, int threads,
        CancellationToken ct, bool budget = false)
    {
        var method = ParseMethod(p.GetValue(Method));
        if (p.GetValue(Calibration) is not string path || (method == QuantMethod.Rtn && !budget)) return null;
        string ext = Path.GetExtension(path);
        bool ids = ext.Equals(".u16", StringComparison.OrdinalIgnoreCase) || ext.Equals(".csv", StringComparison.OrdinalIgnoreCase);
        // Text is read as `tcodec imatrix` and llama-imatrix read it: one string, BOS over each window's first token.
        var tokens = ids
            ? EvalData.Split(EvalData.ReadTokens(path), p.GetValue(Split))
            : EvalData.TextWindows(path, CliCommon.ResolveTokenizer(tokenizerPath, modelPath), p.GetValue(Split), p.GetValue(Ctx));
        var model = LlamaModel.Load(modelPath, new LlamaLoadOptions { ConfigPath = configPath });
        try
        {
            var options = new ImatrixOptions { Ctx = p.GetValue(Ctx), MaxChunks = p.GetValue(Chunks), Threads = threads };
            return (model, new CalibrationStats(model, tokens.Span, options, path, hessian: method == QuantMethod.Gptq || budget, ct), tokens);
        }
        catch
        {
            model.Dispose();
            throw;
        }
    }
}
