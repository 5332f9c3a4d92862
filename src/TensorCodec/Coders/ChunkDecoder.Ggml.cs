using System.Buffers;

namespace TensorCodec.Coders;

public sealed partial class ChunkDecoder
{
    GgmlFieldCoder? _ggml;
    GgmlTableCoder? _ggmlTables;

    /// <summary>A mode-3 or mode-4 body (FORMAT.md): ggml type, raw length, coded length, coded blocks, stored tail.</summary>
    OperationStatus DecodeGgml(byte mode, ReadOnlySpan<byte> src, Span<byte> destination, out int rawLen)
    {
        rawLen = 0;
        if (src.Length < 1) return OperationStatus.InvalidData;
        int type = src[0];
        int bb = GgmlBlockFields.BlockBytes(type);
        if (bb == 0) return OperationStatus.InvalidData;
        int pos = 1;
        if (!Varint.TryRead(src, ref pos, out int n) || !Varint.TryRead(src, ref pos, out int coded)) return OperationStatus.InvalidData;
        if (n < bb || coded > src.Length - pos) return OperationStatus.InvalidData;
        int blocksLen = n - n % bb, tail = n - blocksLen;
        if (src.Length - pos - coded != tail) return OperationStatus.InvalidData;
        if (n > destination.Length) return OperationStatus.DestinationTooSmall;
        bool ok = mode == ChunkCodec.ModeGgml
            ? (_ggml ??= new GgmlFieldCoder()).Decode(type, src.Slice(pos, coded), destination[..blocksLen])
            : (_ggmlTables ??= new GgmlTableCoder()).Decode(type, src.Slice(pos, coded), destination[..blocksLen]);
        if (!ok) return OperationStatus.InvalidData;
        src[(pos + coded)..].CopyTo(destination[blocksLen..]);
        rawLen = n;
        return OperationStatus.Done;
    }
}
