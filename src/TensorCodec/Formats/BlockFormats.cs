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
    ];

    private static readonly Dictionary<string, IBlockFormat> _byName =
        _all.ToDictionary(f => f.Name, StringComparer.OrdinalIgnoreCase);

    public static IReadOnlyList<IBlockFormat> All => _all;

    /// <summary>Looks a format up by ggml name (case-insensitive, so "Q4_K" and "q4_k" both work).</summary>
    public static IBlockFormat Get(string name) =>
        TryGet(name, out var f) ? f : throw new KeyNotFoundException($"unknown block format '{name}'");

    public static bool TryGet(string name, out IBlockFormat format) => _byName.TryGetValue(name, out format!);

    /// <summary>Looks a format up by ggml type id.</summary>
    public static IBlockFormat? FromGgmlType(int ggmlType) => _all.FirstOrDefault(f => f.GgmlTypeId == ggmlType);
}
