using System.Runtime.InteropServices;

namespace TensorCodec.Containers;

/// <summary>What a path names once symlinks are followed.</summary>
internal enum FileKind { Missing, Regular, Directory, CharDevice, Fifo, BlockDevice, Socket, Other }

/// <summary>
/// File type and identity by (device, inode), not by path string: a symlinked folder, a hard link or
/// <c>./x</c> beside <c>x</c> name the same file. .NET has no stat API, so Linux uses statx(2), whose
/// struct layout is the same on every architecture; macOS/FreeBSD read the type through the runtime's
/// stat shim; identity elsewhere falls back to fully resolved paths.
/// </summary>
internal static class FileIdentity
{
    /// <summary>Whether both paths name one existing file (false if either is missing).</summary>
    public static bool Same(string a, string b)
    {
        if (UseStatx && Stat(a) is { } sa && Stat(b) is { } sb)
            return sa.Dev == sb.Dev && sa.Ino == sb.Ino;
        if (UseStatx) return false;
        if (!File.Exists(a) || !File.Exists(b)) return false;
        var cmp = OperatingSystem.IsWindows() || OperatingSystem.IsMacOS() ? StringComparison.OrdinalIgnoreCase : StringComparison.Ordinal;
        return string.Equals(RealPath(a), RealPath(b), cmp);
    }

    /// <summary>The type of what <paramref name="path"/> names, symlinks followed.</summary>
    public static FileKind Kind(string path)
    {
        if (UseStatx) return Stat(path) is { } s ? KindOf(s.Mode) : FileKind.Missing;
        if (ShimMode(path) is int mode) return KindOf(mode);
        if (Directory.Exists(path)) return FileKind.Directory;
        return File.Exists(path) ? FileKind.Regular : FileKind.Missing;
    }

    static FileKind KindOf(int mode) => (mode & 0xF000) switch
    {
        0x8000 => FileKind.Regular,
        0x4000 => FileKind.Directory,
        0x2000 => FileKind.CharDevice,
        0x1000 => FileKind.Fifo,
        0x6000 => FileKind.BlockDevice,
        0xC000 => FileKind.Socket,
        _ => FileKind.Other,
    };

    /// <summary>The absolute path with every symlink component resolved; components that do not exist are kept as written.</summary>
    public static string RealPath(string path)
    {
        var full = Path.GetFullPath(path);
        var root = Path.GetPathRoot(full)!;
        var result = root;
        foreach (var part in full[root.Length..].Split(Path.DirectorySeparatorChar, StringSplitOptions.RemoveEmptyEntries))
        {
            var next = Path.Combine(result, part);
            // FileInfo.LinkTarget reads the link itself (lstat), for file and folder links alike.
            if (new FileInfo(next).LinkTarget is not null && File.ResolveLinkTarget(next, returnFinalTarget: true) is { } target)
                next = RealPath(target.FullName);
            result = next;
        }
        return result;
    }

    readonly record struct StatInfo(ulong Dev, ulong Ino, int Mode);

    /// <summary>Linux with a libc that has statx (glibc 2.28+, musl 1.2.5+).</summary>
    static readonly bool UseStatx = OperatingSystem.IsLinux() && Probe();

    static bool Probe()
    {
        try { StatX(AtFdCwd, "/", 0, StatxBasicStats, new byte[256]); return true; }
        catch (Exception e) when (e is DllNotFoundException or EntryPointNotFoundException) { return false; }
    }

    const int AtFdCwd = -100;
    const uint StatxBasicStats = 0x7ff;

    [DllImport("libc", EntryPoint = "statx", SetLastError = true)]
    static extern int StatX(int dirfd, string path, int flags, uint mask, byte[] buffer);

    /// <summary>statx following symlinks; null when the path does not exist or cannot be examined.</summary>
    static StatInfo? Stat(string path)
    {
        var buf = new byte[256];
        if (StatX(AtFdCwd, path, 0, StatxBasicStats, buf) != 0) return null;
        // struct statx: stx_mode u16 @28, stx_ino u64 @32, stx_dev_major u32 @136, stx_dev_minor u32 @140
        int mode = BitConverter.ToUInt16(buf, 28);
        ulong ino = BitConverter.ToUInt64(buf, 32);
        ulong dev = ((ulong)BitConverter.ToUInt32(buf, 136) << 32) | BitConverter.ToUInt32(buf, 140);
        return new StatInfo(dev, ino, mode);
    }

    /// <summary>
    /// stat(2)'s mode on macOS/FreeBSD through the runtime's own native shim (shipped with every .NET on
    /// Unix, so no native package): its FileStatus starts with int32 Flags, int32 Mode. Null elsewhere, when
    /// the path does not exist, or in a host without the shim (some single-file hosts).
    /// </summary>
    static int? ShimMode(string path)
    {
        if (!(OperatingSystem.IsMacOS() || OperatingSystem.IsFreeBSD())) return null;
        var buf = new byte[512]; // oversized: fields added at the end do no harm
        try { return SystemNativeStat(path, buf) == 0 ? BitConverter.ToInt32(buf, 4) : null; }
        catch (Exception e) when (e is DllNotFoundException or EntryPointNotFoundException) { return null; }
    }

    [DllImport("libSystem.Native", EntryPoint = "SystemNative_Stat", SetLastError = true)]
    static extern int SystemNativeStat([MarshalAs(UnmanagedType.LPUTF8Str)] string path, byte[] output);
}
