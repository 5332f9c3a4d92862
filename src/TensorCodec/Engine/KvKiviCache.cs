using System.Numerics.Tensors;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;
using TensorCodec.Models;

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
/// token-by-token decoding would. To allow that, exact K/V sit in a ring of R + G + maxBatch
/// positions, and a key group is quantized as soon as its G-th position arrives.</item>
/// <item>Optional attention sink (<c>s=S</c>, not in KIVI): the first S positions are also kept
/// exact, and key groups take their range without them. Default 0, as the paper.</item>
/// <item>Optional pre-RoPE keys (<c>p=1</c>, from KVQuant, not in KIVI): key groups are
/// quantized after undoing the position's rotation. RoPE turns each channel pair at its own
/// frequency, so post-RoPE a fast pair sweeps its whole ±amplitude within a group of 32 positions
/// and the per-channel range is wide; pre-RoPE the channel is steady. Scores then rotate q
/// instead: q·R(t)k = Σ k_a(q_a cos + q_b sin) + k_b(q_b cos − q_a sin), per 8 positions.</item>
/// </list>
/// Scores use the codes directly: per key group, q·k = Σᵢ (qᵢ·scaleᵢ)·cᵢ + Σᵢ qᵢ·zeroᵢ, so the
/// scale multiplies q once per group instead of every code. Values accumulate Σₜ (wₜ·scaleₜ)·cₜ
/// plus Σₜ wₜ·zeroₜ per channel group.
/// </summary>
public sealed unsafe class KiviKvCache : IKvCache
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
    readonly float[]? _cosT, _sinT;         // pre-RoPE only: [frequency][position]
    // Batched-prompt shadow: one layer dequantized to F32, keys [kvHead][hd][capacity], values [kvHead][capacity][hd].
    readonly float[] _shK, _shV;
    readonly int[] _shLayer;
    readonly long[] _shRound, _roundOf;
    readonly object[] _shLocks;
    readonly int[] _order;                  // channel order of the score sums: 0…hd−1, or pair by pair when pre-RoPE
    readonly bool[] _open;                  // per layer: a round of stores is in progress
    readonly int[] _batch;                  // per layer: positions stored in the current round
    long _rounds;
    readonly int[]? _pairA, _pairB;         // pre-RoPE only: channels of each rotated pair

    /// <summary>The model's rotary embedding, for pre-RoPE key quantization.</summary>
    public sealed record RopeInfo(RopeStyle Style, float Theta);

    public int Layers { get; }
    public int KvHeads { get; }
    public int HeadDim { get; }
    public int Capacity { get; }
    public int KeyBits => _kb;
    public int ValueBits => _vb;
    public int Group => _g;
    public int Residual => _r;

    public long ByteSize => _kCodes.Length + _vCodes.Length + 2L * (_kScale.Length + _kZero.Length + _vScale.Length + _vZero.Length)
        + 4L * (_ringK.Length + _ringV.Length + _sinkK.Length + _sinkV.Length + _shK.Length + _shV.Length);

    /// <summary>Positions held in quantized form when <paramref name="count"/> are cached.</summary>
    public static int QuantizedCount(int count, int group, int residual) => count - residual < group ? 0 : (count - residual) / group * group;

    public static int ValueGroup(int group, int headDim) => Math.Min(group, headDim);

    public KiviKvCache(int layers, int kvHeads, int headDim, int capacity, int keyBits, int valueBits, int group, int residual, int maxBatch = 64, int sink = 0, RopeInfo? preRope = null, bool clip = false)
    {
        _clip = clip;
        if (headDim % 8 != 0) throw new ArgumentException($"KIVI KV cache needs a head size divisible by 8 (this model's is {headDim})");
        if (group % 8 != 0 || group <= 0) throw new ArgumentException("KIVI group size must be a positive multiple of 8");
        if (keyBits is not (1 or 2 or 3 or 4 or 8) || valueBits is not (1 or 2 or 3 or 4 or 8)) throw new ArgumentException("KIVI bits must be 1, 2, 3, 4 or 8");
        Layers = layers; KvHeads = kvHeads; HeadDim = headDim; Capacity = capacity;
        _kb = keyBits; _vb = valueBits; _g = group; _r = residual;
        _vg = ValueGroup(group, headDim);
        if (headDim % _vg != 0) throw new ArgumentException($"KIVI value group {_vg} does not divide the head size {headDim}");
        _ring = Math.Min(capacity, residual + group + Math.Max(1, maxBatch));
        _kGroupBytes = group * keyBits / 8;
        _vTokenBytes = headDim * valueBits / 8;
        _groupsCap = capacity / group;
        int lh = layers * kvHeads;
        _kCodes = new byte[(long)lh * _groupsCap * headDim * _kGroupBytes + 8];
        _kScale = new Half[lh * _groupsCap * headDim];
        _kZero = new Half[_kScale.Length];
        _vCodes = new byte[(long)lh * capacity * _vTokenBytes + 8];
        _vScale = new Half[lh * capacity * (headDim / _vg)];
        _vZero = new Half[_vScale.Length];
        _ringK = new float[lh * _ring * headDim];
        _ringV = new float[_ringK.Length];
        _stored = new int[layers];
        _shK = new float[kvHeads * headDim * capacity];
        _shV = new float[_shK.Length];
        _shLayer = Enumerable.Repeat(-1, kvHeads).ToArray();
        _shRound = new long[kvHeads];
        _shLocks = Enumerable.Range(0, kvHeads).Select(_ => new object()).ToArray();
        _roundOf = new long[layers];
        _open = new bool[layers];
        _batch = new int[layers];
        _order = Enumerable.Range(0, headDim).ToArray();
        _sink = Math.Min(sink, capacity);
        _sinkK = new float[lh * _sink * headDim];
        _sinkV = new float[_sinkK.Length];
        if (preRope is not null)
        {
            // The same float32 angles as LlamaSession, so un-rotating matches its rotation.
            int half = headDim / 2;
            _cosT = new float[half * capacity]; _sinT = new float[half * capacity];
            _pairA = new int[half]; _pairB = new int[half];
            for (int i = 0; i < half; i++)
            {
                (_pairA[i], _pairB[i]) = preRope.Style == RopeStyle.AdjacentPairs ? (2 * i, 2 * i + 1) : (i, i + half);
                float invFreq = 1f / MathF.Pow(preRope.Theta, 2 * i / (float)headDim);
                for (int p = 0; p < capacity; p++)
                {
                    float angle = p * invFreq;
                    _cosT[i * capacity + p] = MathF.Cos(angle);
                    _sinT[i * capacity + p] = MathF.Sin(angle);
                }
            }
            for (int i = 0; i < half; i++) { _order[2 * i] = _pairA[i]; _order[2 * i + 1] = _pairB[i]; }
        }
    }

    public void Clear()
    {
        Array.Clear(_stored);
        Array.Fill(_shLayer, -1);
        Array.Clear(_open);
    }

    int Lh(int layer, int head) => layer * KvHeads + head;

    public void Store(int layer, int position, ReadOnlySpan<float> k, ReadOnlySpan<float> v)
    {
        if ((uint)position >= (uint)Capacity)
            throw new ArgumentOutOfRangeException(nameof(position), $"position {position} is beyond the KV cache capacity {Capacity}");
        int hd = HeadDim, slot = position % _ring;
        if (!_open[layer]) { _open[layer] = true; _batch[layer] = 0; _roundOf[layer] = ++_rounds; }
        _batch[layer]++;
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
                KiviMath.Range(x, _vb, out var scale, out var zero, _clip);
                _vScale[vs + j / _vg] = scale; _vZero[vs + j / _vg] = zero;
                Pack(x, scale, zero, _vb, _vCodes.AsSpan((lh * Capacity + position) * _vTokenBytes + j * _vb / 8, _vg * _vb / 8));
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
            if (_cosT is null)
                for (int t = 0; t < _g; t++) x[t] = _ringK[(lh * _ring + (first + t) % _ring) * hd + i];
            else
            {
                // Undo the rotation: a = a′cos + b′sin, b = b′cos − a′sin.
                int pair = Array.IndexOf(_pairA!, i);
                bool isA = pair >= 0;
                if (!isA) pair = Array.IndexOf(_pairB!, i);
                int a = _pairA![pair], b = _pairB![pair];
                for (int t = 0; t < _g; t++)
                {
                    int p = first + t, row = (lh * _ring + p % _ring) * hd;
                    float ra = _ringK[row + a], rb = _ringK[row + b], c = _cosT[pair * Capacity + p], sn = _sinT![pair * Capacity + p];
                    x[t] = isA ? ra * c + rb * sn : rb * c - ra * sn;
                }
            }
            Half scale = default, zero = default;
            if (skip < _g) KiviMath.Range(x[skip..], _kb, out scale, out zero, _clip);
            int s = (lh * _groupsCap + group) * hd + i;
            _kScale[s] = scale; _kZero[s] = zero;
            Pack(x, scale, zero, _kb, _kCodes.AsSpan(s * _kGroupBytes, _kGroupBytes));
        }
    }

    static void Pack(ReadOnlySpan<float> x, Half scale, Half zero, int bits, Span<byte> dst) => KiviMath.Pack(x, scale, zero, bits, dst);

    /// <summary>8 codes of <paramref name="bits"/> bits starting at <paramref name="p"/>, as floats.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static Vector256<float> Unpack8(byte* p, int bits)
    {
        if (bits == 8) return Avx.ConvertToVector256Single(Avx2.ConvertToVector256Int32(p));
        var w = Vector256.Create(Unsafe.ReadUnaligned<uint>(p));
        var shifted = Avx2.ShiftRightLogicalVariable(w, KiviMath.Shifts(bits));
        return Vector256.ConvertToSingle((shifted & Vector256.Create((1u << bits) - 1)).AsInt32());
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
        // Exact positions ≥ quantized must still be in the ring (a batch larger than maxBatch would evict them).
        if (_stored[layer] - _ring > quantized)
            throw new InvalidOperationException($"KIVI cache ring of {_ring} positions cannot serve a batch this large; create it with a larger maxBatch");
    }

    // ---- Attention. Two paths with identical arithmetic (so results do not depend on the path):
    // direct, fused on the codes, for decode rounds (one stored token, one query per head); and,
    // for a batched prompt, where up to MaxBatch·(heads/kvHeads) queries read the same codes, a
    // one-layer F32 shadow dequantized once per kv head and round, then read like the F32 cache.

    /// <summary>Marks attention as started for this layer's round (Store opens the next one).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    bool UseShadow(int layer, bool simd)
    {
        if (_open[layer]) _open[layer] = false; // idempotent across workers; Store runs only between rounds
        return simd && _batch[layer] > 1;
    }

    /// <summary>Key of channel <paramref name="ch"/> at 8 positions of a group: zero + scale·code
    /// (<paramref name="sz"/> holds the group's scales then zeros, widened from F16 once per group).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    Vector256<float> Key8(float* sz, int ch, byte* codes, int off) =>
        Vector256.FusedMultiplyAdd(Vector256.Create(sz[ch]), Unpack8(codes + ch * _kGroupBytes + off, _kb), Vector256.Create(sz[HeadDim + ch]));

    void WidenGroup(int s, float* sz)
    {
        for (int i = 0; i < HeadDim; i++) { sz[i] = (float)_kScale[s + i]; sz[HeadDim + i] = (float)_kZero[s + i]; }
    }

    /// <summary>A pre-RoPE pair re-rotated to position t…t+7 (what the F32 cache would hold).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    void RotatedPair8(float* sz, int pair, byte* codes, int off, int pos, out Vector256<float> ra, out Vector256<float> rb)
    {
        var ka = Key8(sz, _pairA![pair], codes, off);
        var kb = Key8(sz, _pairB![pair], codes, off);
        fixed (float* pc = &_cosT![pair * Capacity + pos], psn = &_sinT![pair * Capacity + pos])
        {
            var cos = Vector256.Load(pc); var sin = Vector256.Load(psn);
            ra = Vector256.FusedMultiplyAdd(ka, cos, -(kb * sin));
            rb = Vector256.FusedMultiplyAdd(ka, sin, kb * cos);
        }
    }

    [SkipLocalsInit]
    void FillShadow(int layer, int head)
    {
        long round = _roundOf[layer];
        if (Volatile.Read(ref _shLayer[head]) == layer && Volatile.Read(ref _shRound[head]) == round) return;
        lock (_shLocks[head])
        {
            if (_shLayer[head] == layer && _shRound[head] == round) return;
            int hd = HeadDim, cap = Capacity, lh = Lh(layer, head);
            int quantized = QuantizedCount(_stored[layer], _g, _r);
            float* sz = stackalloc float[2 * hd];
            fixed (float* k0 = _shK, v0 = _shV) fixed (byte* kc0 = _kCodes, vc0 = _vCodes)
            {
                float* kt = k0 + head * hd * cap;
                for (int g = 0; g < quantized / _g; g++)
                {
                    int s = (lh * _groupsCap + g) * hd;
                    WidenGroup(s, sz);
                    byte* codes = kc0 + (long)s * _kGroupBytes;
                    for (int t = 0; t < _g; t += 8)
                    {
                        int off = t / 8 * _kb, pos = g * _g + t;
                        if (_cosT is null)
                            for (int i = 0; i < hd; i++) Key8(sz, i, codes, off).Store(kt + i * cap + pos);
                        else
                            for (int i = 0; i < hd / 2; i++)
                            {
                                RotatedPair8(sz, i, codes, off, pos, out var ra, out var rb);
                                ra.Store(kt + _pairA![i] * cap + pos);
                                rb.Store(kt + _pairB![i] * cap + pos);
                            }
                    }
                }
                int groups = hd / _vg, gBytes = _vg * _vb / 8;
                float* vt = v0 + head * cap * hd;
                for (int t = 0; t < quantized; t++)
                {
                    int s = (lh * Capacity + t) * groups;
                    byte* codes = vc0 + (long)(lh * Capacity + t) * _vTokenBytes;
                    for (int j = 0; j < groups; j++)
                    {
                        var sc = Vector256.Create((float)_vScale[s + j]); var z = Vector256.Create((float)_vZero[s + j]);
                        for (int i = 0; i < _vg; i += 8)
                            Vector256.FusedMultiplyAdd(sc, Unpack8(codes + j * gBytes + i / 8 * _vb, _vb), z).Store(vt + t * hd + j * _vg + i);
                    }
                }
            }
            Volatile.Write(ref _shRound[head], round);
            Volatile.Write(ref _shLayer[head], layer);
        }
    }

    [SkipLocalsInit]
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public void Scores(int layer, int kvHead, ReadOnlySpan<float> q, int count, Span<float> scores)
    {
        int hd = HeadDim, lh = Lh(layer, kvHead), cap = Capacity;
        int quantized = QuantizedCount(count, _g, _r);
        CheckWindow(layer, count, quantized);
        scores = scores[..count];
        bool simd = Avx2.IsSupported && Fma.IsSupported;
        bool shadow = UseShadow(layer, simd);
        if (shadow) FillShadow(layer, kvHead);
        fixed (byte* codes0 = _kCodes) fixed (float* pq = q, ps = scores, sh0 = _shK)
        {
            float* kt = sh0 + kvHead * hd * cap;
            int done = 0;
            if (shadow)
            {
                // Two independent chains of 8 positions hide the FMA latency; each chain's order is the direct path's.
                for (; done + 16 <= quantized; done += 16)
                {
                    Vector256<float> a0 = default, a1 = default;
                    for (int n = 0; n < hd; n++)
                    {
                        int i = _order[n];
                        var qi = Vector256.Create(pq[i]);
                        float* row = kt + i * cap + done;
                        a0 = Vector256.FusedMultiplyAdd(qi, Vector256.Load(row), a0);
                        a1 = Vector256.FusedMultiplyAdd(qi, Vector256.Load(row + 8), a1);
                    }
                    a0.Store(ps + done);
                    a1.Store(ps + done + 8);
                }
            }
            float* sz = stackalloc float[2 * hd];
            for (int g = done / _g; g < quantized / _g; g++)
            {
                int s = (lh * _groupsCap + g) * hd;
                if (simd) WidenGroup(s, sz);
                byte* codes = codes0 + (long)s * _kGroupBytes;
                int t0 = Math.Max(0, done - g * _g);
                if (simd && !shadow && _cosT is null)
                    // Fused decode path, two chains of 8 positions at a time (each in the shadow path's order).
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
                    // Channel order is the same in both paths: 0…hd−1, or pair by pair when pre-RoPE.
                    if (_cosT is null)
                        for (int i = 0; i < hd; i++)
                            acc = Vector256.FusedMultiplyAdd(Vector256.Create(pq[i]), shadow ? Vector256.Load(kt + i * cap + pos) : Key8(sz, i, codes, off), acc);
                    else
                        for (int i = 0; i < hd / 2; i++)
                        {
                            int a = _pairA![i], b = _pairB![i];
                            Vector256<float> ra, rb;
                            if (shadow) { ra = Vector256.Load(kt + a * cap + pos); rb = Vector256.Load(kt + b * cap + pos); }
                            else RotatedPair8(sz, i, codes, off, pos, out ra, out rb);
                            acc = Vector256.FusedMultiplyAdd(Vector256.Create(pq[a]), ra, acc);
                            acc = Vector256.FusedMultiplyAdd(Vector256.Create(pq[b]), rb, acc);
                        }
                    acc.Store(ps + pos);
                }
            }
            for (int t = 0; t < Math.Min(_sink, quantized); t++)
                ps[t] = TensorPrimitives.Dot(q[..hd], _sinkK.AsSpan((lh * _sink + t) * hd, hd));
            for (int t = quantized; t < count; t++)
                ps[t] = TensorPrimitives.Dot(q[..hd], _ringK.AsSpan((lh * _ring + t % _ring) * hd, hd));
        }
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
                if (_cosT is not null)
                {
                    // Re-rotate the pair this channel belongs to.
                    int pair = Array.IndexOf(_pairA!, i), a, b; bool isA = pair >= 0;
                    if (!isA) pair = Array.IndexOf(_pairB!, i);
                    a = _pairA![pair]; b = _pairB![pair];
                    float ka = (float)_kZero[s + a] + (float)_kScale[s + a] * Code(codes + a * _kGroupBytes, t - first, _kb);
                    float kb = (float)_kZero[s + b] + (float)_kScale[s + b] * Code(codes + b * _kGroupBytes, t - first, _kb);
                    float c = _cosT[pair * Capacity + t], sn = _sinT![pair * Capacity + t];
                    k = isA ? ka * c - kb * sn : ka * sn + kb * c;
                }
                acc += pq[i] * k;
            }
            ps[t] = acc;
        }
    }

    [SkipLocalsInit]
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public void AccumulateValues(int layer, int kvHead, ReadOnlySpan<float> weights, int count, Span<float> output)
    {
        int hd = HeadDim, lh = Lh(layer, kvHead), groups = hd / _vg, cap = Capacity;
        int quantized = QuantizedCount(count, _g, _r);
        CheckWindow(layer, count, quantized);
        output = output[..hd];
        output.Clear();
        bool simd = Avx2.IsSupported && Fma.IsSupported && hd % 8 == 0;
        bool shadow = UseShadow(layer, simd);
        if (shadow) FillShadow(layer, kvHead);
        fixed (byte* codes0 = _vCodes) fixed (float* po = output, pw = weights, sh0 = _shV)
        {
            int gBytes = _vg * _vb / 8;
            int sunk = Math.Min(_sink, quantized);
            float* vt = sh0 + kvHead * cap * hd;
            if (shadow)
            {
                // Channel chunks outer, positions inner: the sums stay in registers. Each chunk still
                // accumulates positions in order from zero, exactly as the direct path does.
                for (int i = 0; i < hd; i += 32)
                {
                    int m = Math.Min(4, (hd - i) / 8);
                    Vector256<float> a0 = default, a1 = default, a2 = default, a3 = default;
                    for (int t = sunk; t < quantized; t++)
                    {
                        var vw = Vector256.Create(pw[t]);
                        float* row = vt + t * hd + i;
                        a0 = Vector256.FusedMultiplyAdd(vw, Vector256.Load(row), a0);
                        if (m > 1) a1 = Vector256.FusedMultiplyAdd(vw, Vector256.Load(row + 8), a1);
                        if (m > 2) a2 = Vector256.FusedMultiplyAdd(vw, Vector256.Load(row + 16), a2);
                        if (m > 3) a3 = Vector256.FusedMultiplyAdd(vw, Vector256.Load(row + 24), a3);
                    }
                    a0.Store(po + i);
                    if (m > 1) a1.Store(po + i + 8);
                    if (m > 2) a2.Store(po + i + 16);
                    if (m > 3) a3.Store(po + i + 24);
                }
            }
            else if (simd)
            {
                // Fused decode path: widen this head's value scales/zeros in one vectorised pass, then
                // keep the channel sums in registers while positions stream past (same order as the shadow path).
                int n = quantized * groups;
                var widened = KvScratch.Get(2 * n);
                TensorPrimitives.ConvertToSingle(_vScale.AsSpan(lh * cap * groups, n), widened[..n]);
                TensorPrimitives.ConvertToSingle(_vZero.AsSpan(lh * cap * groups, n), widened[n..]);
                fixed (float* psc = widened)
                {
                    float* pzz = psc + n;
                    for (int j = 0; j < groups; j++)
                        for (int i = 0; i < _vg; i += 32)
                        {
                            int m = Math.Min(4, (_vg - i) / 8);
                            Vector256<float> a0 = default, a1 = default, a2 = default, a3 = default;
                            for (int t = sunk; t < quantized; t++)
                            {
                                byte* c = codes0 + (long)(lh * cap + t) * _vTokenBytes + j * gBytes + i / 8 * _vb;
                                var vw = Vector256.Create(pw[t]);
                                var sc = Vector256.Create(psc[t * groups + j]); var z = Vector256.Create(pzz[t * groups + j]);
                                a0 = Vector256.FusedMultiplyAdd(vw, Vector256.FusedMultiplyAdd(sc, Unpack8(c, _vb), z), a0);
                                if (m > 1) a1 = Vector256.FusedMultiplyAdd(vw, Vector256.FusedMultiplyAdd(sc, Unpack8(c + _vb, _vb), z), a1);
                                if (m > 2) a2 = Vector256.FusedMultiplyAdd(vw, Vector256.FusedMultiplyAdd(sc, Unpack8(c + 2 * _vb, _vb), z), a2);
                                if (m > 3) a3 = Vector256.FusedMultiplyAdd(vw, Vector256.FusedMultiplyAdd(sc, Unpack8(c + 3 * _vb, _vb), z), a3);
                            }
                            float* o = po + j * _vg + i;
                            a0.Store(o);
                            if (m > 1) a1.Store(o + 8);
                            if (m > 2) a2.Store(o + 16);
                            if (m > 3) a3.Store(o + 24);
                        }
                }
            }
            else for (int t = sunk; t < quantized; t++) // portable fallback
            {
                int s = (lh * Capacity + t) * groups;
                byte* codes = codes0 + (long)(lh * Capacity + t) * _vTokenBytes;
                float w = pw[t];
                for (int j = 0; j < groups; j++)
                {
                    byte* cj = codes + j * gBytes;
                    float* oj = po + j * _vg;
                    float sc = (float)_vScale[s + j], z = (float)_vZero[s + j];
                    for (int i = 0; i < _vg; i++) oj[i] += w * (z + sc * Code(cj, i, _vb));
                }
            }
            for (int t = 0; t < sunk; t++)
                TensorPrimitives.MultiplyAdd(_sinkV.AsSpan((lh * _sink + t) * hd, hd), weights[t], output, output);
            for (int t = quantized; t < count; t++)
                TensorPrimitives.MultiplyAdd(_ringV.AsSpan((lh * _ring + t % _ring) * hd, hd), weights[t], output, output);
        }
    }
}

/// <summary>The asymmetric quantizer shared by the KIVI cache and its tests.</summary>
public static class KiviMath
{
    static readonly Vector256<uint>[] s_shifts = [.. Enumerable.Range(0, 9).Select(b => Vector256.Create(0u, (uint)b, 2u * (uint)b, 3u * (uint)b, 4u * (uint)b, 5u * (uint)b, 6u * (uint)b, 7u * (uint)b))];

    internal static Vector256<uint> Shifts(int bits) => s_shifts[bits];

    /// <summary>zero = min, scale = (max − min)/(2^b − 1), both rounded to F16.</summary>
    public static void Range(ReadOnlySpan<float> x, int bits, out Half scale, out Half zero, bool clip = false)
    {
        float min = TensorPrimitives.Min(x), max = TensorPrimitives.Max(x);
        int levels = (1 << bits) - 1;
        zero = (Half)min;
        scale = (Half)((max - (float)zero) / levels);
        if (!clip || max <= min) return;
        // Clipping search: with few levels, one outlier stretches the grid for the whole group.
        // Try trimming each end by 0…30 % of the range and keep the pair with the least squared error.
        double best = SquaredError(x, scale, zero, levels);
        float range = max - min;
        for (int lo = 0; lo <= 3; lo++)
            for (int hi = 0; hi <= 3; hi++)
            {
                if (lo == 0 && hi == 0) continue;
                var z = (Half)(min + 0.1f * lo * range);
                var sc = (Half)((max - 0.1f * hi * range - (float)z) / levels);
                if ((float)sc <= 0) continue;
                double e = SquaredError(x, sc, z, levels);
                if (e < best) { best = e; scale = sc; zero = z; }
            }
    }

    static double SquaredError(ReadOnlySpan<float> x, Half scale, Half zero, int levels)
    {
        float s = (float)scale, z = (float)zero, inv = s == 0 ? 0 : 1f / s;
        double e = 0;
        foreach (float v in x)
        {
            float d = v - (z + s * Math.Clamp(MathF.Round((v - z) * inv), 0, levels));
            e += d * d;
        }
        return e;
    }

    /// <summary>Codes round((x − zero)/scale) clamped to [0, 2^b − 1], packed little-endian, code t at bit t·b.</summary>
    public static void Pack(ReadOnlySpan<float> x, Half scale, Half zero, int bits, Span<byte> dst)
    {
        dst.Clear();
        float s = (float)scale, z = (float)zero, inv = s == 0 ? 0 : 1f / s;
        int max = (1 << bits) - 1;
        for (int t = 0; t < x.Length; t++)
        {
            int c = Math.Clamp((int)MathF.Round((x[t] - z) * inv), 0, max);
            int bit = t * bits;
            // A code may straddle a byte boundary (3 bits): write both bytes it touches.
            int v = c << (bit & 7);
            dst[bit >> 3] |= (byte)v;
            if ((bit & 7) + bits > 8) dst[(bit >> 3) + 1] |= (byte)(v >> 8);
        }
    }

    /// <summary>Inverse of <see cref="Pack"/>: zero + scale·c.</summary>
    public static void Unpack(ReadOnlySpan<byte> src, Half scale, Half zero, int bits, Span<float> x)
    {
        float s = (float)scale, z = (float)zero;
        int mask = (1 << bits) - 1;
        for (int t = 0; t < x.Length; t++)
        {
            int bit = t * bits;
            int w = src[bit >> 3] | ((bit >> 3) + 1 < src.Length ? src[(bit >> 3) + 1] << 8 : 0);
            x[t] = z + s * ((w >> (bit & 7)) & mask);
        }
    }
}
