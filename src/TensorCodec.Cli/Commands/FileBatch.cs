using System.CommandLine;
using System.Diagnostics;
using Spectre.Console;
using TensorCodec.Coders;
using TensorCodec.Containers.Tcz;

namespace TensorCodec.Cli.Commands;

/// <summary>What a file command does with each input.</summary>
enum FileOp { Compress, Decompress, Verify }

/// <summary>
/// The zstd-style flags of compress, decompress, verify and the root command (<c>tcodec FILE...</c>), and the
/// loop that runs one of them over several inputs: each input goes to its own output, an error in one is
/// reported and the others still run, and the exit code is non-zero if any failed.
/// </summary>
sealed class FileFlags
{
    /// <summary>"-" means standard input (or standard output for -o).</summary>
    public const string StdStream = "-";

    public readonly Argument<string[]> Files;
    public readonly Option<string?> Output = CliCommon.Output();
    public readonly Option<string?> OutputDir = new("--output-dir-flat") { Description = "Write each output into DIR (under its default name)", HelpName = "DIR" };
    public readonly Option<bool> Stdout = new("--stdout", "-c") { Description = "Write to standard output (summaries go to stderr)" };
    public readonly Option<bool> Force = CliCommon.Force();
    public readonly Option<bool> Keep = new("--keep", "-k") { Description = "Keep the input files (the default)" };
    public readonly Option<bool> Remove = new("--rm") { Description = "Remove each input once its output is written and verified (ignored for standard output)" };
    public readonly Option<bool> Quiet = new("--quiet", "-q") { Description = "Print errors only" };
    public readonly Option<bool> Verbose = new("--verbose", "-v") { Description = "Also print timing, settings and, for compress, the coding method of every stream" };
    public readonly Option<bool> Json = CliCommon.Json();
    public readonly Option<int> Threads = CliCommon.Threads();
    public readonly Option<int?> Level = new("--level") { Description = $"Compression level 1..{Levels.Max} (also written -1 … -{Levels.Max}; default {Levels.Default})", HelpName = "N" };
    public readonly Option<bool> Fast = new("--fast") { Description = "Same as -1" };
    public readonly Option<int?> Chunk = new("--chunk-size") { Description = "Chunk size in bytes (overrides the level's)", Hidden = true };
    public readonly Option<string?> Ref = new("--ref") { Description = "Reference tensor file (e.g. the previous checkpoint, or the base of a fine-tune): compress codes matching tensors as deltas against it; decompress and verify need the same file", HelpName = "FILE" };
    public readonly Option<int?> OptimizerBits = new("--optimizer-bits") { Description = "Store optimizer moments (optimizer.*.exp_avg, optimizer.*.exp_avg_sq) blockwise quantized at 8 or 4 bits: lossy, never the default", HelpName = "8|4" };
    public readonly Option<string?> DeltaLossy = new("--delta-lossy") { Description = "With --ref: store 2-D float tensors matched in the reference as a lossy delta (bitdelta, bits:N, lowrank:R, lowrank:R+bits:N): lossy, never the default", HelpName = "METHOD" };
    public readonly Option<string[]?> OptimizerPattern = new("--optimizer-pattern") { Description = "Name glob (* = any run) of the tensors --optimizer-bits quantizes, instead of the optimizer moments; may repeat", HelpName = "GLOB" };

    public FileFlags(string filesDescription, int minFiles = 1)
    {
        Files = new Argument<string[]>("files")
        {
            Description = filesDescription,
            Arity = minFiles == 0 ? ArgumentArity.ZeroOrMore : ArgumentArity.OneOrMore,
        };
    }

    /// <summary>A subcommand that runs <paramref name="op"/> over its inputs with the flags it uses.</summary>
    public static Command CreateCommand(string name, string description, string filesDescription, FileOp op)
    {
        var flags = new FileFlags(filesDescription);
        var cmd = new Command(name, description);
        flags.AddTo(cmd, op);
        cmd.SetGuardedAction((p, ct) => flags.Run(p, op, ct));
        return cmd;
    }

    /// <summary>Adds the flags that <paramref name="modes"/> use to <paramref name="cmd"/>.</summary>
    public void AddTo(Command cmd, params FileOp[] modes)
    {
        bool writes = modes.Any(m => m != FileOp.Verify), compresses = modes.Contains(FileOp.Compress);
        cmd.Arguments.Add(Files);
        if (writes)
        {
            foreach (var o in new Option[] { Output, OutputDir, Stdout, Force, Keep, Remove }) cmd.Options.Add(o);
        }
        foreach (var o in new Option[] { Quiet, Verbose, Json, Threads }) cmd.Options.Add(o);
        if (compresses)
        {
            cmd.Options.Add(Level);
            cmd.Options.Add(Fast);
            cmd.Options.Add(Chunk);
            cmd.Options.Add(OptimizerBits);
            cmd.Options.Add(DeltaLossy);
            cmd.Options.Add(OptimizerPattern);
        }
        cmd.Options.Add(Ref);
    }

    /// <summary>Runs <paramref name="mode"/> over every input named on the command line.</summary>
    public int Run(ParseResult p, FileOp mode, CancellationToken ct)
    {
        var files = p.GetValue(Files) ?? [];
        if (files.Length == 0) throw new ArgumentException("no input files (use - for standard input); see tcodec --help");
        bool Has(Option o) => p.CommandResult.Command.Options.Contains(o);
        T Get<T>(Option<T> o, T fallback) => Has(o) ? p.GetValue(o)! : fallback;
        var s = new Settings
        {
            Mode = mode,
            Output = Get(Output, null),
            OutputDir = Get(OutputDir, null),
            ToStdout = Get(Stdout, false),
            Force = Get(Force, false),
            Remove = Get(Remove, false),
            Quiet = Get(Quiet, false),
            Verbose = Get(Verbose, false),
            Json = Get(Json, false),
            Threads = CliCommon.ResolveThreads(Get(Threads, 1)),
            Reference = Get(Ref, null),
        };
        if (s.Reference is not null && !File.Exists(s.Reference)) throw new FileNotFoundException($"{s.Reference}: reference file not found (--ref)");
        if (s.Remove && Get(Keep, false)) throw new ArgumentException("--rm and --keep contradict each other; give one");
        if (s.Quiet && s.Verbose) throw new ArgumentException("--quiet and --verbose contradict each other; give one");
        if (mode == FileOp.Compress)
        {
            int? level = Get(Level, null);
            if (Get(Fast, false))
            {
                if (level is not null && level != 1) throw new ArgumentException($"--fast is level 1; it contradicts level {level}");
                level = 1;
            }
            s.Level = level ?? Levels.Default;
            if (s.Level < 1 || s.Level > Levels.Max) throw new ArgumentException($"level {s.Level} is outside 1..{Levels.Max}");
            s.ChunkSize = Get(Chunk, null) ?? Levels.ChunkSize(s.Level);
            if (s.ChunkSize < TczConstants.MinChunkSize || s.ChunkSize > TczConstants.MaxChunkSize)
                throw new ArgumentException($"--chunk-size {s.ChunkSize} is outside {TczConstants.MinChunkSize}..{TczConstants.MaxChunkSize} bytes (the largest chunk a .tcz reader accepts)");
            s.OptimizerBits = Get(OptimizerBits, null) ?? 0;
            if (s.OptimizerBits is not (0 or 4 or 8)) throw new ArgumentException($"--optimizer-bits {s.OptimizerBits}: give 8 or 4");
            s.OptimizerPatterns = Get(OptimizerPattern, null) ?? [];
            if (s.OptimizerPatterns.Length > 0 && s.OptimizerBits == 0) throw new ArgumentException("--optimizer-pattern needs --optimizer-bits 8 or 4");
            if (Get(DeltaLossy, null) is { } lossy)
            {
                s.DeltaLossy = LossyDeltaSpec.Parse(lossy);
                if (s.Reference is null) throw new ArgumentException($"--delta-lossy {lossy} needs --ref BASE (the delta is taken against it)");
            }
        }
        if (s.Output is not null && IsStdoutPath(s.Output)) { s.Output = null; s.ToStdout = true; }
        if (s.Output is not null && (s.ToStdout || s.OutputDir is not null))
            throw new ArgumentException("-o names the output file; it cannot be combined with -c or --output-dir-flat");
        if (s.Output is not null && files.Length > 1)
            throw new ArgumentException($"-o names one output, but {files.Length} inputs were given (each input gets its own output by default; see also --output-dir-flat DIR)");
        if (s.OutputDir is not null && !Directory.Exists(s.OutputDir))
            throw new DirectoryNotFoundException($"{s.OutputDir}: output folder does not exist");
        if (mode == FileOp.Compress && files.Length > 1 && (s.ToStdout || files.Contains(StdStream)))
            throw new ArgumentException("several .tcz archives cannot share standard output (a .tcz file holds one input); compress them one per call");
        if (files.Count(f => f == StdStream) > 1) throw new ArgumentException("standard input (-) can be read only once");

        var results = new List<object>();
        int failed = 0;
        foreach (var file in files)
        {
            var job = new Job(file, s);
            try
            {
                ct.ThrowIfCancellationRequested();
                results.Add(mode switch
                {
                    FileOp.Compress => CompressCommand.Run(job, ct),
                    FileOp.Decompress => DecompressCommand.Run(job, ct),
                    _ => VerifyCommand.Run(job, ct),
                });
            }
            catch (Exception e) when (CliCommon.IsUserError(e))
            {
                failed++;
                Console.Error.WriteLine($"tcodec: error: {CliCommon.OneLine(e.Message)}");
                results.Add(new { command = CommandName(mode), input = file, ok = false, error = CliCommon.OneLine(e.Message) });
            }
            catch (OperationCanceledException) when (results.Count > failed)
            {
                // The output being written was removed; the finished ones stay, so say so.
                Interrupts.Announce($"interrupted; {results.Count - failed} finished output(s) kept, the one being written was removed");
                throw;
            }
        }
        // A single input that failed prints no JSON (docs/JSON.md: a caller never sees partial JSON); its error is on stderr.
        if (s.Json && !(files.Length == 1 && failed == 1))
        {
            // With the data on stdout, the report goes to stderr.
            var writer = s.DataOnStdout ? Console.Error : Console.Out;
            if (results.Count == 1) CliCommon.WriteJson(results[0], writer);
            else CliCommon.WriteJson(results, writer);
        }
        return failed == 0 ? 0 : 1;
    }

    static string CommandName(FileOp mode) => mode.ToString().ToLowerInvariant();

    /// <summary>Paths that are the process's own standard output: writing them as files would rename over
    /// whatever stdout is redirected to, and the summary would land in the data.</summary>
    static bool IsStdoutPath(string path) =>
        path == StdStream || (!OperatingSystem.IsWindows() && path is "/dev/stdout" or "/dev/fd/1" or "/proc/self/fd/1");

    /// <summary>The choices that apply to every input of one call.</summary>
    internal sealed class Settings
    {
        public FileOp Mode;
        public string? Output, OutputDir;
        public bool ToStdout, Force, Remove, Quiet, Verbose, Json;
        public int Threads, Level, ChunkSize, OptimizerBits;
        public LossyDeltaSpec? DeltaLossy;
        /// <summary>--ref: the reference tensor file, or null.</summary>
        public string? Reference;
        public string[] OptimizerPatterns = [];
        /// <summary>Set once any input's output is standard output: reports then go to stderr.</summary>
        public bool DataOnStdout;
    }

    /// <summary>One input of the call, with where its output goes and where its messages go.</summary>
    internal sealed class Job(string input, Settings settings)
    {
        public string Input { get; } = input;
        public Settings S { get; } = settings;
        public bool FromStdin => Input == StdStream;
        readonly Stopwatch _clock = Stopwatch.StartNew();
        public double ElapsedSeconds => _clock.Elapsed.TotalSeconds;

        /// <summary>The output path, or "-" for standard output. <paramref name="defaultName"/> gives the
        /// default output of a file input (null: it has none, which is an error naming <paramref name="why"/>).</summary>
        public string OutputFor(string? defaultName, string why)
        {
            string output;
            if (S.ToStdout) output = StdStream;
            else if (S.Output is not null) output = S.Output;
            else if (FromStdin && S.OutputDir is null) output = StdStream; // zstd: stdin goes to stdout unless told otherwise
            else
            {
                if (defaultName is null) throw new ArgumentException($"{(FromStdin ? "stdin" : Input)}: {why}");
                output = S.OutputDir is null ? defaultName : Path.Combine(S.OutputDir, Path.GetFileName(defaultName));
            }
            if (output == StdStream) S.DataOnStdout = true;
            return output;
        }

        /// <summary>Where human summaries and notes go: stderr when standard output carries data.</summary>
        public IAnsiConsole Human => S.DataOnStdout ? StderrConsole.Value : AnsiConsole.Console;

        /// <summary>A summary line (not with -q or --json).</summary>
        public void Summary(string markup)
        {
            if (!S.Quiet && !S.Json) Human.MarkupLine(markup);
        }

        /// <summary>A note on stderr (not with -q).</summary>
        public void Note(string text)
        {
            if (!S.Quiet) Console.Error.WriteLine($"tcodec: note: {text}");
        }

        /// <summary>A -v detail line, on the summary's stream (stderr with --json, whose stdout is machine-readable).</summary>
        public void Detail(string text)
        {
            if (!S.Verbose) return;
            if (S.Json || S.DataOnStdout) Console.Error.WriteLine($"tcodec: {text}");
            else AnsiConsole.Console.WriteLine($"  {text}");
        }

        /// <summary>Progress is drawn on stdout's terminal: never when data or JSON goes there.</summary>
        public bool NoProgress => S.Quiet || S.Json || S.DataOnStdout;

        /// <summary>Removes the input after --rm once <paramref name="verified"/> said the output holds it; returns
        /// whether it was removed. Never for stdin or standard output; a failed check keeps the input and is an error.</summary>
        public bool RemoveInput(string output, Action verified, (long Length, DateTime Written) before)
        {
            if (!S.Remove || FromStdin) return false;
            if (output == StdStream)
            {
                Note($"--rm ignored for {Input}: the output went to standard output, so the input is kept");
                return false;
            }
            try { verified(); }
            catch (Exception e) when (CliCommon.IsUserError(e))
            {
                throw new IOException($"{Input}: kept, not removed (--rm): {output} did not verify: {e.Message}", e);
            }
            var now = new FileInfo(Input);
            if (!now.Exists || now.Length != before.Length || now.LastWriteTimeUtc != before.Written)
                throw new IOException($"{Input}: kept, not removed (--rm): it changed while it was being processed");
            File.Delete(Input);
            Detail($"{Input}: removed (--rm), {output} verified");
            return true;
        }

        public static (long, DateTime) Stamp(string path)
        {
            var info = new FileInfo(path);
            return (info.Exists ? info.Length : 0, info.Exists ? info.LastWriteTimeUtc : default);
        }
    }

    static readonly Lazy<IAnsiConsole> StderrConsole = new(() =>
    {
        var console = AnsiConsole.Create(new AnsiConsoleSettings
        {
            Out = new AnsiConsoleOutput(Console.Error),
            ColorSystem = Environment.GetEnvironmentVariable("NO_COLOR") is { Length: > 0 } ? ColorSystemSupport.NoColors : ColorSystemSupport.Detect,
        });
        // As for stdout (Program.cs): a redirected log is not wrapped at 80 columns.
        if (Console.IsErrorRedirected) console.Profile.Width = 240;
        return console;
    });
}

/// <summary>
/// The compression levels, zstd-style -1 … -19, mapped onto the two things our coders can trade. Float
/// tensors have no effort knob: every stream already gets the cheapest of Stored/Constant/Huffman/rANS,
/// chosen exactly from its histogram. What levels change is the zstd level used for opaque bytes,
/// integers and block-quantized data, and the chunk size. See README (levels) and BENCHMARKS.md.
/// </summary>
static class Levels
{
    public const int Default = 3, Max = 19;

    /// <summary>zstd's own level for the bytes zstd codes: -N gives zstd -N.</summary>
    public static ChunkCodecOptions Codec(int level) => level == ChunkCodecOptions.Default.ZstdLevel
        ? ChunkCodecOptions.Default
        : new ChunkCodecOptions { ZstdLevel = level, GgmlFields = level >= GgmlFieldsFrom, ContextMix = level >= ContextMixFrom };

    /// <summary>The first level that also tries chunk mode 3 (adaptive binary models) on quantized GGUF blocks, next to
    /// mode 4 (the same fields with static rANS tables, every level): 0.1–0.6 % smaller than mode 4 on bard-3m's GGUFs,
    /// but it encodes and decodes at 5–20 MB/s, so the fast levels keep mode 4's speed.</summary>
    public const int GgmlFieldsFrom = 10;

    /// <summary>The first level that tries the context-mixed float transforms 12/13 on BF16/F32 tensors: about 1.3 % smaller
    /// on bard-3m BF16, but they code at a few MB/s per core (BENCHMARKS.md §1 "Context-model level"), so only the top level.</summary>
    public const int ContextMixFrom = 19;

    /// <summary>Raw bytes per chunk at a level: 1 MiB up to level 9, 4 MiB from level 10, where zstd's longer
    /// window pays (2–3 % smaller on opaque data) for about 4 times the memory per thread; float tensors gain nothing.</summary>
    public static int ChunkSize(int level) => level < 10 ? TczConstants.DefaultChunkSize : Math.Min(4 << 20, TczConstants.MaxChunkSize);
}
