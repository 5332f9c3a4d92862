using System.CommandLine;

namespace TensorCodec.Cli.Commands;

/// <summary>The root command as zstd: <c>tcodec FILE...</c> compresses, <c>-d</c> decompresses, <c>-t</c> verifies,
/// with the same flags as the subcommands; and <c>-#</c> levels (zstd's spelling) for compress.</summary>
static class RootFiles
{
    public static void Add(RootCommand root)
    {
        var flags = new FileFlags("Files to compress (or with -d/-t, .tcz files); - for standard input", minFiles: 0);
        var decompress = new Option<bool>("--decompress", "-d") { Description = "Decompress (as `tcodec decompress`)" };
        var test = new Option<bool>("--test", "-t") { Description = "Verify: decode and check every checksum, write nothing (as `tcodec verify`)" };
        // Hidden: shown, it would appear in every subcommand's usage line; the root description names it.
        flags.Files.Hidden = true;
        flags.AddTo(root, FileOp.Compress, FileOp.Decompress);
        root.Options.Add(decompress);
        root.Options.Add(test);
        root.SetGuardedAction((p, ct) =>
        {
            if (p.GetValue(decompress) && p.GetValue(test)) throw new ArgumentException("-d and -t contradict each other; give one");
            var op = p.GetValue(test) ? FileOp.Verify : p.GetValue(decompress) ? FileOp.Decompress : FileOp.Compress;
            if ((p.GetValue(flags.Files) ?? []).Length == 0)
                throw new ArgumentException("no input files: `tcodec FILE...` compresses, `tcodec -d FILE.tcz...` decompresses (- for standard input); see tcodec --help");
            if (op != FileOp.Compress && (p.GetValue(flags.Level) is not null || p.GetValue(flags.Fast) || p.GetValue(flags.Chunk) is not null))
                throw new ArgumentException("compression levels apply when compressing, not with -d or -t");
            if (op == FileOp.Verify && (p.GetValue(flags.Output) is not null || p.GetValue(flags.Stdout) || p.GetValue(flags.Remove) || p.GetValue(flags.OutputDir) is not null))
                throw new ArgumentException("-t writes nothing: it takes no -o, -c, --output-dir-flat or --rm");
            return flags.Run(p, op, ct);
        });
    }

    /// <summary>
    /// zstd writes levels as <c>-1</c> … <c>-19</c>; System.CommandLine has no numeric options, so for the root
    /// command and <c>compress</c> such a token becomes <c>--level N</c> (not when it is another option's value,
    /// nor after <c>--</c>). Other subcommands are left alone: their negative numbers stay numbers.
    /// </summary>
    public static string[] RewriteLevels(string[] args, RootCommand root)
    {
        var others = root.Subcommands.Where(c => c.Name != "compress").Select(c => c.Name).ToHashSet();
        if (args.Length > 0 && others.Contains(args[0])) return args;
        string[] takesValue = ["-o", "--output", "-T", "--threads", "--chunk-size", "--level", "--output-dir-flat"];
        var result = new List<string>(args.Length + 1);
        bool literal = false;
        for (int i = 0; i < args.Length; i++)
        {
            string a = args[i];
            if (a == "--") literal = true;
            bool isValue = i > 0 && takesValue.Contains(args[i - 1]);
            if (!literal && !isValue && a.Length >= 2 && a[0] == '-' && a[1..].All(char.IsAsciiDigit) && a.Length <= 4)
            {
                result.Add("--level");
                result.Add(a[1..]);
            }
            else result.Add(a);
        }
        return [.. result];
    }
}
