using System.IO.MemoryMappedFiles;

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

    public MappedFile(string path)
    {
        Path = path;
        Length = new FileInfo(path).Length;
        if (Length == 0) throw new InvalidDataException($"{path}: file is empty");
        _map = MemoryMappedFile.CreateFromFile(path, FileMode.Open, null, 0, MemoryMappedFileAccess.Read);
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
