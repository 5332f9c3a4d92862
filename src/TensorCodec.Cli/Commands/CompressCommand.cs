using System.CommandLine;
using Spectre.Console;
using TensorCodec.Containers;
using TensorCodec.Containers.Tcz;

namespace TensorCodec.Cli.Commands;

static class CompressCommand
{
    public static Command Create() => FileFlags.CreateCommand("compress",
        "Compress files losslessly into .tcz (default output: INPUT.tcz; standard input goes to standard output)",
        "Files to compress (safetensors, GGUF, llama2.c, or any file; a model folder, each shard to its own .tcz; - for standard input)", FileOp.Compress);

    /// <summary>Compresses one input; returns its JSON report.</summary>
    internal static object Run(FileFlags.Job job, CancellationToken ct)
    {
        var s = job.S;
        if ((s.Reference is not null || s.OptimizerBits != 0) && (job.FromStdin || FolderJob.Applies(job)))
            throw new ArgumentException($"{job.Input}: --ref and --optimizer-bits take a tensor file, not {(job.FromStdin ? "standard input" : "a folder")}");
        if (FolderJob.Applies(job)) return FolderJob.Run(job, compress: true, ct);
        string inPath = job.Input;
        string outPath = job.OutputFor(job.FromStdin ? null : inPath + ".tcz", "standard input has no name to derive an output name from; use -o FILE or -c");
        if (outPath == FileFlags.StdStream && !Console.IsOutputRedirected)
            throw new IOException($"{inPath}: refusing to write compressed data to a terminal; redirect standard output or use -o");
        var stamp = job.FromStdin ? default : FileFlags.Job.Stamp(inPath);
        var options = new TczCompressOptions
        {
            Threads = s.Threads,
            ChunkSize = s.ChunkSize,
            Codec = Levels.Codec(s.Level),
            Cancellation = ct,
            CollectStatistics = s.Verbose,
            Reference = s.Reference,
            OptimizerBits = s.OptimizerBits,
            DeltaLossy = s.DeltaLossy,
            OptimizerPatterns = s.OptimizerPatterns,
        };
        TczCompressResult result;
        if (job.FromStdin)
        {
            if (!Console.IsInputRedirected)
                throw new IOException("stdin: refusing to read from a terminal; pipe data in or name a file");
            // A pipe has no length and cannot be read twice: it is coded as it arrives, as opaque bytes.
            using var stdin = Console.OpenStandardInput(1 << 20);
            if (outPath == FileFlags.StdStream)
            {
                using var stdout = Console.OpenStandardOutput();
                result = TczWriter.CompressStream(stdin, "stdin", stdout, options);
            }
            else
            {
                using var output = new AtomicFileWriter(outPath, s.Force);
                result = TczWriter.CompressStream(stdin, "stdin", output.Stream, options);
                output.Commit();
            }
            job.Note("standard input is stored as opaque bytes (byte-exact, but not parsed as safetensors/GGUF/llama2.c: compress the file itself to code its tensors)");
        }
        else
        {
            long inputLength = CliCommon.InputLength(inPath);
            result = CliCommon.WithProgress(job.NoProgress, "compress " + Path.GetFileName(inPath), inputLength, progress =>
            {
                var withProgress = new TczCompressOptions
                {
                    Threads = options.Threads, ChunkSize = options.ChunkSize, Codec = options.Codec,
                    Cancellation = ct, CollectStatistics = options.CollectStatistics, Progress = progress,
                    Reference = options.Reference, OptimizerBits = options.OptimizerBits, OptimizerPatterns = options.OptimizerPatterns, DeltaLossy = options.DeltaLossy,
                };
                if (outPath != FileFlags.StdStream) return TczWriter.CompressFile(inPath, outPath, s.Force, withProgress);
                var layout = TensorFileReader.Open(inPath, strict: false);
                using var stdout = Console.OpenStandardOutput();
                return TczWriter.Compress(inPath, layout, stdout, withProgress);
            });
            if (result.OpaqueReason is not null)
                job.Note($"stored as opaque bytes (byte-exact), not parsed: {result.OpaqueReason}");
        }

        long values = result.Segments.Where(x => x.Segment.Kind == TczSegmentKind.Tensor).Sum(x => x.Segment.ElementCount);
        int tensors = result.Segments.Count(x => x.Segment.Kind == TczSegmentKind.Tensor);
        string shownIn = job.FromStdin ? "stdin" : inPath, shownOut = outPath == FileFlags.StdStream ? "stdout" : outPath;
        job.Summary($"{Markup.Escape(shownIn)} ({result.Format}) : {CliCommon.Bytes(result.OriginalBytes)} → {CliCommon.Bytes(result.CompressedBytes)} " +
            $"([bold]{100 * result.Ratio:0.00}%[/]{(values > 0 ? $", {result.CompressedBytes * 8.0 / values:0.000} bits/value" : "")}) ==> {Markup.Escape(shownOut)}");
        if (result.Reference is { } rf)
            job.Note(DecompressCommand.Describe(rf));
        double seconds = job.ElapsedSeconds;
        job.Detail($"level {s.Level} (zstd level {options.Codec.ZstdLevel} for opaque/integer/quantized bytes), chunk size {CliCommon.Bytes(options.ChunkSize)}, {s.Threads} thread(s), " +
            $"{seconds:0.000} s, {result.OriginalBytes / 1e6 / Math.Max(seconds, 1e-9):0.0} MB/s");
        if (s.Verbose)
            foreach (var st in result.Total.Streams)
                job.Detail($"  {st.Name,-18} {CliCommon.Bytes(st.RawBytes),10} → {CliCommon.Bytes(st.EncodedBytes),10} ({100.0 * st.EncodedBytes / Math.Max(1, st.RawBytes):0.0}%)  {st.Method}");

        bool removed = job.RemoveInput(outPath, () =>
        {
            using var reader = TczReader.Open(outPath);
            if (s.Reference is not null && reader.Reference is { Tensors: > 0 }) reader.AttachReference(s.Reference);
            reader.DecompressTo(null, s.Threads, null, ct);
            if (reader.Index.OriginalLength != stamp.Item1)
                throw new TensorFormatException(outPath, null, "original_length", $"holds {reader.Index.OriginalLength} bytes, the input has {stamp.Item1}");
        }, stamp);

        return DecompressCommand.WithReference(new
        {
            command = "compress",
            input = inPath,
            output = outPath,
            ok = true,
            format = result.Format.ToString(),
            original_bytes = result.OriginalBytes,
            compressed_bytes = result.CompressedBytes,
            ratio = result.Ratio,
            tensors,
            values,
            bits_per_value = values == 0 ? 0 : result.CompressedBytes * 8.0 / values,
            level = s.Level,
            chunk_size_bytes = options.ChunkSize,
            opaque_reason = result.OpaqueReason,
            seconds,
            input_removed = removed,
        }, result.Reference);
    }
}
