namespace TensorCodec.Quantization;

/// <summary>How <see cref="ModelQuantizer"/> chooses each weight's codes.</summary>
public enum QuantMethod : byte
{
    /// <summary>llama.cpp's own quantizers, byte for byte as llama-quantize (importance weights only from <see cref="ModelQuantizeOptions.ImatrixPath"/>).</summary>
    Rtn,
    /// <summary>llama.cpp's quantizers with importance weights: from <see cref="ModelQuantizeOptions.ImatrixPath"/>, else from <see cref="ModelQuantizeOptions.Calibration"/>.</summary>
    Imatrix,
    /// <summary>GPTQ's error-compensating rounding into the same ggml blocks, from <see cref="ModelQuantizeOptions.Calibration"/>'s H = XᵀX;
    /// tensors it cannot handle fall back to <see cref="Imatrix"/>.</summary>
    Gptq,
}

/// <summary>Calibration statistics of a model's linear-layer inputs, looked up by GGUF weight name (e.g. <c>blk.0.attn_q.weight</c>).</summary>
public interface ICalibration
{
    /// <summary>The calibration data's name, recorded as <c>quantize.imatrix.dataset</c>.</summary>
    string Dataset { get; }

    /// <summary>Chunks of calibration tokens run.</summary>
    int Chunks { get; }

    /// <summary>The mean squared input activation per column of <paramref name="tensor"/>, or null when it has none.</summary>
    float[]? MeanSquares(string tensor);

    /// <summary>
    /// H = XᵀX over the calibration rows of <paramref name="tensor"/>'s input: n×n row-major, both triangles filled,
    /// or null when it has none. Weights that share an input get the same array (so a factor of it can be reused).
    /// </summary>
    float[]? Hessian(string tensor);
}
