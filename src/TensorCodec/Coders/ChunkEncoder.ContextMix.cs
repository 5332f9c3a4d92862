using System.Buffers.Binary;
using TensorCodec.Numerics;

namespace TensorCodec.Coders;

public sealed partial class ChunkEncoder
{
    ContextMixCoder? _mix;
    byte[] _mixOut = [];
    ushort[] _mixTop = [];

    /// <summary>Fewer whole elements than this never try transforms 12/13: the models would not learn before the end.</summary>
    internal const int ContextMixMinimum = 256;

    /// <summary>Codes a BF16 or F32 chunk with split transform 12/13 (FORMAT.md §2b) and takes it as <paramref name="best"/>
    /// if shorter than <paramref name="bestLen"/>. <paramref name="rowLength"/> is the tensor's last dimension (≤ 0: unknown).</summary>
    void TryContextMix(ReadOnlySpan<byte> source, DType dtype, int rowLength, ref byte[] best, ref int bestLen, List<StreamStats>? stats)
    {
        if (dtype is not (DType.BF16 or DType.F32)) return;
        int es = dtype.ElementSize(), n = source.Length / es, tail = source.Length % es;
        if (n < ContextMixMinimum) return;
        int width = rowLength >= 1 && rowLength <= n ? rowLength : n;
        ushort[] top = Scratch.Grow(ref _mixTop, n);
        Span<uint> hist = stackalloc uint[256];
        hist.Clear();
        for (int i = 0; i < n; i++)
        {
            ushort v = BinaryPrimitives.ReadUInt16LittleEndian(source[(i * es + es - 2)..]);
            top[i] = v;
            hist[(v >> 7) & 255]++;
        }
        int mode = 0;
        for (int s = 1; s < 256; s++) if (hist[s] > hist[mode]) mode = s;

        int residual = (n + 1) / 2 + (es == 4 ? 2 * n : 0);
        const int maxHead = 2 + 3 * Varint.MaxLength + 1;
        int limit = Math.Min(bestLen, source.Length + 1) - maxHead - residual - tail;
        if (limit <= 0) return;
        byte[] buf = Scratch.Grow(ref _mixOut, maxHead + limit + residual + tail);
        _mix ??= new ContextMixCoder();
        int coded = _mix.Encode(top.AsSpan(0, n), width, mode, buf.AsSpan(maxHead, limit));
        if (coded < 0) return;

        Span<byte> head = stackalloc byte[maxHead];
        head[0] = ChunkCodec.ModeSplit;
        head[1] = (byte)(es == 2 ? SplitTransform.Bf16ContextMix : SplitTransform.F32ContextMix);
        int h = 2 + Varint.Write(head[2..], (uint)source.Length);
        h += Varint.Write(head[h..], (uint)width);
        head[h++] = (byte)mode;
        h += Varint.Write(head[h..], (uint)coded);
        int total = h + coded + residual + tail;
        if (total >= bestLen || total > source.Length) return;
        buf.AsSpan(maxHead, coded).CopyTo(buf.AsSpan(h));
        head[..h].CopyTo(buf);
        Span<byte> res = buf.AsSpan(h + coded, residual);
        for (int i = 0; i < n; i += 2)
            res[i >> 1] = (byte)((top[i] & 15) | (i + 1 < n ? (top[i + 1] & 15) << 4 : 0));
        if (es == 4)
        {
            Span<byte> low = res[((n + 1) / 2)..];
            for (int i = 0; i < n; i++) BinaryPrimitives.WriteUInt16LittleEndian(low[(2 * i)..], BinaryPrimitives.ReadUInt16LittleEndian(source[(4 * i)..]));
        }
        source[(n * es)..].CopyTo(buf.AsSpan(h + coded + residual));
        best = buf;
        bestLen = total;
        if (stats is not null)
        {
            stats.Clear();
            stats.Add(new StreamStats($"{dtype}.ctxmix", n, total - tail, FrequencyTable.Order0Bits(source), Order1(source), "ContextMix"));
            if (tail > 0) stats.Add(new StreamStats($"{dtype}.tail", tail, tail, 0, 0, "Stored"));
        }
    }
}
