using System.Buffers.Binary;
using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;
using TensorCodec.Numerics;

namespace TensorCodec.Formats;

internal static class Bnb4BitFast
{
    public static bool IsSupported => Simd.AllowAvx2 && Avx2.IsSupported;
}

/// <summary>
/// AVX2 paths. Quantize ranks eight values at once by counting pivot compares (the same strict
/// "&gt;" tests as the reference); decode looks the 16-entry table up with two vpermps. Both do
/// the reference's float operations per lane, so bytes and float bits are identical.
/// </summary>
internal abstract partial class Bnb4BitFormat
{
    internal void QuantizeFast(ReadOnlySpan<float> x, Span<byte> y)
    {
        int nb = x.Length / _bs, bb = BlockBytes;
        var rankMap = Vector256.Create(_rankToCode[0], _rankToCode[1], _rankToCode[2], _rankToCode[3],
            _rankToCode[4], _rankToCode[5], _rankToCode[6], _rankToCode[7]);
        for (int i = 0; i < nb; i++)
        {
            var xb = x.Slice(i * _bs, _bs);
            var yb = y.Slice(i * bb, bb);
            float absmax = Q8_0Fast.StoreAbsMaxHeader(xb, yb);
            var inv = Vector256.Create(absmax > 0 ? 1f / absmax : 0f);
            var q = yb[4..];
            for (int j = 0; j < _bs; j += 16)
            {
                var c0 = Codes(Vector256.Create(xb.Slice(j, 8)) * inv, rankMap);
                var c1 = Codes(Vector256.Create(xb.Slice(j + 8, 8)) * inv, rankMap);
                // 16 codes in order as shorts; each int lane then holds (code 2k, code 2k+1).
                var pairs = Vector256.Narrow(c0, c1).AsInt32(); // Narrow keeps element order
                var bytes = ((pairs & Vector256.Create(0xF)) << 4) | Vector256.ShiftRightLogical(pairs, 16);
                var s = Vector256.Narrow(bytes, bytes); // shorts
                var b8 = Vector256.Narrow(s, s).AsUInt64();
                BinaryPrimitives.WriteUInt64LittleEndian(q.Slice(j / 2, 8), b8.GetElement(0));
            }
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private Vector256<int> Codes(Vector256<float> v, Vector256<int> rankMap)
    {
        var a = _signMagnitude ? Vector256.Abs(v) : v;
        var rank = Vector256<int>.Zero;
        foreach (float p in _pivots) rank -= Vector256.GreaterThan(a, Vector256.Create(p)).AsInt32();
        if (!_signMagnitude) return rank; // NF4: the rank is the code
        var code = Avx2.PermuteVar8x32(rankMap, rank);
        return code | (Vector256.LessThan(v, Vector256<float>.Zero).AsInt32() & Vector256.Create(8));
    }

    internal void DequantizeFast(ReadOnlySpan<byte> src, Span<float> dst)
    {
        int nb = dst.Length / _bs, bb = BlockBytes;
        var lo = Vector256.Create(_decode.AsSpan(0, 8));
        var hi = Vector256.Create(_decode.AsSpan(8, 8));
        var dup = Vector128.Create((byte)0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7);
        var shifts = Vector256.Create(4u, 0, 4, 0, 4, 0, 4, 0);
        var fifteen = Vector256.Create(15u);
        var eight = Vector256.Create(8u);
        for (int i = 0; i < nb; i++)
        {
            var b = src.Slice(i * bb, bb);
            var vd = Vector256.Create(BinaryPrimitives.ReadSingleLittleEndian(b));
            var q = b[4..];
            var y = dst.Slice(i * _bs, _bs);
            for (int j = 0; j < _bs / 2; j += 8)
            {
                var raw = Vector128.CreateScalar(BinaryPrimitives.ReadUInt64LittleEndian(q.Slice(j, 8))).AsByte();
                var d = Ssse3.Shuffle(raw, dup); // each byte twice: high nibble first, then low
                var i0 = Avx2.ShiftRightLogicalVariable(Avx2.ConvertToVector256Int32(d).AsUInt32(), shifts) & fifteen;
                var i1 = Avx2.ShiftRightLogicalVariable(Avx2.ConvertToVector256Int32(Sse2.ShiftRightLogical128BitLane(d, 8)).AsUInt32(), shifts) & fifteen;
                (Lookup(lo, hi, i0, eight) * vd).CopyTo(y.Slice(2 * j, 8));
                (Lookup(lo, hi, i1, eight) * vd).CopyTo(y.Slice(2 * j + 8, 8));
            }
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<float> Lookup(Vector256<float> lo, Vector256<float> hi, Vector256<uint> idx, Vector256<uint> eight)
    {
        var useHi = Vector256.Equals(idx & eight, eight).AsSingle();
        var i = idx.AsInt32();
        return Vector256.ConditionalSelect(useHi, Avx2.PermuteVar8x32(hi, i), Avx2.PermuteVar8x32(lo, i));
    }
}
