using TensorCodec.Numerics;

namespace TensorCodec.Formats;

/// <summary>OCP MX FP6 E3M2 (max 28) elements, emax 4; rules and layout in <see cref="OcpMxFormat"/>.</summary>
internal sealed class MXFP6_E3M2() : OcpMxFloatFormat(MiniFloat.E3M2, 4)
{
    public override string Name => "mxfp6_e3m2";
}
