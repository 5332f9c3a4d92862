using System.CommandLine;
using Spectre.Console;
using TensorCodec.Numerics;
using TensorCodec.Quantization;

namespace TensorCodec.Cli.Commands;

/// <summary><c>tcodec convert</c>: any model we read back to a Hugging Face folder.</summary>
static class ConvertCommand
{
    public static Command Create()
    {
        var input = new Argument<string>("model") { Description = "Hugging Face folder or index, safetensors (config.json beside it), GGUF (any type we decode), llama2.c checkpoint, or a .tcz of one" };
        var output = CliCommon.Output();
        output.Description = "NAME.safetensors (config.json beside it) or a folder (created if missing); shards NAME-00001-of-0000N.safetensors + NAME.safetensors.index.json when larger than --max-shard-size";
        output.Required = true;
        var dtype = new Option<string?>("--dtype") { Description = "bf16, f16 or f32 (default: the float type of the input's matrices if they share one, else bf16)" };
        var maxShard = new Option<string>("--max-shard-size") { Description = "Largest shard (5GB = 5·10^9 bytes, as transformers; MB, GiB… also)", DefaultValueFactory = _ => "5GB" };
        var config = new Option<string?>("--config") { Description = "Hugging Face config.json of a safetensors input (default: beside the model)" };
        var force = CliCommon.Force();
        var json = CliCommon.Json();
        var cmd = new Command("convert", "Convert a model to Hugging Face safetensors (HF names, Q/K order undone, config.json, index when sharded)")
        {
            input, output, dtype, maxShard, config, force, json,
        };
        cmd.SetGuardedAction((p, ct) =>
        {
            string inPath = p.GetValue(input)!, outPath = p.GetValue(output)!;
            CliCommon.CheckOutputName("convert", outPath, ".safetensors", folderAllowed: true);
            DType? type = p.GetValue(dtype)?.ToLowerInvariant() switch
            {
                null => null, "bf16" => DType.BF16, "f16" => DType.F16, "f32" => DType.F32,
                var other => throw new ArgumentException($"--dtype {other}: must be bf16, f16 or f32"),
            };
            var options = new HfExportOptions
            {
                DType = type, MaxShardBytes = HfExport.ParseSize(p.GetValue(maxShard)!), ConfigPath = p.GetValue(config),
                Overwrite = p.GetValue(force), Cancellation = ct,
            };
            var r = HfExport.Convert(inPath, outPath, options);
            if (p.GetValue(json))
            {
                JsonOutput.Write("convert", new
                {
                    input = r.Input, output = r.Output, format = r.InputFormat.ToString(),
                    dtype = JsonOutput.DType(r.DType.ToString()), tensors = r.Tensors, values = r.Values, tensor_bytes = r.TensorBytes,
                    shards = r.Shards, output_files = r.Files, seconds = r.Elapsed.TotalSeconds, notes = r.Notes,
                });
                return 0;
            }
            foreach (var n in r.Notes) AnsiConsole.MarkupLine($"[yellow]note:[/] {Markup.Escape(n)}");
            AnsiConsole.MarkupLine($"{Markup.Escape(r.Input)} ({r.InputFormat}) → {Markup.Escape(r.Output)}: {r.Tensors} tensors, " +
                $"{r.DType.ToString().ToLowerInvariant()}, {CliCommon.Bytes(r.TensorBytes)} in {r.Shards} shard(s), {r.Files.Count} files, {r.Elapsed.TotalSeconds:0.00} s");
            return 0;
        });
        return cmd;
    }
}
