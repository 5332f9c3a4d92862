using System.CommandLine;
using TensorCodec.Cli.Commands;

namespace TensorCodec.Cli;

/// <summary>The whole command tree, in one place, so tests can walk it (every --json command has a schema).</summary>
static class CliRoot
{
    public static RootCommand Create()
    {
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
        root.Subcommands.Add(ImatrixCommand.Create());
        root.Subcommands.Add(EvalCommand.Create());
        root.Subcommands.Add(LogitsCommand.Create());
        root.Subcommands.Add(SweepCommand.Create());
        root.Subcommands.Add(KvCommand.Create());
        root.Subcommands.Add(ConvertCommand.Create());
        root.Subcommands.Add(ExtractCommand.Create());
        root.Subcommands.Add(TokenizeCommand.Create());
        RootFiles.Add(root);
        return root;
    }
}
