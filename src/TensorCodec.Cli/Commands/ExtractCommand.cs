using System.CommandLine;
using Spectre.Console;
using TensorCodec.Quantization;

namespace TensorCodec.Cli.Commands;

/// <summary><c>tcodec extract</c>: one tensor of a file as raw bytes.</summary>
static class ExtractCommand
{
    public static Command Create()
    {
        var input = new Argument<string>("input") { Description = ".tcz, GGUF, safetensors, llama2.c checkpoint, or a Hugging Face folder or index" };
        var tensor = new Option<string>("--tensor") { Description = "Tensor name as the file stores it", Required = true };
        var output = CliCommon.Output();
        output.Description = "Output file: raw little-endian bytes";
        output.Required = true;
        var dtype = new Option<string?>("--dtype") { Description = "f32: decode (dequantize) to float32; default: the stored bytes" };
        var force = CliCommon.Force();
        var json = CliCommon.Json();
        var cmd = new Command("extract", "Write one tensor's bytes (as stored, or decoded to f32), reading only that tensor") { input, tensor, output, dtype, force, json };
        cmd.SetGuardedAction((p, _) =>
        {
            bool f32 = p.GetValue(dtype)?.ToLowerInvariant() switch
            {
                null => false, "f32" => true,
                var other => throw new ArgumentException($"--dtype {other}: extract decodes to f32 only (omit it for the stored bytes)"),
            };
            var r = TensorExtractor.Extract(p.GetValue(input)!, p.GetValue(tensor)!, p.GetValue(output)!, f32, p.GetValue(force));
            if (p.GetValue(json))
            {
                JsonOutput.Write("extract", new
                {
                    input = r.Input, output = r.Output, tensor = r.Tensor, stored_dtype = JsonOutput.DType(r.StoredType), dtype = JsonOutput.DType(r.OutputType),
                    shape = r.Shape, values = r.Values, output_bytes = r.OutputBytes,
                });
                return 0;
            }
            AnsiConsole.MarkupLine($"{Markup.Escape(r.Input)} : {Markup.Escape(r.Tensor)} {r.StoredType} [[{string.Join(", ", r.Shape)}]]" +
                $"{(r.OutputType != r.StoredType ? " → " + r.OutputType : "")}, {CliCommon.Bytes(r.OutputBytes)} ==> {Markup.Escape(r.Output)}");
            return 0;
        });
        return cmd;
    }
}
