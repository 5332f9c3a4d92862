using System.CommandLine;
using Spectre.Console;
using TensorCodec.Containers.Tcz;

namespace TensorCodec.Cli.Commands;

static class InspectCommand
{
    public static Command Create()
    {
        var input = new Argument<string>("input") { Description = "safetensors, GGUF, llama2.c or .tcz file, or a Hugging Face model folder / model.safetensors.index.json (every shard)" };
        var threads = CliCommon.Threads();
        var json = CliCommon.Json();
        var cmd = new Command("inspect", "List tensors with dtype, shape, bytes, exponent entropy and achieved bits per value") { input, threads, json };
        cmd.SetGuardedAction((p, ct) =>
        {
            string path = p.GetValue(input)!;
            bool asJson = p.GetValue(json);
            long size = CliCommon.InputLength(path);
            var report = CliCommon.WithProgress(asJson, "inspect " + Path.GetFileName(path), size,
                progress => TczInspector.Inspect(path, CliCommon.ResolveThreads(p.GetValue(threads)), progress));
            if (asJson) { WriteJson(report); return 0; }

            AnsiConsole.MarkupLine($"[bold]{Markup.Escape(path)}[/]: {report.Format}, {CliCommon.Bytes(report.FileBytes)}, {report.Tensors.Count} tensors, {report.TotalValues:N0} values");
            foreach (var (k, v) in report.Metadata.Take(24))
                AnsiConsole.MarkupLine($"  [grey]{Markup.Escape(k)}[/] = {Markup.Escape(v.Length > 100 ? v[..100] + "…" : v)}");
            var table = new Table().Border(TableBorder.Simple);
            // Entropies are per chunk (each chunk's own histogram, as each chunk has its own code table), summed per tensor.
            table.AddColumns("tensor", "dtype", "shape", "bytes", "exp H0 (bits/v)", "exp H1 (bits/v)", "H0 bound (bits/v)", "coded (bits/v)");
            foreach (var c in table.Columns.Skip(3)) c.RightAligned();
            foreach (var t in report.Tensors)
                table.AddRow(Markup.Escape(t.Name), t.DType, Markup.Escape("[" + string.Join(", ", t.Shape) + "]"), CliCommon.Bytes(t.RawBytes),
                    t.ExponentEntropyBitsPerValue > 0 ? $"{t.ExponentEntropyBitsPerValue:0.000}" : "-",
                    t.ExponentEntropyBitsPerValue > 0 ? $"{t.ExponentOrder1EntropyBitsPerValue:0.000}" : "-",
                    $"{t.EntropyBoundBitsPerValue:0.000}", $"{t.BitsPerValue:0.000}");
            AnsiConsole.Write(table);
            long encoded = report.Tensors.Sum(t => t.EncodedBytes);
            long raw = report.Tensors.Sum(t => t.RawBytes);
            AnsiConsole.MarkupLine($"tensor data: {CliCommon.Bytes(raw)} → {CliCommon.Bytes(encoded)} coded ({(raw == 0 ? 100 : 100.0 * encoded / raw):0.00}%); whole file as .tcz: {CliCommon.Bytes(report.EncodedBytes)}");
            var floats = report.Tensors.Where(t => t.ExponentCodedBitsPerValue > 0).ToList();
            long floatValues = floats.Sum(t => t.Values);
            if (floatValues > 0)
            {
                double Mean(Func<TensorReportRow, double> f) => floats.Sum(t => f(t) * t.Values) / floatValues;
                AnsiConsole.MarkupLine($"exponent stream over {floatValues:N0} float values: H0 {Mean(t => t.ExponentEntropyBitsPerValue):0.000}, H1 {Mean(t => t.ExponentOrder1EntropyBitsPerValue):0.000}, " +
                    $"coded {Mean(t => t.ExponentCodedBitsPerValue):0.000} bits/value (value-weighted mean of the per-tensor columns, each chunk measured with its own histogram; not one histogram pooled over the file)");
            }
            return 0;
        });
        return cmd;
    }

    /// <summary>The report as docs/JSON.md's <c>inspect</c> object.</summary>
    static void WriteJson(FileReport report) => JsonOutput.Write("inspect", new
    {
        input = report.Path, format = report.Format, file_bytes = report.FileBytes, original_bytes = report.OriginalBytes,
        compressed_bytes = report.EncodedBytes, tensors = report.Tensors.Count, values = report.TotalValues, metadata = report.Metadata,
        tensor_list = report.Tensors.Select(t => JsonOutput.Object(null, new
        {
            name = t.Name, dtype = JsonOutput.DType(t.DType), shape = t.Shape, values = t.Values, raw_bytes = t.RawBytes,
            compressed_bytes = t.EncodedBytes, exponent_entropy_bits_per_value = t.ExponentEntropyBitsPerValue,
            exponent_order1_entropy_bits_per_value = t.ExponentOrder1EntropyBitsPerValue,
            entropy_bound_bits_per_value = t.EntropyBoundBitsPerValue, bits_per_value = t.BitsPerValue,
            exponent_coded_bits_per_value = t.ExponentCodedBitsPerValue,
        }, t.Shard is null ? new { } : new { shard = t.Shard })), // a shard only for a sharded model
    });
}
