using System.Buffers;
using System.Buffers.Binary;
using System.IO.Hashing;
using Microsoft.Win32.SafeHandles;
using TensorCodec.Coders;
using TensorCodec.Numerics;

namespace TensorCodec.Containers.Tcz;

/// <summary>How <see cref="TczWriter"/> compresses a file.</summary>
public sealed class TczCompressOptions
{
    /// <summary>Worker threads for chunk coding. Memory grows by about two chunks per thread.</summary>
    public int Threads { get; init; } = 1;
    /// <summary>Raw bytes per independently decodable chunk, 64 … <see cref="TczConstants.MaxChunkSize"/>; tensors never share a chunk.</summary>
    public int ChunkSize { get; init; } = TczConstants.DefaultChunkSize;
    /// <summary>Settings of the chunk encoders (one per worker).</summary>
    public ChunkCodecOptions Codec { get; init; } = ChunkCodecOptions.Default;
    /// <summary>Reports the number of original bytes processed so far.</summary>
    public IProgress<long>? Progress { get; init; }
    /// <summary>Stops the compression between chunks (an <see cref="OperationCanceledException"/>; with <see cref="TczWriter.CompressFile"/> nothing is left under the output name).</summary>
    public CancellationToken Cancellation { get; init; }
    /// <summary>Collect per-stream statistics (entropy bounds) into the result; costs some speed.</summary>
    public bool CollectStatistics { get; init; }
    /// <summary>A tensor file to code against: tensors matching one of it by name, shape and dtype are stored as a
    /// delta, and decompression needs the same file (FORMAT.md, "Reference and lossy segments"). Null: coded alone.</summary>
    public string? Reference { get; init; }
    /// <summary>0 (lossless, the default), or 8 or 4: F32 tensors named like <see cref="OptimizerPatterns"/> are stored
    /// blockwise quantized at that many bits per value (lossy; the archive says so).</summary>
    public int OptimizerBits { get; init; }
    /// <summary>Name globs (<c>*</c> matches any run of characters) of the optimizer moments <see cref="OptimizerBits"/>
    /// quantizes; null or empty: <c>optimizer.*.exp_avg</c> and <c>optimizer.*.exp_avg_sq</c>.</summary>
    public IReadOnlyList<string>? OptimizerPatterns { get; init; }
    /// <summary>With <see cref="Reference"/>: 2-D F32/F16/BF16 tensors matched in the reference are stored as a lossy
    /// delta of this kind (lossy; the archive says so; FORMAT.md "Lossy deltas"). Null (the default): lossless.</summary>
    public LossyDeltaSpec? DeltaLossy { get; init; }
}

/// <summary>What one segment cost: its index entry plus the per-stream coding statistics.</summary>
public sealed record TczSegmentResult(TczSegment Segment, ChunkStats Stats);

/// <summary>What a compression produced.</summary>
public sealed class TczCompressResult
{
    /// <summary>Container format the input was recognised as.</summary>
    public required TensorFileFormat Format { get; init; }
    /// <summary>Size of the input in bytes.</summary>
    public required long OriginalBytes { get; init; }
    /// <summary>Size of the .tcz output in bytes, header, index and trailer included.</summary>
    public required long CompressedBytes { get; init; }
    /// <summary>Every segment of the input in file order, with its coding statistics.</summary>
    public required IReadOnlyList<TczSegmentResult> Segments { get; init; }
    /// <summary>Coding statistics summed over all chunks (stream figures only with <see cref="TczCompressOptions.CollectStatistics"/>).</summary>
    public required ChunkStats Total { get; init; }
    /// <summary>Why the input was stored as opaque bytes: the parse error of one that looked like a container, or that it was read as a stream (<see cref="TczWriter.CompressStream"/>); null otherwise.</summary>
    public string? OpaqueReason { get; init; }
    /// <summary>What the archive codes against a reference or stores lossy (null: a plain archive).</summary>
    public TczReferenceInfo? Reference { get; init; }
    /// <summary>Compressed size over original size (1 for an empty input).</summary>
    public double Ratio => OriginalBytes == 0 ? 1 : (double)CompressedBytes / OriginalBytes;
}

/// <summary>
/// Compresses a file into the .tcz container. The input is read once, in order, a batch of
/// chunks at a time; each batch is coded in parallel and written in order, so memory stays at
/// about two chunks per thread whatever the file size.
/// </summary>
public static class TczWriter
{
    /// <summary>Compresses <paramref name="inputPath"/> into <paramref name="outputPath"/> atomically (temp file + rename).</summary>
    public static TczCompressResult CompressFile(string inputPath, string outputPath, bool overwrite, TczCompressOptions? options = null)
    {
        if (FileIdentity.Same(inputPath, outputPath))
            throw new IOException($"{outputPath}: output would overwrite the input");
        // Compress takes any file: one that looks like a container but does not parse is stored as opaque bytes.
        var layout = TensorFileReader.Open(inputPath, strict: false);
        using var output = new AtomicFileWriter(outputPath, overwrite);
        var result = Compress(inputPath, layout, output.Stream, options);
        output.Commit();
        return result;
    }

    /// <summary>Compresses <paramref name="inputPath"/>, whose layout <paramref name="layout"/> describes (from <see cref="TensorFileReader.Open(string, bool)"/>), into <paramref name="output"/>, written in order.</summary>
    /// <exception cref="TensorFormatException">The input changed length since its layout was read, or a tensor
    /// exceeds a limit of the index (<see cref="TczConstants.MaxRank"/>, <see cref="TczConstants.MaxNameBytes"/>, …).</exception>
    /// <exception cref="ArgumentOutOfRangeException">The chunk size is outside 64 … <see cref="TczConstants.MaxChunkSize"/>.</exception>
    public static TczCompressResult Compress(string inputPath, TensorFile layout, Stream output, TczCompressOptions? options = null)
    {
        options ??= new TczCompressOptions();
        using var handle = File.OpenHandle(inputPath, FileMode.Open, FileAccess.Read, FileShare.Read);
        long length = RandomAccess.GetLength(handle);
        if (length != layout.FileLength)
            throw new TensorFormatException(inputPath, null, null, $"file length changed while reading ({layout.FileLength} → {length})");
        return Compress(handle, inputPath, layout, output, options);
    }

    /// <summary>
    /// Compresses everything <paramref name="input"/> holds, read in order to its end (a pipe, standard input:
    /// its length is never asked), as opaque bytes: a stream is not parsed as a container, since that needs
    /// its header and tensor offsets before the data. The output is the same .tcz any file gets: one opaque segment.
    /// </summary>
    /// <param name="input">Read to its end, never seeked.</param>
    /// <param name="name">Names the input in errors ("-" or "stdin" for standard input).</param>
    /// <param name="output">Receives the .tcz bytes, written in order (a pipe is fine).</param>
    /// <param name="options">Compression settings; null for the defaults.</param>
    /// <exception cref="ArgumentOutOfRangeException">The chunk size is outside 64 … <see cref="TczConstants.MaxChunkSize"/>.</exception>
    /// <exception cref="ArgumentException">The options ask for a reference or optimizer quantization.</exception>
    public static TczCompressResult CompressStream(Stream input, string name, Stream output, TczCompressOptions? options = null)
    {
        options ??= new TczCompressOptions();
        if (options.Reference is not null || options.OptimizerBits != 0 || options.DeltaLossy is not null)
            throw new ArgumentException($"{name}: a reference or optimizer quantization needs the tensors of a file, not a stream");
        if (options.ChunkSize < 64 || options.ChunkSize > TczConstants.MaxChunkSize)
            throw new ArgumentOutOfRangeException(nameof(options), $"chunk size must be in 64..{TczConstants.MaxChunkSize}");
        int threads = Math.Clamp(options.Threads, 1, 256);
        output.Write(Header());
        var chunks = new List<TczChunk>();
        var stats = new ChunkStats();
        var fileHash = new XxHash3();
        int encCap = ChunkCodec.MaxEncodedLength(options.ChunkSize);
        // The length is unknown, so buffers are full chunks; the slot budget still bounds their number.
        threads = ChunkPipeline.Workers(threads, int.MaxValue, (long)options.ChunkSize + encCap);
        // An index entry per chunk is at most 26 bytes: stop before the index could outgrow what a reader accepts.
        int maxChunks = (int.MaxValue - 1024) / 26;
        long written = TczConstants.HeaderSize, total = 0;
        ChunkPipeline.Run(int.MaxValue, threads,
            createSlot: () => new Slot(GC.AllocateUninitializedArray<byte>(options.ChunkSize), GC.AllocateUninitializedArray<byte>(encCap)),
            createWorker: () => new ChunkEncoder(options.Codec),
            read: (i, slot) =>
            {
                int len = input.ReadAtLeast(slot.Raw, slot.Raw.Length, throwOnEndOfStream: false);
                if (len == 0) return false;
                if (i >= maxChunks)
                    throw new TensorFormatException(name, total, "chunk_size", $"more than {maxChunks} chunks of {options.ChunkSize} bytes do not fit a .tcz index; use a larger chunk size");
                slot.RawLength = len;
                fileHash.Append(slot.Raw.AsSpan(0, len));
                return true;
            },
            code: (_, slot, encoder) => EncodeSlot(slot, slot.RawLength, DType.U8, encoder, options.CollectStatistics),
            write: (_, slot) =>
            {
                output.Write(slot.Encoded.AsSpan(0, slot.EncodedLength));
                chunks.Add(new TczChunk(slot.RawLength, slot.EncodedLength, slot.EncodedHash, slot.RawHash) { FileOffset = written, OriginalOffset = total });
                if (slot.Stats is not null) stats.Add(slot.Stats);
                written += slot.EncodedLength;
                total += slot.RawLength;
                options.Progress?.Report(total);
            },
            options.Cancellation);

        var segments = new List<TczSegment>();
        if (total > 0)
        {
            var segment = new TczSegment { Kind = TczSegmentKind.Opaque, Name = "", DType = DType.U8, Length = total, OriginalOffset = 0 };
            foreach (var c in chunks) segment.AddChunk(c);
            segments.Add(segment);
        }
        long compressed = WriteIndex(output, new TczIndex(TensorFileFormat.Opaque, total, fileHash.GetCurrentHashAsUInt64(), options.ChunkSize, segments), written);
        return new TczCompressResult
        {
            Format = TensorFileFormat.Opaque,
            OpaqueReason = "read as a stream, which is not parsed (a container's tensor offsets are needed before its data)",
            OriginalBytes = total,
            CompressedBytes = compressed,
            Segments = segments.Select(s => new TczSegmentResult(s, stats)).ToList(),
            Total = stats,
        };
    }

    static byte[] Header(uint flags = 0)
    {
        var header = new byte[TczConstants.HeaderSize];
        TczConstants.Magic.CopyTo(header);
        BinaryPrimitives.WriteUInt16LittleEndian(header.AsSpan(8), TczConstants.VersionMajor);
        BinaryPrimitives.WriteUInt16LittleEndian(header.AsSpan(10), TczConstants.VersionMinor);
        // bytes 12..15: flags, zero unless the archive needs a reference or is lossy (TczFlags)
        BinaryPrimitives.WriteUInt32LittleEndian(header.AsSpan(12), flags);
        return header;
    }

    static void EncodeSlot(Slot slot, int len, DType dtype, ChunkEncoder encoder, bool collectStatistics, bool rawHashed = false, int ggmlType = -1, int rowLength = 0)
    {
        slot.Stats = collectStatistics ? new ChunkStats() : null;
        // The slot holds MaxEncodedLength bytes, which always suffices.
        if (encoder.Encode(slot.Raw.AsSpan(0, len), dtype, ggmlType, rowLength, slot.Encoded, out slot.EncodedLength, slot.Stats) != OperationStatus.Done)
            throw new InvalidOperationException("chunk encoder exceeded its own size bound");
        slot.EncodedHash = TczHash.Of(slot.Encoded.AsSpan(0, slot.EncodedLength));
        // A coded segment's raw hash was taken before its transform (it covers what decompression gives back).
        if (!rawHashed) slot.RawHash = TczHash.Of(slot.Raw.AsSpan(0, len));
    }

    /// <summary>A tensor's last dimension, for the context-mixed transforms' column contexts (0: unknown or too long).</summary>
    static int RowLength(TczSegment s) => s.Shape.Length == 0 || s.Shape[^1] > int.MaxValue ? 0 : (int)s.Shape[^1];

    /// <summary>Writes index and trailer after the chunks (which end at <paramref name="written"/>); returns the file's total length.</summary>
    static long WriteIndex(Stream output, TczIndex index, long written, uint flags = 0)
    {
        var indexBytes = index.Serialize();
        output.Write(indexBytes);
        var trailer = new byte[TczConstants.TrailerSize];
        BinaryPrimitives.WriteInt64LittleEndian(trailer, written);
        BinaryPrimitives.WriteInt64LittleEndian(trailer.AsSpan(8), indexBytes.Length);
        BinaryPrimitives.WriteUInt64LittleEndian(trailer.AsSpan(16), IndexHash(Header(flags), indexBytes));
        TczConstants.TrailerMagic.CopyTo(trailer.AsSpan(24));
        output.Write(trailer);
        output.Flush();
        return written + indexBytes.Length + TczConstants.TrailerSize;
    }

    /// <summary>Why a chunk size is refused: one message for the writer and the CLI's option check.</summary>
    internal static string ChunkSizeProblem(long chunkSize) =>
        $"chunk size {chunkSize} is outside {TczConstants.MinChunkSize}..{TczConstants.MaxChunkSize} bytes (the largest chunk a .tcz reader accepts)";

    static TczCompressResult Compress(SafeFileHandle input, string path, TensorFile layout, Stream output, TczCompressOptions options)
    {
        if (options.ChunkSize < TczConstants.MinChunkSize || options.ChunkSize > TczConstants.MaxChunkSize)
            throw new ArgumentOutOfRangeException(nameof(options), ChunkSizeProblem(options.ChunkSize));
        int threads = Math.Clamp(options.Threads, 1, 256);
        var segments = PlanSegments(layout, path).ToList();
        foreach (var s in segments) TczIndex.CheckWritable(s, path);
        TczIndex.CheckIndexSize(segments, options.ChunkSize, path);
        using var coder = TczSegmentCoder.Plan(segments, input, path, options);
        uint flags = coder?.Section.Flags ?? 0;
        output.Write(Header(flags));

        // Flatten into a work list so batches can span segment boundaries.
        var work = new List<(int Segment, long Offset, int Length)>();
        for (int s = 0; s < segments.Count; s++)
        {
            var seg = segments[s];
            long step = TczChunking.Step(seg, options.ChunkSize);
            for (long o = 0; o < seg.Length; o += step)
                work.Add((s, seg.OriginalOffset + o, (int)Math.Min(step, seg.Length - o)));
        }

        var stats = segments.Select(_ => new ChunkStats()).ToArray();
        var fileHash = new XxHash3();
        // As in the reader: buffers fit the largest chunk this file has, and no more workers than chunks.
        int rawCap = work.Count == 0 ? 0 : work.Max(w => w.Length);
        int encCap = ChunkCodec.MaxEncodedLength(rawCap);
        threads = ChunkPipeline.Workers(threads, work.Count, (long)rawCap + encCap);
        long written = TczConstants.HeaderSize, done = 0;
        ChunkPipeline.Run(work.Count, threads,
            // Exact sizes: the pool would round 1 MiB + 1 up to 2 MiB.
            createSlot: () => new Slot(GC.AllocateUninitializedArray<byte>(rawCap), GC.AllocateUninitializedArray<byte>(encCap)),
            createWorker: () => new ChunkEncoder(options.Codec),
            // Reads happen in file order on one thread: sequential I/O, and the whole-file hash needs that order.
            read: (i, slot) =>
            {
                var (s, off, len) = work[i];
                TczReader.ReadExactly(input, slot.Raw.AsSpan(0, len), off, path);
                if (coder is null) fileHash.Append(slot.Raw.AsSpan(0, len));
                // Delta and lossy coding rewrite the chunk before the unchanged chunk codec; the encoded buffer is free until then.
                else slot.CodedType = coder.Forward(s, off - segments[s].OriginalOffset, slot.Raw.AsSpan(0, len), slot.Encoded, input, path, fileHash, out slot.RawHash);
            },
            code: (i, slot, encoder) =>
            {
                var (s, _, len) = work[i];
                EncodeSlot(slot, len, coder is null ? segments[s].DType : slot.CodedType, encoder, options.CollectStatistics, rawHashed: coder is not null,
                    ggmlType: coder is null ? segments[s].GgmlType : -1, rowLength: RowLength(segments[s]));
            },
            write: (i, slot) =>
            {
                var (s, off, len) = work[i];
                output.Write(slot.Encoded.AsSpan(0, slot.EncodedLength));
                segments[s].AddChunk(new TczChunk(len, slot.EncodedLength, slot.EncodedHash, slot.RawHash)
                { FileOffset = written, OriginalOffset = off });
                if (slot.Stats is not null) stats[s].Add(slot.Stats);
                written += slot.EncodedLength;
                done += len;
                options.Progress?.Report(done);
            },
            options.Cancellation);

        // The index is built once the whole-file hash is known: it is immutable from here on.
        var index = new TczIndex(layout.Format, layout.FileLength, fileHash.GetCurrentHashAsUInt64(), options.ChunkSize, segments) { Extension = coder?.Section.Serialize() };
        long compressed = WriteIndex(output, index, written, flags);

        var total = new ChunkStats();
        foreach (var s in stats) total.Add(s);
        return new TczCompressResult
        {
            Format = layout.Format,
            OpaqueReason = layout.OpaqueReason,
            OriginalBytes = layout.FileLength,
            CompressedBytes = compressed,
            Segments = segments.Select((s, i) => new TczSegmentResult(s, stats[i])).ToList(),
            Total = total,
            Reference = coder?.Section.Info(),
        };
    }

    sealed class Slot(byte[] raw, byte[] encoded)
    {
        public readonly byte[] Raw = raw, Encoded = encoded;
        public int EncodedLength, RawLength;
        public ulong EncodedHash, RawHash;
        public DType CodedType;
        public ChunkStats? Stats;
    }

    /// <summary>The index hash covers the header too, so a flipped flag or version bit is caught.</summary>
    internal static ulong IndexHash(ReadOnlySpan<byte> header, ReadOnlySpan<byte> index)
    {
        var h = new XxHash3();
        h.Append(header);
        h.Append(index);
        return h.GetCurrentHashAsUInt64();
    }

    /// <summary>Tiles the file with tensor segments and opaque gaps, in file order.</summary>
    static IEnumerable<TczSegment> PlanSegments(TensorFile layout, string path)
    {
        long pos = 0;
        foreach (var t in layout.InFileOrder())
        {
            if (t.Offset < pos || t.Offset + t.Length > layout.FileLength)
                throw new TensorFormatException(path, t.Offset, t.Name, "tensor overlaps another or runs past the end of the file");
            if (t.Offset > pos)
                yield return Opaque(pos, t.Offset - pos);
            yield return new TczSegment
            {
                Kind = TczSegmentKind.Tensor, Name = t.Name, DType = t.DType, GgmlType = t.GgmlType,
                Shape = t.Shape, Length = t.Length, OriginalOffset = t.Offset,
            };
            pos = t.Offset + t.Length;
        }
        if (pos < layout.FileLength) yield return Opaque(pos, layout.FileLength - pos);

        static TczSegment Opaque(long offset, long length) => new()
        { Kind = TczSegmentKind.Opaque, Name = "", DType = DType.U8, Length = length, OriginalOffset = offset };
    }
}
