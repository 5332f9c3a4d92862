using TensorCodec.Numerics;

namespace TensorCodec.Containers;

/// <summary>One ggml tensor type: values per block and bytes per block.</summary>
internal readonly record struct GgmlTypeInfo(int Id, string Name, int BlockSize, int TypeSize)
{
    /// <summary>
    /// Bytes of <paramref name="elements"/> values, or null if the count is not a whole number
    /// of blocks or the size overflows 64 bits.
    /// </summary>
    public long? ByteSize(long elements)
    {
        if (elements < 0 || elements % BlockSize != 0) return null;
        try { return checked(elements / BlockSize * TypeSize); }
        catch (OverflowException) { return null; }
    }
}

/// <summary>
/// The ggml type table (enum <c>ggml_type</c>). Sizes are sizeof(block_*) from ggml-common.h;
/// ids 4/5 (Q4_2/Q4_3), 31–33 (Q4_0_4_4…) and 36–38 (IQ4_NL_4_4…) were removed from ggml and
/// are refused: files using them cannot be loaded by current ggml either.
/// </summary>
internal static class GgmlTypes
{
    public const int F32 = 0, F16 = 1, Q4_0 = 2, Q4_1 = 3, Q5_0 = 6, Q5_1 = 7, Q8_0 = 8, Q8_1 = 9,
        Q2_K = 10, Q3_K = 11, Q4_K = 12, Q5_K = 13, Q6_K = 14, Q8_K = 15,
        IQ2_XXS = 16, IQ2_XS = 17, IQ3_XXS = 18, IQ1_S = 19, IQ4_NL = 20, IQ3_S = 21, IQ2_S = 22, IQ4_XS = 23,
        I8 = 24, I16 = 25, I32 = 26, I64 = 27, F64 = 28, IQ1_M = 29, BF16 = 30,
        TQ1_0 = 34, TQ2_0 = 35, MXFP4 = 39, NVFP4 = 40,
        Q1_0 = 41, Q2_0 = 42;

    const int QK_K = 256;

    static readonly GgmlTypeInfo[] Known =
    [
        new(F32, "F32", 1, 4),
        new(F16, "F16", 1, 2),
        new(Q4_0, "Q4_0", 32, 2 + 16),              // fp16 d, 32 nibbles
        new(Q4_1, "Q4_1", 32, 2 + 2 + 16),          // fp16 d, m
        new(Q5_0, "Q5_0", 32, 2 + 4 + 16),          // fp16 d, 32 high bits, nibbles
        new(Q5_1, "Q5_1", 32, 2 + 2 + 4 + 16),
        new(Q8_0, "Q8_0", 32, 2 + 32),
        new(Q8_1, "Q8_1", 32, 2 + 2 + 32),          // fp16 d, s
        new(Q2_K, "Q2_K", QK_K, QK_K / 16 + QK_K / 4 + 2 + 2),                 // 84
        new(Q3_K, "Q3_K", QK_K, QK_K / 8 + QK_K / 4 + 12 + 2),                 // 110
        new(Q4_K, "Q4_K", QK_K, 2 + 2 + 12 + QK_K / 2),                        // 144
        new(Q5_K, "Q5_K", QK_K, 2 + 2 + 12 + QK_K / 8 + QK_K / 2),             // 176
        new(Q6_K, "Q6_K", QK_K, QK_K / 2 + QK_K / 4 + QK_K / 16 + 2),          // 210
        new(Q8_K, "Q8_K", QK_K, 4 + QK_K + QK_K / 16 * 2),                     // 292: f32 d, bsums
        new(IQ2_XXS, "IQ2_XXS", QK_K, 2 + QK_K / 8 * 2),                       // 66
        new(IQ2_XS, "IQ2_XS", QK_K, 2 + QK_K / 8 * 2 + QK_K / 32),             // 74
        new(IQ3_XXS, "IQ3_XXS", QK_K, 2 + 3 * QK_K / 8),                       // 98
        new(IQ1_S, "IQ1_S", QK_K, 2 + QK_K / 8 + QK_K / 32 * 2),               // 50
        new(IQ4_NL, "IQ4_NL", 32, 2 + 16),                                     // 18
        new(IQ3_S, "IQ3_S", QK_K, 2 + QK_K / 4 + QK_K / 32 + QK_K / 8 + QK_K / 64), // 110
        new(IQ2_S, "IQ2_S", QK_K, 2 + QK_K / 4 + QK_K / 32 + QK_K / 32),       // 82
        new(IQ4_XS, "IQ4_XS", QK_K, 2 + 2 + QK_K / 64 + QK_K / 2),             // 136
        new(I8, "I8", 1, 1),
        new(I16, "I16", 1, 2),
        new(I32, "I32", 1, 4),
        new(I64, "I64", 1, 8),
        new(F64, "F64", 1, 8),
        new(IQ1_M, "IQ1_M", QK_K, QK_K / 8 + QK_K / 16 + QK_K / 32),           // 56 (scale lives in `scales`)
        new(BF16, "BF16", 1, 2),
        new(TQ1_0, "TQ1_0", QK_K, (QK_K - 4 * QK_K / 64) / 5 + QK_K / 64 + 2), // 54: base-3 packed trits
        new(TQ2_0, "TQ2_0", QK_K, QK_K / 4 + 2),                               // 66
        new(MXFP4, "MXFP4", 32, 1 + 16),                                       // E8M0 scale, 32 FP4
        new(NVFP4, "NVFP4", 64, 4 + 32),                                       // four E4M3 scales, 64 FP4
        new(Q1_0, "Q1_0", 128, 2 + 128 / 8),                                   // 18: fp16 d, 128 sign bits
        new(Q2_0, "Q2_0", 64, 2 + 64 / 4),                                     // 18: fp16 d, 64 2-bit codes
    ];

    static readonly GgmlTypeInfo?[] ById = BuildIndex();

    static GgmlTypeInfo?[] BuildIndex()
    {
        var table = new GgmlTypeInfo?[Known.Max(t => t.Id) + 1];
        foreach (var t in Known) table[t.Id] = t;
        return table;
    }

    /// <summary>All types current ggml defines, by id.</summary>
    public static IReadOnlyList<GgmlTypeInfo> All => Known;

    public static bool TryGet(long id, out GgmlTypeInfo info)
    {
        if (id >= 0 && id < ById.Length && ById[id] is GgmlTypeInfo t) { info = t; return true; }
        info = default;
        return false;
    }

    public static GgmlTypeInfo Get(int id) =>
        TryGet(id, out var t) ? t : throw new ArgumentOutOfRangeException(nameof(id), id, "unknown or removed ggml type id");

    public static bool TryGetByName(string name, out GgmlTypeInfo info)
    {
        foreach (var t in Known)
            if (string.Equals(t.Name, name, StringComparison.OrdinalIgnoreCase)) { info = t; return true; }
        info = default;
        return false;
    }

    /// <summary>The plain element type a ggml type maps to, or <see cref="DType.Packed"/> for block types.</summary>
    public static DType ToDType(int id) => id switch
    {
        F32 => DType.F32, F16 => DType.F16, BF16 => DType.BF16, F64 => DType.F64,
        I8 => DType.I8, I16 => DType.I16, I32 => DType.I32, I64 => DType.I64,
        _ => DType.Packed,
    };
}
