using System.Buffers.Binary;
using System.Text.Unicode;

namespace TensorCodec.Containers;

/// <summary>A container a file's first bytes identify. llama2.c checkpoints have no magic and are not sniffed.</summary>
internal enum ContainerKind : byte
{
    /// <summary>No known magic.</summary>
    None = 0,
    /// <summary>GGUF (magic "GGUF").</summary>
    Gguf,
    /// <summary>safetensors: a little-endian u64 header length that fits the file, then '{'.</summary>
    Safetensors,
    /// <summary>A .tcz archive.</summary>
    Tcz,
    /// <summary>A TensorCodec KV context (.tkv).</summary>
    Tkv,
}

/// <summary>
/// The one place that tells containers apart by their first bytes: <see cref="TensorFileReader.Detect(Stream)"/>
/// uses it to pick a reader, and the tools that expect raw values (float32 rows, uint16 token ids) use it to
/// refuse a container instead of reading its header as numbers.
/// </summary>
internal static class ContainerSniff
{
    /// <summary>Bytes <see cref="Sniff"/> looks at.</summary>
    public const int HeadBytes = 9;

    /// <summary>The .tcz magic (PNG-style: a high byte and CR/LF/EOF characters catch text-mode transfers).</summary>
    public static ReadOnlySpan<byte> TczMagic => [0x89, (byte)'T', (byte)'C', (byte)'Z', 0x0D, 0x0A, 0x1A, 0x0A];
    /// <summary>The .tkv magic.</summary>
    public static ReadOnlySpan<byte> TkvMagic => "TCODECKV"u8;
    static ReadOnlySpan<byte> GgufMagic => "GGUF"u8;

    /// <summary>What <paramref name="head"/>, the first bytes of a file of <paramref name="fileLength"/> bytes, says the file is.</summary>
    public static ContainerKind Sniff(ReadOnlySpan<byte> head, long fileLength)
    {
        if (head.Length >= 4 && head[..4].SequenceEqual(GgufMagic)) return ContainerKind.Gguf;
        if (head.Length >= 8 && head[..8].SequenceEqual(TczMagic)) return ContainerKind.Tcz;
        if (head.Length >= 8 && head[..8].SequenceEqual(TkvMagic)) return ContainerKind.Tkv;
        if (head.Length >= 9)
        {
            ulong headerLen = BinaryPrimitives.ReadUInt64LittleEndian(head);
            if (headerLen >= 2 && headerLen <= (ulong)SafetensorsFile.MaxHeaderLength
                && fileLength >= 8 && headerLen <= (ulong)(fileLength - 8) && head[8] == (byte)'{')
                return ContainerKind.Safetensors;
        }
        return ContainerKind.None;
    }

    /// <summary>"a GGUF file", "a .tcz archive", …, for messages.</summary>
    public static string Describe(ContainerKind kind) => kind switch
    {
        ContainerKind.Gguf => "a GGUF file",
        ContainerKind.Safetensors => "a safetensors file",
        ContainerKind.Tcz => "a .tcz archive",
        ContainerKind.Tkv => "a TensorCodec KV context (.tkv)",
        _ => "not a known container",
    };

    /// <summary>What to run on a file of <paramref name="kind"/> instead of a tool that wants raw values.</summary>
    static string Instead(ContainerKind kind) => kind switch
    {
        ContainerKind.Tcz => "decompress it first (tcodec decompress), or list its tensors with tcodec inspect",
        ContainerKind.Tkv => "it is read by tcodec kv load",
        _ => "tcodec inspect lists its tensors, tcodec quantize converts a whole model",
    };

    /// <summary>Throws when <paramref name="data"/> (a whole file, or at least its first <see cref="HeadBytes"/>)
    /// is a container: the message says what the file is, that <paramref name="expected"/> was wanted, and what to use.</summary>
    /// <exception cref="InvalidDataException">The bytes begin with a container's magic.</exception>
    public static void RefuseContainer(ReadOnlySpan<byte> data, long fileLength, string path, string expected)
    {
        var kind = Sniff(data, fileLength);
        if (kind != ContainerKind.None)
            throw new InvalidDataException($"{path} is {Describe(kind)}, not {expected}; {Instead(kind)}");
    }

    /// <summary>As <see cref="RefuseContainer(ReadOnlySpan{byte}, long, string, string)"/>, reading only the first bytes of the file at <paramref name="path"/>.</summary>
    /// <exception cref="InvalidDataException">The file begins with a container's magic.</exception>
    public static void RefuseContainer(string path, string expected)
    {
        Span<byte> head = stackalloc byte[HeadBytes];
        using var fs = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, bufferSize: 1);
        int n = fs.ReadAtLeast(head, head.Length, throwOnEndOfStream: false);
        RefuseContainer(head[..n], fs.Length, path, expected);
    }

    /// <summary>True when <paramref name="data"/> reads as UTF-8 text: no NUL or other control bytes but tab,
    /// line feed and carriage return, and valid UTF-8 (a sequence cut at the end is allowed). Raw uint16 token
    /// ids almost never pass: BOS (id 1) is a 0x01 byte, and the high bytes of most ids are not valid UTF-8.</summary>
    public static bool LooksLikeText(ReadOnlySpan<byte> data)
    {
        if (data.IsEmpty) return false;
        foreach (byte b in data)
            if (b < 0x20 && b is not ((byte)'\t' or (byte)'\n' or (byte)'\r') || b == 0x7F) return false;
        // A multi-byte character may be cut at the end of a sample: drop an incomplete tail (at most 3 bytes).
        for (int cut = 0; cut <= 3 && cut < data.Length; cut++)
            if (Utf8.IsValid(data[..^cut])) return true;
        return false;
    }
}
