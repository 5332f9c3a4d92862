namespace TensorCodec.Containers;

/// <summary>
/// Format detection and the single entry point the codecs and CLI use to read a tensor file.
/// Detection commits as soon as a file identifies itself (GGUF magic; a safetensors header
/// length that fits the file followed by '{'): from then on a malformed file is an error, not
/// an opaque blob, because storing a damaged model as bytes unannounced would hide the damage.
/// llama2.c has no magic, so it is recognised only by an exact size match; anything else is
/// <see cref="TensorFileFormat.Opaque"/>. Compression, which takes any file, opens with
/// <c>strict: false</c>: a file that looks like a container but does not parse is stored as opaque
/// bytes (still byte-exact) and <see cref="TensorFile.OpaqueReason"/> says why.
/// </summary>
public static class TensorFileReader
{
    /// <summary>Opens <paramref name="path"/> and reads its tensor table (tensor data is not read).</summary>
    /// <exception cref="TensorFormatException">The file identifies itself as GGUF, safetensors or llama2.c
    /// but is malformed.</exception>
    /// <exception cref="IOException">The file cannot be opened or read, or is not a regular file (a device, FIFO or /proc file).</exception>
    public static TensorFile Open(string path) => Open(path, strict: true);

    /// <summary>Opens <paramref name="path"/> and reads its tensor table; with <paramref name="strict"/> false a file
    /// that identifies itself as a container but is malformed comes back as <see cref="TensorFileFormat.Opaque"/>,
    /// with the parse error in <see cref="TensorFile.OpaqueReason"/>, instead of throwing.</summary>
    /// <param name="path">The file to read.</param>
    /// <param name="strict">True to throw on a malformed container (what commands that need a model want).</param>
    /// <exception cref="TensorFormatException"><paramref name="strict"/> is true and the file identifies itself
    /// as GGUF, safetensors or llama2.c but is malformed.</exception>
    /// <exception cref="IOException">The file cannot be opened or read, or is not a regular file.</exception>
    public static TensorFile Open(string path, bool strict)
    {
        InputFile.EnsureRegular(path);
        using var stream = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, bufferSize: 1 << 16);
        if (strict) return Read(stream, path);
        try { return Read(stream, path); }
        catch (TensorFormatException e)
        {
            return new TensorFile { Format = TensorFileFormat.Opaque, FileLength = stream.Length, Tensors = [], OpaqueReason = e.Message };
        }
    }

    /// <summary>Reads the tensor table of a seekable stream; a file of no known format comes back as
    /// <see cref="TensorFileFormat.Opaque"/> with no tensors.</summary>
    /// <param name="stream">A seekable stream holding the whole file from position 0.</param>
    /// <param name="path">File name used in error messages, or null.</param>
    /// <exception cref="TensorFormatException">The stream identifies itself as a known format but is malformed.</exception>
    /// <exception cref="ArgumentException"><paramref name="stream"/> is not seekable.</exception>
    public static TensorFile Read(Stream stream, string? path)
    {
        ArgumentNullException.ThrowIfNull(stream);
        return Detect(stream) switch
        {
            TensorFileFormat.Gguf => GgufFile.Read(stream, path),
            TensorFileFormat.Safetensors => SafetensorsFile.Read(stream, path),
            TensorFileFormat.Llama2c => Llama2cFile.Read(stream, path),
            _ => new TensorFile { Format = TensorFileFormat.Opaque, FileLength = stream.Length, Tensors = [] },
        };
    }

    /// <summary>Which reader <see cref="Read"/> would use for the file at <paramref name="path"/>;
    /// see <see cref="Detect(Stream)"/>.</summary>
    public static TensorFileFormat Detect(string path)
    {
        InputFile.EnsureRegular(path);
        using var stream = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, bufferSize: 4096);
        return Detect(stream);
    }

    /// <summary>
    /// Which reader <see cref="Read"/> would use. Cheap (reads at most 36 bytes) and never throws
    /// for malformed content; the stream position is restored.
    /// </summary>
    public static TensorFileFormat Detect(Stream stream)
    {
        ArgumentNullException.ThrowIfNull(stream);
        if (!stream.CanSeek) throw new ArgumentException("format detection needs a seekable stream", nameof(stream));
        long length = stream.Length;
        long pos = stream.Position;
        Span<byte> head = stackalloc byte[ContainerSniff.HeadBytes];
        int n;
        try
        {
            stream.Position = 0;
            n = stream.ReadAtLeast(head, head.Length, throwOnEndOfStream: false);
        }
        finally { stream.Position = pos; }

        switch (ContainerSniff.Sniff(head[..n], length))
        {
            case ContainerKind.Gguf: return TensorFileFormat.Gguf;
            case ContainerKind.Safetensors: return TensorFileFormat.Safetensors;
        }
        if (Llama2cFile.TryDetect(stream, length)) return TensorFileFormat.Llama2c;
        return TensorFileFormat.Opaque;
    }
}
