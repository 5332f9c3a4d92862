using System.CommandLine;
using System.Text.Json;
using TensorCodec.Tokenizers;
using System.Text.Json.Serialization;
using Spectre.Console;

namespace TensorCodec.Cli.Commands;

/// <summary>Options, error handling and output helpers shared by every command.</summary>
static class CliCommon
{
    public static Option<int> Threads() => new("--threads", "-T")
    {
        Description = "Worker threads (0 = all cores)",
        DefaultValueFactory = _ => 1,
    };
    public static Option<bool> Force() => new("--force", "-f") { Description = "Overwrite the output if it exists" };
    public static Option<bool> Json() => new("--json") { Description = "Machine-readable JSON on stdout" };
    public static Option<string?> Output() => new("--output", "-o") { Description = "Output file" };

    /// <summary>
    /// Refuses an output whose name says another format than the command writes (<c>quantize -o x.safetensors</c>
    /// would hold GGUF bytes): it must end in <paramref name="extension"/>, or be a folder when
    /// <paramref name="folderAllowed"/>; a device or pipe (<c>/dev/null</c>) takes any name.
    /// </summary>
    public static void CheckOutputName(string command, string? output, string extension, bool folderAllowed = false)
    {
        if (output is null || output.EndsWith(extension, StringComparison.OrdinalIgnoreCase) || TensorCodec.Containers.AtomicFileWriter.IsDeviceOrPipe(output)) return;
        if (folderAllowed && (Directory.Exists(output) || (Path.GetExtension(Path.TrimEndingDirectorySeparator(output)).Length == 0 && !File.Exists(output)))) return;
        throw new ArgumentException($"{output}: {command} writes {extension} files; name the output *{extension}{(folderAllowed ? " or a folder" : "")}");
    }

    public static int ResolveThreads(int t) => t <= 0 ? Environment.ProcessorCount : t;

    /// <summary>JSON on stdout, with docs/JSON.md's number rules (<see cref="JsonOutput"/>).</summary>
    public static void WriteJson<T>(T value) => WriteJson(value, Console.Out);

    /// <summary>JSON to <paramref name="writer"/> (stderr when stdout carries a command's data).</summary>
    public static void WriteJson<T>(T value, TextWriter writer) => writer.WriteLine(JsonOutput.Serialize(value));

    /// <summary>
    /// The tokenizer a command that takes --text uses: <paramref name="tokenizerPath"/> (--tokenizer) when given,
    /// else the model's own (<see cref="TokenizerLoader.Locate"/>).
    /// </summary>
    public static ITextTokenizer ResolveTokenizer(string? tokenizerPath, string modelPath)
    {
        tokenizerPath ??= TokenizerLoader.Locate(modelPath)
            ?? throw new ArgumentException($"{modelPath}: no tokenizer found (no vocabulary in the GGUF, no tokenizer.json or tokenizer.bin beside it); pass --tokenizer");
        return TokenizerLoader.Load(tokenizerPath);
    }

    /// <summary>Failures that are the input's or the environment's, reported as one line; anything else is a bug and propagates.</summary>
    public static bool IsUserError(Exception e) =>
        e is IOException or InvalidDataException or UnauthorizedAccessException or KeyNotFoundException or ArgumentException or NotSupportedException;

    /// <summary>Runs a command body: any failure becomes one clear line on stderr and exit code 1.</summary>
    public static void SetGuardedAction(this Command command, Func<ParseResult, CancellationToken, int> body) =>
        command.SetAction((parse, ct) =>
        {
            try { return Task.FromResult(body(parse, ct)); }
            catch (OperationCanceledException)
            {
                Interrupts.Announce("interrupted; no output was written");
                return Task.FromResult(130);
            }
            catch (Exception e) when (IsUserError(e))
            {
                Console.Error.WriteLine($"tcodec: error: {OneLine(e.Message)}");
                return Task.FromResult(1);
            }
        });

    /// <summary>Longest error line printed: enough for any path, field and reason; a message that lists a
    /// hostile input (a rank-10,000 shape) is cut in the middle instead of flooding the terminal.</summary>
    internal const int MaxErrorChars = 600;

    /// <summary>A message as one line of at most <see cref="MaxErrorChars"/> characters: line breaks become
    /// spaces, and the middle of a longer message is elided (its start names the file, its end the reason).</summary>
    internal static string OneLine(string message)
    {
        var line = message.ReplaceLineEndings(" ");
        if (line.Length <= MaxErrorChars) return line;
        const int tail = 150, marker = 42; // room for " … (2,147,483,647 characters omitted) … "
        int head = MaxErrorChars - tail - marker;
        return string.Concat(line.AsSpan(0, head), $" … ({line.Length - head - tail:N0} characters omitted) … ", line.AsSpan(line.Length - tail));
    }

    /// <summary>Shows a progress bar on an interactive terminal; runs silently otherwise.</summary>
    public static T WithProgress<T>(bool quiet, string label, long total, Func<IProgress<long>?, T> work)
    {
        if (quiet || !AnsiConsole.Profile.Capabilities.Interactive || total <= 0) return work(null);
        T result = default!;
        AnsiConsole.Progress()
            .AutoClear(true)
            .Columns(new TaskDescriptionColumn(), new ProgressBarColumn(), new PercentageColumn(), new TransferSpeedColumn(), new RemainingTimeColumn())
            .Start(ctx =>
            {
                var task = ctx.AddTask(Markup.Escape(label), maxValue: total);
                result = work(new Reporter(task));
                task.Value = total;
            });
        return result;
    }

    sealed class Reporter(ProgressTask task) : IProgress<long>
    {
        public void Report(long value) => task.Value = value;
    }

    /// <summary>An input's length for the progress bar; a missing path is an error here, while a
    /// directory or special file reports 0 and is refused by the library, which says what it is.</summary>
    public static long InputLength(string path)
    {
        var info = new FileInfo(path);
        if (!info.Exists && !Directory.Exists(path)) throw new FileNotFoundException($"{path}: no such file");
        return info.Exists ? info.Length : 0;
    }

    public static string Bytes(long n) => n switch
    {
        >= 1L << 30 => $"{n / (double)(1L << 30):0.00} GiB",
        >= 1L << 20 => $"{n / (double)(1L << 20):0.00} MiB",
        >= 1L << 10 => $"{n / 1024.0:0.0} KiB",
        _ => $"{n} B",
    };
}
