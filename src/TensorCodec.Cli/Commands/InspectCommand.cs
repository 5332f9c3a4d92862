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

            WriteText(AnsiConsole.Console, report);
            return 0;
        });
        return cmd;
    }

    /// <summary>Rows the text table shows; the rest are summed in one line (--json lists every tensor).
    /// More than any real model has, few enough that a crafted 200,000-tensor header prints in bounded time.</summary>
    internal const int MaxTableRows = 1000;
    /// <summary>Dimensions of a shape the table shows before "… (N dims)".</summary>
    internal const int MaxShapeDims = 8;
    /// <summary>Characters of a tensor name or metadata key the text shows before "…".</summary>
    internal const int MaxNameChars = 120;

    /// <summary>The text report: a header, up to <see cref="MaxTableRows"/> table rows, and the totals.</summary>
    internal static void WriteText(IAnsiConsole console, FileReport report)
    {
        string path = report.Path;
        console.MarkupLine($"[bold]{Markup.Escape(path)}[/]: {report.Format}, {CliCommon.Bytes(report.FileBytes)}, {report.Tensors.Count} tensors, {report.TotalValues:N0} values");
        foreach (var (k, v) in report.Metadata.Take(24))
            console.MarkupLine($"  [grey]{Markup.Escape(Cut(k, MaxNameChars))}[/] = {Markup.Escape(Cut(v, 100))}");
        var table = new Table().Border(TableBorder.Simple);
        // Entropies are per chunk (each chunk's own histogram, as each chunk has its own code table), summed per tensor.
        // A sharded model says which shard holds each tensor (the column is absent for one file).
        bool sharded = report.Tensors.Any(t => t.Shard is not null);
        table.AddColumns("tensor", "dtype", "shape", "bytes", "exp H0 (bits/v)", "exp H1 (bits/v)", "H0 bound (bits/v)", "coded (bits/v)");
        foreach (var c in table.Columns.Skip(3)) c.RightAligned();
        if (sharded) table.AddColumn("shard");
        foreach (var t in report.Tensors.Take(MaxTableRows))
        {
            var cells = new List<string>
            {
                Markup.Escape(Cut(t.Name, MaxNameChars)), t.DType, Markup.Escape(ShapeText(t.Shape)), CliCommon.Bytes(t.RawBytes),
                t.ExponentEntropyBitsPerValue > 0 ? $"{t.ExponentEntropyBitsPerValue:0.000}" : "-",
                t.ExponentEntropyBitsPerValue > 0 ? $"{t.ExponentOrder1EntropyBitsPerValue:0.000}" : "-",
                $"{t.EntropyBoundBitsPerValue:0.000}", $"{t.BitsPerValue:0.000}",
            };
            if (sharded) cells.Add(Markup.Escape(Cut(Path.GetFileName(t.Shard ?? ""), MaxNameChars)));
            table.AddRow(cells.ToArray());
        }
        console.Write(table);
        if (report.Tensors.Count > MaxTableRows)
        {
            var rest = report.Tensors.Skip(MaxTableRows).ToList();
            console.MarkupLine($"… {rest.Count:N0} more tensors not shown ({Sum(rest, t => t.Values, path, "values"):N0} values, {CliCommon.Bytes(Sum(rest, t => t.RawBytes, path, "bytes"))}); " +
                $"[bold]tcodec inspect {Markup.Escape(path)} --json[/] lists every tensor");
        }
        long encoded = Sum(report.Tensors, t => t.EncodedBytes, path, "encoded_bytes");
        long raw = Sum(report.Tensors, t => t.RawBytes, path, "raw_bytes");
        console.MarkupLine($"tensor data: {CliCommon.Bytes(raw)} → {CliCommon.Bytes(encoded)} coded ({(raw == 0 ? 100 : 100.0 * encoded / raw):0.00}%); whole file as .tcz: {CliCommon.Bytes(report.EncodedBytes)}");
        var floats = report.Tensors.Where(t => t.ExponentCodedBitsPerValue > 0).ToList();
        long floatValues = Sum(floats, t => t.Values, path, "values");
        if (floatValues > 0)
        {
            double Mean(Func<TensorReportRow, double> f) => floats.Sum(t => f(t) * t.Values) / floatValues;
            console.MarkupLine($"exponent stream over {floatValues:N0} float values: H0 {Mean(t => t.ExponentEntropyBitsPerValue):0.000}, H1 {Mean(t => t.ExponentOrder1EntropyBitsPerValue):0.000}, " +
                $"coded {Mean(t => t.ExponentCodedBitsPerValue):0.000} bits/value (value-weighted mean of the per-tensor columns, each chunk measured with its own histogram; not one histogram pooled over the file)");
        }
        if (report.Verified == false)
            console.MarkupLine($"note: not verified (inspect checks the index and tensor chunks only); [bold]tcodec verify {Markup.Escape(path)}[/] checks everything");
    }

    static string Cut(string s, int max) => s.Length > max ? s[..max] + "…" : s;

    /// <summary>A shape as "[a, b, c]"; past <see cref="MaxShapeDims"/> dimensions, the first ones and the rank.</summary>
    internal static string ShapeText(long[] shape) => shape.Length <= MaxShapeDims
        ? "[" + string.Join(", ", shape) + "]"
        : "[" + string.Join(", ", shape.Take(MaxShapeDims)) + $", … ({shape.Length:N0} dims)]";

    /// <summary>A checked sum: a crafted file's totals fail naming the column instead of wrapping or crashing.</summary>
    static long Sum(IEnumerable<TensorReportRow> rows, Func<TensorReportRow, long> f, string path, string field)
    {
        long total = 0;
        foreach (var r in rows)
        {
            try { total = checked(total + f(r)); }
            catch (OverflowException) { throw new InvalidDataException($"{path}: the tensors' {field} overflow a 64-bit sum at tensor '{Cut(r.Name, MaxNameChars)}'"); }
        }
        return total;
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
    }, report.Verified is null ? new { } : new { verified = report.Verified }); // a .tcz's inspect does not decode every byte
}
