using System.Collections.Concurrent;

namespace TensorCodec.Containers;

/// <summary>
/// Writes an output file the way zstd does: into a temporary file beside the target, renamed
/// over the final name only once everything has been written and flushed. An interrupted or
/// failed run therefore never leaves a partial file under the final name.
/// </summary>
/// <remarks>
/// Only regular files are replaced. A symlink is followed and its target replaced (the link stays, as
/// when zstd opens it for writing). A character device or FIFO (<c>/dev/null</c>, a pipe) is written
/// directly, with no temporary file and no rename and without needing overwrite, since nothing is
/// replaced; any other special file is refused.
/// The temporary file is <c>.NAME.tcodec-PID.tmp</c>: one left by a process that no longer runs is
/// removed by the next writer of the same name. Errors name the output, never the temporary file.
/// </remarks>
public sealed class AtomicFileWriter : IDisposable
{
    /// <summary>Temporary files not yet committed or deleted, for <see cref="AbandonAll"/>.</summary>
    static readonly ConcurrentDictionary<string, byte> Pending = new();

    readonly string _shownPath;   // as the user wrote it: every message names this
    readonly string _finalPath;   // symlinks resolved: what the rename replaces
    readonly bool _overwrite;
    readonly FileStream _file;
    bool _committed;

    /// <summary>Bytes written through <see cref="Stream"/> (a pipe has no length to ask).</summary>
    internal long BytesWritten { get; private set; }

    /// <summary>The temporary file, or null when writing directly to a device or FIFO.</summary>
    internal string? TempPath { get; }

    /// <summary>The stream to write the file's contents to; it writes to the temporary file (it cannot
    /// seek when the output is a device or FIFO).</summary>
    public Stream Stream { get; }

    /// <summary>Creates the temporary file beside <paramref name="finalPath"/> (beside its target, for a symlink).</summary>
    /// <param name="finalPath">The name the file gets when <see cref="Commit"/> is called.</param>
    /// <param name="overwrite">Whether an existing file at <paramref name="finalPath"/> may be replaced.</param>
    /// <exception cref="IOException"><paramref name="finalPath"/> exists and <paramref name="overwrite"/> is
    /// false; it is a directory, block device or socket; its folder is missing; or the temporary file cannot be created.</exception>
    public AtomicFileWriter(string finalPath, bool overwrite)
    {
        _shownPath = finalPath;
        _overwrite = overwrite;
        var kind = FileIdentity.Kind(finalPath);
        switch (kind)
        {
            case FileKind.CharDevice or FileKind.Fifo:
                // Nothing to replace: a device or pipe takes the bytes as they come.
                _finalPath = Path.GetFullPath(finalPath);
                _file = Translate(() => new FileStream(finalPath, FileMode.Open, FileAccess.Write, FileShare.ReadWrite, 1 << 16));
                Stream = new NamingStream(_file, this);
                return;
            case FileKind.Directory:
                throw new IOException($"{finalPath}: is a directory");
            case FileKind.BlockDevice or FileKind.Socket or FileKind.Other:
                throw new IOException($"{finalPath}: is a {Describe(kind)}; tcodec writes only regular files, character devices (such as /dev/null) and FIFOs");
            case FileKind.Regular when !overwrite:
                throw new IOException($"{finalPath}: already exists (use -f to overwrite)");
        }
        _finalPath = FileIdentity.RealPath(finalPath);
        var dir = Path.GetDirectoryName(_finalPath)!;
        if (!Directory.Exists(dir))
            throw new DirectoryNotFoundException($"{finalPath}: folder {Path.GetDirectoryName(Path.GetFullPath(finalPath))} does not exist");
        RemoveStale(dir, Path.GetFileName(_finalPath));
        TempPath = Path.Combine(dir, $".{Path.GetFileName(_finalPath)}.tcodec-{Environment.ProcessId}.tmp");
        if (File.Exists(TempPath) && !Pending.ContainsKey(TempPath))
            File.Delete(TempPath); // our pid, not ours: left by an earlier process that had this pid
        var temp = TempPath;
        _file = Translate(() => new FileStream(temp, FileMode.CreateNew, FileAccess.ReadWrite, FileShare.None, 1 << 16));
        Pending[TempPath] = 0;
        Stream = new NamingStream(_file, this);
    }

    /// <summary>Flushes to disk and renames the temporary file to the final name (for a device or FIFO: flushes).</summary>
    /// <exception cref="IOException">Without overwrite, a file appeared under the final name while writing;
    /// or the flush or rename failed.</exception>
    public void Commit()
    {
        if (TempPath is null)
        {
            Translate(() => { _file.Flush(); _file.Dispose(); return 0; });
            _committed = true;
            return;
        }
        Translate(() => { _file.Flush(flushToDisk: true); _file.Dispose(); return 0; });
        if (!_overwrite && File.Exists(_finalPath))
            throw new IOException($"{_shownPath}: appeared while writing; not overwritten (use -f)");
        var kind = FileIdentity.Kind(_finalPath);
        if (kind is not (FileKind.Missing or FileKind.Regular))
            throw new IOException($"{_shownPath}: became a {Describe(kind)} while writing; not replaced");
        Translate(() => { File.Move(TempPath, _finalPath, overwrite: _overwrite); return 0; });
        Pending.TryRemove(TempPath, out _);
        _committed = true;
    }

    /// <summary>Without a prior <see cref="Commit"/>, closes and deletes the temporary file, leaving the
    /// final name untouched.</summary>
    public void Dispose()
    {
        if (_committed) return;
        // Closing flushes what is buffered, which fails again on a full disk: delete the file regardless.
        try { _file.Dispose(); } catch (IOException) { }
        if (TempPath is null) return;
        try { File.Delete(TempPath); } catch (IOException) { } catch (UnauthorizedAccessException) { }
        Pending.TryRemove(TempPath, out _);
    }

    /// <summary>True when <paramref name="path"/> is a character device or FIFO (<c>/dev/null</c>, a pipe): written
    /// directly, so its name says nothing about what is written to it.</summary>
    public static bool IsDeviceOrPipe(string path) => FileIdentity.Kind(path) is FileKind.CharDevice or FileKind.Fifo;

    /// <summary>Deletes every temporary file this process has not yet committed. For a signal handler that
    /// is about to end the process while writers may still be open; safe to call from any thread.</summary>
    public static void AbandonAll()
    {
        foreach (var path in Pending.Keys)
        {
            try { File.Delete(path); } catch (IOException) { } catch (UnauthorizedAccessException) { }
            Pending.TryRemove(path, out _);
        }
    }

    /// <summary>Removes <c>.NAME.tcodec-PID.tmp</c> files whose process no longer runs.</summary>
    static void RemoveStale(string dir, string name)
    {
        string prefix = $".{name}.tcodec-";
        try
        {
            foreach (var path in Directory.EnumerateFiles(dir, ".*.tmp"))
            {
                var file = Path.GetFileName(path);
                if (!file.StartsWith(prefix, StringComparison.Ordinal)) continue;
                if (!int.TryParse(file.AsSpan(prefix.Length, file.Length - prefix.Length - 4), out int pid)) continue;
                if (pid == Environment.ProcessId || IsRunning(pid)) continue;
                try { File.Delete(path); } catch (IOException) { } catch (UnauthorizedAccessException) { }
            }
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException) { } // unreadable folder: nothing to tidy
    }

    static bool IsRunning(int pid)
    {
        if (OperatingSystem.IsLinux()) return Directory.Exists($"/proc/{pid}");
        try { using var p = System.Diagnostics.Process.GetProcessById(pid); return !p.HasExited; }
        catch (ArgumentException) { return false; }
        catch (InvalidOperationException) { return false; }
    }

    static string Describe(FileKind kind) => kind switch
    {
        FileKind.BlockDevice => "block device",
        FileKind.Socket => "socket",
        FileKind.Directory => "directory",
        FileKind.CharDevice => "character device",
        FileKind.Fifo => "FIFO",
        _ => "special file",
    };

    /// <summary>Runs an I/O step, rewording its error to name the user's output instead of the temporary file.</summary>
    T Translate<T>(Func<T> step)
    {
        try { return step(); }
        catch (IOException e) { throw Reworded(e); }
        catch (UnauthorizedAccessException e) { throw new UnauthorizedAccessException(Reword(e.Message), e); }
    }

    IOException Reworded(IOException e) => e is DirectoryNotFoundException
        ? new DirectoryNotFoundException(Reword(e.Message), e)
        : new IOException(Reword(e.Message), e);

    string Reword(string message)
    {
        if (TempPath is not null) message = message.Replace(TempPath, _shownPath).Replace(Path.GetFileName(TempPath), _shownPath);
        return message.Contains(_shownPath) ? message : $"{_shownPath}: {message}";
    }

    /// <summary>Forwards to the file and rewords its errors; see <see cref="Translate"/>.</summary>
    sealed class NamingStream(FileStream file, AtomicFileWriter owner) : Stream
    {
        public override bool CanRead => file.CanRead;
        public override bool CanSeek => file.CanSeek;
        public override bool CanWrite => file.CanWrite;
        public override long Length => Seekable().Length;
        public override long Position { get => Seekable().Position; set => Seekable().Position = value; }
        public override void Flush() => owner.Translate(() => { file.Flush(); return 0; });
        public override int Read(byte[] buffer, int offset, int count) => file.Read(buffer, offset, count);
        public override int Read(Span<byte> buffer) => file.Read(buffer);
        public override long Seek(long offset, SeekOrigin origin) => Seekable().Seek(offset, origin);
        public override void SetLength(long value) => owner.Translate(() => { Seekable().SetLength(value); return 0; });
        public override void Write(byte[] buffer, int offset, int count) => Write(buffer.AsSpan(offset, count));
        public override void Write(ReadOnlySpan<byte> buffer)
        {
            try { file.Write(buffer); }
            catch (IOException e) { throw owner.Reworded(e); }
            owner.BytesWritten += buffer.Length;
        }
        public override void WriteByte(byte value) => Write([value]);

        FileStream Seekable() => file.CanSeek ? file
            : throw new IOException($"{owner._shownPath}: this output must be a regular file (it is written out of order, and a pipe or device cannot seek)");
    }
}
