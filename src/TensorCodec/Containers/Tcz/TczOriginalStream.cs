using TensorCodec.Coders;

namespace TensorCodec.Containers.Tcz;

/// <summary>
/// The original file of a .tcz as a read-only, seekable stream, decoded chunk by chunk as it is read:
/// reading a byte range decodes only the chunks that cover it (each checked against its checksums), and
/// the last chunk is kept, so a sequential read decodes every chunk once. This lets every reader that
/// takes a stream (the GGUF, safetensors and llama2.c parsers, tensor loads) work on a .tcz without
/// decompressing it to disk; memory is one chunk. The whole-file hash is not checked (nothing reads the
/// whole file); <c>tcodec verify</c> does that.
/// </summary>
internal sealed class TczOriginalStream : Stream
{
    readonly TczReader _reader;
    readonly (long Start, int Length, TczSegment Segment, int Chunk)[] _chunks;
    readonly ChunkDecoder _decoder = new();
    readonly byte[] _encoded;
    byte[] _raw = [];
    int _cached = -1;
    long _position;

    /// <summary>A view of <paramref name="reader"/>'s original file; the reader must stay open while the stream is used.</summary>
    public TczOriginalStream(TczReader reader)
    {
        _reader = reader;
        _chunks = reader.Index.Segments
            .SelectMany(s => s.Chunks.Select((c, i) => (c.OriginalOffset, c.RawLength, s, i)))
            .Where(c => c.RawLength > 0)
            .OrderBy(c => c.OriginalOffset)
            .ToArray();
        _encoded = new byte[ChunkCodec.MaxEncodedLength(reader.Index.NominalChunkSize)];
    }

    /// <summary>Chunks decoded so far (a re-read of the cached chunk does not count), for tests of random access.</summary>
    public int ChunksDecoded { get; private set; }

    public override bool CanRead => true;
    public override bool CanSeek => true;
    public override bool CanWrite => false;
    public override long Length => _reader.Index.OriginalLength;

    public override long Position
    {
        get => _position;
        set { ArgumentOutOfRangeException.ThrowIfNegative(value); _position = value; }
    }

    public override int Read(byte[] buffer, int offset, int count) => Read(buffer.AsSpan(offset, count));

    public override int Read(Span<byte> buffer)
    {
        int total = 0;
        while (!buffer.IsEmpty && _position < Length)
        {
            int c = ChunkAt(_position);
            if (c < 0) break; // a gap no segment covers cannot happen in a checked index; stop rather than invent bytes
            var (start, length, segment, chunk) = _chunks[c];
            if (_cached != c)
            {
                if (_raw.Length < length) _raw = new byte[Math.Max(length, _reader.Index.NominalChunkSize)];
                _reader.DecodeChunk(segment, chunk, _decoder, _encoded, _raw.AsSpan(0, length));
                _cached = c;
                ChunksDecoded++;
            }
            int from = (int)(_position - start);
            int n = Math.Min(length - from, buffer.Length);
            _raw.AsSpan(from, n).CopyTo(buffer);
            buffer = buffer[n..];
            _position += n;
            total += n;
        }
        return total;
    }

    /// <summary>Index of the chunk holding original byte <paramref name="pos"/>, or −1.</summary>
    int ChunkAt(long pos)
    {
        if (_cached >= 0 && pos >= _chunks[_cached].Start && pos < _chunks[_cached].Start + _chunks[_cached].Length) return _cached;
        int lo = 0, hi = _chunks.Length - 1;
        while (lo <= hi)
        {
            int mid = (lo + hi) >>> 1;
            if (_chunks[mid].Start > pos) hi = mid - 1;
            else if (_chunks[mid].Start + _chunks[mid].Length <= pos) lo = mid + 1;
            else return mid;
        }
        return -1;
    }

    public override long Seek(long offset, SeekOrigin origin) => Position = origin switch
    {
        SeekOrigin.Begin => offset,
        SeekOrigin.Current => _position + offset,
        _ => Length + offset,
    };

    public override void Flush() { }
    public override void SetLength(long value) => throw new NotSupportedException();
    public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();

    protected override void Dispose(bool disposing)
    {
        if (disposing) _decoder.Dispose();
        base.Dispose(disposing);
    }
}
