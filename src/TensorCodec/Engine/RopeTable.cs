using TensorCodec.Models;

namespace TensorCodec.Engine;

/// <summary>
/// Rotary-embedding angles of a session, computed once: cos and sin of p·θ^(−2i/headDim) in
/// float32, as llama2.c and PyTorch compute them (so positions far from 0 agree). Scaled RoPE divides
/// frequency i by a factor (Llama 3, llama.cpp's rope_freqs) and multiplies positions by a scale
/// (linear). <see cref="RopeStyle.HalfSplit"/> is llama.cpp's NEOX mode (pairs i, i + headDim/2). Stored
/// frequency-major, [i][position], so a cache can load 8 consecutive positions of one pair.
/// </summary>
internal sealed class RopeTable
{
    readonly float[] _cos, _sin;

    /// <summary>A session's table for <paramref name="c"/>: its pairing, base, head size and scaling.</summary>
    public static RopeTable For(ModelConfig c, int positions) =>
        new(c.Rope, c.RopeTheta, c.HeadDim, positions, c.FrequencyFactors(), c.RopePositionScale);

    public RopeStyle Style { get; }
    public int HeadDim { get; }
    public int Positions { get; }

    public RopeTable(RopeStyle style, float theta, int headDim, int positions, float[]? freqFactors = null, float positionScale = 1f)
    {
        Style = style; HeadDim = headDim; Positions = positions;
        int half = headDim / 2;
        if (freqFactors is not null && freqFactors.Length != half)
            throw new ArgumentException($"{freqFactors.Length} RoPE frequency factors for {half} pairs", nameof(freqFactors));
        _cos = new float[half * positions]; _sin = new float[half * positions];
        for (int i = 0; i < half; i++)
        {
            float invFreq = 1f / MathF.Pow(theta, 2 * i / (float)headDim);
            if (freqFactors is not null) invFreq /= freqFactors[i];
            for (int p = 0; p < positions; p++)
            {
                // Unscaled tables keep the exact p·invFreq product the golden logits were made with.
                float angle = positionScale == 1f ? p * invFreq : p * positionScale * invFreq;
                _cos[i * positions + p] = MathF.Cos(angle);
                _sin[i * positions + p] = MathF.Sin(angle);
            }
        }
    }

    /// <summary>Channels (a, b) of rotated pair <paramref name="i"/>.</summary>
    public (int A, int B) Pair(int i) => Style == RopeStyle.AdjacentPairs ? (2 * i, 2 * i + 1) : (i, i + HeadDim / 2);

    /// <summary>cos of pair <paramref name="i"/> at positions from <paramref name="position"/> on.</summary>
    public ReadOnlySpan<float> Cos(int i, int position) => _cos.AsSpan(i * Positions + position);

    /// <summary>sin of pair <paramref name="i"/> at positions from <paramref name="position"/> on.</summary>
    public ReadOnlySpan<float> Sin(int i, int position) => _sin.AsSpan(i * Positions + position);

    /// <summary>The raw tables, [i·Positions + position], for kernels that pin them once.</summary>
    internal float[] CosTable => _cos;
    internal float[] SinTable => _sin;

    internal float CosAt(int i, int position) => _cos[i * Positions + position];
    internal float SinAt(int i, int position) => _sin[i * Positions + position];

    /// <summary>Rotates each head of <paramref name="v"/> (a q or k row) by the angles of <paramref name="position"/>.</summary>
    public void Apply(Span<float> v, int position)
    {
        int hd = HeadDim, half = hd / 2;
        for (int h = 0; h < v.Length; h += hd)
        {
            var head = v.Slice(h, hd);
            for (int i = 0; i < half; i++)
            {
                var (ia, ib) = Pair(i);
                float a = head[ia], b = head[ib], c = _cos[i * Positions + position], s = _sin[i * Positions + position];
                head[ia] = a * c - b * s;
                head[ib] = a * s + b * c;
            }
        }
    }
}
