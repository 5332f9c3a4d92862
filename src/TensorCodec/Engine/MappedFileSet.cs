namespace TensorCodec.Engine;

/// <summary>
/// The files of one model (a single file or the shards of a Hugging Face index), each mapped on first
/// use, so a tensor is read in place from whichever shard holds it and nothing is copied.
/// </summary>
internal sealed class MappedFileSet(IReadOnlyList<string> paths) : IDisposable
{
    readonly MappedFile?[] _maps = new MappedFile?[paths.Count];

    /// <summary>The mapping of file <paramref name="index"/>, created when first asked for.</summary>
    public MappedFile this[int index] => _maps[index] ??= new MappedFile(paths[index]);

    public void Dispose()
    {
        for (int i = 0; i < _maps.Length; i++)
        {
            _maps[i]?.Dispose();
            _maps[i] = null;
        }
    }
}
