return TensorCodec.Bench.EndToEnd.Run(args);
