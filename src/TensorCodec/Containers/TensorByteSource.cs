namespace TensorCodec.Containers;

/// <summary>
/// Where a writer gets one tensor's bytes from. Writers stream the data straight to the
/// output, so a multi-gigabyte model never has to sit in memory; they also check that the
/// source produced exactly <see cref="Length"/> bytes, because a short tensor would silently
/// shift every tensor after it.
/// </summary>
internal abstract class TensorByteSource
{
    /// <summary>Number of bytes the source produces.</summary>
    public abstract long Length { get; }

    /// <summary>Writes exactly <see cref="Length"/> bytes to <paramref name="destination"/>.</summary>
    public abstract void CopyTo(Stream destination);

    /// <summary>Bytes already in memory; they are not copied, so they must not change before the write.</summary>
    public static TensorByteSource FromMemory(ReadOnlyMemory<byte> bytes) => new MemorySource(bytes);

    /// <summary>A byte range of a seekable stream (e.g. a tensor of a file being rewritten).</summary>
    public static TensorByteSource FromStream(Stream source, long offset, long length)
    {
        ArgumentNullException.ThrowIfNull(source);
        if (!source.CanSeek) throw new ArgumentException("source stream must be seekable", nameof(source));
        ArgumentOutOfRangeException.ThrowIfNegative(offset);
        ArgumentOutOfRangeException.ThrowIfNegative(length);
        return new StreamRangeSource(source, offset, length);
    }

    /// <summary>A callback that writes exactly <paramref name="length"/> bytes.</summary>
    public static TensorByteSource FromCallback(long length, Action<Stream> write)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(length);
        ArgumentNullException.ThrowIfNull(write);
        return new CallbackSource(length, write);
    }

    sealed class MemorySource(ReadOnlyMemory<byte> bytes) : TensorByteSource
    {
        public override long Length => bytes.Length;
        public override void CopyTo(Stream destination) => destination.Write(bytes.Span);
    }

    sealed class StreamRangeSource(Stream source, long offset, long length) : TensorByteSource
    {
        public override long Length => length;

        public override void CopyTo(Stream destination)
        {
            source.Position = offset;
            var buffer = new byte[(int)Math.Min(1 << 20, Math.Max(1, length))];
            long left = length;
            while (left > 0)
            {
                int n = source.Read(buffer, 0, (int)Math.Min(buffer.Length, left));
                if (n <= 0) throw new EndOfStreamException($"source stream ended {left} bytes before the end of the tensor range");
                destination.Write(buffer, 0, n);
                left -= n;
            }
        }
    }

    sealed class CallbackSource(long length, Action<Stream> write) : TensorByteSource
    {
        public override long Length => length;
        public override void CopyTo(Stream destination) => write(destination);
    }
}

/// <summary>Counts bytes on their way to the real output so writers can verify each source.</summary>
internal sealed class CountingWriteStream(Stream inner) : Stream
{
    public long Count { get; private set; }
    public override bool CanRead => false;
    public override bool CanSeek => false;
    public override bool CanWrite => true;
    public override long Length => throw new NotSupportedException();
    public override long Position { get => Count; set => throw new NotSupportedException(); }
    public override void Flush() => inner.Flush();
    public override int Read(byte[] buffer, int offset, int count) => throw new NotSupportedException();
    public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
    public override void SetLength(long value) => throw new NotSupportedException();
    public override void Write(byte[] buffer, int offset, int count) { inner.Write(buffer, offset, count); Count += count; }
    public override void Write(ReadOnlySpan<byte> buffer) { inner.Write(buffer); Count += buffer.Length; }
    public override void WriteByte(byte value) { inner.WriteByte(value); Count++; }

    /// <summary>Copies <paramref name="source"/> through the counter and checks its length.</summary>
    public void WriteSource(TensorByteSource source, string tensorName)
    {
        long before = Count;
        source.CopyTo(this);
        long written = Count - before;
        if (written != source.Length)
            throw new InvalidOperationException(
                $"tensor '{tensorName}': byte source wrote {written} bytes but declared {source.Length}");
    }
}
