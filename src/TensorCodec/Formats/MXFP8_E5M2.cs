using TensorCodec.Numerics;

namespace TensorCodec.Formats;

/// <summary>OCP MX FP8 E5M2 (max 57344) elements, emax 15; rules and layout in <see cref="OcpMxFormat"/>.</summary>
internal sealed class MXFP8_E5M2() : OcpMxFloatFormat(MiniFloat.E5M2, 15)
{
    public override string Name => "mxfp8_e5m2";
}
