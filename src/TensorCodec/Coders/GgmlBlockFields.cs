using System.Buffers.Binary;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using TensorCodec.Numerics;

namespace TensorCodec.Coders;

/// <summary>One ggml block taken apart into its fields (FORMAT.md, chunk mode 3): the fp16 scale <see cref="D"/>, the
/// second fp16 (<c>m</c>, <c>dmin</c> or <c>s</c>) <see cref="M"/>, sub-block scales and mins unpacked to a byte each,
/// and every quant unpacked to one byte, in the order of the values it dequantizes to.</summary>
internal sealed class GgmlBlock
{
    public ushort D, M;
    public readonly byte[] Scale = new byte[16];
    public readonly byte[] Min = new byte[8];
    public readonly byte[] Q = new byte[256];
}

/// <summary>
/// Splits ggml blocks into fields and joins them back, bit-exactly, for the types chunk mode 3 codes: Q4_0, Q4_1,
/// Q5_0, Q5_1, Q8_0, Q8_1 (32 values a block) and Q4_K, Q5_K, Q6_K (256). Layouts are ggml-common.h's
/// <c>block_*</c> structs; every bit of a block lands in exactly one field, so <see cref="Join(int, GgmlBlock, Span{byte})"/> inverts <see cref="Split(int, ReadOnlySpan{byte}, GgmlBlock)"/>.
/// </summary>
internal static class GgmlBlockFields
{
    // ggml type ids (Containers.GgmlTypes is a layer above Coders; the ids are the file format's, fixed).
    public const int Q4_0 = 2, Q4_1 = 3, Q5_0 = 6, Q5_1 = 7, Q8_0 = 8, Q8_1 = 9, Q4_K = 12, Q5_K = 13, Q6_K = 14;

    /// <summary>Bytes of one block of <paramref name="type"/>, or 0 if mode 3 does not code the type.</summary>
    public static int BlockBytes(int type) => type switch
    {
        Q4_0 => 18, Q4_1 => 20, Q5_0 => 22, Q5_1 => 24, Q8_0 => 34, Q8_1 => 36,
        Q4_K => 144, Q5_K => 176, Q6_K => 210,
        _ => 0,
    };

    /// <summary>Values per block (quants in <see cref="GgmlBlock.Q"/>).</summary>
    public static int BlockValues(int type) => type is Q4_K or Q5_K or Q6_K ? 256 : 32;

    /// <summary>Whether the type has a second fp16 field (<see cref="GgmlBlock.M"/>).</summary>
    public static bool HasM(int type) => type is Q4_1 or Q5_1 or Q8_1 or Q4_K or Q5_K;

    /// <summary>Bits of one quant.</summary>
    public static int QuantBits(int type) => type switch
    {
        Q4_0 or Q4_1 or Q4_K => 4,
        Q5_0 or Q5_1 or Q5_K => 5,
        Q6_K => 6,
        _ => 8,
    };

    /// <summary>Whether the 256-value types split and join with 32-byte vectors (the quants are the bulk of the work
    /// of modes 3 and 4's decoders after the coder itself); <paramref name="allowVector"/> = false forces the scalar loops.</summary>
    static bool Vector(bool allowVector) => allowVector && Simd.AllowAvx2 && Vector256.IsHardwareAccelerated;

    public static void Split(int type, ReadOnlySpan<byte> b, GgmlBlock f) => Split(type, b, f, allowVector: true);

    public static void Join(int type, GgmlBlock f, Span<byte> b) => Join(type, f, b, allowVector: true);

    internal static void Split(int type, ReadOnlySpan<byte> b, GgmlBlock f, bool allowVector)
    {
        if (type is Q4_K or Q5_K or Q6_K && Vector(allowVector) && b.Length >= BlockBytes(type))
        {
            SplitVector(type, b, f);
            return;
        }
        var q = f.Q;
        switch (type)
        {
            case Q4_0:
            case Q4_1:
            {
                int o = type == Q4_1 ? 4 : 2;
                f.D = BinaryPrimitives.ReadUInt16LittleEndian(b);
                if (type == Q4_1) f.M = BinaryPrimitives.ReadUInt16LittleEndian(b[2..]);
                for (int j = 0; j < 16; j++) { q[j] = (byte)(b[o + j] & 15); q[j + 16] = (byte)(b[o + j] >> 4); }
                break;
            }
            case Q5_0:
            case Q5_1:
            {
                int o = type == Q5_1 ? 4 : 2;
                f.D = BinaryPrimitives.ReadUInt16LittleEndian(b);
                if (type == Q5_1) f.M = BinaryPrimitives.ReadUInt16LittleEndian(b[2..]);
                uint qh = BinaryPrimitives.ReadUInt32LittleEndian(b[o..]);
                for (int j = 0; j < 16; j++)
                {
                    q[j] = (byte)((uint)(b[o + 4 + j] & 15) | (((qh >> j) & 1) << 4));
                    q[j + 16] = (byte)((uint)(b[o + 4 + j] >> 4) | (((qh >> (j + 16)) & 1) << 4));
                }
                break;
            }
            case Q8_0:
            case Q8_1:
            {
                int o = type == Q8_1 ? 4 : 2;
                f.D = BinaryPrimitives.ReadUInt16LittleEndian(b);
                if (type == Q8_1) f.M = BinaryPrimitives.ReadUInt16LittleEndian(b[2..]);
                b.Slice(o, 32).CopyTo(q);
                break;
            }
            case Q4_K:
            case Q5_K:
            {
                f.D = BinaryPrimitives.ReadUInt16LittleEndian(b);
                f.M = BinaryPrimitives.ReadUInt16LittleEndian(b[2..]);
                UnpackScales6(b.Slice(4, 12), f.Scale, f.Min);
                int qs = type == Q5_K ? 48 : 16;
                for (int j = 0; j < 8; j++)
                {
                    int src = qs + (j >> 1) * 32, sh = 4 * (j & 1);
                    for (int l = 0; l < 32; l++) q[j * 32 + l] = (byte)((b[src + l] >> sh) & 15);
                }
                if (type == Q5_K)
                    for (int j = 0; j < 8; j++)
                        for (int l = 0; l < 32; l++) q[j * 32 + l] |= (byte)(((b[16 + l] >> j) & 1) << 4);
                break;
            }
            case Q6_K:
            {
                // ql[128], qh[64], scales[16] (int8), d
                for (int n = 0; n < 2; n++)
                {
                    var ql = b.Slice(n * 64, 64);
                    var qh = b.Slice(128 + n * 32, 32);
                    int y = n * 128;
                    for (int l = 0; l < 32; l++)
                    {
                        q[y + l] = (byte)((ql[l] & 15) | ((qh[l] & 3) << 4));
                        q[y + l + 32] = (byte)((ql[l + 32] & 15) | (((qh[l] >> 2) & 3) << 4));
                        q[y + l + 64] = (byte)((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4));
                        q[y + l + 96] = (byte)((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4));
                    }
                }
                b.Slice(192, 16).CopyTo(f.Scale);
                f.D = BinaryPrimitives.ReadUInt16LittleEndian(b[208..]);
                break;
            }
            default: throw new ArgumentOutOfRangeException(nameof(type), type, "not a mode-3 ggml type");
        }
    }

    internal static void Join(int type, GgmlBlock f, Span<byte> b, bool allowVector)
    {
        if (type is Q4_K or Q5_K or Q6_K && Vector(allowVector) && b.Length >= BlockBytes(type))
        {
            JoinVector(type, f, b);
            return;
        }
        var q = f.Q;
        switch (type)
        {
            case Q4_0:
            case Q4_1:
            {
                int o = type == Q4_1 ? 4 : 2;
                BinaryPrimitives.WriteUInt16LittleEndian(b, f.D);
                if (type == Q4_1) BinaryPrimitives.WriteUInt16LittleEndian(b[2..], f.M);
                for (int j = 0; j < 16; j++) b[o + j] = (byte)((q[j] & 15) | (q[j + 16] << 4));
                break;
            }
            case Q5_0:
            case Q5_1:
            {
                int o = type == Q5_1 ? 4 : 2;
                BinaryPrimitives.WriteUInt16LittleEndian(b, f.D);
                if (type == Q5_1) BinaryPrimitives.WriteUInt16LittleEndian(b[2..], f.M);
                uint qh = 0;
                for (int j = 0; j < 16; j++)
                {
                    b[o + 4 + j] = (byte)((q[j] & 15) | ((q[j + 16] & 15) << 4));
                    qh |= (uint)((q[j] >> 4) & 1) << j;
                    qh |= (uint)((q[j + 16] >> 4) & 1) << (j + 16);
                }
                BinaryPrimitives.WriteUInt32LittleEndian(b[o..], qh);
                break;
            }
            case Q8_0:
            case Q8_1:
            {
                int o = type == Q8_1 ? 4 : 2;
                BinaryPrimitives.WriteUInt16LittleEndian(b, f.D);
                if (type == Q8_1) BinaryPrimitives.WriteUInt16LittleEndian(b[2..], f.M);
                q.AsSpan(0, 32).CopyTo(b[o..]);
                break;
            }
            case Q4_K:
            case Q5_K:
            {
                BinaryPrimitives.WriteUInt16LittleEndian(b, f.D);
                BinaryPrimitives.WriteUInt16LittleEndian(b[2..], f.M);
                PackScales6(f.Scale, f.Min, b.Slice(4, 12));
                int qs = type == Q5_K ? 48 : 16;
                for (int g = 0; g < 4; g++)
                    for (int l = 0; l < 32; l++)
                        b[qs + g * 32 + l] = (byte)((q[2 * g * 32 + l] & 15) | ((q[(2 * g + 1) * 32 + l] & 15) << 4));
                if (type == Q5_K)
                    for (int l = 0; l < 32; l++)
                    {
                        int h = 0;
                        for (int j = 0; j < 8; j++) h |= ((q[j * 32 + l] >> 4) & 1) << j;
                        b[16 + l] = (byte)h;
                    }
                break;
            }
            case Q6_K:
            {
                for (int n = 0; n < 2; n++)
                {
                    var ql = b.Slice(n * 64, 64);
                    var qh = b.Slice(128 + n * 32, 32);
                    int y = n * 128;
                    for (int l = 0; l < 32; l++)
                    {
                        int q1 = q[y + l], q2 = q[y + l + 32], q3 = q[y + l + 64], q4 = q[y + l + 96];
                        ql[l] = (byte)((q1 & 15) | ((q3 & 15) << 4));
                        ql[l + 32] = (byte)((q2 & 15) | ((q4 & 15) << 4));
                        qh[l] = (byte)((q1 >> 4) | ((q2 >> 4) << 2) | ((q3 >> 4) << 4) | ((q4 >> 4) << 6));
                    }
                }
                f.Scale.AsSpan(0, 16).CopyTo(b[192..]);
                BinaryPrimitives.WriteUInt16LittleEndian(b[208..], f.D);
                break;
            }
            default: throw new ArgumentOutOfRangeException(nameof(type), type, "not a mode-3 ggml type");
        }
    }

    // Byte-lane shifts through 16-bit lanes, masked so that no bit crosses from the neighbouring byte.
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static Vector256<byte> Shr(Vector256<byte> v, int k, byte mask) => Vector256.ShiftRightLogical(v.AsUInt16(), k).AsByte() & Vector256.Create(mask);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static Vector256<byte> Shl(Vector256<byte> v, int k) => Vector256.ShiftLeft(v.AsUInt16(), k).AsByte();

    /// <summary><see cref="Split(int, ReadOnlySpan{byte}, GgmlBlock)"/> of Q4_K, Q5_K and Q6_K, 32 quants a vector; the same fields as the scalar loops.</summary>
    static void SplitVector(int type, ReadOnlySpan<byte> b, GgmlBlock f)
    {
        ref byte src = ref MemoryMarshal.GetReference(b);
        ref byte q = ref MemoryMarshal.GetArrayDataReference(f.Q);
        if (type == Q6_K)
        {
            for (int n = 0; n < 2; n++)
            {
                var a = Vector256.LoadUnsafe(ref src, (nuint)(n * 64));
                var c = Vector256.LoadUnsafe(ref src, (nuint)(n * 64 + 32));
                var h = Vector256.LoadUnsafe(ref src, (nuint)(128 + n * 32));
                var lo = Vector256.Create((byte)15);
                nuint y = (nuint)(n * 128);
                ((a & lo) | Shl(h & Vector256.Create((byte)3), 4)).StoreUnsafe(ref q, y);
                ((c & lo) | Shl(Shr(h, 2, 3), 4)).StoreUnsafe(ref q, y + 32);
                (Shr(a, 4, 15) | Shl(Shr(h, 4, 3), 4)).StoreUnsafe(ref q, y + 64);
                (Shr(c, 4, 15) | Shl(Shr(h, 6, 3), 4)).StoreUnsafe(ref q, y + 96);
            }
            b.Slice(192, 16).CopyTo(f.Scale);
            f.D = BinaryPrimitives.ReadUInt16LittleEndian(b[208..]);
            return;
        }
        f.D = BinaryPrimitives.ReadUInt16LittleEndian(b);
        f.M = BinaryPrimitives.ReadUInt16LittleEndian(b[2..]);
        UnpackScales6(b.Slice(4, 12), f.Scale, f.Min);
        int qs = type == Q5_K ? 48 : 16;
        var qh = type == Q5_K ? Vector256.LoadUnsafe(ref src, 16) : default;
        for (int g = 0; g < 4; g++)
        {
            var v = Vector256.LoadUnsafe(ref src, (nuint)(qs + 32 * g));
            var q0 = v & Vector256.Create((byte)15);
            var q1 = Shr(v, 4, 15);
            if (type == Q5_K)
            {
                q0 |= Shl(Shr(qh, 2 * g, 1), 4);
                q1 |= Shl(Shr(qh, 2 * g + 1, 1), 4);
            }
            q0.StoreUnsafe(ref q, (nuint)(64 * g));
            q1.StoreUnsafe(ref q, (nuint)(64 * g + 32));
        }
    }

    /// <summary><see cref="Join(int, GgmlBlock, Span{byte})"/> of Q4_K, Q5_K and Q6_K, 32 quants a vector.</summary>
    static void JoinVector(int type, GgmlBlock f, Span<byte> b)
    {
        ref byte dst = ref MemoryMarshal.GetReference(b);
        ref byte q = ref MemoryMarshal.GetArrayDataReference(f.Q);
        var lo = Vector256.Create((byte)15);
        if (type == Q6_K)
        {
            for (int n = 0; n < 2; n++)
            {
                nuint y = (nuint)(n * 128);
                var q1 = Vector256.LoadUnsafe(ref q, y);
                var q2 = Vector256.LoadUnsafe(ref q, y + 32);
                var q3 = Vector256.LoadUnsafe(ref q, y + 64);
                var q4 = Vector256.LoadUnsafe(ref q, y + 96);
                ((q1 & lo) | Shl(q3 & lo, 4)).StoreUnsafe(ref dst, (nuint)(n * 64));
                ((q2 & lo) | Shl(q4 & lo, 4)).StoreUnsafe(ref dst, (nuint)(n * 64 + 32));
                (Shr(q1, 4, 3) | Shl(Shr(q2, 4, 3), 2) | Shl(Shr(q3, 4, 3), 4) | Shl(Shr(q4, 4, 3), 6)).StoreUnsafe(ref dst, (nuint)(128 + n * 32));
            }
            f.Scale.AsSpan(0, 16).CopyTo(b[192..]);
            BinaryPrimitives.WriteUInt16LittleEndian(b[208..], f.D);
            return;
        }
        BinaryPrimitives.WriteUInt16LittleEndian(b, f.D);
        BinaryPrimitives.WriteUInt16LittleEndian(b[2..], f.M);
        PackScales6(f.Scale, f.Min, b.Slice(4, 12));
        int qs = type == Q5_K ? 48 : 16;
        var qh = Vector256<byte>.Zero;
        for (int g = 0; g < 4; g++)
        {
            var q0 = Vector256.LoadUnsafe(ref q, (nuint)(64 * g));
            var q1 = Vector256.LoadUnsafe(ref q, (nuint)(64 * g + 32));
            ((q0 & lo) | Shl(q1 & lo, 4)).StoreUnsafe(ref dst, (nuint)(qs + 32 * g));
            if (type == Q5_K) qh |= Shl(Shr(q0, 4, 1), 2 * g) | Shl(Shr(q1, 4, 1), 2 * g + 1);
        }
        if (type == Q5_K) qh.StoreUnsafe(ref dst, 16);
    }

    /// <summary>Q4_K/Q5_K's 12 bytes of eight 6-bit scales and eight 6-bit mins (ggml's <c>get_scale_min_k4</c>).</summary>
    static void UnpackScales6(ReadOnlySpan<byte> s, Span<byte> sc, Span<byte> mn)
    {
        for (int j = 0; j < 4; j++)
        {
            sc[j] = (byte)(s[j] & 63);
            mn[j] = (byte)(s[j + 4] & 63);
            sc[j + 4] = (byte)((s[j + 8] & 15) | ((s[j] >> 6) << 4));
            mn[j + 4] = (byte)((s[j + 8] >> 4) | ((s[j + 4] >> 6) << 4));
        }
    }

    static void PackScales6(ReadOnlySpan<byte> sc, ReadOnlySpan<byte> mn, Span<byte> s)
    {
        for (int j = 0; j < 4; j++)
        {
            s[j] = (byte)((sc[j] & 63) | ((sc[j + 4] >> 4) << 6));
            s[j + 4] = (byte)((mn[j] & 63) | ((mn[j + 4] >> 4) << 6));
            s[j + 8] = (byte)((sc[j + 4] & 15) | ((mn[j + 4] & 15) << 4));
        }
    }
}
