using System.Buffers.Binary;
using TensorCodec.Numerics;

namespace TensorCodec.Tests.Coders;

/// <summary>Deterministic test inputs: random bits, special float values, Gaussian-like weights.</summary>
internal static class TestData
{
    public static readonly DType[] AllDTypes =
    [
        DType.F64, DType.F32, DType.F16, DType.BF16, DType.I64, DType.I32, DType.I16, DType.I8, DType.U8,
        DType.Bool, DType.F8E4M3, DType.F8E5M2, DType.U16, DType.U32, DType.U64, DType.Packed, DType.Unknown,
    ];

    // The bundled sample is the shared bard-3m BF16 file, so this test always runs.
    public static string Bard3mBf16 => TestFiles.Sample("bard-3m-bf16.safetensors");

    /// <summary>Tensor bytes of a safetensors file (header skipped), or null if the file is absent.</summary>
    public static byte[]? LoadSafetensorsData(string path)
    {
        if (!File.Exists(path)) return null;
        byte[] all = File.ReadAllBytes(path);
        long hdr = BinaryPrimitives.ReadInt64LittleEndian(all);
        return all.AsSpan((int)(8 + hdr)).ToArray();
    }

    static ulong Special(DType t, Random r)
    {
        // Sign, exponent all-ones/zero, payload bits: covers ±0, ±Inf, NaNs with payloads, subnormals.
        int bits = t.ElementSize() * 8;
        int expBits = t switch { DType.F64 => 11, DType.F32 => 8, DType.BF16 => 8, DType.F16 => 5, DType.F8E5M2 => 5, DType.F8E4M3 => 4, _ => 0 };
        if (expBits == 0 || bits == 0) return (ulong)r.NextInt64();
        int mant = bits - 1 - expBits;
        ulong sign = (ulong)r.Next(2) << (bits - 1);
        ulong expMax = ((1UL << expBits) - 1) << mant;
        ulong mantMask = (1UL << mant) - 1;
        ulong m = (ulong)r.NextInt64() & mantMask;
        return r.Next(5) switch
        {
            0 => sign,                          // ±0
            1 => sign | expMax,                 // ±Inf
            2 => sign | expMax | (m | 1),       // NaN with payload
            3 => sign | m,                      // subnormal
            _ => sign | ((ulong)r.Next(1, (1 << expBits) - 1) << mant) | m,
        };
    }

    static ulong Gaussianish(DType t, Random r)
    {
        double g = Math.Sqrt(-2 * Math.Log(1 - r.NextDouble())) * Math.Cos(2 * Math.PI * r.NextDouble()) * 0.02;
        return t switch
        {
            DType.F64 => (ulong)BitConverter.DoubleToInt64Bits(g),
            DType.F32 => BitConverter.SingleToUInt32Bits((float)g),
            DType.BF16 => BitConverter.SingleToUInt32Bits((float)g) >> 16,
            DType.F16 => BitConverter.HalfToUInt16Bits((Half)g),
            _ => (ulong)(long)Math.Round(g * 1000),
        };
    }

    /// <summary>Builds <paramref name="length"/> bytes (not necessarily whole elements) of kind <paramref name="mode"/>.</summary>
    public static byte[] Make(DType t, int length, int mode, int seed)
    {
        var r = new Random(seed);
        var data = new byte[length];
        int es = Math.Max(1, t.ElementSize());
        if (mode == 0) { r.NextBytes(data); return data; }
        if (mode == 1) { data.AsSpan().Fill((byte)r.Next(256)); return data; }
        Span<byte> tmp = stackalloc byte[8];
        ulong constant = Special(t, r);
        for (int i = 0; i < length; i += es)
        {
            ulong v = mode switch
            {
                2 => Special(t, r),
                3 => Gaussianish(t, r),
                4 => r.Next(8) == 0 ? Special(t, r) : Gaussianish(t, r),
                _ => r.Next(4) == 0 ? (ulong)r.NextInt64() : constant,
            };
            BinaryPrimitives.WriteUInt64LittleEndian(tmp, v);
            tmp[..Math.Min(es, length - i)].CopyTo(data.AsSpan(i));
        }
        return data;
    }
}
