using TensorCodec.Numerics;

namespace TensorCodec.Coders;

public sealed partial class ChunkEncoder
{
    GgmlFieldCoder? _ggml;
    GgmlTableCoder? _ggmlTables;
    byte[] _ggmlOut = [], _ggmlOut2 = [];

    /// <summary>Codes the chunk in <paramref name="mode"/> 3 or 4 (FORMAT.md) when its ggml type is one <see cref="GgmlBlockFields"/>
    /// knows and it holds a whole block; takes it as <paramref name="best"/> if shorter than <paramref name="bestLen"/>.</summary>
    void TryGgml(ReadOnlySpan<byte> source, DType dtype, int ggmlType, byte mode, ref byte[] best, ref int bestLen, List<StreamStats>? stats)
    {
        int bb = GgmlBlockFields.BlockBytes(ggmlType);
        int n = source.Length;
        if (bb == 0 || n < bb) return;
        int blocksLen = n - n % bb, tail = n - blocksLen;
        // Header: mode, type, two varints; the coded part may not reach what is already there.
        int limit = Math.Min(bestLen, n + 1) - (2 + 2 * Varint.MaxLength) - tail;
        if (limit <= 0) return;
        // Two buffers, so that one mode's result can stay the best while the other is tried.
        byte[] buf = Scratch.Grow(ref ReferenceEquals(best, _ggmlOut) ? ref _ggmlOut2 : ref _ggmlOut, 2 + 2 * Varint.MaxLength + n + 16);
        int hdr = 2 + Varint.MaxLength * 2;
        int coded = mode == ChunkCodec.ModeGgml
            ? (_ggml ??= new GgmlFieldCoder()).Encode(ggmlType, source[..blocksLen], buf.AsSpan(hdr, limit))
            : (_ggmlTables ??= new GgmlTableCoder()).Encode(ggmlType, source[..blocksLen], buf.AsSpan(hdr, limit));
        if (coded < 0) return;
        // Move the coded bytes down behind the real header.
        Span<byte> head = stackalloc byte[2 + 2 * Varint.MaxLength];
        head[0] = mode;
        head[1] = (byte)ggmlType;
        int h = 2 + Varint.Write(head[2..], (uint)n);
        h += Varint.Write(head[h..], (uint)coded);
        int total = h + coded + tail;
        if (total >= bestLen || total > n) return;
        buf.AsSpan(hdr, coded).CopyTo(buf.AsSpan(h));
        head[..h].CopyTo(buf);
        source[blocksLen..].CopyTo(buf.AsSpan(h + coded));
        best = buf;
        bestLen = total;
        if (stats is not null)
        {
            stats.Clear();
            stats.Add(new StreamStats($"{dtype}.ggml{ggmlType}.fields", n, total, FrequencyTable.Order0Bits(source), Order1(source),
                mode == ChunkCodec.ModeGgml ? "GgmlFields" : "GgmlTables"));
        }
    }
}
