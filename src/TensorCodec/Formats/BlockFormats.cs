namespace TensorCodec.Formats;

/// <summary>Registry of the block formats by ggml name.</summary>
public static class BlockFormats
{
    private static readonly IBlockFormat[] _all =
    [
        new F16Format(), new BF16Format(),
        new Q4_0(), new Q4_1(), new Q5_0(), new Q5_1(), new Q8_0(),
        new Q2_K(), new Q3_K(), new Q4_K(), new Q5_K(), new Q6_K(),
        new IQ4_NL(), new IQ4_XS(), new TQ1_0(), new TQ2_0(), new MXFP4(), new NVFP4(),
        new IQ2_XXS(), new IQ2_XS(), new IQ2_S(), new IQ1_S(), new IQ1_M(),
        new IQ3_XXS(), new IQ3_S(), new Q1_0(), new Q2_0(),
        // ours (GgmlTypeId −1); block-size variants such as nf4_b128 are parsed on demand
        new NF4(), new BnbFP4(), new Int8Block(),
        new MXFP8_E4M3(), new MXFP8_E5M2(), new MXFP6_E3M2(), new MXFP6_E2M3(), new OCP_MXFP4(), new MXINT8(),
        new FP8Format(Numerics.MiniFloat.E4M3), new FP8Format(Numerics.MiniFloat.E5M2),
    ];

    private static readonly Dictionary<string, IBlockFormat> _byName =
        _all.ToDictionary(f => f.Name, StringComparer.OrdinalIgnoreCase);

    /// <summary>Every registered block format at its default block size: ggml's types, then ours.</summary>
    public static IReadOnlyList<IBlockFormat> All => _all;

    /// <summary>Looks a format up by ggml name (case-insensitive, so "Q4_K" and "q4_k" both work).</summary>
    public static IBlockFormat Get(string name) =>
        TryGet(name, out var f) ? f : throw new KeyNotFoundException($"unknown block format '{name}'");

    /// <summary>Looks a format up by name (case-insensitive), including block-size variants of ours
    /// such as <c>nf4_b128</c>, <c>fp4_b32</c> and <c>int8_block_b256</c>.</summary>
    /// <param name="name">The format name.</param>
    /// <param name="format">The format when found, else null.</param>
    /// <returns>Whether <paramref name="name"/> names a block format at a supported block size.</returns>
    public static bool TryGet(string name, out IBlockFormat format) =>
        _byName.TryGetValue(name, out format!) || TryParseSized(name, out format);

    /// <summary>Whether <paramref name="format"/> refuses to quantize without importance weights, as ggml does for iq2_xxs, iq2_xs and iq1_s.</summary>
    internal static bool RequiresImportance(IBlockFormat format) => format is BlockFormatBase { RequiresImportance: true };

    /// <summary>Looks a format up by ggml type id.</summary>
    public static IBlockFormat? FromGgmlType(int ggmlType) => ggmlType < 0 ? null : _all.FirstOrDefault(f => f.GgmlTypeId == ggmlType);

    /// <summary>"nf4_b128", "fp4_b32", "int8_block_b256": our block formats at another block size.</summary>
    private static bool TryParseSized(string name, out IBlockFormat format)
    {
        format = null!;
        int at = name.LastIndexOf("_b", StringComparison.OrdinalIgnoreCase);
        if (at < 0 || !int.TryParse(name.AsSpan(at + 2), System.Globalization.NumberStyles.None, null, out int bs)) return false;
        try
        {
            format = name[..at].ToLowerInvariant() switch
            {
                "nf4" => new NF4(bs),
                "fp4" => new BnbFP4(bs),
                "int8_block" => new Int8Block(bs),
                _ => null!,
            };
        }
        catch (ArgumentOutOfRangeException) { return false; }
        return format is not null;
    }
}
