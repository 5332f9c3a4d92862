using System.CommandLine;
using Spectre.Console;
using TensorCodec.Containers.Tcz;

namespace TensorCodec.Cli.Commands;

static class CompressCommand
{
    public static Command Create()
    {
        var input = new Argument<string>("input") { Description = "File to compress (safetensors, GGUF, llama2.c, or any file)" };
        var output = CliCommon.Output();
        var threads = CliCommon.Threads();
        var force = CliCommon.Force();
        var json = CliCommon.Json();
        var chunk = new Option<int>("--chunk-size") { Description = "Chunk size in bytes", DefaultValueFactory = _ => TczConstants.DefaultChunkSize, Hidden = true };
        var cmd = new Command("compress", "Compress a file losslessly into .tcz (default output: INPUT.tcz)") { input, output, threads, force, json, chunk };
        cmd.SetGuardedAction((p, ct) =>
        {
            string inPath = p.GetValue(input)!;
            string outPath = p.GetValue(output) ?? inPath + ".tcz";
            bool asJson = p.GetValue(json);
            long inputLength = CliCommon.InputLength(inPath);
            var result = CliCommon.WithProgress(asJson, "compress " + Path.GetFileName(inPath), inputLength, progress =>
                TczWriter.CompressFile(inPath, outPath, p.GetValue(force), new TczCompressOptions
                {
                    Threads = CliCommon.ResolveThreads(p.GetValue(threads)),
                    ChunkSize = p.GetValue(chunk),
                    Progress = progress,
                    Cancellation = ct,
                }));
            if (result.OpaqueReason is not null)
                Console.Error.WriteLine($"tcodec: note: stored as opaque bytes (byte-exact), not parsed: {result.OpaqueReason}");
            long values = result.Segments.Where(s => s.Segment.Kind == TczSegmentKind.Tensor).Sum(s => s.Segment.ElementCount);
            if (asJson)
            {
                CliCommon.WriteJson(new
                {
                    input = inPath, output = outPath, format = result.Format.ToString(),
                    original_bytes = result.OriginalBytes, compressed_bytes = result.CompressedBytes,
                    ratio = result.Ratio, tensors = result.Segments.Count(s => s.Segment.Kind == TczSegmentKind.Tensor),
                    values, bits_per_value = values == 0 ? 0 : result.CompressedBytes * 8.0 / values,
                });
            }
            else
            {
                AnsiConsole.MarkupLine($"{Markup.Escape(inPath)} ({result.Format}) : {CliCommon.Bytes(result.OriginalBytes)} → {CliCommon.Bytes(result.CompressedBytes)} " +
                    $"([bold]{100 * result.Ratio:0.00}%[/]{(values > 0 ? $", {result.CompressedBytes * 8.0 / values:0.000} bits/value" : "")}) ==> {Markup.Escape(outPath)}");
            }
            return 0;
        });
        return cmd;
    }
}
