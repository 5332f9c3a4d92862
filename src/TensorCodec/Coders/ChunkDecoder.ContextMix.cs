using System.Buffers;
using System.Buffers.Binary;

namespace TensorCodec.Coders;

public sealed partial class ChunkDecoder
{
    ContextMixCoder? _mix;
    ushort[] _mixTop = [];

    /// <summary>A split body with transform 12/13 (FORMAT.md §2b): transform, raw length, width, mode, coded length, coded
    /// top words, the packed low nibbles, for F32 the low 16 bits of each element, the tail.</summary>
    OperationStatus DecodeContextMix(ReadOnlySpan<byte> src, Span<byte> destination, out int rawLen)
    {
        rawLen = 0;
        int es = src[0] == (byte)SplitTransform.Bf16ContextMix ? 2 : 4;
        int pos = 1;
        if (!Varint.TryRead(src, ref pos, out int length) || !Varint.TryRead(src, ref pos, out int width) || pos >= src.Length)
            return OperationStatus.InvalidData;
        int mode = src[pos++];
        if (!Varint.TryRead(src, ref pos, out int coded)) return OperationStatus.InvalidData;
        int n = length / es, tail = length % es;
        if (n < 1 || width < 1 || width > n || coded > src.Length - pos) return OperationStatus.InvalidData;
        long residual = (n + 1L) / 2 + (es == 4 ? 2L * n : 0);
        if (src.Length - pos - coded != residual + tail) return OperationStatus.InvalidData;
        if (length > destination.Length) return OperationStatus.DestinationTooSmall;
        ushort[] top = Scratch.Grow(ref _mixTop, n);
        _mix ??= new ContextMixCoder();
        if (!_mix.Decode(src.Slice(pos, coded), width, mode, top.AsSpan(0, n))) return OperationStatus.InvalidData;
        ReadOnlySpan<byte> nib = src.Slice(pos + coded, (n + 1) / 2);
        ReadOnlySpan<byte> low = src.Slice(pos + coded + nib.Length, (int)residual - nib.Length);
        for (int i = 0; i < n; i++)
        {
            int word = top[i] | ((nib[i >> 1] >> ((i & 1) << 2)) & 15);
            if (es == 2) BinaryPrimitives.WriteUInt16LittleEndian(destination[(2 * i)..], (ushort)word);
            else BinaryPrimitives.WriteUInt32LittleEndian(destination[(4 * i)..], (uint)word << 16 | BinaryPrimitives.ReadUInt16LittleEndian(low[(2 * i)..]));
        }
        src[(pos + coded + (int)residual)..].CopyTo(destination[(n * es)..length]);
        rawLen = length;
        return OperationStatus.Done;
    }
}
