using System.Globalization;

namespace TensorCodec.Formats;

/// <summary>
/// Every quantization format by name, as an <see cref="IMatrixFormat"/>: ggml's block types
/// (lower-case ggml names) and ours. Parametrised names: nf4_bN / fp4_bN / int8_block_bN
/// (block size N), nf4[_bN]_dq / fp4[_bN]_dq (double-quantized absmax), intN_gG (GPTQ layout,
/// N ∈ 2,3,4,8, G ∈ 32,64,128), llm_int8[_tX] (outlier threshold X, default 6).
/// </summary>
public static class QuantFormats
{
    private static readonly IMatrixFormat[] _fixed =
    [
        .. BlockFormats.All.Select(f => (IMatrixFormat)new BlockMatrixFormat(f)),
        new LlmInt8(), new NVFP4_16(),
        new Bnb4BitDoubleQuant(new NF4()), new Bnb4BitDoubleQuant(new BnbFP4()),
        .. from bits in new[] { 2, 3, 4, 8 } from g in new[] { 32, 64, 128 } select (IMatrixFormat)new IntNGroupwise(bits, g),
    ];

    /// <summary>The names with fixed parameters (the parametrised families accept more).</summary>
    public static IReadOnlyList<string> KnownNames { get; } = _fixed.Select(f => f.Name).ToArray();

    /// <summary><see cref="KnownNames"/> as one comma-separated line, followed by the parametrised families.</summary>
    public static string KnownNamesText =>
        string.Join(", ", KnownNames) + "; also nf4_bN, fp4_bN, int8_block_bN, nf4[_bN]_dq, fp4[_bN]_dq, llm_int8_tX";

    /// <summary>The format named <paramref name="name"/> (case-insensitive), as <see cref="TryGet"/> resolves it.</summary>
    /// <exception cref="KeyNotFoundException">No format has that name; the message lists the known names.</exception>
    public static IMatrixFormat Get(string name) =>
        TryGet(name, out var f) ? f : throw new KeyNotFoundException($"unknown quantization type '{name}'; known types: {KnownNamesText}");

    /// <summary>Looks a format up by name, case-insensitively: a block format, a fixed-parameter format, or
    /// a parametrised name (<c>nf4_b128_dq</c>, <c>llm_int8_t4.5</c>, …). Never throws for unknown names.</summary>
    /// <param name="name">The format name.</param>
    /// <param name="format">The format when found, else null.</param>
    /// <returns>Whether <paramref name="name"/> names a format.</returns>
    public static bool TryGet(string name, out IMatrixFormat format)
    {
        format = null!;
        if (BlockFormats.TryGet(name, out var block)) { format = new BlockMatrixFormat(block); return true; }
        var hit = _fixed.FirstOrDefault(f => string.Equals(f.Name, name, StringComparison.OrdinalIgnoreCase));
        if (hit is not null) { format = hit; return true; }
        string lower = name.ToLowerInvariant();
        if (lower.EndsWith("_dq") && BlockFormats.TryGet(lower[..^3], out var inner) && inner is Bnb4BitFormat bnb)
        {
            format = new Bnb4BitDoubleQuant(bnb);
            return true;
        }
        if (lower.StartsWith("llm_int8_t") &&
            float.TryParse(lower.AsSpan(10), NumberStyles.Float, CultureInfo.InvariantCulture, out float t) && t > 0 && float.IsFinite(t))
        {
            format = new LlmInt8(t);
            return true;
        }
        return false;
    }
}
