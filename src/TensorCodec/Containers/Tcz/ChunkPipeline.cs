using System.Threading.Channels;

namespace TensorCodec.Containers.Tcz;

/// <summary>
/// Runs "read → code → write" over a sequence of chunks with bounded memory: the calling thread
/// reads and writes in order while <c>threads</c> workers on the thread pool code chunks in parallel.
/// Each worker holds one codec context (<typeparamref name="TWorker"/>) for the whole run, so the
/// codec's scratch is bounded by the worker count, not by how many pool threads happen to run them.
/// There are threads + 1 slots (chunk buffers), so the next chunk is read while the others are coded.
/// </summary>
internal static class ChunkPipeline
{
    public static void Run<TSlot, TWorker>(int count, int threads, Func<TSlot> createSlot, Func<TWorker> createWorker,
        Action<int, TSlot> read, Action<int, TSlot, TWorker> code, Action<int, TSlot> write, CancellationToken cancellation)
        where TWorker : IDisposable
    {
        threads = Math.Max(1, threads);
        if (count == 0) return;
        if (threads == 1)
        {
            // One worker: code on the calling thread; overlap would not pay for the hand-offs.
            var slot = createSlot();
            using var worker = createWorker();
            for (int i = 0; i < count; i++)
            {
                cancellation.ThrowIfCancellationRequested();
                read(i, slot); code(i, slot, worker); write(i, slot);
            }
            return;
        }

        var queue = Channel.CreateUnbounded<(int Index, TSlot Slot, TaskCompletionSource Done)>(
            new UnboundedChannelOptions { SingleWriter = true });
        var workers = new Task[threads];
        for (int w = 0; w < threads; w++)
            workers[w] = Task.Run(async () =>
            {
                // A worker that cannot build its context still answers every chunk it takes, so the
                // caller sees the error instead of waiting for ever.
                TWorker? worker = default;
                Exception? failed = null;
                try { worker = createWorker(); }
                catch (Exception e) { failed = e; }
                try
                {
                    await foreach (var (index, slot, done) in queue.Reader.ReadAllAsync().ConfigureAwait(false))
                    {
                        if (failed is not null) { done.SetException(failed); continue; }
                        try { code(index, slot, worker!); done.SetResult(); }
                        catch (Exception e) { done.SetException(e); }
                    }
                }
                finally { worker?.Dispose(); }
            });

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
                queue.Writer.TryWrite((i, slot, done));
            }
            while (inFlight.Count > 0) Retire();
        }
        finally
        {
            // Workers drain what was queued, dispose their contexts and exit; the slots are then free again.
            queue.Writer.TryComplete();
            Task.WaitAll(workers);
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
