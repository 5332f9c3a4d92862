using System.Runtime.InteropServices;

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
        if (!(OperatingSystem.IsLinux() || OperatingSystem.IsMacOS() || OperatingSystem.IsFreeBSD())) return;
        if (Stat(path) is not (int mode, long size)) return;
        string? kind = (mode & S_IFMT) switch
        {
            S_IFREG => null,
            S_IFDIR => "directory",
            S_IFCHR => "character device",
            S_IFBLK => "block device",
            S_IFIFO => "FIFO",
            S_IFSOCK => "socket",
            _ => "special file",
        };
        if (kind is not null)
            throw new IOException($"{path} is not a regular file ({kind}); tcodec reads regular files only");
        // Opening a regular file never blocks, so a zero-length one can be probed for pseudo-file content.
        if (size == 0)
        {
            using var s = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite, bufferSize: 1);
            if (s.ReadByte() >= 0)
                throw new IOException($"{path} is not a regular file (it reports length 0 but has content, like a /proc file); tcodec reads regular files only");
        }
    }

    const int S_IFMT = 0xF000, S_IFIFO = 0x1000, S_IFCHR = 0x2000, S_IFDIR = 0x4000, S_IFBLK = 0x6000, S_IFREG = 0x8000, S_IFSOCK = 0xC000;

    /// <summary>stat(2) through the runtime's own native shim (shipped with every .NET on Unix, so no
    /// native package): its FileStatus starts with int32 Flags, int32 Mode, uint32 Uid, uint32 Gid,
    /// int64 Size on every platform. The buffer is oversized so fields added at the end do no harm.</summary>
    static (int Mode, long Size)? Stat(string path)
    {
        var buf = new byte[512];
        try
        {
            if (SystemNativeStat(path, buf) != 0) return null;
        }
        catch (Exception e) when (e is DllNotFoundException or EntryPointNotFoundException)
        {
            return null; // a runtime without the shim (some single-file hosts): fall back to the plain open
        }
        return (BitConverter.ToInt32(buf, 4), BitConverter.ToInt64(buf, 16));
    }

    [DllImport("libSystem.Native", EntryPoint = "SystemNative_Stat", SetLastError = true)]
    static extern int SystemNativeStat([MarshalAs(UnmanagedType.LPUTF8Str)] string path, byte[] output);
}
