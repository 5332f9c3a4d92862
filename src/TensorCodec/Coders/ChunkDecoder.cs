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
public sealed class ChunkDecoder : IDisposable
{
    Decompressor? _zstd;
    byte[] _streams = [];
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
                st = DecodeSplit(body, destination, out written);
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

    unsafe OperationStatus DecodeSplit(ReadOnlySpan<byte> src, Span<byte> destination, out int rawLen)
    {
        rawLen = 0;
        if (src.Length < 2 || !FloatSplit.IsDefined(src[0])) return OperationStatus.InvalidData;
        var t = (SplitTransform)src[0];
        int pos = 1;
        if (!Varint.TryRead(src, ref pos, out rawLen)) return OperationStatus.InvalidData;
        if (rawLen > destination.Length) return OperationStatus.DestinationTooSmall;
        Span<byte> raw = destination[..rawLen];
        int e = FloatSplit.ElementSize(t), sc = FloatSplit.StreamCount(t);
        int n = raw.Length / e, tail = raw.Length % e;

        byte[] streams = Scratch.Grow(ref _streams, Math.Max(1, sc * n));
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
                Span<byte> s = streams.AsSpan(k * n, n);
                sp[k] = scratch + (long)k * n;
                OperationStatus st;
                switch (method)
                {
                    case ChunkCodec.MethodStored:
                        if (len != n) return OperationStatus.InvalidData;
                        sp[k] = s0 + pos;
                        st = OperationStatus.Done;
                        break;
                    case ChunkCodec.MethodConstant:
                        if (len != 1) return OperationStatus.InvalidData;
                        s.Fill(payload[0]);
                        st = OperationStatus.Done;
                        break;
                    case ChunkCodec.MethodHuffman: st = HuffmanCoder.Decode(payload, s); break;
                    case ChunkCodec.MethodRans: st = RansCoder.Decode(payload, s); break;
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
        _streams = [];
    }
}
