using TensorCodec.Coders;
using System.Buffers.Binary;
using System.IO.Hashing;
using System.Runtime.InteropServices;

namespace TensorCodec.Containers.Tkv;

/// <summary>Writes a <c>.tkv</c> file (FORMAT.md, "KV context files"): header, then per layer a keys and a values section, then the file checksum.</summary>
internal static class TkvWriter
{
    /// <summary>
    /// Writes <paramref name="keys"/> and <paramref name="values"/> (per layer, [positions][kvDim])
    /// under <paramref name="header"/> to <paramref name="output"/>, coded with <c>header.Codec</c>.
    /// </summary>
    public static KvSaveStats Write(Stream output, TkvHeader header, IReadOnlyList<float[]> keys, IReadOnlyList<float[]> values)
    {
        var codec = header.Codec;
        int layers = header.Layers;
        if (codec.KeyBits.Length != layers || codec.ValueBits.Length != layers)
            throw new ArgumentException($"KV codec has bit depths for {codec.KeyBits.Length} layers, the context has {layers}");
        if (keys.Count != layers || values.Count != layers) throw new ArgumentException($"{keys.Count} key and {values.Count} value layers for a header of {layers}");
        if (header.ModelId.Length != 16) throw new ArgumentException("the model identity is 16 bytes");
        var head = new byte[header.Size];
        var fixedPart = head.AsSpan(0, TkvHeader.FixedSize);
        TkvHeader.Magic.CopyTo(fixedPart);
        BinaryPrimitives.WriteUInt16LittleEndian(fixedPart[8..], TkvHeader.Version);
        BinaryPrimitives.WriteInt32LittleEndian(fixedPart[12..], header.Size);
        header.ModelId.CopyTo(fixedPart[16..]);
        BinaryPrimitives.WriteInt32LittleEndian(fixedPart[32..], layers);
        BinaryPrimitives.WriteInt32LittleEndian(fixedPart[36..], header.KvHeads);
        BinaryPrimitives.WriteInt32LittleEndian(fixedPart[40..], header.HeadDim);
        BinaryPrimitives.WriteInt32LittleEndian(fixedPart[44..], header.Vocab);
        BinaryPrimitives.WriteInt32LittleEndian(fixedPart[48..], header.Tokens.Length);
        fixedPart[52] = (byte)codec.Kind;
        fixedPart[53] = (byte)codec.Delta;
        BinaryPrimitives.WriteUInt16LittleEndian(fixedPart[54..], (ushort)codec.Anchor);
        int at = TkvHeader.FixedSize;
        codec.KeyBits.CopyTo(head, at); at += layers;
        codec.ValueBits.CopyTo(head, at); at += layers;
        MemoryMarshal.AsBytes(header.Tokens.AsSpan()).CopyTo(head.AsSpan(at)); // little-endian hosts only, as the rest of the library
        at += 4 * header.Tokens.Length;
        BinaryPrimitives.WriteUInt64LittleEndian(head.AsSpan(at), XxHash3.HashToUInt64(head.AsSpan(0, at)));

        var file = new XxHash3();
        void Emit(ReadOnlySpan<byte> b) { output.Write(b); file.Append(b); }
        Emit(head);
        long keyBytes = 0, valueBytes = 0;
        Span<byte> sh = stackalloc byte[12];
        using var encoder = new ChunkEncoder();
        for (int l = 0; l < layers; l++)
            for (int kind = 0; kind < 2; kind++)
            {
                byte[] payload = TkvSection.Encode(encoder, kind == 0 ? keys[l] : values[l], header.Positions, header.KvDim, codec, kind == 0 ? codec.KeyBits[l] : codec.ValueBits[l]);
                BinaryPrimitives.WriteInt32LittleEndian(sh, payload.Length);
                BinaryPrimitives.WriteUInt64LittleEndian(sh[4..], XxHash3.HashToUInt64(payload));
                Emit(sh);
                Emit(payload);
                if (kind == 0) keyBytes += 12 + payload.Length; else valueBytes += 12 + payload.Length;
            }
        Span<byte> h8 = stackalloc byte[8];
        BinaryPrimitives.WriteUInt64LittleEndian(h8, file.GetCurrentHashAsUInt64());
        output.Write(h8);
        return new KvSaveStats(head.Length + keyBytes + valueBytes + 8, head.Length + 8, keyBytes, valueBytes, header.RawF16Bytes);
    }
}
