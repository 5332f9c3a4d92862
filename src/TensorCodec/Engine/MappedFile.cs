using System.IO.MemoryMappedFiles;
using TensorCodec.Containers;

namespace TensorCodec.Engine;

/// <summary>
/// A read-only memory mapping of a whole file. Weights are used in place, so loading a model
/// costs page faults rather than copies, and the OS can share and evict the pages.
/// </summary>
internal sealed unsafe class MappedFile : IDisposable
{
    readonly MemoryMappedFile _map;
    readonly MemoryMappedViewAccessor _view;
    byte* _base;

    public string Path { get; }
    public long Length { get; }

    /// <summary>Maps <paramref name="path"/>; a symlink is followed to its target (the Hugging Face cache links
    /// snapshots/ to blobs/), whose length is the one that counts, not the link's.</summary>
    public MappedFile(string path)
    {
        Path = path;
        string target = FileIdentity.RealPath(path);
        Length = new FileInfo(target).Length;
        if (Length == 0) throw new InvalidDataException($"{path}: file is empty");
        _map = MemoryMappedFile.CreateFromFile(target, FileMode.Open, null, 0, MemoryMappedFileAccess.Read);
        _view = _map.CreateViewAccessor(0, 0, MemoryMappedFileAccess.Read);
        byte* p = null;
        _view.SafeMemoryMappedViewHandle.AcquirePointer(ref p);
        _base = p + _view.PointerOffset;
    }

    /// <summary>Address of <paramref name="offset"/>, after checking that <paramref name="length"/> bytes fit.</summary>
    public byte* At(long offset, long length)
    {
        ObjectDisposedException.ThrowIf(_base == null, this);
        if (offset < 0 || length < 0 || offset > Length - length)
            throw new InvalidDataException($"{Path}: byte range {offset}+{length} lies outside the {Length}-byte file");
        return _base + offset;
    }

    public void Dispose()
    {
        if (_base == null) return;
        _base = null;
        _view.SafeMemoryMappedViewHandle.ReleasePointer();
        _view.Dispose();
        _map.Dispose();
    }
}
