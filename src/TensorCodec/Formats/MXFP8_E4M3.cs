using TensorCodec.Numerics;

namespace TensorCodec.Formats;

/// <summary>OCP MX FP8 E4M3 (max 448) elements, emax 8; rules and layout in <see cref="OcpMxFormat"/>.</summary>
internal sealed class MXFP8_E4M3() : OcpMxFloatFormat(MiniFloat.E4M3, 8)
{
    public override string Name => "mxfp8_e4m3";
}
