namespace TensorCodec.Containers;

/// <summary>
/// The one check every command runs before opening an input: it must be a regular file.
/// A FIFO would block the open itself, a character device reports length 0 (so /dev/zero
/// compressed to an empty archive), and a /proc file reports length 0 while holding content;
/// all of them are refused with one line naming the path and what it is.
/// </summary>
internal static class InputFile
{
    /// <summary>Throws <see cref="IOException"/> when <paramref name="path"/> (symlinks resolved) exists
    /// and is not a regular file. A missing file passes: the open that follows reports it.</summary>
    public static void EnsureRegular(string path)
    {
        var kind = FileIdentity.Kind(path);
        string? what = kind switch
        {
            FileKind.Missing or FileKind.Regular => null,
            FileKind.Directory => "directory",
            FileKind.CharDevice => "character device",
            FileKind.BlockDevice => "block device",
            FileKind.Fifo => "FIFO",
            FileKind.Socket => "socket",
            _ => "special file",
        };
        if (what is not null)
            throw new IOException($"{path} is not a regular file ({what}); tcodec reads regular files only");
        // Opening a regular file never blocks, so a zero-length one can be probed for pseudo-file content.
        if (kind == FileKind.Regular && new FileInfo(path).Length == 0)
        {
            using var s = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite, bufferSize: 1);
            if (s.ReadByte() >= 0)
                throw new IOException($"{path} is not a regular file (it reports length 0 but has content, like a /proc file); tcodec reads regular files only");
        }
    }
}
