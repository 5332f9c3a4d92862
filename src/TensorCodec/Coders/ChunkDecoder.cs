using System.Buffers;
using ZstdSharp;

namespace TensorCodec.Coders;

/// <summary>
/// Decodes chunks written by <see cref="ChunkEncoder"/>. A chunk describes itself (mode, transform, raw
/// length), so no dtype or option is needed; malformed input gives <see cref="OperationStatus.InvalidData"/>,
/// never an exception or an out-of-bounds access.
/// </summary>
/// <remarks>
/// The decoder owns its scratch (the shape of zstd's ZSTD_DCtx): one stream buffer that grows to the
/// largest chunk seen, and a zstd context, both reused, so decoding allocates nothing after warm-up.
/// <see cref="Dispose"/> releases them. One decoder serves one thread at a time.
/// </remarks>
public sealed partial class ChunkDecoder : IDisposable
{
    Decompressor? _zstd;
    byte[] _streams = [], _pairStreams = [];
    bool _disposed;

    /// <summary>
    /// Decodes one chunk into the start of <paramref name="destination"/>; <paramref name="bytesWritten"/> is the
    /// chunk's raw length. <see cref="OperationStatus.DestinationTooSmall"/> if that length exceeds
    /// <c>destination.Length</c>, <see cref="OperationStatus.InvalidData"/> if the chunk is malformed.
    /// </summary>
    public OperationStatus Decode(ReadOnlySpan<byte> source, Span<byte> destination, out int bytesWritten)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        bytesWritten = 0;
        if (source.IsEmpty) return OperationStatus.InvalidData;
        ReadOnlySpan<byte> body = source[1..];
        OperationStatus st;
        int written;
        switch (source[0])
        {
            case ChunkCodec.ModeStored:
                if (body.Length > destination.Length) return OperationStatus.DestinationTooSmall;
                body.CopyTo(destination);
                written = body.Length;
                st = OperationStatus.Done;
                break;
            case ChunkCodec.ModeZstd:
                st = Unzstd(body, destination, out written);
                break;
            case ChunkCodec.ModeSplit:
                st = DecodeSplit(body, destination, out written, ref _streams, -1, default);
                break;
            case ChunkCodec.ModeGgml:
            case ChunkCodec.ModeGgmlTables:
                st = DecodeGgml(source[0], body, destination, out written);
                break;
            default:
                return OperationStatus.InvalidData;
        }
        if (st == OperationStatus.Done) bytesWritten = written;
        return st;
    }

    /// <summary>Decompresses one zstd frame into the start of <paramref name="dst"/>.</summary>
    OperationStatus Unzstd(ReadOnlySpan<byte> src, Span<byte> dst, out int written)
    {
        written = 0;
        try
        {
            ulong size = Decompressor.GetDecompressedSize(src);
            // Writers only use zstd for non-empty data, and always record the content size.
            if (size == 0 || size > int.MaxValue) return OperationStatus.InvalidData;
            if (size > (ulong)dst.Length) return OperationStatus.DestinationTooSmall;
            var d = _zstd ??= new Decompressor();
            if (!d.TryUnwrap(src, dst[..(int)size], out written)) return OperationStatus.InvalidData;
            return written == (int)size ? OperationStatus.Done : OperationStatus.InvalidData;
        }
        catch (Exception ex) when (ex is not OutOfMemoryException)
        {
            // A failed decompression may leave the context mid-frame; start the next call clean.
            _zstd?.Dispose();
            _zstd = null;
            written = 0;
            return OperationStatus.InvalidData;
        }
    }

    /// <summary>
    /// Decodes two chunks, with the results of two <see cref="Decode"/> calls. When both are split chunks with a
    /// rANS stream (every float chunk whose exponent is coded), those two streams are decoded in one interleaved
    /// loop (<see cref="RansCoder.DecodePair"/>): one stream's decode is a single dependency chain, two keep the
    /// core busier. <paramref name="b"/>'s scratch is separate, so nothing of one chunk is visible to the other.
    /// </summary>
    internal void DecodePair(ReadOnlySpan<byte> a, Span<byte> destinationA, out OperationStatus statusA, out int writtenA,
        ReadOnlySpan<byte> b, Span<byte> destinationB, out OperationStatus statusB, out int writtenB)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        if (!FindRans(a, destinationA.Length, out var ra) || !FindRans(b, destinationB.Length, out var rb))
        {
            statusA = Decode(a, destinationA, out writtenA);
            statusB = Decode(b, destinationB, out writtenB);
            return;
        }
        byte[] sa = Scratch.Grow(ref _streams, Math.Max(1, ra.Streams * ra.N));
        byte[] sb = Scratch.Grow(ref _pairStreams, Math.Max(1, rb.Streams * rb.N));
        RansCoder.DecodePair(a.Slice(ra.Offset, ra.Length), sa.AsSpan(ra.Stream * ra.N, ra.N), out var pa,
                             b.Slice(rb.Offset, rb.Length), sb.AsSpan(rb.Stream * rb.N, rb.N), out var pb);
        writtenA = writtenB = 0;
        statusA = DecodeSplit(a[1..], destinationA, out int wa, ref _streams, ra.Stream, pa);
        if (statusA == OperationStatus.Done) writtenA = wa;
        statusB = DecodeSplit(b[1..], destinationB, out int wb, ref _pairStreams, rb.Stream, pb);
        if (statusB == OperationStatus.Done) writtenB = wb;
    }

    /// <summary>Where a split chunk's first rANS stream is (offsets into the whole chunk), walking the stream
    /// headers only; false for any other chunk or one that does not parse (the plain decoder then reports it).</summary>
    static bool FindRans(ReadOnlySpan<byte> chunk, int destinationLength, out (int Stream, int Offset, int Length, int N, int Streams) found)
    {
        found = default;
        if (chunk.Length < 3 || chunk[0] != ChunkCodec.ModeSplit || !FloatSplit.IsDefined(chunk[1])) return false;
        var t = (SplitTransform)chunk[1];
        int pos = 2;
        if (!Varint.TryRead(chunk, ref pos, out int rawLen) || rawLen > destinationLength) return false;
        int e = FloatSplit.ElementSize(t), sc = FloatSplit.StreamCount(t), n = rawLen / e;
        for (int k = 0; k < sc; k++)
        {
            if (pos >= chunk.Length) return false;
            byte method = chunk[pos++];
            if (!Varint.TryRead(chunk, ref pos, out int len) || len > chunk.Length - pos) return false;
            if (method == ChunkCodec.MethodRans && FloatSplit.StreamLength(t, k, n) == n)
            {
                found = (k, pos, len, n, sc);
                return true;
            }
            pos += len;
        }
        return false;
    }

    /// <summary>A split chunk's body. <paramref name="decodedStream"/> ≥ 0 names a rANS stream already decoded into
    /// its place in <paramref name="scratchSlot"/> with <paramref name="decodedStatus"/> (by <see cref="DecodePair"/>).</summary>
    unsafe OperationStatus DecodeSplit(ReadOnlySpan<byte> src, Span<byte> destination, out int rawLen, ref byte[] scratchSlot,
        int decodedStream, OperationStatus decodedStatus)
    {
        rawLen = 0;
        if (src.Length >= 1 && src[0] is (byte)SplitTransform.Bf16ContextMix or (byte)SplitTransform.F32ContextMix)
            return DecodeContextMix(src, destination, out rawLen);
        if (src.Length < 2 || !FloatSplit.IsDefined(src[0])) return OperationStatus.InvalidData;
        var t = (SplitTransform)src[0];
        int pos = 1;
        if (!Varint.TryRead(src, ref pos, out rawLen)) return OperationStatus.InvalidData;
        if (rawLen > destination.Length) return OperationStatus.DestinationTooSmall;
        Span<byte> raw = destination[..rawLen];
        int e = FloatSplit.ElementSize(t), sc = FloatSplit.StreamCount(t);
        int n = raw.Length / e, tail = raw.Length % e;

        byte[] streams = Scratch.Grow(ref scratchSlot, Math.Max(1, sc * n));
        fixed (byte* s0 = src)
        fixed (byte* scratch = streams)
        fixed (byte* r = raw)
        {
            // Stored streams are merged straight from the chunk; only coded ones go through scratch.
            byte** sp = stackalloc byte*[8];
            for (int k = 0; k < sc; k++)
            {
                if (pos >= src.Length) return OperationStatus.InvalidData;
                byte method = src[pos++];
                if (!Varint.TryRead(src, ref pos, out int len) || len > src.Length - pos) return OperationStatus.InvalidData;
                ReadOnlySpan<byte> payload = src.Slice(pos, len);
                int sn = FloatSplit.StreamLength(t, k, n);
                Span<byte> s = streams.AsSpan(k * n, sn);
                sp[k] = scratch + (long)k * n;
                OperationStatus st;
                switch (method)
                {
                    case ChunkCodec.MethodStored:
                        if (len != sn) return OperationStatus.InvalidData;
                        sp[k] = s0 + pos;
                        st = OperationStatus.Done;
                        break;
                    case ChunkCodec.MethodConstant:
                        if (len != 1) return OperationStatus.InvalidData;
                        s.Fill(payload[0]);
                        st = OperationStatus.Done;
                        break;
                    case ChunkCodec.MethodHuffman: st = HuffmanCoder.Decode(payload, s); break;
                    case ChunkCodec.MethodRans: st = k == decodedStream ? decodedStatus : RansCoder.Decode(payload, s); break;
                    case ChunkCodec.MethodRansWide: st = RansWideCoder.Decode(payload, s); break;
                    case ChunkCodec.MethodZstd:
                        st = Unzstd(payload, s, out int zw);
                        if (st == OperationStatus.Done && zw != n) st = OperationStatus.InvalidData;
                        break;
                    default: return OperationStatus.InvalidData;
                }
                if (st != OperationStatus.Done) return OperationStatus.InvalidData;
                pos += len;
            }
            if (src.Length - pos != tail) return OperationStatus.InvalidData;
            FloatSplit.MergeCore(t, sp, r, n);
            src[pos..].CopyTo(raw[(n * e)..]);
        }
        return OperationStatus.Done;
    }

    /// <summary>Releases the stream buffer and the zstd context. The decoder cannot be used afterwards.</summary>
    public void Dispose()
    {
        if (_disposed) return;
        _disposed = true;
        _zstd?.Dispose();
        _zstd = null;
        _streams = _pairStreams = [];
        _ggml = null;
        _mix = null;
        _mixTop = [];
    }
}
