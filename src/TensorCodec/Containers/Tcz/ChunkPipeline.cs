using System.Collections.Concurrent;

namespace TensorCodec.Containers.Tcz;

/// <summary>
/// Runs "read → code → write" over a sequence of chunks with bounded memory: the calling
/// thread reads and writes in order while <c>threads</c> dedicated workers code chunks in
/// parallel. There are threads + 1 slots (chunk buffers), so the next chunk is read while the
/// others are being coded. Dedicated threads rather than the thread pool, because the codec
/// keeps per-thread scratch buffers: a fixed set of threads keeps that memory fixed too.
/// </summary>
internal static class ChunkPipeline
{
    public static void Run<TSlot>(int count, int threads, Func<TSlot> createSlot,
        Action<int, TSlot> read, Action<int, TSlot> code, Action<int, TSlot> write, CancellationToken cancellation)
    {
        threads = Math.Max(1, threads);
        if (threads == 1)
        {
            // One worker: code on the calling thread; overlap would not pay for the hand-offs.
            var slot = count > 0 ? createSlot() : default!;
            for (int i = 0; i < count; i++)
            {
                cancellation.ThrowIfCancellationRequested();
                read(i, slot); code(i, slot); write(i, slot);
            }
            return;
        }

        using var queue = new BlockingCollection<(int Index, TSlot Slot, TaskCompletionSource Done)>();
        var workers = new Thread[threads];
        for (int w = 0; w < threads; w++)
        {
            workers[w] = new Thread(() =>
            {
                foreach (var (index, slot, done) in queue.GetConsumingEnumerable())
                {
                    try { code(index, slot); done.SetResult(); }
                    catch (Exception e) { done.SetException(e); }
                }
            }) { IsBackground = true, Name = $"tcz-worker-{w}" };
            workers[w].Start();
        }

        var free = new Stack<TSlot>();
        var inFlight = new Queue<(int Index, TSlot Slot, Task Done)>();
        try
        {
            for (int i = 0; i < count; i++)
            {
                cancellation.ThrowIfCancellationRequested();
                if (inFlight.Count == threads + 1) Retire();
                var slot = free.Count > 0 ? free.Pop() : createSlot();
                read(i, slot);
                var done = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
                inFlight.Enqueue((i, slot, done.Task));
                queue.Add((i, slot, done));
            }
            while (inFlight.Count > 0) Retire();
        }
        finally
        {
            // Workers drain what was queued and exit; the caller's buffers are then free again.
            queue.CompleteAdding();
            foreach (var t in workers) t.Join();
        }

        void Retire()
        {
            var (index, slot, done) = inFlight.Dequeue();
            done.GetAwaiter().GetResult();
            write(index, slot);
            free.Push(slot);
        }
    }
}
