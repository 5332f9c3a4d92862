using System.Runtime.CompilerServices;

namespace TensorCodec.Numerics;

/// <summary>How a small float format spends its top exponent code.</summary>
internal enum MiniFloatSpecials : byte
{
    /// <summary>Every code is finite (OCP FP6 E3M2/E2M3, FP4 E2M1).</summary>
    None,
    /// <summary>Only S.1111.111 is NaN, no infinities (OCP FP8 E4M3 "FN").</summary>
    NanOnly,
    /// <summary>IEEE-like: all-ones exponent is inf (mantissa 0) or NaN (OCP FP8 E5M2).</summary>
    Ieee,
}

/// <summary>
/// A sign + exponent + mantissa format of at most 8 bits. Encoding rounds to nearest, ties to
/// even, done exactly in double: a float divided by a power of two and rounded to an integer
/// loses nothing, so there is no double-rounding.
/// </summary>
internal sealed class MiniFloat
{
    public static readonly MiniFloat E4M3 = new("e4m3", 4, 3, 7, MiniFloatSpecials.NanOnly);
    public static readonly MiniFloat E5M2 = new("e5m2", 5, 2, 15, MiniFloatSpecials.Ieee);
    public static readonly MiniFloat E3M2 = new("e3m2", 3, 2, 3, MiniFloatSpecials.None);
    public static readonly MiniFloat E2M3 = new("e2m3", 2, 3, 1, MiniFloatSpecials.None);
    public static readonly MiniFloat E2M1 = new("e2m1", 2, 1, 1, MiniFloatSpecials.None);

    public string Name { get; }
    public int ExponentBits { get; }
    public int MantissaBits { get; }
    public int Bias { get; }
    public MiniFloatSpecials Specials { get; }
    public int Bits => 1 + ExponentBits + MantissaBits;
    /// <summary>Largest finite magnitude (448 for E4M3, 57344 for E5M2, 28, 7.5, 6).</summary>
    public float MaxFinite { get; }
    public byte MaxFiniteCode { get; }
    /// <summary>Canonical positive NaN code, or -1 when the format has none.</summary>
    public int NaNCode { get; }
    /// <summary>Positive infinity code, or -1.</summary>
    public int InfinityCode { get; }

    private readonly float[] _decode;
    private readonly int _signBit;
    private readonly int _eminUnbiased; // exponent of the smallest normal

    private MiniFloat(string name, int e, int m, int bias, MiniFloatSpecials specials)
    {
        Name = name; ExponentBits = e; MantissaBits = m; Bias = bias; Specials = specials;
        _signBit = 1 << (e + m);
        _eminUnbiased = 1 - bias;
        int topExp = (1 << e) - 1;
        MaxFiniteCode = specials switch
        {
            MiniFloatSpecials.None => (byte)(_signBit - 1),
            MiniFloatSpecials.NanOnly => (byte)(_signBit - 2),
            _ => (byte)((topExp << m) - 1),
        };
        NaNCode = specials switch
        {
            MiniFloatSpecials.None => -1,
            MiniFloatSpecials.NanOnly => _signBit - 1,
            _ => (topExp << m) | (1 << (m - 1)),
        };
        InfinityCode = specials == MiniFloatSpecials.Ieee ? topExp << m : -1;
        _decode = new float[1 << Bits];
        for (int c = 0; c < _decode.Length; c++) _decode[c] = DecodeSlow(c);
        MaxFinite = _decode[MaxFiniteCode];
    }

    private float DecodeSlow(int code)
    {
        int sign = code & _signBit;
        int exp = (code >> MantissaBits) & ((1 << ExponentBits) - 1);
        int man = code & ((1 << MantissaBits) - 1);
        int topExp = (1 << ExponentBits) - 1;
        double v;
        if (Specials == MiniFloatSpecials.Ieee && exp == topExp)
            v = man == 0 ? double.PositiveInfinity : double.NaN;
        else if (Specials == MiniFloatSpecials.NanOnly && (code & (_signBit - 1)) == _signBit - 1)
            v = double.NaN;
        else if (exp == 0)
            v = Math.ScaleB(man, _eminUnbiased - MantissaBits);
        else
            v = Math.ScaleB((1 << MantissaBits) + man, exp - Bias - MantissaBits);
        return (float)(sign != 0 ? -v : v);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public float Decode(byte code) => _decode[code & ((1 << Bits) - 1)];

    /// <summary>
    /// Round-to-nearest-even encode. Saturating: out-of-range values and infinities clamp to
    /// ±max. Non-saturating: they become ±inf (E5M2) or NaN (E4M3); formats without specials
    /// always saturate. NaN maps to NaN, or to +0 for formats that cannot represent it.
    /// </summary>
    public byte Encode(float x, bool saturate = true)
    {
        int sign = float.IsNegative(x) ? _signBit : 0;
        if (float.IsNaN(x)) return (byte)(NaNCode >= 0 ? NaNCode | sign : 0);
        double a = Math.Abs((double)x);
        bool overflow;
        int code;
        if (double.IsInfinity(a)) { overflow = true; code = 0; }
        else
        {
            int e = a == 0 ? _eminUnbiased : Math.Max(Math.ILogB(a), _eminUnbiased);
            double quantum = Math.ScaleB(1.0, e - MantissaBits);
            double q = Math.Round(a / quantum, MidpointRounding.ToEven) * quantum;
            overflow = q > MaxFinite;
            code = overflow ? 0 : EncodeExact(q);
        }
        if (overflow)
        {
            if (saturate || Specials == MiniFloatSpecials.None) code = MaxFiniteCode;
            else code = Specials == MiniFloatSpecials.Ieee ? InfinityCode : NaNCode;
        }
        return (byte)(code | sign);
    }

    /// <summary>Bits of a non-negative value already on the grid.</summary>
    private int EncodeExact(double q)
    {
        if (q < Math.ScaleB(1.0, _eminUnbiased))
            return (int)Math.ScaleB(q, MantissaBits - _eminUnbiased);
        int e = Math.ILogB(q);
        int man = (int)Math.ScaleB(q, MantissaBits - e) - (1 << MantissaBits);
        return ((e + Bias) << MantissaBits) | man;
    }

    public void Encode(ReadOnlySpan<float> src, Span<byte> dst, bool saturate = true)
    {
        if (dst.Length < src.Length) throw new ArgumentException("destination too short", nameof(dst));
        for (int i = 0; i < src.Length; i++) dst[i] = Encode(src[i], saturate);
    }

    public void Decode(ReadOnlySpan<byte> src, Span<float> dst)
    {
        if (dst.Length < src.Length) throw new ArgumentException("destination too short", nameof(dst));
        for (int i = 0; i < src.Length; i++) dst[i] = Decode(src[i]);
    }
}

/// <summary>
/// Scale formats used by the microscaling block types: E8M0 (a bare power of two, 0xFF = NaN)
/// and ggml's unsigned E4M3 scale for nvfp4.
/// </summary>
internal static class ScaleFormats
{
    /// <summary>2^(e-127); 0xFF is NaN.</summary>
    public static float E8M0ToFloat(byte e) =>
        e == 0xFF ? float.NaN : e == 0 ? BitConverter.UInt32BitsToSingle(0x0040_0000) : BitConverter.UInt32BitsToSingle((uint)e << 23);

    /// <summary>
    /// Half of 2^(e-127), built from bits: ggml's mxfp4 stores the E2M1 values doubled (as small
    /// integers), so it decodes the scale at half weight. Exact down to e = 0 (2^-128, subnormal).
    /// </summary>
    public static float E8M0ToFloatHalf(byte e) =>
        BitConverter.UInt32BitsToSingle(e < 2 ? 0x0020_0000u << e : (uint)(e - 1) << 23);

    /// <summary>E8M0 code of the largest power of two not above |x| (0 for zero/subnormal-small, 0xFF for NaN/inf).</summary>
    public static byte E8M0FromFloatFloor(float x)
    {
        if (!float.IsFinite(x)) return 0xFF;
        int be = (int)((BitConverter.SingleToUInt32Bits(x) >> 23) & 0xFF);
        return (byte)be;
    }

    /// <summary>
    /// ggml's nvfp4 scale decode: unsigned E4M3 (bias 7), returned at half weight to pair with
    /// the doubled E2M1 table; 0x7F (the NaN code) decodes as 0.
    /// </summary>
    public static float UE4M3ToFloatHalf(byte x)
    {
        if (x == 0 || x == 0x7F) return 0f;
        int exp = (x >> 3) & 0xF, man = x & 7;
        float raw = exp == 0 ? MathF.ScaleB(man, -9) : MathF.ScaleB(1f + man / 8f, exp - 7);
        return raw * 0.5f;
    }

    /// <summary>
    /// ggml's nvfp4 scale encode. Not round-to-nearest-even: normals round half up on the first
    /// dropped mantissa bit, subnormals compute (int)(x·512 + 0.5); inputs above 448 clamp, and
    /// the top exponent is never emitted (0x7E is the largest code). Non-positive/NaN → 0.
    /// </summary>
    public static byte FloatToUE4M3(float x)
    {
        if (!(x > 0f)) return 0;
        if (x > 448f) x = 448f;
        uint bits = BitConverter.SingleToUInt32Bits(x);
        int exp = (int)((bits >> 23) & 0xFF) - 127 + 7;
        if (exp <= 0)
        {
            int sub = (int)(x * 512f + 0.5f);
            return (byte)Math.Clamp(sub, 0, 7);
        }
        if (exp >= 15) return 0x7E;
        int man = (int)((bits >> 20) & 7) + (int)((bits >> 19) & 1);
        if (man > 7)
        {
            man = 0;
            if (++exp >= 15) return 0x7E;
        }
        return (byte)(exp << 3 | man);
    }
}
