using System.Collections.Concurrent;

namespace TensorCodec.Containers.Tcz;

/// <summary>
/// Runs "read → code → write" over a sequence of chunks with bounded memory: the calling thread
/// reads and writes in order while up to <c>threads</c> chunks are coded at once on the thread pool.
/// Coding needs a codec context (a <c>TWorker</c>); there are at most <c>threads</c> of
/// them, created on demand and lent to the pool work items that code, so the codec's scratch is
/// bounded by the thread count, not by how many pool threads exist. There are threads + 1 slots
/// (chunk buffers), so the next chunk is read while the others are coded.
/// </summary>
internal static class ChunkPipeline
{
    /// <summary>Chunk buffers in flight stay under this many bytes however many threads are asked for
    /// (at least one worker always runs): 16 workers of 64 MiB chunks would otherwise hold 2 GiB.</summary>
    internal const long SlotBudgetBytes = 512L << 20;

    /// <summary>Workers for <paramref name="count"/> chunks whose buffers take <paramref name="bytesPerSlot"/>: no more
    /// than asked, than there are chunks, or than <see cref="SlotBudgetBytes"/> holds (threads + 1 slots).</summary>
    internal static int Workers(int threads, int count, long bytesPerSlot)
    {
        long byBudget = bytesPerSlot <= 0 ? int.MaxValue : SlotBudgetBytes / bytesPerSlot - 1;
        return (int)Math.Max(1, Math.Min(Math.Min(threads, count), byBudget));
    }

    public static void Run<TSlot, TWorker>(int count, int threads, Func<TSlot> createSlot, Func<TWorker> createWorker,
        Action<int, TSlot> read, Action<int, TSlot, TWorker> code, Action<int, TSlot> write, CancellationToken cancellation)
        where TWorker : IDisposable =>
        Run(count, threads, createSlot, createWorker, (i, slot) => { read(i, slot); return true; }, code, write, cancellation);

    /// <summary>As above, for an input of unknown length (a pipe): <paramref name="read"/> returns false
    /// when there is nothing more to read, and that item is neither coded nor written. Returns how many were.</summary>
    public static int Run<TSlot, TWorker>(int count, int threads, Func<TSlot> createSlot, Func<TWorker> createWorker,
        Func<int, TSlot, bool> read, Action<int, TSlot, TWorker> code, Action<int, TSlot> write, CancellationToken cancellation)
        where TWorker : IDisposable
    {
        threads = Math.Max(1, threads);
        if (count == 0) return 0;
        if (threads == 1)
        {
            // One worker: code on the calling thread; overlap would not pay for the hand-offs.
            var slot = createSlot();
            using var worker = createWorker();
            for (int i = 0; i < count; i++)
            {
                cancellation.ThrowIfCancellationRequested();
                if (!read(i, slot)) return i;
                code(i, slot, worker); write(i, slot);
            }
            return count;
        }

        using var contexts = new Contexts<TWorker>(createWorker);
        var pending = new ConcurrentQueue<(int Index, TSlot Slot, TaskCompletionSource Done)>();
        int runners = 0;
        var free = new Stack<TSlot>();
        var inFlight = new Queue<(int Index, TSlot Slot, Task Done)>();
        int items = 0;
        try
        {
            for (; items < count; items++)
            {
                cancellation.ThrowIfCancellationRequested();
                if (inFlight.Count == threads + 1) Retire();
                var slot = free.Count > 0 ? free.Pop() : createSlot();
                if (!read(items, slot)) break;
                int i = items;
                // Completed on the worker: the only waiter is this thread (Retire), so nothing runs inline but its wake-up.
                var done = new TaskCompletionSource();
                inFlight.Enqueue((i, slot, done.Task));
                pending.Enqueue((i, slot, done));
                StartRunner();
            }
            while (inFlight.Count > 0) Retire();
            return items;
        }
        finally
        {
            // After a failure, let coding already queued finish: it uses the slots and the contexts
            // disposed next. Its own errors are moot, the first one is already propagating.
            foreach (var (_, _, t) in inFlight)
                try { t.Wait(); } catch (AggregateException) { }
            // A runner hands its context back just after its last chunk is reported done.
            SpinWait.SpinUntil(() => Volatile.Read(ref runners) == 0);
        }

        // A runner is a pool work item holding one context; it codes queued chunks until none is left, so a
        // finished chunk is followed by the next without waking the caller. At most `threads` run at once.
        void StartRunner()
        {
            while (true)
            {
                int n = Volatile.Read(ref runners);
                if (n >= threads || pending.IsEmpty) return;
                if (Interlocked.CompareExchange(ref runners, n + 1, n) == n) break;
            }
            ThreadPool.UnsafeQueueUserWorkItem(_ => RunQueued(), null);
        }

        void RunQueued()
        {
            TWorker worker;
            try { worker = contexts.Take(); }
            catch (Exception e)
            {
                while (pending.TryDequeue(out var job)) job.Done.SetException(e);
                Interlocked.Decrement(ref runners);
                return;
            }
            while (pending.TryDequeue(out var job))
            {
                try { code(job.Index, job.Slot, worker); job.Done.SetResult(); }
                catch (Exception e) { job.Done.SetException(e); }
            }
            contexts.Return(worker);
            Interlocked.Decrement(ref runners);
            // A chunk queued after the last TryDequeue but before the decrement found no free runner: start one.
            StartRunner();
        }

        void Retire()
        {
            var (index, slot, done) = inFlight.Dequeue();
            done.GetAwaiter().GetResult();
            write(index, slot);
            free.Push(slot);
        }
    }

    /// <summary>Codec contexts created when first needed and reused; the runner count bounds how many exist.</summary>
    sealed class Contexts<TWorker>(Func<TWorker> create) : IDisposable where TWorker : IDisposable
    {
        readonly Stack<TWorker> _idle = new();
        readonly List<TWorker> _all = new();

        public TWorker Take()
        {
            lock (_idle)
            {
                if (_idle.Count > 0) return _idle.Pop();
                var w = create();
                _all.Add(w);
                return w;
            }
        }

        public void Return(TWorker worker)
        {
            lock (_idle) _idle.Push(worker);
        }

        public void Dispose()
        {
            foreach (var w in _all) w.Dispose();
        }
    }
}
