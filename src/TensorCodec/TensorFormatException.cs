namespace TensorCodec;

/// <summary>
/// Thrown when an input file is malformed. It always names the file and, where known, the
/// byte offset and the field, so a user can find the damage with a hex editor.
/// </summary>
public sealed class TensorFormatException : IOException
{
    public string? FilePath { get; }
    public long? Offset { get; }
    public string? Field { get; }

    public TensorFormatException(string? filePath, long? offset, string? field, string message, Exception? inner = null)
        : base(Compose(filePath, offset, field, message), inner)
    {
        FilePath = filePath;
        Offset = offset;
        Field = field;
    }

    static string Compose(string? filePath, long? offset, string? field, string message)
    {
        var where = filePath ?? "<stream>";
        if (offset is long o) where += $" at offset {o} (0x{o:X})";
        if (field is not null) where += $", field '{field}'";
        return $"{where}: {message}";
    }
}
