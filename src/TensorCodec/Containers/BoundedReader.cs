using System.Buffers.Binary;
using System.Text;

namespace TensorCodec.Containers;

/// <summary>
/// Forward-only little-endian reader over a stream of known length. Every read is checked
/// against the bytes that remain *before* anything is allocated, so a corrupt length field
/// turns into a <see cref="TensorFormatException"/> naming the field, never into an
/// <see cref="OutOfMemoryException"/> or an <see cref="EndOfStreamException"/>.
/// </summary>
internal sealed class BoundedReader
{
    static readonly UTF8Encoding StrictUtf8 = new(encoderShouldEmitUTF8Identifier: false, throwOnInvalidBytes: true);

    readonly Stream _stream;
    readonly byte[] _buffer = new byte[64 * 1024];
    int _bufferPos, _bufferLen;

    public string? Path { get; }
    public long Length { get; }
    /// <summary>Absolute offset of the next byte to be read.</summary>
    public long Position { get; private set; }
    public long Remaining => Length - Position;

    public BoundedReader(Stream stream, long start, long length, string? path)
    {
        _stream = stream;
        Path = path;
        Length = length;
        Position = start;
        stream.Position = start;
    }

    public TensorFormatException Error(long? offset, string? field, string message) => new(Path, offset, field, message);

    /// <summary>Throws unless <paramref name="count"/> more bytes exist.</summary>
    public void Require(long count, string field)
    {
        if (count < 0 || count > Remaining)
            throw Error(Position, field, $"needs {count} bytes but only {Remaining} remain in the file (truncated or corrupt length)");
    }

    void ReadExact(Span<byte> dest, string field)
    {
        Require(dest.Length, field);
        while (dest.Length > 0)
        {
            if (_bufferPos == _bufferLen)
            {
                _bufferPos = 0;
                _bufferLen = _stream.Read(_buffer, 0, _buffer.Length);
                // The declared length said the bytes exist; a stream that disagrees is itself truncated.
                if (_bufferLen <= 0) throw Error(Position, field, "unexpected end of stream");
            }
            int n = Math.Min(dest.Length, _bufferLen - _bufferPos);
            _buffer.AsSpan(_bufferPos, n).CopyTo(dest);
            _bufferPos += n;
            Position += n;
            dest = dest[n..];
        }
    }

    public byte ReadU8(string field) { Span<byte> b = stackalloc byte[1]; ReadExact(b, field); return b[0]; }
    public ushort ReadU16(string field) { Span<byte> b = stackalloc byte[2]; ReadExact(b, field); return BinaryPrimitives.ReadUInt16LittleEndian(b); }
    public uint ReadU32(string field) { Span<byte> b = stackalloc byte[4]; ReadExact(b, field); return BinaryPrimitives.ReadUInt32LittleEndian(b); }
    public int ReadI32(string field) { Span<byte> b = stackalloc byte[4]; ReadExact(b, field); return BinaryPrimitives.ReadInt32LittleEndian(b); }
    public ulong ReadU64(string field) { Span<byte> b = stackalloc byte[8]; ReadExact(b, field); return BinaryPrimitives.ReadUInt64LittleEndian(b); }

    public byte[] ReadBytes(long count, string field)
    {
        Require(count, field);
        var bytes = new byte[count];
        ReadExact(bytes, field);
        return bytes;
    }

    /// <summary>Reads <paramref name="byteCount"/> bytes of strict UTF-8 (the formats all say UTF-8).</summary>
    public string ReadUtf8(long byteCount, string field)
    {
        long at = Position;
        var bytes = ReadBytes(byteCount, field);
        try { return StrictUtf8.GetString(bytes); }
        catch (DecoderFallbackException e) { throw new TensorFormatException(Path, at, field, "string is not valid UTF-8", e); }
    }
}
