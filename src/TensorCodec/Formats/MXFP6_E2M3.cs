using TensorCodec.Numerics;

namespace TensorCodec.Formats;

/// <summary>OCP MX FP6 E2M3 (max 7.5) elements, emax 2; rules and layout in <see cref="OcpMxFormat"/>.</summary>
internal sealed class MXFP6_E2M3() : OcpMxFloatFormat(MiniFloat.E2M3, 2)
{
    public override string Name => "mxfp6_e2m3";
}
