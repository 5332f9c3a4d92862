namespace TensorCodec.Containers.Tcz;

/// <summary>
/// Runs "read → code → write" over a sequence of chunks with bounded memory: the calling thread
/// reads and writes in order while up to <c>threads</c> chunks are coded at once as thread-pool work
/// items. Coding needs a codec context (<typeparamref name="TWorker"/>); there are at most
/// <c>threads</c> of them, created on demand, handed to each work item and taken back when it ends,
/// so the codec's scratch is bounded by the thread count, not by how many pool threads exist. There
/// are threads + 1 slots (chunk buffers), so the next chunk is read while the others are coded.
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

        using var contexts = new Contexts<TWorker>(threads, createWorker);
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
                var worker = contexts.Take();
                // Completed on the worker: the only waiter is this thread (Retire), so nothing runs inline but its wake-up.
                var done = new TaskCompletionSource();
                int index = i;
                ThreadPool.UnsafeQueueUserWorkItem(_ =>
                {
                    Exception? error = null;
                    try { code(index, slot, worker); }
                    catch (Exception e) { error = e; }
                    // The context goes back before the chunk is reported done, so the next Take never waits on a finished chunk.
                    contexts.Return(worker);
                    if (error is null) done.SetResult(); else done.SetException(error);
                }, null);
                inFlight.Enqueue((i, slot, done.Task));
            }
            while (inFlight.Count > 0) Retire();
        }
        finally
        {
            // After a failure, let coding already dispatched finish: it uses the slots and the contexts
            // disposed next. Its own errors are moot, the first one is already propagating.
            foreach (var (_, _, t) in inFlight)
                try { t.Wait(); } catch (AggregateException) { }
        }

        void Retire()
        {
            var (index, slot, done) = inFlight.Dequeue();
            done.GetAwaiter().GetResult();
            write(index, slot);
            free.Push(slot);
        }
    }

    /// <summary>At most <c>limit</c> codec contexts, created when first needed and reused; Take blocks while all are in use.</summary>
    sealed class Contexts<TWorker>(int limit, Func<TWorker> create) : IDisposable where TWorker : IDisposable
    {
        readonly SemaphoreSlim _available = new(limit);
        readonly Stack<TWorker> _idle = new();
        readonly List<TWorker> _all = new();

        public TWorker Take()
        {
            _available.Wait();
            lock (_idle)
            {
                if (_idle.Count > 0) return _idle.Pop();
                try
                {
                    var w = create();
                    _all.Add(w);
                    return w;
                }
                catch
                {
                    _available.Release();
                    throw;
                }
            }
        }

        public void Return(TWorker worker)
        {
            lock (_idle) _idle.Push(worker);
            _available.Release();
        }

        public void Dispose()
        {
            foreach (var w in _all) w.Dispose();
            _available.Dispose();
        }
    }
}
