namespace TensorCodec.Containers.Tcz;

/// <summary>What <see cref="TczFolder"/> did with one file of a folder.</summary>
public enum TczFolderAction : byte
{
    /// <summary>A tensor file (a shard, GGUF, llama2.c) compressed to <c>NAME.tcz</c>.</summary>
    Compressed,
    /// <summary>A <c>.tcz</c> decompressed to its original name.</summary>
    Decompressed,
    /// <summary>Any other file (config.json, the index, tokenizer files) copied byte for byte into the output folder.</summary>
    Copied,
    /// <summary>Left alone: a subfolder, or (in place) a file that needs no copy.</summary>
    Skipped,
}

/// <summary>One file of a folder operation.</summary>
/// <param name="Source">The file (or subfolder) read.</param>
/// <param name="Output">What was written, or null when skipped.</param>
/// <param name="Action">What was done.</param>
/// <param name="SourceBytes">Size of the source (0 for a subfolder).</param>
/// <param name="OutputBytes">Size of the output (0 when skipped).</param>
/// <param name="Compression">The compression's figures, for <see cref="TczFolderAction.Compressed"/>; else null.</param>
public sealed record TczFolderEntry(string Source, string? Output, TczFolderAction Action, long SourceBytes, long OutputBytes, TczCompressResult? Compression);

/// <summary>
/// Compresses a model folder shard by shard, and restores it. Each tensor file becomes its own
/// <c>.tcz</c> (so every shard is an independent job and can be decompressed or verified alone);
/// everything else is small and is copied byte-exact. Only the folder's top level is processed:
/// subfolders are reported as skipped. A folder with a <c>model.safetensors.index.json</c> is
/// checked first (every shard present, index and shards agreeing), and checked again after
/// decompression, so a damaged model is refused before any work and a restored one is known whole.
/// </summary>
public static class TczFolder
{
    /// <summary>
    /// Compresses every top-level tensor file of <paramref name="inputDir"/> (each file that reads as
    /// safetensors, GGUF or llama2.c) to <c>NAME.tcz</c> in <paramref name="outputDir"/>, each written
    /// atomically. With no output folder (or the input folder itself) the .tcz files go next to their
    /// sources and nothing else is written; otherwise every other file is copied there unchanged.
    /// </summary>
    /// <param name="inputDir">The model folder.</param>
    /// <param name="outputDir">Where to write, or null for in place. Created if missing.</param>
    /// <param name="overwrite">Replace existing outputs.</param>
    /// <param name="options">Compression settings, used for every file (progress is per file: bytes of the current file).</param>
    /// <returns>One entry per top-level item, in ordinal name order.</returns>
    /// <exception cref="DirectoryNotFoundException"><paramref name="inputDir"/> is not a folder.</exception>
    /// <exception cref="TensorFormatException">The folder's index disagrees with its shards, or a tensor file is malformed.</exception>
    /// <exception cref="FileNotFoundException">The index names a missing shard.</exception>
    /// <exception cref="IOException">An output exists and <paramref name="overwrite"/> is false.</exception>
    public static IReadOnlyList<TczFolderEntry> Compress(string inputDir, string? outputDir, bool overwrite, TczCompressOptions? options = null)
    {
        options ??= new TczCompressOptions();
        if (!Directory.Exists(inputDir)) throw new DirectoryNotFoundException($"{inputDir}: no such folder");
        string index = Path.Combine(inputDir, ShardedSafetensors.IndexFileName);
        if (File.Exists(index)) ShardedSafetensors.Open(index); // before creating anything
        var items = RegularItems(inputDir);
        var isTensorFile = items.ToDictionary(i => i, i => !Directory.Exists(i)
            && !Path.GetFileName(i).EndsWith(".tcz", StringComparison.OrdinalIgnoreCase)
            && TensorFileReader.Detect(i) != TensorFileFormat.Opaque);
        if (!isTensorFile.Values.Any(t => t))
            throw new InvalidDataException($"{inputDir}: no safetensors, GGUF or llama2.c file in this folder; compress its files by name, or archive the folder first (tar c DIR | tcodec -c - > DIR.tar.tcz)");
        var (inPlace, outDir) = Prepare(inputDir, outputDir);

        var entries = new List<TczFolderEntry>();
        foreach (var item in items)
        {
            options.Cancellation.ThrowIfCancellationRequested();
            if (Directory.Exists(item)) { entries.Add(new(item, null, TczFolderAction.Skipped, 0, 0, null)); continue; }
            string name = Path.GetFileName(item);
            if (isTensorFile[item])
            {
                string target = Path.Combine(outDir, name + ".tcz");
                var r = TczWriter.CompressFile(item, target, overwrite, options);
                entries.Add(new(item, target, TczFolderAction.Compressed, r.OriginalBytes, r.CompressedBytes, r));
            }
            else entries.Add(inPlace ? new(item, null, TczFolderAction.Skipped, Length(item), 0, null) : Copy(item, outDir, overwrite));
        }
        return entries;
    }

    /// <summary>
    /// Decompresses every top-level <c>.tcz</c> of <paramref name="inputDir"/> to its name without the
    /// extension in <paramref name="outputDir"/> (checksums verified, each written atomically), copying every
    /// other file there unchanged; in place, only the .tcz files are expanded beside themselves. If the
    /// result has a <c>model.safetensors.index.json</c>, it is then checked against the restored shards.
    /// </summary>
    /// <param name="inputDir">A folder written by <see cref="Compress"/>.</param>
    /// <param name="outputDir">Where to restore the folder, or null for in place. Created if missing.</param>
    /// <param name="overwrite">Replace existing outputs.</param>
    /// <param name="threads">Decoding threads per file.</param>
    /// <param name="cancellation">Checked between files and between chunks.</param>
    /// <returns>One entry per top-level item, in ordinal name order.</returns>
    /// <exception cref="DirectoryNotFoundException"><paramref name="inputDir"/> is not a folder.</exception>
    /// <exception cref="TensorFormatException">A .tcz is damaged, or the restored index disagrees with its shards.</exception>
    /// <exception cref="IOException">An output exists and <paramref name="overwrite"/> is false.</exception>
    public static IReadOnlyList<TczFolderEntry> Decompress(string inputDir, string? outputDir, bool overwrite, int threads = 1, CancellationToken cancellation = default)
    {
        if (!Directory.Exists(inputDir)) throw new DirectoryNotFoundException($"{inputDir}: no such folder");
        var items = RegularItems(inputDir);
        if (!items.Any(i => i.EndsWith(".tcz", StringComparison.OrdinalIgnoreCase) && File.Exists(i)))
            throw new InvalidDataException($"{inputDir}: no .tcz file in this folder (decompress takes a folder written by tcodec compress DIR)");
        var (inPlace, outDir) = Prepare(inputDir, outputDir);
        var entries = new List<TczFolderEntry>();
        foreach (var item in items)
        {
            cancellation.ThrowIfCancellationRequested();
            if (Directory.Exists(item)) { entries.Add(new(item, null, TczFolderAction.Skipped, 0, 0, null)); continue; }
            string name = Path.GetFileName(item);
            if (name.EndsWith(".tcz", StringComparison.OrdinalIgnoreCase) && name.Length > 4 && TczInspector.IsTcz(item))
            {
                string target = Path.Combine(outDir, name[..^4]);
                using (var reader = TczReader.Open(item)) reader.DecompressToFile(target, overwrite, threads, null, cancellation);
                entries.Add(new(item, target, TczFolderAction.Decompressed, Length(item), Length(target), null));
            }
            else entries.Add(inPlace ? new(item, null, TczFolderAction.Skipped, Length(item), 0, null) : Copy(item, outDir, overwrite));
        }
        string index = Path.Combine(outDir, ShardedSafetensors.IndexFileName);
        if (File.Exists(index)) ShardedSafetensors.Open(index);
        return entries;
    }

    static (bool InPlace, string OutDir) Prepare(string inputDir, string? outputDir)
    {
        if (!Directory.Exists(inputDir)) throw new DirectoryNotFoundException($"{inputDir}: no such folder");
        if (outputDir is null || FileIdentity.Same(inputDir, outputDir) ||
            Path.GetFullPath(inputDir).TrimEnd(Path.DirectorySeparatorChar) == Path.GetFullPath(outputDir).TrimEnd(Path.DirectorySeparatorChar))
            return (true, inputDir);
        if (File.Exists(outputDir)) throw new IOException($"{outputDir}: output folder is a file");
        Directory.CreateDirectory(outputDir);
        return (false, outputDir);
    }

    /// <summary>Top-level entries in ordinal order, each a folder or a regular file (a FIFO or device would block
    /// or never end): checked before any output exists, so a refused folder leaves nothing behind.</summary>
    static List<string> RegularItems(string dir)
    {
        var items = Items(dir).ToList();
        foreach (var item in items)
            if (!Directory.Exists(item)) InputFile.EnsureRegular(item);
        return items;
    }

    /// <summary>Top-level entries in ordinal order, so results (and batch job lists) are reproducible.</summary>
    static IEnumerable<string> Items(string dir) =>
        Directory.EnumerateFileSystemEntries(dir).Order(StringComparer.Ordinal).ToList();

    /// <summary>A symlink's target length, not the link's.</summary>
    static long Length(string path) => new FileInfo(FileIdentity.RealPath(path)).Length;

    static TczFolderEntry Copy(string source, string outDir, bool overwrite)
    {
        InputFile.EnsureRegular(source);
        string target = Path.Combine(outDir, Path.GetFileName(source));
        using (var writer = new AtomicFileWriter(target, overwrite))
        {
            using (var input = new FileStream(source, FileMode.Open, FileAccess.Read, FileShare.Read, bufferSize: 1 << 16)) input.CopyTo(writer.Stream);
            writer.Commit();
        }
        return new(source, target, TczFolderAction.Copied, Length(source), Length(target), null);
    }
}
