using TensorCodec.Numerics;

namespace TensorCodec.Formats;

/// <summary>
/// OCP MX FP4 (E2M1 elements, emax 2). Registered as "ocp_mxfp4" because "mxfp4" is ggml's
/// type, which differs in layout (ggml: value j in the low and j+16 in the high nibble of byte j;
/// ours: elements 2j, 2j+1 in byte j, low nibble first) and in ties (ggml takes the lowest code
/// index on a tie; MX rounds to nearest even). The scale rule is the same.
/// </summary>
internal sealed class OCP_MXFP4() : OcpMxFloatFormat(MiniFloat.E2M1, 2)
{
    public override string Name => "ocp_mxfp4";
}
