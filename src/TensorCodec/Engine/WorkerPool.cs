namespace TensorCodec.Engine;

/// <summary>A unit of parallel work: process items [start, end) on worker <c>worker</c> (0 = caller).</summary>
internal interface IRangeJob
{
    void Execute(int start, int end, int worker);
}

/// <summary>
/// A fixed set of threads that split one range per call. It exists because the per-token hot path
/// dispatches ~30 small matrix products: Parallel.For allocates and schedules through the shared
/// thread pool, whereas here a dispatch is a few signals and no allocation. The caller thread
/// always takes the first share, so <c>threads = 1</c> runs inline with no synchronisation at all.
/// </summary>
internal sealed class WorkerPool : IDisposable
{
    readonly Thread[] _threads;
    readonly ManualResetEventSlim[] _go;
    IRangeJob? _job;
    int _count, _parts, _pending;
    volatile bool _stop;
    Exception? _error;

    public int Threads { get; }

    public WorkerPool(int threads)
    {
        Threads = Math.Max(1, threads);
        _threads = new Thread[Threads - 1];
        _go = new ManualResetEventSlim[Threads - 1];
        for (int i = 0; i < _threads.Length; i++)
        {
            _go[i] = new ManualResetEventSlim(false, spinCount: 2000);
            int worker = i + 1;
            _threads[i] = new Thread(() => Loop(worker)) { IsBackground = true, Name = $"tcodec-engine-{worker}" };
            _threads[i].Start();
        }
    }

    /// <summary>Runs <paramref name="job"/> over [0, count), split into contiguous shares, and waits.</summary>
    public void Run(IRangeJob job, int count, int minPerWorker = 1)
    {
        if (count <= 0) return;
        int parts = Math.Min(Threads, Math.Max(1, count / Math.Max(1, minPerWorker)));
        if (parts == 1) { job.Execute(0, count, 0); return; }
        _job = job; _count = count; _parts = parts; _error = null;
        Volatile.Write(ref _pending, parts - 1);
        for (int w = 1; w < parts; w++) _go[w - 1].Set();
        try { job.Execute(0, Share(1), 0); }
        finally
        {
            var spin = new SpinWait();
            while (Volatile.Read(ref _pending) != 0) spin.SpinOnce(sleep1Threshold: -1);
            _job = null;
        }
        if (_error is { } e) throw new AggregateException("engine worker failed", e);
    }

    int Share(int w) => (int)((long)_count * w / _parts);

    void Loop(int worker)
    {
        var go = _go[worker - 1];
        while (true)
        {
            go.Wait();
            go.Reset();
            if (_stop) return;
            try
            {
                if (worker < _parts) _job!.Execute(Share(worker), Share(worker + 1), worker);
            }
            catch (Exception e) { _error = e; }
            finally { Interlocked.Decrement(ref _pending); }
        }
    }

    public void Dispose()
    {
        _stop = true;
        foreach (var g in _go) g.Set();
        foreach (var t in _threads) t.Join();
        foreach (var g in _go) g.Dispose();
    }
}
