using TensorCodec.Numerics;

namespace TensorCodec.Containers.Tcz;

/// <summary>How a writer cuts a segment into chunks (FORMAT.md: readers must not rely on it).</summary>
internal static class TczChunking
{
    /// <summary>Raw bytes per chunk of <paramref name="segment"/> (the last takes the remainder): the chunk size rounded
    /// down to whole elements, and for a ggml block tensor to whole blocks, so chunk mode 3 sees no torn block.</summary>
    public static long Step(TczSegment segment, int chunkSize)
    {
        int unit = Math.Max(1, segment.DType.ElementSize());
        if (segment.DType == DType.Packed && GgmlTypes.TryGet(segment.GgmlType, out var info) && info.TypeSize > 1)
            unit = info.TypeSize;
        return Math.Max(unit, chunkSize / unit * unit);
    }
}
