namespace TensorCodec.Coders;

/// <summary>Grow-only scratch buffers owned by one thread (held in [ThreadStatic] fields by the caller).</summary>
internal static class ThreadScratch
{
    public static byte[] Get(ref byte[]? slot, int size)
    {
        if (slot is null || slot.Length < size) slot = GC.AllocateUninitializedArray<byte>(size);
        return slot;
    }
}
