namespace TensorCodec.Containers.Tcz;

/// <summary>
/// Runs "read → code → write" over a sequence of chunks with bounded memory: the calling
/// thread reads and writes in order while up to <c>threads</c> chunks are coded in parallel.
/// Each in-flight chunk owns one slot (its buffers), and there are threads + 1 slots, so
/// the next chunk is read while the others are being coded.
/// </summary>
internal static class ChunkPipeline
{
    public static void Run<TSlot>(int count, int threads, Func<TSlot> createSlot,
        Action<int, TSlot> read, Action<int, TSlot> code, Action<int, TSlot> write, CancellationToken cancellation)
    {
        threads = Math.Max(1, threads);
        if (threads == 1 && count > 0)
        {
            // One thread: no tasks, no overlap worth the overhead.
            var slot = createSlot();
            for (int i = 0; i < count; i++)
            {
                cancellation.ThrowIfCancellationRequested();
                read(i, slot); code(i, slot); write(i, slot);
            }
            return;
        }
        var free = new Stack<TSlot>();
        var inFlight = new Queue<(int Index, TSlot Slot, Task Task)>();
        using var gate = new SemaphoreSlim(threads);
        try
        {
            for (int i = 0; i < count; i++)
            {
                cancellation.ThrowIfCancellationRequested();
                if (inFlight.Count == threads + 1) Retire();
                var slot = free.Count > 0 ? free.Pop() : createSlot();
                read(i, slot);
                int index = i;
                inFlight.Enqueue((i, slot, Task.Run(() =>
                {
                    gate.Wait(cancellation);
                    try { code(index, slot); } finally { gate.Release(); }
                }, cancellation)));
            }
            while (inFlight.Count > 0) Retire();
        }
        finally
        {
            // On failure, let running work finish before the caller returns its buffers.
            foreach (var (_, _, t) in inFlight) try { t.Wait(); } catch { /* the first failure is what matters */ }
        }

        void Retire()
        {
            var (index, slot, task) = inFlight.Peek();
            try { task.GetAwaiter().GetResult(); }
            finally { inFlight.Dequeue(); }
            write(index, slot);
            free.Push(slot);
        }
    }
}
