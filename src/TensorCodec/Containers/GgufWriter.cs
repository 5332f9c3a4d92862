using System.Buffers.Binary;
using System.Runtime.InteropServices;
using System.Text;

namespace TensorCodec.Containers;

/// <summary>
/// One tensor to write to GGUF. <see cref="Dims"/> are innermost-first as GGUF stores them
/// (Dims[0] is the row length), i.e. the reverse of a PyTorch shape.
/// </summary>
internal sealed record GgufTensor(string Name, int GgmlType, long[] Dims, TensorByteSource Data);

/// <summary>
/// Writes GGUF v3 with ggml's layout: header, key/values, tensor infos, zero padding to the
/// alignment, then each tensor's data followed by zero padding to the alignment. Tensor
/// offsets are assigned sequentially in the given order, so rewriting a file this writer
/// produced reproduces it byte for byte.
/// </summary>
internal static class GgufWriter
{
    static readonly UTF8Encoding StrictUtf8 = new(encoderShouldEmitUTF8Identifier: false, throwOnInvalidBytes: true);

    public static void Write(Stream output, IEnumerable<KeyValuePair<string, GgufValue>> metadata, IEnumerable<GgufTensor> tensors)
    {
        ArgumentNullException.ThrowIfNull(output);
        var kvs = metadata.ToList();
        var list = tensors.ToList();

        uint alignment = GgufFile.DefaultAlignment;
        var keys = new HashSet<string>(StringComparer.Ordinal);
        foreach (var kv in kvs)
        {
            if (!keys.Add(kv.Key)) throw new ArgumentException($"duplicate metadata key '{kv.Key}'");
            if (kv.Key == GgufFile.AlignmentKey)
            {
                if (kv.Value.Type != GgufValueType.UInt32) throw new ArgumentException("general.alignment must be a uint32 value");
                alignment = kv.Value.As<uint>();
                if (alignment == 0 || (alignment & (alignment - 1)) != 0)
                    throw new ArgumentException($"general.alignment {alignment} is not a non-zero power of two");
            }
        }

        var counter = new CountingWriteStream(output);
        var w = new Writer(counter);
        w.Bytes("GGUF"u8);
        w.U32(3);
        w.U64((ulong)list.Count);
        w.U64((ulong)kvs.Count);
        foreach (var kv in kvs)
        {
            w.String(kv.Key);
            w.U32((uint)kv.Value.Type);
            WriteValue(w, kv.Value.Value, 0);
        }

        var names = new HashSet<string>(StringComparer.Ordinal);
        long offset = 0;
        foreach (var t in list)
        {
            if (!names.Add(t.Name)) throw new ArgumentException($"duplicate tensor name '{t.Name}'");
            if (t.Dims.Length > GgufFile.MaxDims) throw new ArgumentException($"tensor '{t.Name}': more than {GgufFile.MaxDims} dims");
            var info = GgmlTypes.Get(t.GgmlType);
            long elements = 1;
            foreach (var d in t.Dims)
            {
                ArgumentOutOfRangeException.ThrowIfNegative(d, $"{t.Name} dims");
                elements = checked(elements * d);
            }
            if (t.Dims.Length > 0 && t.Dims[0] % info.BlockSize != 0)
                throw new ArgumentException($"tensor '{t.Name}': row length {t.Dims[0]} is not a multiple of {info.Name}'s block size {info.BlockSize}");
            long size = info.ByteSize(elements) ?? throw new ArgumentException($"tensor '{t.Name}': invalid size");
            if (size != t.Data.Length)
                throw new ArgumentException($"tensor '{t.Name}': {elements} × {info.Name} is {size} bytes but the source has {t.Data.Length}");
            w.String(t.Name);
            w.U32((uint)t.Dims.Length);
            foreach (var d in t.Dims) w.U64((ulong)d);
            w.U32((uint)t.GgmlType);
            w.U64((ulong)offset);
            offset = GgufFile.AlignUp(offset + size, alignment);
        }
        Pad(counter, alignment);

        foreach (var t in list)
        {
            counter.WriteSource(t.Data, t.Name);
            Pad(counter, alignment);
        }
    }

    public static byte[] ToBytes(IEnumerable<KeyValuePair<string, GgufValue>> metadata, IEnumerable<GgufTensor> tensors)
    {
        var ms = new MemoryStream();
        Write(ms, metadata, tensors);
        return ms.ToArray();
    }

    /// <summary>Rewrites a parsed file (same metadata and tensors, in header order) from its source stream.</summary>
    public static void Rewrite(GgufFile file, Stream source, Stream output) =>
        Write(output, file.Metadata, file.TensorsFrom(source));

    static void Pad(CountingWriteStream s, uint alignment)
    {
        long pad = GgufFile.AlignUp(s.Count, alignment) - s.Count;
        Span<byte> zeros = stackalloc byte[256];
        zeros.Clear();
        while (pad > 0)
        {
            int n = (int)Math.Min(pad, zeros.Length);
            s.Write(zeros[..n]);
            pad -= n;
        }
    }

    static void WriteValue(Writer w, object value, int depth)
    {
        switch (value)
        {
            case byte v: w.Bytes([v]); break;
            case sbyte v: w.Bytes([(byte)v]); break;
            case ushort v: w.U16(v); break;
            case short v: w.U16((ushort)v); break;
            case uint v: w.U32(v); break;
            case int v: w.U32((uint)v); break;
            case float v: w.U32(BitConverter.SingleToUInt32Bits(v)); break;
            case bool v: w.Bytes([v ? (byte)1 : (byte)0]); break;
            case string v: w.String(v); break;
            case ulong v: w.U64(v); break;
            case long v: w.U64((ulong)v); break;
            case double v: w.U64(BitConverter.DoubleToUInt64Bits(v)); break;
            case GgufArray a:
                if (depth >= GgufFile.MaxNesting) throw new ArgumentException($"arrays nested deeper than {GgufFile.MaxNesting} levels");
                w.U32((uint)a.ElementType);
                w.U64((ulong)a.Count);
                if (!w.TryBulk(a.Items))
                    foreach (var item in a.Items) WriteValue(w, item!, depth + 1);
                break;
            default: throw new ArgumentException($"unsupported GGUF value {value.GetType().Name}");
        }
    }

    sealed class Writer(Stream s)
    {
        public void Bytes(ReadOnlySpan<byte> b) => s.Write(b);
        public void U16(ushort v) { Span<byte> b = stackalloc byte[2]; BinaryPrimitives.WriteUInt16LittleEndian(b, v); s.Write(b); }
        public void U32(uint v) { Span<byte> b = stackalloc byte[4]; BinaryPrimitives.WriteUInt32LittleEndian(b, v); s.Write(b); }
        public void U64(ulong v) { Span<byte> b = stackalloc byte[8]; BinaryPrimitives.WriteUInt64LittleEndian(b, v); s.Write(b); }
        /// <summary>Numeric arrays go out in one write (token score arrays can be 100k+ long).</summary>
        public bool TryBulk(System.Array items)
        {
            if (!BitConverter.IsLittleEndian) return false;
            switch (items)
            {
                case byte[] a: s.Write(a); return true;
                case sbyte[] a: s.Write(MemoryMarshal.AsBytes(a.AsSpan())); return true;
                case ushort[] a: s.Write(MemoryMarshal.AsBytes(a.AsSpan())); return true;
                case short[] a: s.Write(MemoryMarshal.AsBytes(a.AsSpan())); return true;
                case uint[] a: s.Write(MemoryMarshal.AsBytes(a.AsSpan())); return true;
                case int[] a: s.Write(MemoryMarshal.AsBytes(a.AsSpan())); return true;
                case float[] a: s.Write(MemoryMarshal.AsBytes(a.AsSpan())); return true;
                case ulong[] a: s.Write(MemoryMarshal.AsBytes(a.AsSpan())); return true;
                case long[] a: s.Write(MemoryMarshal.AsBytes(a.AsSpan())); return true;
                case double[] a: s.Write(MemoryMarshal.AsBytes(a.AsSpan())); return true;
                default: return false; // bool (normalised to 0/1), strings, nested arrays
            }
        }

        public void String(string v)
        {
            var bytes = StrictUtf8.GetBytes(v);
            U64((ulong)bytes.Length);
            s.Write(bytes);
        }
    }
}
