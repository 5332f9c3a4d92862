using System.Runtime.CompilerServices;
using System.Numerics.Tensors;
using TensorCodec.Models;

namespace TensorCodec.Engine;

/// <summary>How to create a <see cref="LlamaSession"/> (<see cref="LlamaModel.CreateSession"/>).</summary>
public sealed record LlamaSessionOptions
{
    /// <summary>Worker threads for matrix products and attention (1 = run on the caller only).</summary>
    public int Threads { get; init; } = 1;
    /// <summary>Positions the session can hold; default the model's maximum.</summary>
    public int? Capacity { get; init; }
    /// <summary>Prompt tokens processed together as one matrix-matrix product.</summary>
    public int MaxBatch { get; init; } = 64;
    /// <summary>KV cache type (default F32); the session creates the cache for its own geometry.</summary>
    public KvSpec? Kv { get; init; }
    /// <summary>Sees every linear layer's input (calibration); null for none.</summary>
    internal IActivationObserver? Observer { get; init; }
    /// <summary>Activation rounding of the linear layers (default: the engine's own; see <see cref="LinearArithmetic"/>).</summary>
    public LinearArithmetic Arithmetic { get; init; }
}

/// <summary>
/// One sequence being run through a <see cref="LlamaModel"/>: the KV cache, the position, and
/// all scratch buffers, allocated once so a token costs no allocation. Not thread-safe; it
/// parallelises internally over <see cref="LlamaSessionOptions.Threads"/>.
/// </summary>
public sealed unsafe class LlamaSession : IDisposable
{
    readonly LlamaModel _m;
    readonly ModelConfig _c;
    readonly WorkerPool _pool;
    readonly int _maxBatch;
    // Activations, [batch][width] row-major, pinned so worker threads can address them.
    readonly float[] _x, _xb, _xb2, _q, _k, _v, _hb, _hb2, _logits;
    readonly float[] _att;            // [threads][capacity] attention scores
    readonly float[]? _rounded;       // LikeLlamaCpp: the input rounded to the weight type's ggml activation type
    byte[]? _xq;                      // LikeLlamaCpp: the input in ggml's q8_0/q8_K layout, for the integer kernels
    readonly RopeTable _rope;
    readonly LinearJob _linear = new();
    readonly AttentionJob _attention;
    readonly IActivationObserver? _observer;

    internal IKvCache Cache { get; }
    /// <summary>Most positions the session holds; feeding past it throws <see cref="InvalidOperationException"/>.</summary>
    public int Capacity { get; }
    /// <summary>Number of positions already in the cache (the next token's position).</summary>
    public int Position { get; private set; }
    /// <summary>The model's hyperparameters.</summary>
    public ModelConfig Config => _c;

    internal LlamaSession(LlamaModel model, LlamaSessionOptions o)
    {
        _m = model; _c = model.Config;
        Capacity = o.Capacity ?? _c.MaxSeqLen;
        if (Capacity <= 0) throw new ArgumentOutOfRangeException(nameof(o), "session capacity must be positive");
        _maxBatch = Math.Max(1, o.MaxBatch);
        // One angle table serves the session's rotation and a pre-RoPE cache's re-rotation.
        _rope = RopeTable.For(_c, Capacity);
        Cache = (o.Kv ?? KvSpec.F32).Create(new KvGeometry(_c.Layers, _c.KvHeads, _c.HeadDim, Capacity, _maxBatch, _rope));
        _pool = new WorkerPool(o.Threads);
        float[] A(int n) => GC.AllocateArray<float>(n, pinned: true);
        int b = _maxBatch;
        _x = A(b * _c.Dim); _xb = A(b * _c.Dim); _xb2 = A(b * _c.QDim); _q = A(b * _c.QDim);
        _k = A(b * _c.KvDim); _v = A(b * _c.KvDim);
        _hb = A(b * _c.HiddenDim); _hb2 = A(b * _c.HiddenDim);
        _logits = A(b * _c.VocabSize);
        if (o.Arithmetic == LinearArithmetic.LikeLlamaCpp) _rounded = A(b * Math.Max(Math.Max(_c.Dim, _c.QDim), _c.HiddenDim));
        _att = A(_pool.Threads * AttentionJob.ScoreRows(_c, _maxBatch) * Capacity);
        _attention = new AttentionJob(this);
        _observer = o.Observer;
    }

    /// <summary>Starts a new sequence.</summary>
    public void Reset()
    {
        Position = 0;
        Cache.Clear();
    }

    /// <summary>
    /// Declares that the caller has filled the cache with positions 0…count−1 itself (a restored
    /// context, see <see cref="KvContext"/>), so the next token goes to position count.
    /// </summary>
    internal void AdoptCachedPositions(int count)
    {
        if ((uint)count > (uint)Capacity) throw new ArgumentOutOfRangeException(nameof(count), $"{count} positions exceed the session capacity {Capacity}");
        Position = count;
    }

    /// <summary>Feeds one token; returns the logits for the next position (valid until the next call).</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public ReadOnlySpan<float> Forward(int token)
    {
        Step([token], 0);
        return _logits.AsSpan(0, _c.VocabSize);
    }

    /// <summary>
    /// Feeds <paramref name="tokens"/> in batches and writes logits for every token from index
    /// <paramref name="logitsFrom"/> on: <paramref name="logits"/> is [tokens.Length − logitsFrom][vocab].
    /// Skipping the classifier for unscored rows saves its cost in evaluation.
    /// </summary>
    public void Forward(ReadOnlySpan<int> tokens, Span<float> logits, int logitsFrom = 0)
    {
        int vocab = _c.VocabSize;
        if ((uint)logitsFrom > (uint)tokens.Length) throw new ArgumentOutOfRangeException(nameof(logitsFrom));
        if (logits.Length < (tokens.Length - logitsFrom) * vocab) throw new ArgumentException("logits buffer too small", nameof(logits));
        for (int i = 0; i < tokens.Length; i += _maxBatch)
        {
            int n = Math.Min(_maxBatch, tokens.Length - i);
            int from = Math.Clamp(logitsFrom - i, 0, n);
            Step(tokens.Slice(i, n), from);
            if (from < n) _logits.AsSpan(0, (n - from) * vocab).CopyTo(logits.Slice((i + from - logitsFrom) * vocab));
        }
    }

    /// <summary>Feeds a prompt; returns the logits after its last token.</summary>
    public ReadOnlySpan<float> Prefill(ReadOnlySpan<int> tokens)
    {
        if (tokens.IsEmpty) throw new ArgumentException("empty prompt", nameof(tokens));
        for (int i = 0; i < tokens.Length; i += _maxBatch)
        {
            int n = Math.Min(_maxBatch, tokens.Length - i);
            Step(tokens.Slice(i, n), i + n == tokens.Length ? n - 1 : n);
        }
        return _logits.AsSpan(0, _c.VocabSize);
    }

    /// <summary>
    /// The transformer over n ≤ MaxBatch consecutive tokens at positions Position…Position+n−1.
    /// Leaves logits of tokens logitsFrom…n−1 in _logits.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    void Step(ReadOnlySpan<int> tokens, int logitsFrom)
    {
        int n = tokens.Length, dim = _c.Dim, qDim = _c.QDim, kvDim = _c.KvDim, hidden = _c.HiddenDim;
        if (Position + n > Capacity)
            throw new InvalidOperationException($"sequence of {Position + n} positions exceeds the session capacity {Capacity}");
        for (int t = 0; t < n; t++)
        {
            int id = tokens[t];
            if ((uint)id >= (uint)_c.VocabSize)
                throw new ArgumentOutOfRangeException(nameof(tokens), $"token id {id} is out of range for vocabulary size {_c.VocabSize}");
            _m.Embedding.ReadRow(id, _x.AsSpan(t * dim, dim));
        }

        for (int l = 0; l < _c.Layers; l++)
        {
            var w = _m.Layers[l];
            // Attention block: x += Wo · attention(rope(Wq·norm(x)), rope(Wk·norm(x)), Wv·norm(x))
            RmsNorm(_x, _xb, w.AttnNorm, n, dim);
            _observer?.Observe(l, LinearInput.Attention, _xb.AsSpan(0, n * dim), n, dim);
            Linear(w.Wq, _xb, _q, n);
            Linear(w.Wk, _xb, _k, n);
            Linear(w.Wv, _xb, _v, n);
            if (w.Bq is not null) { AddBias(_q, w.Bq, n); AddBias(_k, w.Bk!, n); AddBias(_v, w.Bv!, n); }
            // Qwen3: RMSNorm over each head of q and k, before RoPE.
            if (w.QNorm is not null) { RmsNorm(_q, _q, w.QNorm, n * _c.Heads, _c.HeadDim); RmsNorm(_k, _k, w.KNorm!, n * _c.KvHeads, _c.HeadDim); }
            for (int t = 0; t < n; t++)
            {
                _rope.Apply(_q.AsSpan(t * qDim, qDim), Position + t);
                _rope.Apply(_k.AsSpan(t * kvDim, kvDim), Position + t);
            }
            Cache.Store(l, Position, n, _k.AsSpan(0, n * kvDim), _v.AsSpan(0, n * kvDim));
            // Pre-scale q by 1/sqrt(head) once, instead of every score row.
            TensorPrimitives.Multiply(_q.AsSpan(0, n * qDim), 1f / MathF.Sqrt(_c.HeadDim), _q.AsSpan(0, n * qDim));
            _attention.Layer = l; _attention.Tokens = n;
            _pool.Run(_attention, _attention.Items(n));
            _observer?.Observe(l, LinearInput.AttentionOutput, _xb2.AsSpan(0, n * qDim), n, qDim);
            Linear(w.Wo, _xb2, _xb, n);
            if (w.Bo is not null) AddBias(_xb, w.Bo, n);
            TensorPrimitives.Add(_x.AsSpan(0, n * dim), _xb.AsSpan(0, n * dim), _x.AsSpan(0, n * dim));

            // FFN block: x += Down · (silu(Gate·norm(x)) ⊙ Up·norm(x))
            RmsNorm(_x, _xb, w.FfnNorm, n, dim);
            _observer?.Observe(l, LinearInput.Ffn, _xb.AsSpan(0, n * dim), n, dim);
            Linear(w.Gate, _xb, _hb, n);
            Linear(w.Up, _xb, _hb2, n);
            var hb = _hb.AsSpan(0, n * hidden);
            var hb2 = _hb2.AsSpan(0, n * hidden);
            // hb2 ← up · gate · sigmoid(gate), computed in place without a third buffer.
            TensorPrimitives.Multiply(hb2, hb, hb2);
            TensorPrimitives.Sigmoid(hb, hb);
            TensorPrimitives.Multiply(hb2, hb, hb2);
            _observer?.Observe(l, LinearInput.FfnDown, hb2, n, hidden);
            Linear(w.Down, _hb2, _xb, n);
            TensorPrimitives.Add(_x.AsSpan(0, n * dim), _xb.AsSpan(0, n * dim), _x.AsSpan(0, n * dim));
        }

        Position += n;
        int rows = n - logitsFrom;
        if (rows <= 0) return;
        RmsNorm(_x.AsSpan(logitsFrom * dim), _xb, _m.FinalNorm, rows, dim);
        _observer?.Observe(-1, LinearInput.Output, _xb.AsSpan(0, rows * dim), rows, dim);
        Linear(_m.Output, _xb, _logits, rows);
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    void RmsNorm(ReadOnlySpan<float> x, Span<float> dst, float[] weight, int n, int dim)
    {
        for (int t = 0; t < n; t++)
        {
            var row = x.Slice(t * dim, dim);
            var o = dst.Slice(t * dim, dim);
            float ss = TensorPrimitives.SumOfSquares(row) / dim;
            float scale = 1f / MathF.Sqrt(ss + _c.NormEps);
            TensorPrimitives.Multiply(row, scale, o);
            TensorPrimitives.Multiply(o, weight, o);
        }
    }

    /// <summary>Adds <paramref name="bias"/> to each of the n rows of <paramref name="y"/>.</summary>
    static void AddBias(float[] y, float[] bias, int n)
    {
        for (int t = 0; t < n; t++)
        {
            var row = y.AsSpan(t * bias.Length, bias.Length);
            TensorPrimitives.Add(row, bias, row);
        }
    }

    /// <summary>y = W·x for n rows of x, split over output rows.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    void Linear(IWeightMatrix w, float[] x, float[] y, int n)
    {
        bool exact = false;
        if (_rounded is not null && w is IGgmlProductMatrix qm && qm.CanMatMulGgml)
        {
            // llama.cpp's arithmetic on the integer kernels: quantize the n inputs once, on the caller.
            var kind = qm.Activation;
            int stride = GgmlQ8.RowBytes(kind, qm.Cols);
            if (_xq is null || _xq.Length < n * stride) _xq = GC.AllocateArray<byte>(_maxBatch * stride, pinned: true);
            fixed (float* px0 = x)
            fixed (byte* pq = _xq)
            fixed (float* py0 = y)
            {
                for (int t = 0; t < n; t++) GgmlQ8.Quantize(kind, px0 + (long)t * qm.Cols, qm.Cols, pq + (long)t * stride);
                _linear.W = w; _linear.Xq = pq; _linear.XqStride = stride; _linear.Y = py0; _linear.N = n;
                _pool.Run(_linear, w.Rows, minPerWorker: Math.Max(1, 16384 / Math.Max(1, w.Cols * n)));
                _linear.W = null; _linear.Xq = null;
            }
            return;
        }
        if (_rounded is not null)
        {
            // llama.cpp rounds the input to the weight type's vec_dot_type; the product is then exact.
            var kind = GgmlActivations.For(w.TypeName);
            if (kind != GgmlActivation.None)
            {
                for (int t = 0; t < n; t++) GgmlActivations.Round(kind, x.AsSpan(t * w.Cols, w.Cols), _rounded.AsSpan(t * w.Cols, w.Cols));
                x = _rounded;
            }
            exact = true;
        }
        fixed (float* px = x, py = y)
        {
            _linear.W = w; _linear.X = px; _linear.Y = py; _linear.N = n; _linear.Exact = exact;
            // Small matrices are not worth waking a thread for.
            _pool.Run(_linear, w.Rows, minPerWorker: Math.Max(1, 16384 / Math.Max(1, w.Cols * n)));
            _linear.W = null;
        }
    }

    sealed class LinearJob : IRangeJob
    {
        public IWeightMatrix? W;
        public float* X, Y;
        public int N;
        public bool Exact; // no activation codes of the engine's own: the fused kernels' are bypassed
        public byte* Xq;   // set: the input is in ggml's layout and W is an IGgmlProductMatrix
        public int XqStride;

        [MethodImpl(MethodImplOptions.AggressiveOptimization)]
        public void Execute(int start, int end, int worker)
        {
            var w = W!;
            if (Xq is not null) { ((IGgmlProductMatrix)w).MatMulGgml(Xq, XqStride, N, Y, start, end); return; }
            var x = new ReadOnlySpan<float>(X, N * w.Cols);
            var y = new Span<float>(Y, N * w.Rows);
            if (Exact && w is IGgmlProductMatrix) WeightMatrix.MatMulByDecodedTiles(w, x, N, y, start, end);
            else if (N == 1) w.MatVec(x, y, start, end);
            else w.MatMul(x, N, y, start, end);
        }
    }

    /// <summary>Tokens of a batch whose queries go to the cache together (so a quantized cache decodes once for all of them).</summary>
    const int TokensPerItem = 8;

    /// <summary>
    /// Causal grouped-query attention of every (token, head) pair in the batch. One token: one
    /// item per head. Several: one item per KV head and run of <see cref="TokensPerItem"/> tokens,
    /// whose queries (all heads sharing the KV head) the cache scores in one call.
    /// </summary>
    sealed class AttentionJob : IRangeJob
    {
        readonly LlamaSession s;
        readonly int _maxQueries;
        readonly float[] _qs, _os;     // [threads][maxQueries][headDim]
        readonly int[] _counts;        // [threads][maxQueries]
        public int Layer, Tokens;

        public AttentionJob(LlamaSession session)
        {
            s = session;
            var c = s._c;
            _maxQueries = Math.Min(TokensPerItem, s._maxBatch) * (c.Heads / c.KvHeads);
            int threads = s._pool.Threads;
            _qs = new float[threads * _maxQueries * c.HeadDim];
            _os = new float[_qs.Length];
            _counts = new int[threads * _maxQueries];
        }

        /// <summary>Work items for a batch of <paramref name="tokens"/>.</summary>
        public int Items(int tokens) => tokens == 1 ? s._c.Heads : s._c.KvHeads * ((tokens + TokensPerItem - 1) / TokensPerItem);

        /// <summary>Score rows each worker needs, for <see cref="LlamaSession._att"/>.</summary>
        public static int ScoreRows(ModelConfig c, int maxBatch) => Math.Max(1, Math.Min(TokensPerItem, maxBatch) * (c.Heads / c.KvHeads));

        [MethodImpl(MethodImplOptions.AggressiveOptimization)]
        public void Execute(int start, int end, int worker)
        {
            var c = s._c;
            int hd = c.HeadDim, group = c.Heads / c.KvHeads, cap = s.Capacity;
            var att = s._att.AsSpan(worker * _maxQueries * cap, _maxQueries * cap);
            Span<float> sums = stackalloc float[_maxQueries];
            for (int i = start; i < end; i++)
            {
                if (Tokens == 1)
                {
                    int h = i, count = s.Position + 1;
                    var scores = att[..count];
                    var q = s._q.AsSpan(h * hd, hd);
                    s.Cache.Scores(Layer, h / group, q, count, scores);
                    MaskWindow(scores, count);
                    float sum = Softmax(scores);
                    var o = s._xb2.AsSpan(h * hd, hd);
                    s.Cache.AccumulateValues(Layer, h / group, scores, count, o);
                    TensorPrimitives.Multiply(o, 1f / sum, o);
                    continue;
                }
                int kh = i % c.KvHeads, t0 = i / c.KvHeads * TokensPerItem, t1 = Math.Min(Tokens, t0 + TokensPerItem);
                int n = (t1 - t0) * group;
                var qs = _qs.AsSpan(worker * _maxQueries * hd, n * hd);
                var os = _os.AsSpan(worker * _maxQueries * hd, n * hd);
                var counts = _counts.AsSpan(worker * _maxQueries, n);
                for (int t = t0; t < t1; t++)
                    for (int g = 0; g < group; g++)
                    {
                        int j = (t - t0) * group + g;
                        counts[j] = s.Position + t + 1; // this token attends to itself and everything before it
                        s._q.AsSpan(t * c.QDim + (kh * group + g) * hd, hd).CopyTo(qs.Slice(j * hd, hd));
                    }
                s.Cache.Scores(Layer, kh, qs, counts, att, cap);
                for (int j = 0; j < n; j++)
                {
                    MaskWindow(att.Slice(j * cap, counts[j]), counts[j]);
                    sums[j] = Softmax(att.Slice(j * cap, counts[j]));
                }
                s.Cache.AccumulateValues(Layer, kh, att, cap, counts, os);
                for (int t = t0; t < t1; t++)
                    for (int g = 0; g < group; g++)
                    {
                        int j = (t - t0) * group + g;
                        TensorPrimitives.Multiply(os.Slice(j * hd, hd), 1f / sums[j], s._xb2.AsSpan(t * c.QDim + (kh * group + g) * hd, hd));
                    }
            }
        }

        /// <summary>
        /// Sliding-window attention (Mistral): a query at position count−1 sees only the last W positions,
        /// transformers' and llama.cpp's standard SWA rule (visible iff q_pos − k_pos &lt; W). exp(−∞) = 0 drops the rest.
        /// </summary>
        void MaskWindow(Span<float> scores, int count)
        {
            if (s._c.SlidingWindow is int w && count > w) scores[..(count - w)].Fill(float.NegativeInfinity);
        }

        /// <summary>exp(x − max) in place; returns the sum (the normalisation is applied to the short output row).</summary>
        static float Softmax(Span<float> scores)
        {
            float max = TensorPrimitives.Max(scores);
            TensorPrimitives.Subtract(scores, max, scores);
            TensorPrimitives.Exp(scores, scores);
            return TensorPrimitives.Sum(scores);
        }
    }

    /// <summary>Stops the session's worker threads.</summary>
    public void Dispose() => _pool.Dispose();
}
