namespace TensorCodec.Tokenizers;

/// <summary>
/// GPT-2's byte-to-unicode map: byte-level BPE vocabularies spell each byte as one printable
/// character (printable Latin-1 bytes as themselves, the other 68 as U+0100 upwards, in byte order).
/// </summary>
internal static class ByteUnicode
{
    /// <summary>The character that spells each byte.</summary>
    public static readonly char[] ByteToChar = Build();
    static readonly short[] CharToByte = BuildReverse();

    static char[] Build()
    {
        var map = new char[256];
        int next = 256;
        for (int b = 0; b < 256; b++)
        {
            bool printable = b is >= '!' and <= '~' or >= 0xA1 and <= 0xAC or >= 0xAE and <= 0xFF;
            map[b] = printable ? (char)b : (char)next++;
        }
        return map;
    }

    static short[] BuildReverse()
    {
        var rev = new short[324];
        Array.Fill(rev, (short)-1);
        for (int b = 0; b < 256; b++) rev[ByteToChar[b]] = (short)b;
        return rev;
    }

    /// <summary>The byte a character spells, or -1 when it is not one of the 256.</summary>
    public static int ToByte(char c) => c < CharToByte.Length ? CharToByte[c] : -1;
}
