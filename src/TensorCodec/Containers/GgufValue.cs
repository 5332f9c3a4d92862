using System.Collections;
using System.Globalization;
using System.Text;

namespace TensorCodec.Containers;

/// <summary>GGUF metadata value types (<c>gguf_type</c>); the numbers are the on-disk ids.</summary>
public enum GgufValueType : uint
{
    /// <summary>Unsigned 8-bit integer (<see cref="byte"/>).</summary>
    UInt8 = 0,
    /// <summary>Signed 8-bit integer (<see cref="sbyte"/>).</summary>
    Int8 = 1,
    /// <summary>Unsigned 16-bit integer (<see cref="ushort"/>).</summary>
    UInt16 = 2,
    /// <summary>Signed 16-bit integer (<see cref="short"/>).</summary>
    Int16 = 3,
    /// <summary>Unsigned 32-bit integer (<see cref="uint"/>).</summary>
    UInt32 = 4,
    /// <summary>Signed 32-bit integer (<see cref="int"/>).</summary>
    Int32 = 5,
    /// <summary>IEEE 754 binary32 (<see cref="float"/>).</summary>
    Float32 = 6,
    /// <summary>Boolean stored as one byte (<see cref="bool"/>).</summary>
    Bool = 7,
    /// <summary>UTF-8 string with a 64-bit length prefix (<see cref="string"/>).</summary>
    String = 8,
    /// <summary>Homogeneous array (<see cref="GgufArray"/>).</summary>
    Array = 9,
    /// <summary>Unsigned 64-bit integer (<see cref="ulong"/>).</summary>
    UInt64 = 10,
    /// <summary>Signed 64-bit integer (<see cref="long"/>).</summary>
    Int64 = 11,
    /// <summary>IEEE 754 binary64 (<see cref="double"/>).</summary>
    Float64 = 12,
}

/// <summary>
/// A typed GGUF metadata value. <see cref="Value"/> is the boxed CLR value of the exact on-disk
/// type (byte, sbyte, ushort, short, uint, int, float, bool, string, <see cref="GgufArray"/>,
/// ulong, long, double), so a read value is written back bit for bit (float NaN payloads too).
/// </summary>
public sealed class GgufValue
{
    /// <summary>The on-disk type.</summary>
    public GgufValueType Type { get; }

    /// <summary>The boxed value; its CLR type corresponds exactly to <see cref="Type"/>.</summary>
    public object Value { get; }

    GgufValue(GgufValueType type, object value) { Type = type; Value = value; }

    internal static GgufValue UInt8(byte v) => new(GgufValueType.UInt8, v);
    internal static GgufValue Int8(sbyte v) => new(GgufValueType.Int8, v);
    internal static GgufValue UInt16(ushort v) => new(GgufValueType.UInt16, v);
    internal static GgufValue Int16(short v) => new(GgufValueType.Int16, v);
    internal static GgufValue UInt32(uint v) => new(GgufValueType.UInt32, v);
    internal static GgufValue Int32(int v) => new(GgufValueType.Int32, v);
    internal static GgufValue Float32(float v) => new(GgufValueType.Float32, v);
    internal static GgufValue Bool(bool v) => new(GgufValueType.Bool, v);
    internal static GgufValue String(string v) => new(GgufValueType.String, v ?? throw new ArgumentNullException(nameof(v)));
    internal static GgufValue UInt64(ulong v) => new(GgufValueType.UInt64, v);
    internal static GgufValue Int64(long v) => new(GgufValueType.Int64, v);
    internal static GgufValue Float64(double v) => new(GgufValueType.Float64, v);
    internal static GgufValue Array(GgufArray v) => new(GgufValueType.Array, v ?? throw new ArgumentNullException(nameof(v)));

    /// <summary>The value as <typeparamref name="T"/>, which must be its exact CLR type (no numeric
    /// conversion: a UInt32 value is read with <c>As&lt;uint&gt;()</c>, not <c>As&lt;int&gt;()</c>).</summary>
    /// <exception cref="InvalidCastException">The value is of another type.</exception>
    public T As<T>() => Value is T t ? t
        : throw new InvalidCastException($"GGUF value is {Type} ({Value.GetType().Name}), not {typeof(T).Name}");

    /// <summary>The value as an array.</summary>
    /// <exception cref="InvalidCastException">The value is not an array.</exception>
    public GgufArray AsArray() => As<GgufArray>();

    /// <summary>The value as a string.</summary>
    /// <exception cref="InvalidCastException">The value is not a string.</exception>
    public string AsString() => As<string>();

    /// <summary>Display rendering; arrays are summarised (first elements and a count).</summary>
    public override string ToString() => Render(this, 0);

    const int ShownElements = 8;

    internal static string Render(GgufValue v, int depth) => v.Value switch
    {
        float f => f.ToString("R", CultureInfo.InvariantCulture),
        double d => d.ToString("R", CultureInfo.InvariantCulture),
        bool b => b ? "true" : "false",
        string s => s,
        GgufArray a => RenderArray(a, depth),
        IFormattable x => x.ToString(null, CultureInfo.InvariantCulture),
        var o => o.ToString() ?? "",
    };

    static string RenderArray(GgufArray a, int depth)
    {
        var sb = new StringBuilder("[");
        int shown = Math.Min(a.Count, depth == 0 ? ShownElements : 3);
        for (int i = 0; i < shown; i++)
        {
            if (i > 0) sb.Append(", ");
            var e = a[i];
            sb.Append(e.Type == GgufValueType.String ? Quote(e.AsString()) : Render(e, depth + 1));
        }
        if (shown < a.Count) sb.Append(shown > 0 ? ", …" : "…");
        sb.Append(']');
        if (depth == 0 || shown < a.Count)
            sb.Append(" (").Append(a.Count.ToString(CultureInfo.InvariantCulture)).Append(" × ")
              .Append(a.ElementType.ToString().ToLowerInvariant()).Append(')');
        return sb.ToString();
    }

    static string Quote(string s)
    {
        var sb = new StringBuilder("\"");
        foreach (char c in s)
        {
            if (c == '"' || c == '\\') sb.Append('\\').Append(c);
            else if (c < 0x20) sb.Append("\\x").Append(((int)c).ToString("x2", CultureInfo.InvariantCulture));
            else sb.Append(c);
        }
        return sb.Append('"').ToString();
    }
}

/// <summary>
/// A homogeneous GGUF array. Elements are kept in a typed CLR array (byte[], float[], string[],
/// GgufArray[] …) rather than as boxed values: a tokenizer's 150k-entry score array stays one
/// float[] instead of 150k objects. Indexing yields <see cref="GgufValue"/>s for uniform access.
/// </summary>
public sealed class GgufArray : IReadOnlyList<GgufValue>
{
    /// <summary>The type of every element.</summary>
    public GgufValueType ElementType { get; }

    /// <summary>The typed backing array, e.g. <c>string[]</c> for a string array.</summary>
    public System.Array Items { get; }

    internal GgufArray(GgufValueType elementType, System.Array items)
    {
        ArgumentNullException.ThrowIfNull(items);
        var expected = ClrType(elementType);
        if (items.GetType().GetElementType() != expected || items.Rank != 1)
            throw new ArgumentException($"a GGUF {elementType} array must be backed by {expected.Name}[], got {items.GetType().Name}");
        if (elementType == GgufValueType.String || elementType == GgufValueType.Array)
            foreach (var o in items)
                if (o is null) throw new ArgumentException("GGUF arrays cannot contain null elements");
        ElementType = elementType;
        Items = items;
    }

    internal static GgufArray Of(params byte[] v) => new(GgufValueType.UInt8, v);
    internal static GgufArray Of(params sbyte[] v) => new(GgufValueType.Int8, v);
    internal static GgufArray Of(params ushort[] v) => new(GgufValueType.UInt16, v);
    internal static GgufArray Of(params short[] v) => new(GgufValueType.Int16, v);
    internal static GgufArray Of(params uint[] v) => new(GgufValueType.UInt32, v);
    internal static GgufArray Of(params int[] v) => new(GgufValueType.Int32, v);
    internal static GgufArray Of(params float[] v) => new(GgufValueType.Float32, v);
    internal static GgufArray Of(params bool[] v) => new(GgufValueType.Bool, v);
    internal static GgufArray Of(params string[] v) => new(GgufValueType.String, v);
    internal static GgufArray Of(params ulong[] v) => new(GgufValueType.UInt64, v);
    internal static GgufArray Of(params long[] v) => new(GgufValueType.Int64, v);
    internal static GgufArray Of(params double[] v) => new(GgufValueType.Float64, v);
    internal static GgufArray Of(params GgufArray[] v) => new(GgufValueType.Array, v);

    /// <summary>The backing array as <typeparamref name="T"/>[] (e.g. <c>Get&lt;float&gt;()</c> for scores).</summary>
    public T[] Get<T>() => Items as T[]
        ?? throw new InvalidCastException($"GGUF array holds {ElementType}, not {typeof(T).Name}");

    /// <summary>Number of elements.</summary>
    public int Count => Items.Length;

    /// <summary>Element <paramref name="index"/>, wrapped as a <see cref="GgufValue"/> of type <see cref="ElementType"/>.</summary>
    /// <exception cref="IndexOutOfRangeException"><paramref name="index"/> is outside [0, <see cref="Count"/>).</exception>
    public GgufValue this[int index] => Items switch
    {
        byte[] a => GgufValue.UInt8(a[index]),
        sbyte[] a => GgufValue.Int8(a[index]),
        ushort[] a => GgufValue.UInt16(a[index]),
        short[] a => GgufValue.Int16(a[index]),
        uint[] a => GgufValue.UInt32(a[index]),
        int[] a => GgufValue.Int32(a[index]),
        float[] a => GgufValue.Float32(a[index]),
        bool[] a => GgufValue.Bool(a[index]),
        string[] a => GgufValue.String(a[index]),
        GgufArray[] a => GgufValue.Array(a[index]),
        ulong[] a => GgufValue.UInt64(a[index]),
        long[] a => GgufValue.Int64(a[index]),
        double[] a => GgufValue.Float64(a[index]),
        _ => throw new InvalidOperationException("unreachable: validated in the constructor"),
    };

    /// <summary>Enumerates the elements in order, each wrapped as by the indexer.</summary>
    public IEnumerator<GgufValue> GetEnumerator()
    {
        for (int i = 0; i < Count; i++) yield return this[i];
    }

    IEnumerator IEnumerable.GetEnumerator() => GetEnumerator();

    internal static Type ClrType(GgufValueType t) => t switch
    {
        GgufValueType.UInt8 => typeof(byte), GgufValueType.Int8 => typeof(sbyte),
        GgufValueType.UInt16 => typeof(ushort), GgufValueType.Int16 => typeof(short),
        GgufValueType.UInt32 => typeof(uint), GgufValueType.Int32 => typeof(int),
        GgufValueType.Float32 => typeof(float), GgufValueType.Bool => typeof(bool),
        GgufValueType.String => typeof(string), GgufValueType.Array => typeof(GgufArray),
        GgufValueType.UInt64 => typeof(ulong), GgufValueType.Int64 => typeof(long),
        GgufValueType.Float64 => typeof(double),
        _ => throw new ArgumentOutOfRangeException(nameof(t), t, "unknown GGUF value type"),
    };

    /// <summary>On-disk bytes of one fixed-size element, 0 for strings and arrays.</summary>
    internal static int FixedSize(GgufValueType t) => t switch
    {
        GgufValueType.UInt8 or GgufValueType.Int8 or GgufValueType.Bool => 1,
        GgufValueType.UInt16 or GgufValueType.Int16 => 2,
        GgufValueType.UInt32 or GgufValueType.Int32 or GgufValueType.Float32 => 4,
        GgufValueType.UInt64 or GgufValueType.Int64 or GgufValueType.Float64 => 8,
        _ => 0,
    };
}
