using System.Buffers;
using System.Buffers.Binary;
using System.IO.Hashing;
using Microsoft.Win32.SafeHandles;
using TensorCodec.Coders;

namespace TensorCodec.Containers.Tcz;

/// <summary>
/// Reads a .tcz file: the index at open time, then chunks on demand. Supports streaming
/// decompression of the whole file, verification without output, and random access to one
/// tensor (<see cref="ReadTensor(string)"/>) without touching the rest.
/// </summary>
public sealed class TczReader : IDisposable
{
    readonly SafeFileHandle _handle;
    /// <summary>The file this reader holds open.</summary>
    public string Path { get; }
    /// <summary>Size of the .tcz file in bytes.</summary>
    public long FileLength { get; }
    /// <summary>The index, read and checked when the file was opened.</summary>
    public TczIndex Index { get; }
    /// <summary>The format minor version the writer recorded.</summary>
    public ushort VersionMinor { get; }

    TczReader(SafeFileHandle handle, string path, long length, TczIndex index, ushort minor, TczReferenceSection? section)
    {
        _handle = handle; Path = path; FileLength = length; Index = index; VersionMinor = minor;
        _section = section;
        if (section is not null) _coder = TczSegmentCoder.ForReader(section, index.Segments, path, null);
    }

    readonly TczReferenceSection? _section;
    TczSegmentCoder? _coder;

    /// <summary>What the archive was coded against, or stores lossy; null for a plain archive.</summary>
    public TczReferenceInfo? Reference => _section?.Info();

    /// <summary>Decode delta-coded and quantized chunks only to the bytes the chunk codec stored (for statistics;
    /// their raw hash is then not checked, the encoded hash still is).</summary>
    internal bool CodedFormOnly { get; set; }

    /// <summary>True when some tensors are stored quantized: decompression rebuilds them, not the original bytes.</summary>
    public bool IsLossy => _section?.Entries.Any(e => e.Coding is TczCoding.Quantized or TczCoding.LossyDelta) == true;

    /// <summary>The lossy delta coding of segment <paramref name="segment"/>, or null when it is not stored as one.</summary>
    internal LossyDeltaSpec? LossyDeltaEntry(int segment) =>
        _section?.Entries.FirstOrDefault(e => e.Segment == segment && e.Coding == TczCoding.LossyDelta).Lossy;

    /// <summary>
    /// Supplies the reference file the archive was coded against (needed before decoding any delta-coded tensor).
    /// Every reference tensor the archive uses is checked: present, same dtype and shape, same checksum.
    /// </summary>
    /// <exception cref="TensorFormatException">The file is not the archive's reference; the message names the first tensor that differs.</exception>
    /// <exception cref="ArgumentException">The archive was not coded against a reference.</exception>
    public void AttachReference(string referencePath)
    {
        if (_section is null || _section.RefTensors.Count == 0)
            throw new ArgumentException($"{Path}: was not coded against a reference; decompress it without --ref");
        var coder = TczSegmentCoder.ForReader(_section, Index.Segments, Path, referencePath);
        _coder?.Dispose();
        _coder = coder;
    }

    /// <summary>True when <paramref name="firstBytes"/> (at least 8) begin with the .tcz magic number.</summary>
    public static bool HasMagic(ReadOnlySpan<byte> firstBytes) =>
        firstBytes.Length >= 8 && firstBytes[..8].SequenceEqual(TczConstants.Magic);

    /// <summary>Opens a .tcz file read-only and checks its header, trailer and index (chunks are checked as they are decoded).</summary>
    /// <exception cref="TensorFormatException">The file is not a .tcz file, is of an unsupported version, or is damaged; the message names the field and offset.</exception>
    /// <exception cref="IOException">The file cannot be read.</exception>
    public static TczReader Open(string path)
    {
        InputFile.EnsureRegular(path);
        return Open(File.OpenHandle(path, FileMode.Open, FileAccess.Read, FileShare.Read), path);
    }

    /// <summary>
    /// Opens a .tcz file that arrives as a stream (standard input, a pipe). The index sits at the end of the
    /// file and chunks are read where it says, so the stream is first copied to an anonymous temporary file
    /// in <paramref name="tempDirectory"/> (default: the system's temp folder). That file is removed when the
    /// reader is disposed, and on Unix it has no name at all once created, so not even a kill leaves it behind.
    /// </summary>
    /// <param name="input">Read to its end.</param>
    /// <param name="name">Names the input in errors ("-" for standard input).</param>
    /// <param name="tempDirectory">Where the copy goes; it needs room for the whole compressed file.</param>
    /// <exception cref="TensorFormatException">The bytes are not a valid .tcz file.</exception>
    /// <exception cref="IOException">The stream or the temporary file cannot be read or written.</exception>
    public static TczReader OpenStream(Stream input, string name, string? tempDirectory = null)
    {
        var dir = tempDirectory ?? System.IO.Path.GetTempPath();
        var spool = System.IO.Path.Combine(dir, $".tcodec-stdin-{Environment.ProcessId}-{Guid.NewGuid():N}.tmp");
        var file = new FileStream(spool, FileMode.CreateNew, FileAccess.ReadWrite, FileShare.None, 1 << 16, FileOptions.DeleteOnClose);
        try
        {
            // Unix keeps an open file's data after its name is gone; Windows relies on DeleteOnClose.
            if (!OperatingSystem.IsWindows()) File.Delete(spool);
            try { input.CopyTo(file, 1 << 20); }
            catch (IOException e) { throw new IOException($"{name}: copying to a temporary file in {dir} failed: {e.Message}", e); }
            file.Flush();
            // The reader owns the handle; closing it deletes the file on Windows.
            var handle = file.SafeFileHandle;
            var reader = Open(handle, name);
            reader._spool = file;
            return reader;
        }
        catch
        {
            file.Dispose();
            throw;
        }
    }

    FileStream? _spool;

    /// <summary>Reads header, trailer and index through an open handle; the reader owns it from here on.</summary>
    static TczReader Open(SafeFileHandle handle, string path)
    {
        try
        {
            long length = RandomAccess.GetLength(handle);
            if (length < TczConstants.HeaderSize + TczConstants.TrailerSize)
                throw new TensorFormatException(path, 0, "header", $"file is {length} bytes, too short to be a .tcz file (minimum {TczConstants.HeaderSize + TczConstants.TrailerSize})");
            var header = new byte[TczConstants.HeaderSize];
            ReadExactly(handle, header, 0, path);
            if (!HasMagic(header))
                throw new TensorFormatException(path, 0, "magic", "not a .tcz file (wrong magic number)");
            ushort major = BinaryPrimitives.ReadUInt16LittleEndian(header.AsSpan(8));
            ushort minor = BinaryPrimitives.ReadUInt16LittleEndian(header.AsSpan(10));
            if (major != TczConstants.VersionMajor)
                throw new TensorFormatException(path, 8, "version", $"unsupported .tcz version {major}.{minor}; this build reads version {TczConstants.VersionMajor}.x");
            uint flags = BinaryPrimitives.ReadUInt32LittleEndian(header.AsSpan(12));

            var trailer = new byte[TczConstants.TrailerSize];
            long trailerOffset = length - TczConstants.TrailerSize;
            ReadExactly(handle, trailer, trailerOffset, path);
            if (!trailer.AsSpan(24).SequenceEqual(TczConstants.TrailerMagic))
                throw new TensorFormatException(path, trailerOffset + 24, "trailer_magic", "trailer magic missing: the file is truncated or damaged at its end");
            long indexOffset = BinaryPrimitives.ReadInt64LittleEndian(trailer);
            long indexLength = BinaryPrimitives.ReadInt64LittleEndian(trailer.AsSpan(8));
            ulong indexHash = BinaryPrimitives.ReadUInt64LittleEndian(trailer.AsSpan(16));
            if (indexOffset < TczConstants.HeaderSize || indexLength < 0 || indexOffset > trailerOffset || indexLength != trailerOffset - indexOffset)
                throw new TensorFormatException(path, trailerOffset, "index_offset", $"index position {indexOffset}+{indexLength} does not end at the trailer ({trailerOffset}): truncated or damaged file");
            if (indexLength > int.MaxValue)
                throw new TensorFormatException(path, trailerOffset + 8, "index_length", $"index of {indexLength} bytes is too large");
            var indexBytes = new byte[indexLength];
            ReadExactly(handle, indexBytes, indexOffset, path);
            if (TczWriter.IndexHash(header, indexBytes) != indexHash)
                throw new TensorFormatException(path, indexOffset, "index_hash", "checksum mismatch in the header or index: the file is damaged");
            // Flags are covered by the hash; a 1.x reader refuses flags it does not know.
            if ((flags & ~TczFlags.Known) != 0)
                throw new TensorFormatException(path, 12, "flags", $"unknown feature flags 0x{flags:X8} (written by a newer TensorCodec?)");
            var index = TczIndex.Parse(indexBytes, indexOffset, indexOffset, path, extended: flags != 0);
            var section = flags == 0 ? null : TczReferenceSection.Parse(index.Extension!, index.ExtensionOffset, flags, index.Segments, path);
            return new TczReader(handle, path, length, index, minor, section);
        }
        catch
        {
            handle.Dispose();
            throw;
        }
    }

    /// <summary>The tensor segment named <paramref name="name"/> (ordinal match).</summary>
    /// <exception cref="KeyNotFoundException">No tensor has that name.</exception>
    public TczSegment FindTensor(string name) =>
        Index.Tensors.FirstOrDefault(s => s.Name == name)
        ?? throw new KeyNotFoundException($"{Path}: no tensor named '{name}'");

    /// <summary>Decodes one tensor's raw bytes (random access: only its chunks are read).</summary>
    public byte[] ReadTensor(string name)
    {
        var seg = FindTensor(name);
        if (seg.Length > Array.MaxLength) throw new NotSupportedException($"{seg.Label} is larger than a .NET array; use ReadTensor(name, stream)");
        var result = new byte[seg.Length];
        int pos = 0;
        using var decoder = new ChunkDecoder();
        var encoded = ArrayPool<byte>.Shared.Rent(MaxEncoded(seg));
        try
        {
            for (int c = 0; c < seg.Chunks.Count; c++)
            {
                DecodeChunk(seg, c, decoder, encoded, result.AsSpan(pos, seg.Chunks[c].RawLength));
                pos += seg.Chunks[c].RawLength;
            }
        }
        finally { ArrayPool<byte>.Shared.Return(encoded); }
        return result;
    }

    /// <summary>Decodes one tensor's raw bytes into <paramref name="destination"/>, a chunk at a time (any size of tensor).</summary>
    public void ReadTensor(string name, Stream destination)
    {
        var seg = FindTensor(name);
        using var decoder = new ChunkDecoder();
        var encoded = ArrayPool<byte>.Shared.Rent(MaxEncoded(seg));
        var raw = ArrayPool<byte>.Shared.Rent(MaxRaw(seg));
        try
        {
            for (int c = 0; c < seg.Chunks.Count; c++)
            {
                var span = raw.AsSpan(0, seg.Chunks[c].RawLength);
                DecodeChunk(seg, c, decoder, encoded, span);
                destination.Write(span);
            }
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(encoded);
            ArrayPool<byte>.Shared.Return(raw);
        }
    }

    // Buffers are sized from the chunks at hand, never from the declared chunk size.
    static int MaxRaw(TczSegment seg) => seg.Chunks.Count == 0 ? 0 : seg.Chunks.Max(c => c.RawLength);
    static int MaxEncoded(TczSegment seg) => seg.Chunks.Count == 0 ? 0 : seg.Chunks.Max(c => c.EncodedLength);

    /// <summary>Reads, checks and decodes one chunk into <paramref name="raw"/> (exactly its raw length) with the
    /// caller's <paramref name="decoder"/>; <paramref name="encodedScratch"/> holds the chunk's encoded bytes.</summary>
    public void DecodeChunk(TczSegment seg, int chunkIndex, ChunkDecoder decoder, Span<byte> encodedScratch, Span<byte> raw)
    {
        var c = seg.Chunks[chunkIndex];
        var enc = encodedScratch[..c.EncodedLength];
        ReadExactly(_handle, enc, c.FileOffset, Path);
        CheckAndDecode(seg, chunkIndex, decoder, enc, raw);
    }

    void CheckAndDecode(TczSegment seg, int chunkIndex, ChunkDecoder decoder, ReadOnlySpan<byte> enc, Span<byte> raw)
    {
        // The encoded hash is checked first: it catches every flipped bit before the decoder sees it.
        if (!EncodedHashMatches(seg, chunkIndex, enc))
            throw ChunkError(seg, chunkIndex, "checksum mismatch in the compressed data");
        var status = decoder.Decode(enc, raw, out int written);
        CheckDecoded(seg, chunkIndex, status, written, raw);
    }

    static bool EncodedHashMatches(TczSegment seg, int chunkIndex, ReadOnlySpan<byte> enc) => TczHash.Of(enc) == seg.Chunks[chunkIndex].EncodedHash;

    void CheckDecoded(TczSegment seg, int chunkIndex, OperationStatus status, int written, Span<byte> raw)
    {
        var c = seg.Chunks[chunkIndex];
        if (status == OperationStatus.Done && written != raw.Length)
            throw ChunkError(seg, chunkIndex, $"chunk decodes to {written} bytes, the index says {raw.Length}");
        if (status != OperationStatus.Done)
            throw ChunkError(seg, chunkIndex, $"chunk does not decode ({status})");
        if (_coder is not null && _coder.Applies(seg))
        {
            // Inspect without the reference measures the coded bytes: their hash is not the raw hash.
            if (CodedFormOnly) return;
            _coder.Inverse(this, seg, chunkIndex, raw);
        }
        if (TczHash.Of(raw) != c.RawHash)
            throw ChunkError(seg, chunkIndex, "decoded bytes fail their checksum");
    }

    TensorFormatException ChunkError(TczSegment seg, int chunkIndex, string message) =>
        new(Path, seg.Chunks[chunkIndex].FileOffset, $"chunk {chunkIndex}",
            $"{seg.Label}, chunk {chunkIndex} of {seg.Chunks.Count}: {message}");

    /// <summary>
    /// Decodes every chunk in order, checking every checksum and the whole-file hash, and writes
    /// the original bytes to <paramref name="output"/> (or discards them when it is null: verify).
    /// </summary>
    public void DecompressTo(Stream? output, int threads = 1, IProgress<long>? progress = null, CancellationToken cancellation = default)
    {
        if (_coder is { NeedsReference: true, HasReference: false }) throw _coder.MissingReference(Path);
        threads = Math.Clamp(threads, 1, 256);
        var work = new List<(TczSegment Segment, int Chunk)>();
        foreach (var s in Index.Segments)
            for (int c = 0; c < s.Chunks.Count; c++) work.Add((s, c));

        // Memory is bounded by what the file holds: buffers fit its largest chunk (not the chunk size it
        // declares), with no more workers than chunks or than ChunkPipeline.SlotBudgetBytes holds, so a
        // small file cannot make verify -T 16 allocate 17 × 2 × 64 MiB.
        int rawCap = Index.MaxChunkRawLength, encCap = Index.MaxChunkEncodedLength;
        threads = ChunkPipeline.Workers(threads, work.Count, (long)rawCap + encCap);
        var fileHash = new XxHash3();
        long done = 0;
        if (threads == 1)
        {
            DecompressInPairs(work, output, fileHash, progress, cancellation, rawCap, encCap);
            if (fileHash.GetCurrentHashAsUInt64() != Index.OriginalHash)
                throw new TensorFormatException(Path, null, "original_hash", "the decompressed file does not match the whole-file checksum");
            output?.Flush();
            return;
        }
        ChunkPipeline.Run(work.Count, threads,
            // Exact sizes: the pool would round 1 MiB + 1 up to 2 MiB.
            createSlot: () => (Encoded: GC.AllocateUninitializedArray<byte>(encCap), Raw: GC.AllocateUninitializedArray<byte>(rawCap)),
            createWorker: () => new ChunkDecoder(),
            read: (i, slot) =>
            {
                var (s, c) = work[i];
                ReadExactly(_handle, slot.Encoded.AsSpan(0, s.Chunks[c].EncodedLength), s.Chunks[c].FileOffset, Path);
            },
            code: (i, slot, decoder) =>
            {
                var (s, c) = work[i];
                CheckAndDecode(s, c, decoder, slot.Encoded.AsSpan(0, s.Chunks[c].EncodedLength), slot.Raw.AsSpan(0, s.Chunks[c].RawLength));
            },
            write: (i, slot) =>
            {
                var (s, c) = work[i];
                var span = slot.Raw.AsSpan(0, s.Chunks[c].RawLength);
                fileHash.Append(span);
                output?.Write(span);
                done += span.Length;
                progress?.Report(done);
            },
            cancellation);
        if (fileHash.GetCurrentHashAsUInt64() != Index.OriginalHash)
            throw new TensorFormatException(Path, null, "original_hash", "the decompressed file does not match the whole-file checksum");
        output?.Flush();
    }

    /// <summary>
    /// One thread: chunks are read and decoded two at a time (<see cref="ChunkDecoder.DecodePair"/> overlaps their
    /// exponent streams), with exactly the checks, order of errors and output of one at a time: the first chunk is
    /// checked and written before anything about the second is reported, and when the second cannot be read or
    /// fails its encoded checksum, the first is decoded alone and the second comes up again as the next first.
    /// </summary>
    void DecompressInPairs(List<(TczSegment Segment, int Chunk)> work, Stream? output, XxHash3 fileHash, IProgress<long>? progress,
        CancellationToken cancellation, int rawCap, int encCap)
    {
        using var decoder = new ChunkDecoder();
        byte[] encA = GC.AllocateUninitializedArray<byte>(encCap), rawA = GC.AllocateUninitializedArray<byte>(rawCap);
        byte[] encB = [], rawB = [];
        long done = 0;
        void Write(ReadOnlySpan<byte> raw)
        {
            fileHash.Append(raw);
            output?.Write(raw);
            done += raw.Length;
            progress?.Report(done);
        }
        for (int i = 0; i < work.Count;)
        {
            cancellation.ThrowIfCancellationRequested();
            var (sa, ca) = work[i];
            var ea = encA.AsSpan(0, sa.Chunks[ca].EncodedLength);
            var ra = rawA.AsSpan(0, sa.Chunks[ca].RawLength);
            ReadExactly(_handle, ea, sa.Chunks[ca].FileOffset, Path);
            if (!EncodedHashMatches(sa, ca, ea))
                throw ChunkError(sa, ca, "checksum mismatch in the compressed data");
            bool pair = false;
            if (i + 1 < work.Count)
            {
                var (sb, cb) = work[i + 1];
                if (encB.Length == 0) { encB = GC.AllocateUninitializedArray<byte>(encCap); rawB = GC.AllocateUninitializedArray<byte>(rawCap); }
                var eb = encB.AsSpan(0, sb.Chunks[cb].EncodedLength);
                var rb = rawB.AsSpan(0, sb.Chunks[cb].RawLength);
                try { ReadExactly(_handle, eb, sb.Chunks[cb].FileOffset, Path); pair = EncodedHashMatches(sb, cb, eb); }
                catch (Exception e) when (e is TensorFormatException or IOException) { } // reported when that chunk comes first
                if (pair)
                {
                    decoder.DecodePair(ea, ra, out var sta, out int wa, eb, rb, out var stb, out int wb);
                    CheckDecoded(sa, ca, sta, wa, ra);
                    Write(ra);
                    cancellation.ThrowIfCancellationRequested();
                    CheckDecoded(sb, cb, stb, wb, rb);
                    Write(rb);
                    i += 2;
                    continue;
                }
            }
            CheckDecoded(sa, ca, decoder.Decode(ea, ra, out int w), w, ra);
            Write(ra);
            i++;
        }
    }

    /// <summary>Decompresses to <paramref name="outputPath"/> atomically: nothing appears under that name unless every check passed.</summary>
    public void DecompressToFile(string outputPath, bool overwrite, int threads = 1, IProgress<long>? progress = null, CancellationToken cancellation = default)
    {
        if (FileIdentity.Same(outputPath, Path))
            throw new IOException($"{outputPath}: output would overwrite the input");
        if (_coder is { NeedsReference: true, HasReference: false }) throw _coder.MissingReference(Path);
        using var output = new AtomicFileWriter(outputPath, overwrite);
        if (output.TempPath is not null) // a fresh regular file, not a device or FIFO
        {
            output.Stream.SetLength(Index.OriginalLength); // reserve space early: fail fast on a full disk
            output.Stream.Position = 0;
        }
        DecompressTo(output.Stream, threads, progress, cancellation);
        output.Commit();
    }

    /// <summary>
    /// Reads <paramref name="restoredPath"/> back and checks it is this archive's original: a regular file of the
    /// original length whose whole-file checksum matches. For removing the archive only once its contents are
    /// safely elsewhere (a device such as /dev/null keeps nothing, so it fails this check).
    /// </summary>
    /// <exception cref="IOException">The file is not a regular file, or cannot be read.</exception>
    /// <exception cref="TensorFormatException">Its length or checksum differs from the original's.</exception>
    public void CheckRestored(string restoredPath)
    {
        InputFile.EnsureRegular(restoredPath);
        using var file = new FileStream(restoredPath, FileMode.Open, FileAccess.Read, FileShare.Read, 1 << 20);
        if (file.Length != Index.OriginalLength)
            throw new TensorFormatException(restoredPath, null, "length", $"is {file.Length} bytes, the original was {Index.OriginalLength}");
        var hash = new XxHash3();
        var buffer = ArrayPool<byte>.Shared.Rent(1 << 20);
        try
        {
            int n;
            while ((n = file.Read(buffer, 0, 1 << 20)) > 0) hash.Append(buffer.AsSpan(0, n));
        }
        finally { ArrayPool<byte>.Shared.Return(buffer); }
        if (hash.GetCurrentHashAsUInt64() != Index.OriginalHash)
            throw new TensorFormatException(restoredPath, null, "original_hash", "does not match the whole-file checksum of the original");
    }

    /// <summary>Reads exactly buffer.Length bytes at offset; a short file is a format error naming the offset.</summary>
    internal static void ReadExactly(SafeFileHandle handle, Span<byte> buffer, long offset, string path)
    {
        while (buffer.Length > 0)
        {
            int n = RandomAccess.Read(handle, buffer, offset);
            if (n == 0) throw new TensorFormatException(path, offset, null, "file ends early (truncated, or cut while being read)");
            buffer = buffer[n..];
            offset += n;
        }
    }

    /// <summary>Closes the file (and removes the temporary copy of a stream).</summary>
    public void Dispose()
    {
        _coder?.Dispose();
        _handle.Dispose();
        _spool?.Dispose();
    }
}
