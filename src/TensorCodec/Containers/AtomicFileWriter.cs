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

    public string TempPath { get; }
    public FileStream Stream { get; }

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
    public void Commit()
    {
        Stream.Flush(flushToDisk: true);
        Stream.Dispose();
        if (!_overwrite && File.Exists(_finalPath))
            throw new IOException($"{_finalPath}: appeared while writing; not overwritten (use -f)");
        File.Move(TempPath, _finalPath, overwrite: _overwrite);
        _committed = true;
    }

    public void Dispose()
    {
        if (_committed) return;
        Stream.Dispose();
        try { File.Delete(TempPath); } catch (IOException) { } catch (UnauthorizedAccessException) { }
    }
}
