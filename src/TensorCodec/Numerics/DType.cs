namespace TensorCodec.Numerics;

/// <summary>
/// Element type of a tensor as the codecs see it. The float kinds matter to the lossless
/// coder (it splits them into sign/exponent/mantissa streams); <see cref="Packed"/> covers
/// block-quantized ggml data, whose bytes are opaque to the float transforms.
/// </summary>
public enum DType : byte
{
    /// <summary>Unrecognised or unset element type.</summary>
    Unknown = 0,
    /// <summary>IEEE 754 binary64.</summary>
    F64 = 1,
    /// <summary>IEEE 754 binary32.</summary>
    F32 = 2,
    /// <summary>IEEE 754 binary16 (half precision).</summary>
    F16 = 3,
    /// <summary>bfloat16: the top 16 bits of a binary32.</summary>
    BF16 = 4,
    /// <summary>Signed 64-bit integer.</summary>
    I64 = 5,
    /// <summary>Signed 32-bit integer.</summary>
    I32 = 6,
    /// <summary>Signed 16-bit integer.</summary>
    I16 = 7,
    /// <summary>Signed 8-bit integer.</summary>
    I8 = 8,
    /// <summary>Unsigned 8-bit integer.</summary>
    U8 = 9,
    /// <summary>Boolean, one byte per element.</summary>
    Bool = 10,
    /// <summary>8-bit float with 4 exponent and 3 mantissa bits (OCP FP8 E4M3).</summary>
    F8E4M3 = 11,
    /// <summary>8-bit float with 5 exponent and 2 mantissa bits (OCP FP8 E5M2).</summary>
    F8E5M2 = 12,
    /// <summary>Unsigned 16-bit integer.</summary>
    U16 = 13,
    /// <summary>Unsigned 32-bit integer.</summary>
    U32 = 14,
    /// <summary>Unsigned 64-bit integer.</summary>
    U64 = 15,
    /// <summary>Block-quantized data (ggml Q*/IQ*/TQ* types); sizes come from the ggml type table.</summary>
    Packed = 32,
}

/// <summary>Properties of a <see cref="DType"/>.</summary>
public static class DTypeInfo
{
    /// <summary>Bytes per element, or 0 for <see cref="DType.Packed"/>/<see cref="DType.Unknown"/>.</summary>
    public static int ElementSize(this DType t) => t switch
    {
        DType.F64 or DType.I64 or DType.U64 => 8,
        DType.F32 or DType.I32 or DType.U32 => 4,
        DType.F16 or DType.BF16 or DType.I16 or DType.U16 => 2,
        DType.I8 or DType.U8 or DType.Bool or DType.F8E4M3 or DType.F8E5M2 => 1,
        _ => 0,
    };

    /// <summary>True for the floating-point types (F64, F32, F16, BF16 and both FP8 kinds).</summary>
    public static bool IsFloat(this DType t) =>
        t is DType.F64 or DType.F32 or DType.F16 or DType.BF16 or DType.F8E4M3 or DType.F8E5M2;

    /// <summary>The dtype's name in safetensors headers.</summary>
    internal static string SafetensorsName(this DType t) => t switch
    {
        DType.F64 => "F64", DType.F32 => "F32", DType.F16 => "F16", DType.BF16 => "BF16",
        DType.I64 => "I64", DType.I32 => "I32", DType.I16 => "I16", DType.I8 => "I8",
        DType.U8 => "U8", DType.U16 => "U16", DType.U32 => "U32", DType.U64 => "U64",
        DType.Bool => "BOOL", DType.F8E4M3 => "F8_E4M3", DType.F8E5M2 => "F8_E5M2",
        _ => throw new ArgumentOutOfRangeException(nameof(t), t, "no safetensors name"),
    };

    /// <summary>The dtype for a safetensors header name (exact, upper-case), or false and <see cref="DType.Unknown"/>.</summary>
    internal static bool TryParseSafetensorsName(string name, out DType t)
    {
        t = name switch
        {
            "F64" => DType.F64, "F32" => DType.F32, "F16" => DType.F16, "BF16" => DType.BF16,
            "I64" => DType.I64, "I32" => DType.I32, "I16" => DType.I16, "I8" => DType.I8,
            "U8" => DType.U8, "U16" => DType.U16, "U32" => DType.U32, "U64" => DType.U64,
            "BOOL" => DType.Bool, "F8_E4M3" => DType.F8E4M3, "F8_E5M2" => DType.F8E5M2,
            _ => DType.Unknown,
        };
        return t != DType.Unknown;
    }
}
