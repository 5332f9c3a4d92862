using System.Buffers.Binary;
using TensorCodec.Numerics;

namespace TensorCodec.Coders;

/// <summary>How a tensor's bytes are rewritten against a reference tensor of the same dtype and length
/// before the chunk codec sees them (the id is stored in the .tcz reference section, FORMAT.md).</summary>
internal enum DeltaKind : byte
{
    /// <summary>Coded alone: the bytes as they are.</summary>
    None = 0,
    /// <summary>Bit patterns XORed with the reference's: equal sign and exponent leave zero high bits,
    /// coded with the float split (exponent stream mostly zero).</summary>
    Xor = 1,
    /// <summary>Bit patterns read as sign-magnitude integers (the order of the float values), reference
    /// subtracted modulo 2^w, coded as signed integers (zig-zag planes): a small move of the value is a
    /// small integer whatever the exponent does.</summary>
    Sub = 2,
    /// <summary>Identical to an earlier tensor of the same file: coded as all-zero XOR against it.</summary>
    Dup = 3,
}

/// <summary>
/// The lossless delta transforms of <see cref="DeltaKind"/>, element-wise and in place, for element
/// widths of 2 and 4 bytes (BF16/F16/16-bit ints and F32/32-bit ints); other widths use XOR, which
/// is defined on bytes. Every bit pattern round-trips (NaN payloads, −0).
/// </summary>
internal static class DeltaTransform
{
    /// <summary>True when <paramref name="kind"/> is a defined id.</summary>
    public static bool IsDefined(byte kind) => kind <= (byte)DeltaKind.Dup;

    /// <summary>The dtype label the chunk encoder codes the transformed bytes with: XOR keeps the float
    /// split (its exponent stream becomes mostly zero); a difference is a signed integer.</summary>
    public static DType CodedDType(DeltaKind kind, DType dtype) => kind switch
    {
        DeltaKind.Sub => dtype.ElementSize() switch { 2 => DType.I16, 4 => DType.I32, _ => dtype },
        _ => dtype,
    };

    /// <summary>Whether <paramref name="kind"/> can transform elements of <paramref name="dtype"/> (Sub needs 2 or 4 bytes).</summary>
    public static bool Supports(DeltaKind kind, DType dtype) =>
        kind != DeltaKind.Sub || dtype.ElementSize() is 2 or 4;

    /// <summary>Rewrites <paramref name="data"/> (whole elements, same length as <paramref name="reference"/>) as its delta.</summary>
    public static void Forward(DeltaKind kind, int elementSize, Span<byte> data, ReadOnlySpan<byte> reference)
    {
        if (data.Length != reference.Length) throw new ArgumentException("data and reference differ in length");
        switch (kind)
        {
            case DeltaKind.None: return;
            case DeltaKind.Xor or DeltaKind.Dup: Xor(data, reference); return;
            case DeltaKind.Sub when elementSize == 4:
                for (int i = 0; i + 4 <= data.Length; i += 4)
                {
                    uint v = Ordered32(BinaryPrimitives.ReadUInt32LittleEndian(data[i..]));
                    uint r = Ordered32(BinaryPrimitives.ReadUInt32LittleEndian(reference[i..]));
                    BinaryPrimitives.WriteUInt32LittleEndian(data[i..], v - r);
                }
                return;
            case DeltaKind.Sub when elementSize == 2:
                for (int i = 0; i + 2 <= data.Length; i += 2)
                {
                    ushort v = Ordered16(BinaryPrimitives.ReadUInt16LittleEndian(data[i..]));
                    ushort r = Ordered16(BinaryPrimitives.ReadUInt16LittleEndian(reference[i..]));
                    BinaryPrimitives.WriteUInt16LittleEndian(data[i..], (ushort)(v - r));
                }
                return;
            default: throw new ArgumentException($"delta {kind} is not defined for {elementSize}-byte elements");
        }
    }

    /// <summary>Undoes <see cref="Forward"/> in place.</summary>
    public static void Inverse(DeltaKind kind, int elementSize, Span<byte> data, ReadOnlySpan<byte> reference)
    {
        if (data.Length != reference.Length) throw new ArgumentException("data and reference differ in length");
        switch (kind)
        {
            case DeltaKind.None: return;
            case DeltaKind.Xor or DeltaKind.Dup: Xor(data, reference); return;
            case DeltaKind.Sub when elementSize == 4:
                for (int i = 0; i + 4 <= data.Length; i += 4)
                {
                    uint d = BinaryPrimitives.ReadUInt32LittleEndian(data[i..]);
                    uint r = Ordered32(BinaryPrimitives.ReadUInt32LittleEndian(reference[i..]));
                    BinaryPrimitives.WriteUInt32LittleEndian(data[i..], Unordered32(d + r));
                }
                return;
            case DeltaKind.Sub when elementSize == 2:
                for (int i = 0; i + 2 <= data.Length; i += 2)
                {
                    ushort d = BinaryPrimitives.ReadUInt16LittleEndian(data[i..]);
                    ushort r = Ordered16(BinaryPrimitives.ReadUInt16LittleEndian(reference[i..]));
                    BinaryPrimitives.WriteUInt16LittleEndian(data[i..], Unordered16((ushort)(d + r)));
                }
                return;
            default: throw new ArgumentException($"delta {kind} is not defined for {elementSize}-byte elements");
        }
    }

    static void Xor(Span<byte> data, ReadOnlySpan<byte> reference)
    {
        int i = 0;
        for (; i + 8 <= data.Length; i += 8)
        {
            ulong v = BinaryPrimitives.ReadUInt64LittleEndian(data[i..]) ^ BinaryPrimitives.ReadUInt64LittleEndian(reference[i..]);
            BinaryPrimitives.WriteUInt64LittleEndian(data[i..], v);
        }
        for (; i < data.Length; i++) data[i] ^= reference[i];
    }

    // Sign-magnitude to two's complement in value order, a bijection: +m → m, −m → −m − 1 (so −0 ≠ +0).
    static uint Ordered32(uint v) => (v & 0x8000_0000u) == 0 ? v : ~(v & 0x7FFF_FFFFu);
    static uint Unordered32(uint o) => (o & 0x8000_0000u) == 0 ? o : ~o | 0x8000_0000u;
    static ushort Ordered16(ushort v) => (v & 0x8000) == 0 ? v : (ushort)~(v & 0x7FFF);
    static ushort Unordered16(ushort o) => (o & 0x8000) == 0 ? o : (ushort)(~o | 0x8000);
}
