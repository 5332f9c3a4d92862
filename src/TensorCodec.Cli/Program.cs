using System.CommandLine;
using TensorCodec.Cli;
using TensorCodec.Cli.Commands;

// tcodec: argument handling and presentation only; all work happens in the TensorCodec library.
// Redirected output goes to logs and files: do not wrap tables at the default 80 columns.
if (Console.IsOutputRedirected) Spectre.Console.AnsiConsole.Profile.Width = 240;

Timing.Mark("start-up (runtime, to Main)");
var root = CliRoot.Create();
Timing.Mark("build command tree");
// Signals are ours (see Interrupts), not System.CommandLine's: it would exit after 2 s without cleanup.
using var interrupts = new Interrupts();
int code = await root.Parse(RootFiles.RewriteLevels(args, root)).InvokeAsync(new InvocationConfiguration { ProcessTerminationTimeout = null }, interrupts.Token);
Timing.Dump();
if (interrupts.ExitCode is { } interrupted)
{
    Interrupts.RestoreTerminal();
    return interrupted;
}
return code;
