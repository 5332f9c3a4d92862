using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.Json.Serialization;

namespace TensorCodec.Cli.Commands;

/// <summary>
/// The one JSON convention of docs/JSON.md: <c>command</c> first, snake_case keys, non-finite numbers
/// as null, dtypes by the names the CLI accepts, shapes outermost first.
/// </summary>
static class JsonOutput
{
    static readonly JsonSerializerOptions Options = new()
    {
        WriteIndented = true,
        PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower,
        Converters = { new FiniteDouble(), new FiniteSingle() },
    };

    /// <summary>Any value (an object, or an array of per-input objects) with these rules.</summary>
    public static string Serialize<T>(T value) => JsonSerializer.Serialize(value, Options);

    /// <summary>Prints one object: <c>"command"</c>, then the properties of each part in order.</summary>
    public static void Write(string command, params object[] parts) =>
        Console.Out.WriteLine(Object(command, parts).ToJsonString(Options));

    /// <summary>The properties of the parts (anonymous objects or <see cref="JsonObject"/>s) as one object,
    /// after <c>"command"</c> when one is given.</summary>
    public static JsonObject Object(string? command, params object[] parts)
    {
        var o = new JsonObject();
        if (command is not null) o["command"] = command;
        foreach (var part in parts)
        {
            var node = part as JsonObject ?? JsonSerializer.SerializeToNode(part, Options)!.AsObject();
            foreach (var (key, value) in node.ToList())
            {
                node.Remove(key);
                o[key] = value;
            }
        }
        return o;
    }

    /// <summary>An element type as the CLI accepts it: <c>bf16</c>, <c>f32</c>, <c>f8_e4m3</c>, and ggml's
    /// own spelling for block types (<c>q4_K</c>, <c>iq4_xs</c>), whose K is upper case.</summary>
    public static string DType(string name)
    {
        var lower = name.ToLowerInvariant();
        return lower.EndsWith("_k") ? lower[..^1] + "K" : lower;
    }

    /// <summary>ggml dims (ne[0], the row length, first) in PyTorch order (outermost first).</summary>
    public static long[] Shape(IReadOnlyList<long> ggmlDims) => ggmlDims.Reverse().ToArray();

    /// <summary>A count's fraction, for percentages reported as 0–1 like every other ratio.</summary>
    public static double Fraction(double percent) => percent / 100;

    /// <summary>NaN and ±Infinity are not JSON numbers: they are written as null.</summary>
    sealed class FiniteDouble : JsonConverter<double>
    {
        public override double Read(ref Utf8JsonReader reader, Type typeToConvert, JsonSerializerOptions options) => reader.GetDouble();

        public override void Write(Utf8JsonWriter writer, double value, JsonSerializerOptions options)
        {
            if (double.IsFinite(value)) writer.WriteNumberValue(value);
            else writer.WriteNullValue();
        }
    }

    sealed class FiniteSingle : JsonConverter<float>
    {
        public override float Read(ref Utf8JsonReader reader, Type typeToConvert, JsonSerializerOptions options) => reader.GetSingle();

        public override void Write(Utf8JsonWriter writer, float value, JsonSerializerOptions options)
        {
            if (float.IsFinite(value)) writer.WriteNumberValue(value);
            else writer.WriteNullValue();
        }
    }
}
