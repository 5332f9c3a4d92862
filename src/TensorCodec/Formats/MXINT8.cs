namespace TensorCodec.Formats;

/// <summary>
/// OCP MXINT8: two's-complement int8 elements with an implicit scale of 2^−6 (values
/// −2 … 1 63/64), emax 0. Elements round to nearest even and saturate to ±127/64 (symmetric, the
/// range the spec lists; −128 is never produced but decodes as −2).
/// </summary>
internal sealed class MXINT8 : OcpMxFormat
{
    public override string Name => "mxint8";
    public override int ElementBits => 8;
    public override int ElementEmax => 0;
    public override int EncodeElement(float v) => (byte)(sbyte)Math.Clamp(MathF.Round(v * 64f), -127f, 127f);
    public override float DecodeElement(int code) => (sbyte)(byte)code / 64f;
}
