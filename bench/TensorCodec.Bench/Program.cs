using BenchmarkDotNet.Running;
using TensorCodec.Bench;

// "e2e ..." runs the end-to-end measurements; anything else goes to BenchmarkDotNet.
if (args.Length > 0 && args[0] == "e2e") return EndToEnd.Run(args[1..]);
// "ckpt TARGET REFERENCE" measures delta transforms of a checkpoint or fine-tune against its reference.
if (args.Length > 0 && args[0] == "ckpt") return CheckpointDelta.Run(args[1..]);
// "ckpt-archive TARGET REFERENCE [REPEATS]": the archives compress --ref / --optimizer-bits write, and their speed.
if (args.Length > 0 && args[0] == "ckpt-archive") return CheckpointDelta.Archive(args[1..]);
// "ckpt-lossy FINETUNE BASE TOKENS [WINDOWS] [REPEATS] [SVG]": the --delta-lossy archives, bytes vs KLD with our engine;
// "ckpt-lossy-layout FINETUNE BASE": packed vs byte-per-code layouts of the N-bit delta codes through the chunk codec.
if (args.Length > 0 && args[0] == "ckpt-lossy") return FineTuneDelta.Run(args[1..]);
if (args.Length > 0 && args[0] == "ckpt-lossy-layout") return FineTuneDeltaLayout.Run(args[1..]);
BenchmarkSwitcher.FromAssembly(typeof(EndToEnd).Assembly).Run(args);
return 0;
