using System.CommandLine;
using Spectre.Console;
using TensorCodec.Formats;
using TensorCodec.Quantization;

namespace TensorCodec.Cli.Commands;

/// <summary><c>tcodec tensor quantize|dequantize|stats</c> on raw float32 rows.</summary>
static class TensorCommand
{
    static Option<string> Type() => new("--type", "-t")
    {
        Description = "Quantization type: ggml names (q4_0, q4_K, iq4_xs, mxfp4, …) or ours (nf4, fp4, int8_block, mxfp8_e4m3, ocp_mxfp4, nvfp4_16, int4_g128, llm_int8, …)",
        Required = true,
    };
    static Option<int> Row() => new("--row", "-n") { Description = "Values per row", Required = true };
    static Option<string?> Imatrix() => new("--imatrix") { Description = "Importance weights: raw float32, one per column" };
    static Option<bool> AllowNonfinite() => new("--allow-nonfinite") { Description = "Quantize NaN/Inf inputs instead of refusing them" };

    public static Command Create()
    {
        var cmd = new Command("tensor", "Quantize, dequantize and measure raw float32 tensors (rows × N, little-endian)");
        cmd.Subcommands.Add(Quantize());
        cmd.Subcommands.Add(Dequantize());
        cmd.Subcommands.Add(Stats());
        return cmd;
    }

    static Command Quantize()
    {
        var input = new Argument<string>("input") { Description = "raw float32 file" };
        var type = Type(); var row = Row(); var imatrix = Imatrix(); var allow = AllowNonfinite();
        var output = CliCommon.Output(); output.Required = true;
        var force = CliCommon.Force();
        var json = CliCommon.Json();
        var cmd = new Command("quantize", "Quantize raw float32 rows to the type's bytes") { input, type, row, imatrix, allow, output, force, json };
        cmd.SetGuardedAction((p, _) =>
        {
            var r = RawTensorTool.Quantize(p.GetValue(type)!, p.GetValue(row), p.GetValue(input)!, p.GetValue(output)!,
                p.GetValue(imatrix), p.GetValue(force), p.GetValue(allow));
            if (p.GetValue(json))
            {
                JsonOutput.Write("tensor quantize", new
                {
                    input = p.GetValue(input), output = p.GetValue(output), imatrix = p.GetValue(imatrix), dtype = JsonOutput.DType(r.Type),
                    rows = r.Rows, values = r.Values, output_bytes = r.Bytes, bits_per_value = 8.0 * r.Bytes / r.Values,
                });
                return 0;
            }
            AnsiConsole.MarkupLine($"{Markup.Escape(p.GetValue(input)!)} : {r.Rows} × {r.Values / r.Rows} → {r.Type}, {CliCommon.Bytes(r.Bytes)} ({8.0 * r.Bytes / r.Values:0.####} bits/value) ==> {Markup.Escape(p.GetValue(output)!)}");
            return 0;
        });
        return cmd;
    }

    static Command Dequantize()
    {
        var input = new Argument<string>("input") { Description = "quantized file" };
        var type = Type(); var row = Row();
        var output = CliCommon.Output(); output.Required = true;
        var force = CliCommon.Force();
        var json = CliCommon.Json();
        var cmd = new Command("dequantize", "Decode quantized bytes back to raw float32 rows") { input, type, row, output, force, json };
        cmd.SetGuardedAction((p, _) =>
        {
            var r = RawTensorTool.Dequantize(p.GetValue(type)!, p.GetValue(row), p.GetValue(input)!, p.GetValue(output)!, p.GetValue(force));
            if (p.GetValue(json))
            {
                JsonOutput.Write("tensor dequantize", new
                {
                    input = p.GetValue(input), output = p.GetValue(output), dtype = JsonOutput.DType(r.Type), rows = r.Rows, values = r.Values,
                    input_bytes = r.Bytes, output_bytes = r.Values * sizeof(float),
                });
                return 0;
            }
            AnsiConsole.MarkupLine($"{Markup.Escape(p.GetValue(input)!)} : {r.Type}, {r.Rows} × {r.Values / r.Rows} values ==> {Markup.Escape(p.GetValue(output)!)}");
            return 0;
        });
        return cmd;
    }

    static Command Stats()
    {
        var input = new Argument<string>("input") { Description = "raw float32 file" };
        var type = Type(); var row = Row(); var imatrix = Imatrix(); var allow = AllowNonfinite();
        var json = CliCommon.Json();
        var cmd = new Command("stats", "Round-trip a tensor through the type and report MSE, SQNR, max error, cosine and bits per weight") { input, type, row, imatrix, allow, json };
        cmd.SetGuardedAction((p, _) =>
        {
            var s = RawTensorTool.Stats(p.GetValue(type)!, p.GetValue(row), p.GetValue(input)!, p.GetValue(imatrix), p.GetValue(allow));
            if (p.GetValue(json))
            {
                JsonOutput.Write("tensor stats", new
                {
                    input = p.GetValue(input), imatrix = p.GetValue(imatrix), dtype = JsonOutput.DType(s.Type), values = s.Count,
                    quantized_bytes = s.EncodedBytes, bits_per_value = s.BitsPerWeight, mse = s.Mse, sqnr_db = s.SqnrDb,
                    max_abs_error = s.MaxAbsError, cosine = s.Cosine,
                });
                return 0;
            }
            var t = new Table().Border(TableBorder.Simple);
            t.AddColumns("type", "values", "bytes", "bits/weight", "MSE", "SQNR (dB)", "max |err|", "cosine");
            foreach (var c in t.Columns.Skip(1)) c.RightAligned();
            t.AddRow(s.Type, $"{s.Count:N0}", $"{s.EncodedBytes:N0}", $"{s.BitsPerWeight:0.####}", $"{s.Mse:G4}", $"{s.SqnrDb:0.00}", $"{s.MaxAbsError:G4}", $"{s.Cosine:0.000000}");
            AnsiConsole.Write(t);
            return 0;
        });
        return cmd;
    }
}
