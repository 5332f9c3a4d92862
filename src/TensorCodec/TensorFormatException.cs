namespace TensorCodec;

/// <summary>
/// Thrown when an input file is malformed. It always names the file and, where known, the
/// byte offset and the field, so a user can find the damage with a hex editor.
/// </summary>
public sealed class TensorFormatException : IOException
{
    /// <summary>The malformed file, or null when reading a stream with no known name.</summary>
    public string? FilePath { get; }

    /// <summary>Byte offset in the file where the damage was found, if known.</summary>
    public long? Offset { get; }

    /// <summary>Name of the field that is malformed (a header key, metadata key or tensor name), if known.</summary>
    public string? Field { get; }

    /// <summary>Creates the exception; the message is prefixed with the file, offset and field given.</summary>
    /// <param name="filePath">The malformed file, or null for an unnamed stream (shown as <c>&lt;stream&gt;</c>).</param>
    /// <param name="offset">Byte offset of the damage, or null if unknown.</param>
    /// <param name="field">Name of the malformed field, or null.</param>
    /// <param name="message">What is wrong.</param>
    /// <param name="inner">The exception that revealed the damage, if any.</param>
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
