namespace TensorCodec.Coders;

/// <summary>Grow-only scratch arrays held by a codec context (<see cref="ChunkEncoder"/>, <see cref="ChunkDecoder"/>).
/// Exact sizes: ArrayPool would round a 1 MiB + ε request up to 2 MiB, doubling the codec's share of peak memory.</summary>
internal static class Scratch
{
    public static T[] Grow<T>(ref T[] slot, int size)
    {
        if (slot.Length < size) slot = GC.AllocateUninitializedArray<T>(size);
        return slot;
    }
}
