namespace TensorCodec;

/// <summary>
/// The command-line mini-language of cache and codec types: <c>name[:key=value,key=value…]</c>,
/// case-insensitive. One parser for <c>--kv</c> and <c>--kv-codec</c>.
/// </summary>
internal static class SpecText
{
    /// <summary>The lower-cased name, and each option as (key, value, the option as written).</summary>
    public static (string Name, List<(string Key, string Value, string Part)> Options) Split(string text, string what)
    {
        string s = text.Trim().ToLowerInvariant();
        int colon = s.IndexOf(':');
        var options = new List<(string, string, string)>();
        if (colon >= 0)
            foreach (var part in s[(colon + 1)..].Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
            {
                int eq = part.IndexOf('=');
                if (eq < 0) throw new ArgumentException($"{what} parameter '{part}' in '{text}' is not KEY=VALUE");
                options.Add((part[..eq], part[(eq + 1)..], part));
            }
        return (colon < 0 ? s : s[..colon], options);
    }
}
