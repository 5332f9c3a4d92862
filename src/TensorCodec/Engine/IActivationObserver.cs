namespace TensorCodec.Engine;

/// <summary>The activation a group of linear layers reads (q/k/v share one input, gate/up share another).</summary>
internal enum LinearInput : byte
{
    /// <summary>attn_norm(x): the input of attn_q, attn_k and attn_v.</summary>
    Attention,
    /// <summary>The attention heads' output: the input of attn_output.</summary>
    AttentionOutput,
    /// <summary>ffn_norm(x): the input of ffn_gate and ffn_up.</summary>
    Ffn,
    /// <summary>silu(gate)·up: the input of ffn_down.</summary>
    FfnDown,
    /// <summary>output_norm(x) of the scored rows: the input of the classifier.</summary>
    Output,
}

/// <summary>
/// Sees each linear layer's input batch as the session computes it (calibration: llama-imatrix's sums of squares,
/// GPTQ's XᵀX). Called on the session's thread, before the matrix product; <c>x</c> is [rows][cols] row-major and only
/// valid during the call.
/// </summary>
internal interface IActivationObserver
{
    /// <summary>One batch: <paramref name="layer"/> is −1 for <see cref="LinearInput.Output"/>.</summary>
    void Observe(int layer, LinearInput input, ReadOnlySpan<float> x, int rows, int cols);
}
