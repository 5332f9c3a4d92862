using System.CommandLine;
using TensorCodec.Cli;
using TensorCodec.Cli.Commands;

// tcodec: argument handling and presentation only; all work happens in the TensorCodec library.
// Redirected output goes to logs and files: do not wrap tables at the default 80 columns.
if (Console.IsOutputRedirected) Spectre.Console.AnsiConsole.Profile.Width = 240;

var root = new RootCommand("tcodec — compress neural-network tensors (safetensors, GGUF, llama2.c): lossless .tcz, quantization, and measurement.\n" +
    "Like zstd: `tcodec FILE...` compresses (options below), `tcodec -d FILE.tcz...` decompresses, `tcodec -t FILE.tcz...` verifies;\n" +
    "- is standard input/output, -1 … -19 are levels (README: Using tcodec).");
root.Subcommands.Add(CompressCommand.Create());
root.Subcommands.Add(DecompressCommand.Create());
root.Subcommands.Add(VerifyCommand.Create());
root.Subcommands.Add(InspectCommand.Create());
root.Subcommands.Add(DemoCommand.Create());
root.Subcommands.Add(TensorCommand.Create());
root.Subcommands.Add(QuantizeCommand.Create());
root.Subcommands.Add(EvalCommand.Create());
root.Subcommands.Add(LogitsCommand.Create());
root.Subcommands.Add(SweepCommand.Create());
root.Subcommands.Add(KvCommand.Create());
root.Subcommands.Add(ConvertCommand.Create());
root.Subcommands.Add(ExtractCommand.Create());
RootFiles.Add(root);
// Signals are ours (see Interrupts), not System.CommandLine's: it would exit after 2 s without cleanup.
using var interrupts = new Interrupts();
int code = await root.Parse(RootFiles.RewriteLevels(args, root)).InvokeAsync(new InvocationConfiguration { ProcessTerminationTimeout = null }, interrupts.Token);
if (interrupts.ExitCode is { } interrupted)
{
    Interrupts.RestoreTerminal();
    return interrupted;
}
return code;
