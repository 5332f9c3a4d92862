namespace TensorCodec.Containers;

/// <summary>
/// Writes an output file the way zstd does: into a temporary file beside the target, renamed
/// over the final name only once everything has been written and flushed. An interrupted or
/// failed run therefore never leaves a partial file under the final name.
/// </summary>
public sealed class AtomicFileWriter : IDisposable
{
    readonly string _finalPath;
    readonly bool _overwrite;
    bool _committed;

    internal string TempPath { get; }

    /// <summary>The stream to write the file's contents to; it writes to the temporary file.</summary>
    public FileStream Stream { get; }

    /// <summary>Creates the temporary file beside <paramref name="finalPath"/>.</summary>
    /// <param name="finalPath">The name the file gets when <see cref="Commit"/> is called.</param>
    /// <param name="overwrite">Whether an existing file at <paramref name="finalPath"/> may be replaced.</param>
    /// <exception cref="IOException"><paramref name="finalPath"/> exists and <paramref name="overwrite"/> is
    /// false, or it is a directory; or the temporary file cannot be created.</exception>
    public AtomicFileWriter(string finalPath, bool overwrite)
    {
        _finalPath = Path.GetFullPath(finalPath);
        _overwrite = overwrite;
        if (!overwrite && File.Exists(_finalPath))
            throw new IOException($"{finalPath}: already exists (use -f to overwrite)");
        if (Directory.Exists(_finalPath))
            throw new IOException($"{finalPath}: is a directory");
        var dir = Path.GetDirectoryName(_finalPath)!;
        TempPath = Path.Combine(dir, $".{Path.GetFileName(_finalPath)}.{Environment.ProcessId}.{Guid.NewGuid():N}.tmp");
        Stream = new FileStream(TempPath, FileMode.CreateNew, FileAccess.ReadWrite, FileShare.None, 1 << 16);
    }

    /// <summary>Flushes to disk and renames the temporary file to the final name.</summary>
    /// <exception cref="IOException">Without overwrite, a file appeared under the final name while writing;
    /// or the rename failed.</exception>
    public void Commit()
    {
        Stream.Flush(flushToDisk: true);
        Stream.Dispose();
        if (!_overwrite && File.Exists(_finalPath))
            throw new IOException($"{_finalPath}: appeared while writing; not overwritten (use -f)");
        File.Move(TempPath, _finalPath, overwrite: _overwrite);
        _committed = true;
    }

    /// <summary>Without a prior <see cref="Commit"/>, closes and deletes the temporary file, leaving the
    /// final name untouched.</summary>
    public void Dispose()
    {
        if (_committed) return;
        Stream.Dispose();
        try { File.Delete(TempPath); } catch (IOException) { } catch (UnauthorizedAccessException) { }
    }
}
