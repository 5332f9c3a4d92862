using System.Numerics.Tensors;
using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;
using TensorCodec.Formats;

namespace TensorCodec.Engine;

/// <summary>
/// KIVI-style asymmetric low-bit KV cache (Liu et al. 2024), with separate key and value bit
/// depths (kivi2 = K2/V2, kivi4 = K4/V4, kvmix = K4/V2).
/// <list type="bullet">
/// <item>Keys are quantized per channel: for each group of G consecutive positions and each
/// channel, x ≈ zero + scale·c with zero = min, scale = (max − min)/(2^b − 1), c ∈ [0, 2^b − 1].
/// Key outliers live in a few channels, so a per-channel range keeps them from flattening the rest.</item>
/// <item>Values are quantized per token: each position's head vector, in groups of
/// min(G, headDim) channels, gets its own zero and scale.</item>
/// <item>Scale and zero are stored as F16 (as the paper's fp16 model would), and codes are
/// computed against the rounded F16 values so the stored pair is what reconstructs.</item>
/// <item>Residual: the newest tokens stay in F32 (the engine's precision). A count of n cached
/// positions has Q(n) = ⌊(n − R)/G⌋·G quantized, so between R and R+G−1 of the newest are exact.
/// The paper flushes keys R at a time (leaving 0…R−1 exact) and slides values one token at a
/// time; we flush both a group of G at a time and never keep fewer than R exact, so the newest R
/// tokens are always full precision and keys and values share one boundary.</item>
/// <item>Decode semantics in batches: what a query sees depends only on its own count
/// (positions &lt; Q(count) quantized, the rest exact), so a batched prompt scores exactly as
/// token-by-token decoding would. To allow that, exact K/V sit in a ring of R + G + MaxBatch
/// positions, and a key group is quantized as soon as its G-th position arrives. Every query
/// reads the codes directly (there is no dequantized copy), so memory is the representation
/// plus the ring (<see cref="KvSpec.OverheadBytes"/>).</item>
/// <item>Optional attention sink (<c>s=S</c>, not in KIVI): the first S positions are also kept
/// exact, and key groups take their range without them. Default 0, as the paper.</item>
/// <item>Optional pre-RoPE keys (<c>p=1</c>, from KVQuant, not in KIVI): key groups are
/// quantized after undoing the position's rotation. RoPE turns each channel pair at its own
/// frequency, so post-RoPE a fast pair sweeps its whole ±amplitude within a group of 32 positions
/// and the per-channel range is wide; pre-RoPE the channel is steady. Scores re-rotate each
/// dequantized pair with the session's own angles (<see cref="KvGeometry.Rope"/>), 8 positions at a time.</item>
/// </list>
/// Scores use the codes directly: per key group, q·k = Σᵢ (qᵢ·scaleᵢ)·cᵢ + Σᵢ qᵢ·zeroᵢ, so the
/// scale multiplies q once per group instead of every code. Values accumulate Σₜ (wₜ·scaleₜ)·cₜ
/// plus Σₜ wₜ·zeroₜ per channel group.
/// </summary>
internal sealed unsafe class KiviKvCache : KvCacheBase
{
    readonly int _kb, _vb, _g, _r, _vg, _ring, _sink;
    readonly bool _clip;
    readonly float[] _sinkK, _sinkV;        // [layer·head][sink][hd]
    readonly int _kGroupBytes;  // bytes of one channel's codes in one key group: G·kb/8
    readonly int _vTokenBytes;  // bytes of one position's value codes: hd·vb/8
    readonly int _groupsCap;
    readonly byte[] _kCodes, _vCodes;       // padded by 8 bytes: unpacking reads whole words
    readonly Half[] _kScale, _kZero, _vScale, _vZero;
    readonly float[] _ringK, _ringV;        // [layer·head][ring][hd]
    readonly int[] _stored;                 // per layer: positions stored so far (highest + 1)
    readonly RopeTable? _rope;              // pre-RoPE only: the session's angles
    readonly int[] _pairA = [], _pairB = [];// pre-RoPE only: channels of each rotated pair
    readonly int[] _pairOf = [];            // pre-RoPE only: the pair of each channel

    public int KeyBits => _kb;
    public int ValueBits => _vb;
    public int Group => _g;
    public int Residual => _r;

    public override long ByteSize => OwnedBytes(Geometry, _kb, _vb, _g, _r, _sink);

    /// <summary>Bytes of the arrays a cache of this geometry and these parameters owns (codes with their 8 bytes of padding each,
    /// F16 scales/zeros for every slot, the F32 ring of R + G + MaxBatch positions and the sink copies).</summary>
    internal static long OwnedBytes(KvGeometry g, int keyBits, int valueBits, int group, int residual, int sink)
    {
        long lh = (long)g.Layers * g.KvHeads;
        int hd = g.HeadDim, cap = g.Capacity, vg = ValueGroup(group, hd), groupsCap = cap / group;
        long keys = lh * groupsCap * hd * (group * keyBits / 8) + 8 + 4 * lh * groupsCap * hd;
        long values = lh * cap * (hd * valueBits / 8) + 8 + 4 * lh * cap * (hd / vg);
        long exact = 8 * lh * hd * (RingLength(g, group, residual) + Math.Min(sink, cap));
        return keys + values + exact;
    }

    static int RingLength(KvGeometry g, int group, int residual) => Math.Min(g.Capacity, residual + group + g.MaxBatch);

    /// <summary>Positions held in quantized form when <paramref name="count"/> are cached.</summary>
    public static int QuantizedCount(int count, int group, int residual) => count - residual < group ? 0 : (count - residual) / group * group;

    public static int ValueGroup(int group, int headDim) => Math.Min(group, headDim);

    public KiviKvCache(KvGeometry geometry, int keyBits, int valueBits, int group, int residual, int sink = 0, bool preRope = false, bool clip = false)
        : base(geometry, "KIVI")
    {
        _clip = clip;
        if (HeadDim % 8 != 0) throw new ArgumentException($"KIVI KV cache needs a head size divisible by 8 (this model's is {HeadDim})");
        if (group % 8 != 0 || group <= 0) throw new ArgumentException("KIVI group size must be a positive multiple of 8");
        if (keyBits is not (1 or 2 or 3 or 4 or 8) || valueBits is not (1 or 2 or 3 or 4 or 8)) throw new ArgumentException("KIVI bits must be 1, 2, 3, 4 or 8");
        if (residual < 0 || sink < 0) throw new ArgumentException("KIVI residual and sink must be ≥ 0");
        int hd = HeadDim, capacity = Capacity;
        _kb = keyBits; _vb = valueBits; _g = group; _r = residual;
        _vg = ValueGroup(group, hd);
        if (hd % _vg != 0) throw new ArgumentException($"KIVI value group {_vg} does not divide the head size {hd}");
        _ring = RingLength(geometry, group, residual);
        _kGroupBytes = group * keyBits / 8;
        _vTokenBytes = hd * valueBits / 8;
        _groupsCap = capacity / group;
        int lh = Layers * KvHeads;
        _kCodes = new byte[(long)lh * _groupsCap * hd * _kGroupBytes + 8];
        _kScale = new Half[lh * _groupsCap * hd];
        _kZero = new Half[_kScale.Length];
        _vCodes = new byte[(long)lh * capacity * _vTokenBytes + 8];
        _vScale = new Half[lh * capacity * (hd / _vg)];
        _vZero = new Half[_vScale.Length];
        _ringK = new float[lh * _ring * hd];
        _ringV = new float[_ringK.Length];
        _stored = new int[Layers];
        _sink = Math.Min(sink, capacity);
        _sinkK = new float[lh * _sink * hd];
        _sinkV = new float[_sinkK.Length];
        if (preRope)
        {
            _rope = geometry.Rope;
            if (_rope.HeadDim != hd || _rope.Positions < capacity) throw new ArgumentException("the RoPE table does not cover the cache's head size and capacity");
            int half = hd / 2;
            _pairA = new int[half]; _pairB = new int[half]; _pairOf = new int[hd];
            for (int i = 0; i < half; i++)
            {
                (_pairA[i], _pairB[i]) = _rope.Pair(i);
                _pairOf[_pairA[i]] = i; _pairOf[_pairB[i]] = i;
            }
        }
    }

    public override void Clear() => Array.Clear(_stored);

    int Lh(int layer, int head) => layer * KvHeads + head;

    protected override void StoreOne(int layer, int position, ReadOnlySpan<float> k, ReadOnlySpan<float> v)
    {
        int hd = HeadDim, slot = position % _ring;
        for (int h = 0; h < KvHeads; h++)
        {
            int lh = Lh(layer, h);
            k.Slice(h * hd, hd).CopyTo(_ringK.AsSpan((lh * _ring + slot) * hd, hd));
            var vh = v.Slice(h * hd, hd);
            vh.CopyTo(_ringV.AsSpan((lh * _ring + slot) * hd, hd));
            if (position < _sink)
            {
                k.Slice(h * hd, hd).CopyTo(_sinkK.AsSpan((lh * _sink + position) * hd, hd));
                vh.CopyTo(_sinkV.AsSpan((lh * _sink + position) * hd, hd));
            }
            // Values are per token: quantize now, read only once the position leaves the residual.
            int vs = (lh * Capacity + position) * (hd / _vg);
            for (int j = 0; j < hd; j += _vg)
            {
                var x = vh.Slice(j, _vg);
                AsymmetricQuant.Range(x, _vb, out var scale, out var zero, _clip);
                _vScale[vs + j / _vg] = scale; _vZero[vs + j / _vg] = zero;
                AsymmetricQuant.Pack(x, scale, zero, _vb, _vCodes.AsSpan((lh * Capacity + position) * _vTokenBytes + j * _vb / 8, _vg * _vb / 8));
            }
            // Keys are per channel over a group of positions: quantize once the group is complete.
            if (position % _g == _g - 1 && position / _g < _groupsCap) QuantizeKeyGroup(lh, position / _g);
        }
        _stored[layer] = Math.Max(_stored[layer], position + 1);
    }

    [SkipLocalsInit]
    void QuantizeKeyGroup(int lh, int group)
    {
        int hd = HeadDim, first = group * _g;
        // Sink positions are read exactly: keep their (often outlying) keys out of the group's range.
        int skip = Math.Clamp(_sink - first, 0, _g);
        Span<float> x = stackalloc float[_g];
        for (int i = 0; i < hd; i++)
        {
            if (_rope is null)
                for (int t = 0; t < _g; t++) x[t] = _ringK[(lh * _ring + (first + t) % _ring) * hd + i];
            else
            {
                // Undo the rotation: a = a′cos + b′sin, b = b′cos − a′sin.
                int pair = _pairOf[i], a = _pairA[pair], b = _pairB[pair];
                bool isA = a == i;
                for (int t = 0; t < _g; t++)
                {
                    int p = first + t, row = (lh * _ring + p % _ring) * hd;
                    float ra = _ringK[row + a], rb = _ringK[row + b], c = _rope.CosAt(pair, p), sn = _rope.SinAt(pair, p);
                    x[t] = isA ? ra * c + rb * sn : rb * c - ra * sn;
                }
            }
            Half scale = default, zero = default;
            if (skip < _g) AsymmetricQuant.Range(x[skip..], _kb, out scale, out zero, _clip);
            int s = (lh * _groupsCap + group) * hd + i;
            _kScale[s] = scale; _kZero[s] = zero;
            AsymmetricQuant.Pack(x, scale, zero, _kb, _kCodes.AsSpan(s * _kGroupBytes, _kGroupBytes));
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static float Code(byte* p, int index, int bits)
    {
        int bit = index * bits;
        uint w = Unsafe.ReadUnaligned<uint>(p + (bit >> 3));
        return (w >> (bit & 7)) & ((1u << bits) - 1);
    }

    void CheckWindow(int layer, int count, int quantized)
    {
        if ((uint)count > (uint)Capacity) throw new ArgumentOutOfRangeException(nameof(count));
        // Exact positions ≥ quantized must still be in the ring (more stores than MaxBatch before attending would evict them).
        if (_stored[layer] - _ring > quantized)
            throw new InvalidOperationException($"KIVI cache ring of {_ring} positions cannot serve a batch this large; create it with a larger MaxBatch");
    }

    /// <summary>Key of channel <paramref name="ch"/> at 8 positions of a group: zero + scale·code
    /// (<paramref name="sz"/> holds the group's scales then zeros, widened from F16 once per group).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    Vector256<float> Key8(float* sz, int ch, byte* codes, int off) =>
        Vector256.FusedMultiplyAdd(Vector256.Create(sz[ch]), AsymmetricQuant.Codes8(codes + ch * _kGroupBytes + off, _kb), Vector256.Create(sz[HeadDim + ch]));

    void WidenGroup(int s, float* sz)
    {
        for (int i = 0; i < HeadDim; i++) { sz[i] = (float)_kScale[s + i]; sz[HeadDim + i] = (float)_kZero[s + i]; }
    }

    /// <summary>A pre-RoPE pair re-rotated to position pos…pos+7 (what the F32 cache would hold);
    /// <paramref name="cos"/> and <paramref name="sin"/> are the pinned angle tables.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    void RotatedPair8(float* sz, int pair, byte* codes, int off, int pos, float* cos, float* sin, out Vector256<float> ra, out Vector256<float> rb)
    {
        var ka = Key8(sz, _pairA[pair], codes, off);
        var kb = Key8(sz, _pairB[pair], codes, off);
        long at = (long)pair * _rope!.Positions + pos;
        var c = Vector256.Load(cos + at); var sn = Vector256.Load(sin + at);
        ra = Vector256.FusedMultiplyAdd(ka, c, -(kb * sn));
        rb = Vector256.FusedMultiplyAdd(ka, sn, kb * c);
    }

    [SkipLocalsInit]
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public override void Scores(int layer, int kvHead, ReadOnlySpan<float> q, int count, Span<float> scores)
    {
        int hd = HeadDim, lh = Lh(layer, kvHead);
        int quantized = QuantizedCount(count, _g, _r);
        CheckWindow(layer, count, quantized);
        scores = scores[..count];
        bool simd = AsymmetricQuant.FastSupported && Fma.IsSupported;
        fixed (byte* codes0 = _kCodes) fixed (float* pq = q, ps = scores, cos = _rope?.CosTable, sin = _rope?.SinTable)
        {
            float* sz = stackalloc float[2 * hd];
            for (int g = 0; g < quantized / _g; g++)
            {
                int s = (lh * _groupsCap + g) * hd;
                if (simd) WidenGroup(s, sz);
                byte* codes = codes0 + (long)s * _kGroupBytes;
                int t0 = 0;
                if (simd && _rope is null)
                    // Two independent chains of 8 positions hide the FMA latency; each chain sums channels in order.
                    for (; t0 + 16 <= _g; t0 += 16)
                    {
                        int off = t0 / 8 * _kb, pos = g * _g + t0;
                        Vector256<float> a0 = default, a1 = default;
                        for (int i = 0; i < hd; i++)
                        {
                            var qi = Vector256.Create(pq[i]);
                            a0 = Vector256.FusedMultiplyAdd(qi, Key8(sz, i, codes, off), a0);
                            a1 = Vector256.FusedMultiplyAdd(qi, Key8(sz, i, codes, off + _kb), a1);
                        }
                        a0.Store(ps + pos);
                        a1.Store(ps + pos + 8);
                    }
                for (int t = t0; t < _g; t += 8)
                {
                    int off = t / 8 * _kb, pos = g * _g + t;
                    if (!simd) { ScalarKeyScores(pq, s, codes, pos, ps); continue; }
                    var acc = Vector256<float>.Zero;
                    // Channel order: 0…hd−1, or pair by pair when pre-RoPE.
                    if (_rope is null)
                        for (int i = 0; i < hd; i++)
                            acc = Vector256.FusedMultiplyAdd(Vector256.Create(pq[i]), Key8(sz, i, codes, off), acc);
                    else
                        for (int i = 0; i < hd / 2; i++)
                        {
                            int a = _pairA[i], b = _pairB[i];
                            RotatedPair8(sz, i, codes, off, pos, cos, sin, out var ra, out var rb);
                            acc = Vector256.FusedMultiplyAdd(Vector256.Create(pq[a]), ra, acc);
                            acc = Vector256.FusedMultiplyAdd(Vector256.Create(pq[b]), rb, acc);
                        }
                    acc.Store(ps + pos);
                }
            }
        }
        ExactScores(lh, q, count, scores);
    }

    /// <summary>
    /// Several queries: each key group is decoded once into a tile of G positions (keys transposed,
    /// re-rotated when pre-RoPE) and every query that sees the group reads the tile. The tile holds
    /// exactly what the fused path computes in registers, and each query sums channels in the
    /// fused path's order, so the scores are bit-identical to one call per query.
    /// </summary>
    [SkipLocalsInit]
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public override void Scores(int layer, int kvHead, ReadOnlySpan<float> q, ReadOnlySpan<int> counts, Span<float> scores, int stride)
    {
        int hd = HeadDim, lh = Lh(layer, kvHead), nq = counts.Length;
        if (nq == 1 || !(AsymmetricQuant.FastSupported && Fma.IsSupported)) { base.Scores(layer, kvHead, q, counts, scores, stride); return; }
        int maxQuantized = 0;
        for (int j = 0; j < nq; j++)
        {
            int qj = QuantizedCount(counts[j], _g, _r);
            CheckWindow(layer, counts[j], qj);
            if (q.Length < (j + 1) * hd || scores.Length < j * stride + counts[j]) throw new ArgumentException("query or score buffer too small");
            maxQuantized = Math.Max(maxQuantized, qj);
        }
        var tileSpan = KvScratch.Get(hd * _g);
        fixed (byte* codes0 = _kCodes) fixed (float* pq0 = q, ps0 = scores, tile = tileSpan, cos = _rope?.CosTable, sin = _rope?.SinTable)
        {
            float* sz = stackalloc float[2 * hd];
            for (int g = 0; g < maxQuantized / _g; g++)
            {
                int s = (lh * _groupsCap + g) * hd;
                WidenGroup(s, sz);
                byte* codes = codes0 + (long)s * _kGroupBytes;
                for (int t = 0; t < _g; t += 8)
                {
                    int off = t / 8 * _kb;
                    if (_rope is null)
                        for (int i = 0; i < hd; i++) Key8(sz, i, codes, off).Store(tile + i * _g + t);
                    else
                        for (int i = 0; i < hd / 2; i++)
                        {
                            RotatedPair8(sz, i, codes, off, g * _g + t, cos, sin, out var ra, out var rb);
                            ra.Store(tile + _pairA[i] * _g + t);
                            rb.Store(tile + _pairB[i] * _g + t);
                        }
                }
                for (int j = 0; j < nq; j++)
                {
                    if (g >= QuantizedCount(counts[j], _g, _r) / _g) continue;
                    float* pq = pq0 + j * hd, ps = ps0 + (long)j * stride + g * _g;
                    for (int t = 0; t < _g; t += 8)
                    {
                        var acc = Vector256<float>.Zero;
                        if (_rope is null)
                            for (int i = 0; i < hd; i++) acc = Vector256.FusedMultiplyAdd(Vector256.Create(pq[i]), Vector256.Load(tile + i * _g + t), acc);
                        else
                            for (int i = 0; i < hd / 2; i++)
                            {
                                int a = _pairA[i], b = _pairB[i];
                                acc = Vector256.FusedMultiplyAdd(Vector256.Create(pq[a]), Vector256.Load(tile + a * _g + t), acc);
                                acc = Vector256.FusedMultiplyAdd(Vector256.Create(pq[b]), Vector256.Load(tile + b * _g + t), acc);
                            }
                        acc.Store(ps + t);
                    }
                }
            }
        }
        for (int j = 0; j < nq; j++) ExactScores(lh, q.Slice(j * hd, hd), counts[j], scores.Slice(j * stride, counts[j]));
    }

    /// <summary>Scores of the exact positions: the sink below the quantized part, the ring above it.</summary>
    void ExactScores(int lh, ReadOnlySpan<float> q, int count, Span<float> scores)
    {
        int hd = HeadDim, quantized = QuantizedCount(count, _g, _r);
        for (int t = 0; t < Math.Min(_sink, quantized); t++)
            scores[t] = TensorPrimitives.Dot(q[..hd], _sinkK.AsSpan((lh * _sink + t) * hd, hd));
        for (int t = quantized; t < count; t++)
            scores[t] = TensorPrimitives.Dot(q[..hd], _ringK.AsSpan((lh * _ring + t % _ring) * hd, hd));
    }

    /// <summary>Positions per value tile of the batched path.</summary>
    const int ValueTile = 64;

    /// <summary>
    /// Several queries: values are decoded once per tile of positions and every query accumulates
    /// the tile in position order through its output row, which is exact, so the sums are those of
    /// one call per query.
    /// </summary>
    [SkipLocalsInit]
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public override void AccumulateValues(int layer, int kvHead, ReadOnlySpan<float> weights, int stride, ReadOnlySpan<int> counts, Span<float> output)
    {
        int hd = HeadDim, lh = Lh(layer, kvHead), nq = counts.Length, groups = hd / _vg, cap = Capacity;
        if (nq == 1 || !(AsymmetricQuant.FastSupported && Fma.IsSupported)) { base.AccumulateValues(layer, kvHead, weights, stride, counts, output); return; }
        int maxQuantized = 0;
        for (int j = 0; j < nq; j++)
        {
            int qj = QuantizedCount(counts[j], _g, _r);
            CheckWindow(layer, counts[j], qj);
            if (weights.Length < j * stride + counts[j] || output.Length < (j + 1) * hd) throw new ArgumentException("weight or output buffer too small");
            maxQuantized = Math.Max(maxQuantized, qj);
        }
        output[..(nq * hd)].Clear();
        var tileSpan = KvScratch.Get(ValueTile * hd);
        int gBytes = _vg * _vb / 8;
        fixed (byte* codes0 = _vCodes) fixed (float* pw0 = weights, po0 = output, tile = tileSpan)
        {
            for (int t0 = 0; t0 < maxQuantized; t0 += ValueTile)
            {
                int t1 = Math.Min(maxQuantized, t0 + ValueTile);
                for (int t = t0; t < t1; t++)
                {
                    int s = (lh * cap + t) * groups;
                    byte* codes = codes0 + (long)(lh * cap + t) * _vTokenBytes;
                    for (int j = 0; j < groups; j++)
                    {
                        var sc = Vector256.Create((float)_vScale[s + j]); var z = Vector256.Create((float)_vZero[s + j]);
                        for (int i = 0; i < _vg; i += 8)
                            Vector256.FusedMultiplyAdd(sc, AsymmetricQuant.Codes8(codes + j * gBytes + i / 8 * _vb, _vb), z).Store(tile + (t - t0) * hd + j * _vg + i);
                    }
                }
                for (int j = 0; j < nq; j++)
                {
                    int qj = QuantizedCount(counts[j], _g, _r);
                    int lo = Math.Max(t0, Math.Min(_sink, qj)), hi = Math.Min(t1, qj);
                    if (lo >= hi) continue;
                    float* pw = pw0 + (long)j * stride, po = po0 + j * hd;
                    for (int i = 0; i < hd; i += 32)
                    {
                        int m = Math.Min(4, (hd - i) / 8);
                        float* o = po + i;
                        Vector256<float> a0 = Vector256.Load(o), a1 = default, a2 = default, a3 = default;
                        if (m > 1) a1 = Vector256.Load(o + 8);
                        if (m > 2) a2 = Vector256.Load(o + 16);
                        if (m > 3) a3 = Vector256.Load(o + 24);
                        for (int t = lo; t < hi; t++)
                        {
                            var vw = Vector256.Create(pw[t]);
                            float* row = tile + (t - t0) * hd + i;
                            a0 = Vector256.FusedMultiplyAdd(vw, Vector256.Load(row), a0);
                            if (m > 1) a1 = Vector256.FusedMultiplyAdd(vw, Vector256.Load(row + 8), a1);
                            if (m > 2) a2 = Vector256.FusedMultiplyAdd(vw, Vector256.Load(row + 16), a2);
                            if (m > 3) a3 = Vector256.FusedMultiplyAdd(vw, Vector256.Load(row + 24), a3);
                        }
                        a0.Store(o);
                        if (m > 1) a1.Store(o + 8);
                        if (m > 2) a2.Store(o + 16);
                        if (m > 3) a3.Store(o + 24);
                    }
                }
            }
        }
        for (int j = 0; j < nq; j++) ExactValues(lh, weights.Slice(j * stride, counts[j]), counts[j], output.Slice(j * hd, hd));
    }

    /// <summary>Adds the exact positions' values: the sink below the quantized part, the ring above it.</summary>
    void ExactValues(int lh, ReadOnlySpan<float> weights, int count, Span<float> output)
    {
        int hd = HeadDim, quantized = QuantizedCount(count, _g, _r), sunk = Math.Min(_sink, quantized);
        for (int t = 0; t < sunk; t++)
            TensorPrimitives.MultiplyAdd(_sinkV.AsSpan((lh * _sink + t) * hd, hd), weights[t], output, output);
        for (int t = quantized; t < count; t++)
            TensorPrimitives.MultiplyAdd(_ringV.AsSpan((lh * _ring + t % _ring) * hd, hd), weights[t], output, output);
    }

    /// <summary>Portable fallback for 8 positions of a key group.</summary>
    void ScalarKeyScores(float* pq, int s, byte* codes, int pos, float* ps)
    {
        int hd = HeadDim, first = pos - pos % _g;
        for (int t = pos; t < pos + 8; t++)
        {
            float acc = 0;
            for (int i = 0; i < hd; i++)
            {
                float k = (float)_kZero[s + i] + (float)_kScale[s + i] * Code(codes + i * _kGroupBytes, t - first, _kb);
                if (_rope is not null)
                {
                    // Re-rotate the pair this channel belongs to.
                    int pair = _pairOf[i], a = _pairA[pair], b = _pairB[pair];
                    bool isA = a == i;
                    float ka = (float)_kZero[s + a] + (float)_kScale[s + a] * Code(codes + a * _kGroupBytes, t - first, _kb);
                    float kb = (float)_kZero[s + b] + (float)_kScale[s + b] * Code(codes + b * _kGroupBytes, t - first, _kb);
                    float c = _rope.CosAt(pair, t), sn = _rope.SinAt(pair, t);
                    k = isA ? ka * c - kb * sn : ka * sn + kb * c;
                }
                acc += pq[i] * k;
            }
            ps[t] = acc;
        }
    }

    [SkipLocalsInit]
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public override void AccumulateValues(int layer, int kvHead, ReadOnlySpan<float> weights, int count, Span<float> output)
    {
        int hd = HeadDim, lh = Lh(layer, kvHead), groups = hd / _vg, cap = Capacity;
        int quantized = QuantizedCount(count, _g, _r);
        CheckWindow(layer, count, quantized);
        output = output[..hd];
        output.Clear();
        bool simd = AsymmetricQuant.FastSupported && Fma.IsSupported && hd % 8 == 0;
        fixed (byte* codes0 = _vCodes) fixed (float* po = output, pw = weights)
        {
            int gBytes = _vg * _vb / 8;
            int sunk = Math.Min(_sink, quantized);
            if (simd)
                // Fused path, a tile of positions at a time: widen the tile's value scales/zeros in one
                // vectorised pass, then keep the channel sums in registers while positions stream past.
                // The sums go through the output between tiles (exact), so the order is tile-independent.
                for (int t0 = sunk; t0 < quantized; t0 += KvScratch.Tile)
                {
                    int t1 = Math.Min(quantized, t0 + KvScratch.Tile), n = (t1 - t0) * groups;
                    var widened = KvScratch.Get(2 * n);
                    TensorPrimitives.ConvertToSingle(_vScale.AsSpan((lh * cap + t0) * groups, n), widened[..n]);
                    TensorPrimitives.ConvertToSingle(_vZero.AsSpan((lh * cap + t0) * groups, n), widened[n..]);
                    fixed (float* psc = widened)
                    {
                        float* pzz = psc + n;
                        for (int j = 0; j < groups; j++)
                            for (int i = 0; i < _vg; i += 32)
                            {
                                int m = Math.Min(4, (_vg - i) / 8);
                                float* o = po + j * _vg + i;
                                Vector256<float> a0 = Vector256.Load(o), a1 = default, a2 = default, a3 = default;
                                if (m > 1) a1 = Vector256.Load(o + 8);
                                if (m > 2) a2 = Vector256.Load(o + 16);
                                if (m > 3) a3 = Vector256.Load(o + 24);
                                for (int t = t0; t < t1; t++)
                                {
                                    byte* c = codes0 + (long)(lh * cap + t) * _vTokenBytes + j * gBytes + i / 8 * _vb;
                                    var vw = Vector256.Create(pw[t]);
                                    int at = (t - t0) * groups + j;
                                    var sc = Vector256.Create(psc[at]); var z = Vector256.Create(pzz[at]);
                                    a0 = Vector256.FusedMultiplyAdd(vw, Vector256.FusedMultiplyAdd(sc, AsymmetricQuant.Codes8(c, _vb), z), a0);
                                    if (m > 1) a1 = Vector256.FusedMultiplyAdd(vw, Vector256.FusedMultiplyAdd(sc, AsymmetricQuant.Codes8(c + _vb, _vb), z), a1);
                                    if (m > 2) a2 = Vector256.FusedMultiplyAdd(vw, Vector256.FusedMultiplyAdd(sc, AsymmetricQuant.Codes8(c + 2 * _vb, _vb), z), a2);
                                    if (m > 3) a3 = Vector256.FusedMultiplyAdd(vw, Vector256.FusedMultiplyAdd(sc, AsymmetricQuant.Codes8(c + 3 * _vb, _vb), z), a3);
                                }
                                a0.Store(o);
                                if (m > 1) a1.Store(o + 8);
                                if (m > 2) a2.Store(o + 16);
                                if (m > 3) a3.Store(o + 24);
                            }
                    }
                }
            else for (int t = sunk; t < quantized; t++) // portable fallback
            {
                int s = (lh * cap + t) * groups;
                byte* codes = codes0 + (long)(lh * cap + t) * _vTokenBytes;
                float w = pw[t];
                for (int j = 0; j < groups; j++)
                {
                    byte* cj = codes + j * gBytes;
                    float* oj = po + j * _vg;
                    float sc = (float)_vScale[s + j], z = (float)_vZero[s + j];
                    for (int i = 0; i < _vg; i++) oj[i] += w * (z + sc * Code(cj, i, _vb));
                }
            }
        }
        ExactValues(lh, weights, count, output);
    }
}
