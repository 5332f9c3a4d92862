using TensorCodec.Containers;

namespace TensorCodec.Quantization;

/// <summary>
/// <c>general.file_type</c> for a file whose types no llama.cpp mix chose (<c>quantize --bpw/--size</c>). llama-quantize
/// writes the <c>llama_ftype</c> it was asked for; a file without one is labelled by llama.cpp's loader
/// (<c>llama_model_loader</c>, src/llama-model-loader.cpp) from its dominant type: the ggml type held by the most
/// tensors (the first to reach that count, tensors in its <c>weight_name_comparer</c> order: layer number, tensors
/// outside <c>blk.N.</c> first, then name), mapped to the ftype of that type's plain mix. We
/// write that guess, counted over the weights of two or more dimensions only — the ftype names the type "except 1d
/// tensors" (llama.h), and on a small model the F32 norms would otherwise outnumber any one weight type.
/// </summary>
internal static class LlamaFileTypes
{
    /// <summary>The loader's ftype for a file dominated by <paramref name="ggmlType"/>; 0 (all F32) for types it does not list.</summary>
    public static int OfDominantType(int ggmlType) => ggmlType switch
    {
        GgmlTypes.F32 => 0,
        GgmlTypes.F16 => 1,
        GgmlTypes.BF16 => 32,
        GgmlTypes.Q4_0 => 2,
        GgmlTypes.Q4_1 => 3,
        GgmlTypes.Q5_0 => 8,
        GgmlTypes.Q5_1 => 9,
        GgmlTypes.Q8_0 => 7,
        GgmlTypes.Q2_K => 10,
        GgmlTypes.Q3_K => 12, // Q3_K_M
        GgmlTypes.Q4_K => 15, // Q4_K_M
        GgmlTypes.Q5_K => 17, // Q5_K_M
        GgmlTypes.Q6_K => 18,
        GgmlTypes.TQ1_0 => 36,
        GgmlTypes.TQ2_0 => 37,
        GgmlTypes.IQ2_XXS => 19,
        GgmlTypes.IQ2_XS => 20,
        GgmlTypes.IQ2_S => 28,
        GgmlTypes.IQ3_XXS => 23,
        GgmlTypes.IQ1_S => 24,
        GgmlTypes.IQ1_M => 31,
        GgmlTypes.IQ4_NL => 25,
        GgmlTypes.IQ4_XS => 30,
        GgmlTypes.IQ3_S => 26,
        GgmlTypes.NVFP4 => 39,
        GgmlTypes.Q1_0 => 40,
        GgmlTypes.Q2_0 => 41,
        _ => 0, // the loader's default branch (mxfp4 included: its only ftype is the MoE mix)
    };

    /// <summary>The ftype of the dominant type among <paramref name="tensors"/> of two or more dimensions, or null when there are none.</summary>
    public static int? Guess(IEnumerable<(string Name, int Type, int Rank)> tensors)
    {
        var counts = new Dictionary<int, int>();
        int best = 0, bestType = -1;
        foreach (var (_, type, _) in tensors.Where(t => t.Rank >= 2).OrderBy(t => TensorTypeRules.LayerOf(t.Name)).ThenBy(t => t.Name, StringComparer.Ordinal))
        {
            int c = counts[type] = counts.GetValueOrDefault(type) + 1;
            if (c > best) { best = c; bestType = type; } // strictly more: ties keep the type that got there first
        }
        return bestType < 0 ? null : OfDominantType(bestType);
    }
}
