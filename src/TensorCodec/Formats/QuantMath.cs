using System.Runtime.CompilerServices;

namespace TensorCodec.Formats;

/// <summary>
/// The scale searches shared by ggml's k-quants and their importance-weighted variants.
/// Bit-exactness with ggml depends on doing every float operation in the same order and at float
/// precision (no fused multiply-add, no reassociation), so the loops below are deliberately plain.
/// </summary>
internal static class QuantMath
{
    /// <summary>Blocks whose largest magnitude is below this are treated as all zero.</summary>
    public const float GroupMaxEps = 1e-15f;

    /// <summary>
    /// Round to nearest, ties to even, via the 1.5·2^23 trick: adding it leaves the rounded
    /// integer in the low mantissa bits. Valid for |v| ≤ 2^22, which every caller guarantees.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static int NearestInt(float v)
    {
        float t = v + 12582912f;
        return (BitConverter.SingleToInt32Bits(t) & 0x007F_FFFF) - 0x0040_0000;
    }

    /// <summary>
    /// ggml's importance weights w = qw·√(σ² + x²) for one (sub-)block; returns Σw, summed in element
    /// order from zero as the k-quants' sub-block weight sums are.
    /// </summary>
    public static float ImportanceWeights(ReadOnlySpan<float> x, ReadOnlySpan<float> qw, float sigma2, Span<float> weights)
    {
        float sum = 0;
        for (int l = 0; l < x.Length; l++)
        {
            weights[l] = qw[l] * MathF.Sqrt(sigma2 + x[l] * x[l]);
            sum += weights[l];
        }
        return sum;
    }

    /// <summary>C's roundf/lroundf: halves away from zero.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static float RoundAway(float v) => MathF.Round(v, MidpointRounding.AwayFromZero);

    /// <summary>
    /// The first value of largest magnitude in x[..n] (its sign kept) and ggml's inverse scale −nmax/max that maps
    /// it to −nmax. False, with L[..n] cleared, when the group is all but zero (below <see cref="GroupMaxEps"/>).
    /// </summary>
    static bool TryInverseScaleFromExtreme(int n, int nmax, ReadOnlySpan<float> x, Span<sbyte> L, out float max, out float iscale)
    {
        max = 0;
        float amax = 0;
        for (int i = 0; i < n; i++)
        {
            float ax = MathF.Abs(x[i]);
            if (ax > amax) { amax = ax; max = x[i]; }
        }
        if (amax < GroupMaxEps)
        {
            L[..n].Clear();
            iscale = 0;
            return false;
        }
        iscale = -nmax / max;
        return true;
    }

    /// <summary>
    /// Symmetric quants L ∈ [0, 2·nmax) around an offset nmax with a signed scale (returned).
    /// rmseType 0: plain rounding from the largest magnitude; otherwise a weighted least-squares
    /// scale, then a ±0.9 sweep of the inverse scale keeping the best weighted fit. Weights are
    /// <paramref name="qw"/> if given, else x² (rmseType 1).
    /// </summary>
    public static float MakeQxQuants(int n, int nmax, ReadOnlySpan<float> x, Span<sbyte> L, int rmseType, ReadOnlySpan<float> qw)
    {
        if (!TryInverseScaleFromExtreme(n, nmax, x, L, out float max, out float iscale)) return 0f;
        if (rmseType == 0)
        {
            for (int i = 0; i < n; i++)
            {
                int l = NearestInt(iscale * x[i]);
                L[i] = (sbyte)(nmax + Math.Max(-nmax, Math.Min(nmax - 1, l)));
            }
            return 1 / iscale;
        }
        bool returnEarly = false;
        if (rmseType < 0) { rmseType = -rmseType; returnEarly = true; }
        bool hasW = !qw.IsEmpty;
        float sumlx = 0, suml2 = 0;
        for (int i = 0; i < n; i++)
        {
            int l = NearestInt(iscale * x[i]);
            l = Math.Max(-nmax, Math.Min(nmax - 1, l));
            L[i] = (sbyte)(l + nmax);
            float w = hasW ? qw[i] : Weight(rmseType, x[i]);
            sumlx += w * x[i] * l;
            suml2 += w * l * l;
        }
        float scale = suml2 != 0 ? sumlx / suml2 : 0f;
        if (returnEarly) return suml2 > 0 ? 0.5f * (scale + 1 / iscale) : 1 / iscale;
        float best = scale * sumlx;
        for (int step = -9; step <= 9; step++)
        {
            if (step == 0) continue;
            iscale = -(nmax + 0.1f * step) / max;
            sumlx = suml2 = 0;
            for (int i = 0; i < n; i++)
            {
                int l = NearestInt(iscale * x[i]);
                l = Math.Max(-nmax, Math.Min(nmax - 1, l));
                float w = hasW ? qw[i] : Weight(rmseType, x[i]);
                sumlx += w * x[i] * l;
                suml2 += w * l * l;
            }
            if (suml2 > 0 && sumlx * sumlx > best * suml2)
            {
                for (int i = 0; i < n; i++)
                {
                    int l = NearestInt(iscale * x[i]);
                    L[i] = (sbyte)(nmax + Math.Max(-nmax, Math.Min(nmax - 1, l)));
                }
                scale = sumlx / suml2;
                best = scale * sumlx;
            }
        }
        return scale;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static float Weight(int rmseType, float x) => rmseType switch
    {
        1 => x * x,
        2 => 1,
        3 => MathF.Abs(x),
        _ => MathF.Sqrt(MathF.Abs(x)),
    };

    /// <summary>
    /// q3_K's scale search: start from the largest magnitude, then (doRmse) move single quants
    /// while that improves the x²-weighted fit, up to five passes. L ends in [0, 2·nmax).
    /// </summary>
    public static float MakeQ3Quants(int n, int nmax, ReadOnlySpan<float> x, Span<sbyte> L, bool doRmse)
    {
        if (!TryInverseScaleFromExtreme(n, nmax, x, L, out float max, out float iscale)) return 0f;
        if (doRmse)
        {
            float sumlx = 0, suml2 = 0;
            for (int i = 0; i < n; i++)
            {
                int l = NearestInt(iscale * x[i]);
                l = Math.Max(-nmax, Math.Min(nmax - 1, l));
                L[i] = (sbyte)l;
                float w = x[i] * x[i];
                sumlx += w * x[i] * l;
                suml2 += w * l * l;
            }
            for (int itry = 0; itry < 5; itry++)
            {
                int changed = 0;
                for (int i = 0; i < n; i++)
                {
                    float w = x[i] * x[i];
                    float slx = sumlx - w * x[i] * L[i];
                    if (slx > 0)
                    {
                        float sl2 = suml2 - w * L[i] * L[i];
                        int newL = NearestInt(x[i] * sl2 / slx);
                        newL = Math.Max(-nmax, Math.Min(nmax - 1, newL));
                        if (newL != L[i])
                        {
                            slx += w * x[i] * newL;
                            sl2 += w * newL * newL;
                            if (sl2 > 0 && slx * slx * suml2 > sumlx * sumlx * sl2)
                            {
                                L[i] = (sbyte)newL; sumlx = slx; suml2 = sl2;
                                changed++;
                            }
                        }
                    }
                }
                if (changed == 0) break;
            }
            for (int i = 0; i < n; i++) L[i] = (sbyte)(L[i] + nmax);
            return suml2 > 0f ? sumlx / suml2 : 0f;
        }
        for (int i = 0; i < n; i++)
        {
            int l = NearestInt(iscale * x[i]);
            l = Math.Max(-nmax, Math.Min(nmax - 1, l));
            L[i] = (sbyte)(l + nmax);
        }
        return 1 / iscale;
    }

    /// <summary>
    /// Affine quants L ∈ [0, nmax] with scale (returned) and min (≤ 0, returned negated in
    /// <paramref name="theMin"/>): a sweep of nstep+1 inverse scales, each refit by weighted least
    /// squares, keeping the lowest weighted error (absolute if useMad, else squared).
    /// Null <paramref name="weights"/> means x² (the qkx3 variant; qkx2 always passes weights).
    /// </summary>
    public static float MakeQkxQuants(int n, int nmax, ReadOnlySpan<float> x, ReadOnlySpan<float> weights,
        Span<byte> L, out float theMin, Span<byte> Laux, float rmin, float rdelta, int nstep, bool useMad, bool maxLeMin)
    {
        bool hasW = !weights.IsEmpty;
        float min = x[0], max = x[0];
        float sumW = hasW ? weights[0] : x[0] * x[0];
        float sumX = sumW * x[0];
        for (int i = 1; i < n; i++)
        {
            if (x[i] < min) min = x[i];
            if (x[i] > max) max = x[i];
            float w = hasW ? weights[i] : x[i] * x[i];
            sumW += w;
            sumX += w * x[i];
        }
        if (min > 0) min = 0;
        // qkx2 tests max == min, qkx3 max <= min; they only differ for NaN input.
        if (maxLeMin ? max <= min : max == min)
        {
            L[..n].Clear();
            theMin = -min;
            return 0f;
        }
        float iscale = nmax / (max - min);
        float scale = 1 / iscale;
        float bestError = 0;
        for (int i = 0; i < n; i++)
        {
            int l = NearestInt(iscale * (x[i] - min));
            L[i] = (byte)Math.Max(0, Math.Min(nmax, l));
            float diff = scale * L[i] + min - x[i];
            diff = useMad ? MathF.Abs(diff) : diff * diff;
            float w = hasW ? weights[i] : x[i] * x[i];
            bestError += w * diff;
        }
        if (nstep < 1)
        {
            theMin = -min;
            return scale;
        }
        for (int step = 0; step <= nstep; step++)
        {
            iscale = (rmin + rdelta * step + nmax) / (max - min);
            float sumL = 0, sumL2 = 0, sumXL = 0;
            for (int i = 0; i < n; i++)
            {
                int l = NearestInt(iscale * (x[i] - min));
                l = Math.Max(0, Math.Min(nmax, l));
                Laux[i] = (byte)l;
                float w = hasW ? weights[i] : x[i] * x[i];
                sumL += w * l;
                sumL2 += w * l * l;
                sumXL += w * l * x[i];
            }
            float D = sumW * sumL2 - sumL * sumL;
            if (D > 0)
            {
                float thisScale = (sumW * sumXL - sumX * sumL) / D;
                float thisMin = (sumL2 * sumX - sumL * sumXL) / D;
                if (thisMin > 0)
                {
                    thisMin = 0;
                    thisScale = sumXL / sumL2;
                }
                float err = 0;
                for (int i = 0; i < n; i++)
                {
                    float diff = thisScale * Laux[i] + thisMin - x[i];
                    diff = useMad ? MathF.Abs(diff) : diff * diff;
                    float w = hasW ? weights[i] : x[i] * x[i];
                    err += w * diff;
                }
                if (err < bestError)
                {
                    Laux[..n].CopyTo(L);
                    bestError = err;
                    scale = thisScale;
                    min = thisMin;
                }
            }
        }
        theMin = -min;
        return scale;
    }

    public static float MakeQkx2Quants(int n, int nmax, ReadOnlySpan<float> x, ReadOnlySpan<float> weights,
        Span<byte> L, out float theMin, Span<byte> Laux, float rmin, float rdelta, int nstep, bool useMad) =>
        MakeQkxQuants(n, nmax, x, weights, L, out theMin, Laux, rmin, rdelta, nstep, useMad, maxLeMin: false);

    public static float MakeQkx3Quants(int n, int nmax, ReadOnlySpan<float> x, ReadOnlySpan<float> weights,
        Span<byte> L, out float theMin, Span<byte> Laux, float rmin, float rdelta, int nstep, bool useMad) =>
        MakeQkxQuants(n, nmax, x, weights, L, out theMin, Laux, rmin, rdelta, nstep, useMad, maxLeMin: true);

    /// <summary>
    /// Non-negative quants L ∈ [0, nmax] for a set of (sub-block) scales, weighted by
    /// <paramref name="w"/>: a ±0.4 sweep by weighted MSE, then single-quant refinement passes.
    /// </summary>
    public static float MakeQpQuants(int n, int nmax, ReadOnlySpan<float> x, Span<byte> L, ReadOnlySpan<float> w)
    {
        float max = 0;
        for (int i = 0; i < n; i++) max = Math.Max(max, x[i]);
        if (max < GroupMaxEps)
        {
            L[..n].Clear();
            return 0f;
        }
        float iscale = nmax / max;
        for (int i = 0; i < n; i++) L[i] = (byte)NearestInt(iscale * x[i]);
        float scale = 1 / iscale;
        float bestMse = 0;
        for (int i = 0; i < n; i++)
        {
            float diff = x[i] - scale * L[i];
            bestMse += w[i] * diff * diff;
        }
        for (int step = -4; step <= 4; step++)
        {
            if (step == 0) continue;
            float iscaleIs = (0.1f * step + nmax) / max;
            float scaleIs = 1 / iscaleIs;
            float mse = 0;
            for (int i = 0; i < n; i++)
            {
                int l = Math.Min(nmax, NearestInt(iscaleIs * x[i]));
                float diff = x[i] - scaleIs * l;
                mse += w[i] * diff * diff;
            }
            if (mse < bestMse) { bestMse = mse; iscale = iscaleIs; }
        }
        float sumlx = 0, suml2 = 0;
        for (int i = 0; i < n; i++)
        {
            int l = Math.Min(nmax, NearestInt(iscale * x[i]));
            L[i] = (byte)l;
            sumlx += w[i] * x[i] * l;
            suml2 += w[i] * l * l;
        }
        for (int itry = 0; itry < 5; itry++)
        {
            int changed = 0;
            for (int i = 0; i < n; i++)
            {
                float slx = sumlx - w[i] * x[i] * L[i];
                float sl2 = suml2 - w[i] * L[i] * L[i];
                if (slx > 0 && sl2 > 0)
                {
                    int newL = Math.Min(nmax, NearestInt(x[i] * sl2 / slx));
                    if (newL != L[i])
                    {
                        slx += w[i] * x[i] * newL;
                        sl2 += w[i] * newL * newL;
                        if (slx * slx * suml2 > sumlx * sumlx * sl2)
                        {
                            L[i] = (byte)newL; sumlx = slx; suml2 = sl2;
                            changed++;
                        }
                    }
                }
            }
            if (changed == 0) break;
        }
        return suml2 > 0f ? sumlx / suml2 : 0f;
    }

    /// <summary>Index of the nearest entry of a sorted table (ties go to the upper entry).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static int BestIndexInt8(ReadOnlySpan<sbyte> val, float x)
    {
        int n = val.Length;
        if (x <= val[0]) return 0;
        if (x >= val[n - 1]) return n - 1;
        int lo = 0, hi = n - 1;
        while (hi - lo > 1)
        {
            int mid = (lo + hi) / 2;
            if (x < val[mid]) hi = mid; else lo = mid;
        }
        return x - val[hi - 1] < val[hi] - x ? hi - 1 : hi;
    }

    /// <summary>k-quant 6-bit scale/min pair j from the 12-byte packed array.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void GetScaleMinK4(int j, ReadOnlySpan<byte> q, out byte d, out byte m)
    {
        if (j < 4)
        {
            d = (byte)(q[j] & 63);
            m = (byte)(q[j + 4] & 63);
        }
        else
        {
            d = (byte)((q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4));
            m = (byte)((q[j + 4] >> 4) | ((q[j] >> 6) << 4));
        }
    }

    /// <summary>Inverse of <see cref="GetScaleMinK4"/> for all eight pairs; each byte is assigned before its top bits are OR-ed in, so no pre-zeroing is needed.</summary>
    public static void PackScaleMinK4(ReadOnlySpan<byte> ls, ReadOnlySpan<byte> lm, Span<byte> scales)
    {
        for (int j = 0; j < 8; j++)
        {
            if (j < 4)
            {
                scales[j] = ls[j];
                scales[j + 4] = lm[j];
            }
            else
            {
                scales[j + 4] = (byte)((ls[j] & 0xF) | ((lm[j] & 0xF) << 4));
                scales[j - 4] |= (byte)((ls[j] >> 4) << 6);
                scales[j] |= (byte)((lm[j] >> 4) << 6);
            }
        }
    }
}
