using System.Numerics;
using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using TensorCodec.Numerics;

namespace TensorCodec.Formats;

/// <summary>Vector256 paths for Q4_0 without importance weights (same rule as <see cref="Q8_0Fast"/>).</summary>
internal static class Q4_0Fast
{
    public static bool IsSupported => Vector256.IsHardwareAccelerated;

    public static void Quantize(ReadOnlySpan<float> x, Span<byte> y)
    {
        int nb = x.Length / 32;
        for (int i = 0; i < nb; i++)
        {
            var xb = x.Slice(i * 32, 32);
            var v0 = Vector256.Create(xb);
            var v1 = Vector256.Create(xb[8..]);
            var v2 = Vector256.Create(xb[16..]);
            var v3 = Vector256.Create(xb[24..]);
            var a0 = Vector256.Abs(v0); var a1 = Vector256.Abs(v1);
            var a2 = Vector256.Abs(v2); var a3 = Vector256.Abs(v3);
            float amax = Q8_0Fast.HorizontalMax(Vector256.Max(Vector256.Max(a0, a1), Vector256.Max(a2, a3)));
            // The reference keeps the first value whose magnitude is the maximum (its sign matters).
            var va = Vector256.Create(amax);
            ulong mask = Vector256.Equals(a0, va).ExtractMostSignificantBits()
                | (ulong)Vector256.Equals(a1, va).ExtractMostSignificantBits() << 8
                | (ulong)Vector256.Equals(a2, va).ExtractMostSignificantBits() << 16
                | (ulong)Vector256.Equals(a3, va).ExtractMostSignificantBits() << 24;
            float max = amax > 0 ? xb[BitOperations.TrailingZeroCount(mask)] : 0f;
            float d = max / -8;
            float id = d != 0 ? 1.0f / d : 0.0f;
            var yb = y.Slice(i * 18, 18);
            Fp16.Write(yb, 0, Fp16.FromFloat(d));
            var vid = Vector256.Create(id);
            var half = Vector256.Create(8.5f);
            var fifteen = Vector256.Create(15);
            var q0 = Vector256.Min(fifteen, Vector256.ConvertToInt32(Vector256.Truncate(v0 * vid + half)));
            var q1 = Vector256.Min(fifteen, Vector256.ConvertToInt32(Vector256.Truncate(v1 * vid + half)));
            var q2 = Vector256.Min(fifteen, Vector256.ConvertToInt32(Vector256.Truncate(v2 * vid + half)));
            var q3 = Vector256.Min(fifteen, Vector256.ConvertToInt32(Vector256.Truncate(v3 * vid + half)));
            var packed = Vector256.Narrow(q0 | (q2 << 4), q1 | (q3 << 4)); // 16 shorts, values < 256
            Vector128.Narrow(packed.GetLower(), packed.GetUpper()).AsByte().CopyTo(yb[2..]);
        }
    }

    public static void Dequantize(ReadOnlySpan<byte> src, Span<float> dst)
    {
        int nb = dst.Length / 32;
        var eight = Vector256.Create(8);
        var mask = Vector256.Create(0xF);
        for (int i = 0; i < nb; i++)
        {
            var b = src.Slice(i * 18, 18);
            var vd = Vector256.Create(Fp16.Read(b, 0));
            var (w0, w1) = Vector128.Widen(Vector128.Create(b.Slice(2, 16)));
            var (i0, i1) = Vector256.Widen(Vector256.Create(w0, w1).AsInt16());
            var y = dst.Slice(i * 32, 32);
            (Vector256.ConvertToSingle((i0 & mask) - eight) * vd).CopyTo(y);
            (Vector256.ConvertToSingle((i1 & mask) - eight) * vd).CopyTo(y[8..]);
            (Vector256.ConvertToSingle((i0 >> 4) - eight) * vd).CopyTo(y[16..]);
            (Vector256.ConvertToSingle((i1 >> 4) - eight) * vd).CopyTo(y[24..]);
        }
    }
}
