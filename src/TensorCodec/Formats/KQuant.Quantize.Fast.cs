using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using TensorCodec.Numerics;

namespace TensorCodec.Formats;

/// <summary>
/// Vector256 quantizers for Q4_K, Q5_K and Q6_K. The scale searches (make_qkx2/qkx3_quants,
/// make_qx_quants) sum sequentially in float and carry state from one candidate scale to the
/// next (qkx moves its min after every improvement), so neither the elements nor the candidates
/// can go in lanes. The sub-blocks can: lane j runs sub-block j's search, each lane doing the
/// reference's float operations in the reference's order, and per-lane branches become selects.
/// The sub-blocks are transposed into that layout first (element i of every sub-block in one vector).
/// </summary>
internal static class KQuantQuantizeFast
{
    public static bool IsSupported => Simd.AllowAvx2 && Vector256.IsHardwareAccelerated && BitConverter.IsLittleEndian;

    /// <summary>Same result as <see cref="KQuant45.QuantizeReference"/>.</summary>
    [SkipLocalsInit]
    public static void QuantizeQ45(ReadOnlySpan<float> x, Span<byte> y, ReadOnlySpan<float> importance, int nmax, int bytes,
        float refRmin, int refNstep)
    {
        const int QK = 256;
        int nb = BlockSpans.ForQuantize(x, y, importance, QK, bytes);
        Span<Vector256<float>> xT = stackalloc Vector256<float>[32];
        Span<Vector256<float>> wT = stackalloc Vector256<float>[32];
        Span<Vector256<float>> LT = stackalloc Vector256<float>[32];
        Span<Vector256<float>> aux = stackalloc Vector256<float>[32];
        Span<byte> L = stackalloc byte[QK];
        Span<float> scales = stackalloc float[8];
        Span<float> mins = stackalloc float[8];
        Span<float> sw = stackalloc float[8];
        Span<byte> Ls = stackalloc byte[8];
        Span<byte> Lm = stackalloc byte[8];
        ref float xr = ref MemoryMarshal.GetReference(x);
        for (int i = 0; i < nb; i++)
        {
            ref float xb = ref Unsafe.Add(ref xr, i * QK);
            var yb = y.Slice(i * bytes, bytes);
            var sc = yb.Slice(4, 12);
            sc.Clear();
            Transpose8(ref xb, 32, xT);
            ushort dh, mh;
            Vector256<float> vScale, vMin;
            if (importance.IsEmpty)
            {
                // weights √(mean x²) + |x|, per sub-block; the sum of squares runs in element order per lane
                var sumX2 = Vector256<float>.Zero;
                for (int l = 0; l < 32; l++) sumX2 += xT[l] * xT[l];
                var avX = Vector256.Sqrt(sumX2 / Vector256.Create(32f));
                for (int l = 0; l < 32; l++) wT[l] = avX + Vector256.Abs(xT[l]);
                Qkx8(xT, wT, LT, aux, nmax, refRmin, 0.1f, refNstep, maxLeMin: false, out vScale, out vMin);
                vScale.CopyTo(scales);
                vMin.CopyTo(mins);
                float maxScale = 0, maxMin = 0;
                for (int j = 0; j < 8; j++)
                {
                    if (scales[j] > maxScale) maxScale = scales[j];
                    if (mins[j] > maxMin) maxMin = mins[j];
                }
                KQuant45.ScaleCodes(scales, mins, maxScale, maxMin, Ls, Lm);
                dh = Fp16Bits.FromFloat(maxScale / 63f);
                mh = Fp16Bits.FromFloat(maxMin / 63f);
            }
            else
            {
                float sumX2 = Q4_0.SumSquares(MemoryMarshal.CreateReadOnlySpan(ref xb, QK));
                var sigma2 = Vector256.Create(2 * sumX2 / QK);
                Transpose8(ref Unsafe.AsRef(in importance[i * QK]), 32, wT);
                var sumw = Vector256<float>.Zero;
                for (int l = 0; l < 32; l++)
                {
                    wT[l] *= Vector256.Sqrt(sigma2 + xT[l] * xT[l]);
                    sumw += wT[l];
                }
                sumw.CopyTo(sw);
                Qkx8(xT, wT, LT, aux, nmax, -0.9f, 0.05f, 36, maxLeMin: true, out vScale, out vMin);
                vScale.CopyTo(scales);
                vMin.CopyTo(mins);
                float dBlock = QuantMath.MakeQpQuants(8, 63, scales, Ls, sw);
                float mBlock = QuantMath.MakeQpQuants(8, 63, mins, Lm, sw);
                for (int j = 0; j < 8; j++) { Ls[j] = Math.Min((byte)63, Ls[j]); Lm[j] = Math.Min((byte)63, Lm[j]); }
                dh = Fp16Bits.FromFloat(dBlock);
                mh = Fp16Bits.FromFloat(mBlock);
            }
            // search results back to element order
            for (int l = 0; l < 32; l++)
                for (int j = 0; j < 8; j++) L[32 * j + l] = (byte)(int)LT[l].GetElement(j);
            QuantMath.PackScaleMinK4(Ls, Lm, sc);
            Unsafe.WriteUnaligned(ref yb[0], dh);
            Unsafe.WriteUnaligned(ref yb[2], mh);
            float dAll = Fp16Bits.ToFloat(dh), mAll = Fp16Bits.ToFloat(mh);
            for (int j = 0; j < 8; j++)
            {
                QuantMath.GetScaleMinK4(j, sc, out byte s, out byte m);
                float d = dAll * s;
                if (d == 0) continue;
                var vd = Vector256.Create(d);
                var vdm = Vector256.Create(mAll * m);
                for (int k = 0; k < 32; k += 8)
                {
                    var q = NearestInt((Vector256.LoadUnsafe(ref xb, (nuint)(32 * j + k)) + vdm) / vd);
                    q = Vector256.Max(Vector256<int>.Zero, Vector256.Min(Vector256.Create(nmax), q));
                    StoreBytes(q, L.Slice(32 * j + k, 8));
                }
            }
            if (nmax == 15)
            {
                var q = yb.Slice(16, 128);
                for (int j = 0; j < QK; j += 64)
                    (Vector256.Create(L.Slice(j, 32)) | Vector256.ShiftLeft(Vector256.Create(L.Slice(j + 32, 32)), 4)).CopyTo(q.Slice(j / 2, 32));
            }
            else
            {
                var qh = yb.Slice(16, 32);
                var ql = yb.Slice(48, 128);
                var acc = Vector256<byte>.Zero;
                var fifteen = Vector256.Create((byte)15);
                for (int n = 0, sh = 0; n < QK; n += 64, sh += 2)
                {
                    var l1 = Vector256.Create(L.Slice(n, 32));
                    var l2 = Vector256.Create(L.Slice(n + 32, 32));
                    // bit 4 of each quant goes to qh bit sh (first half) or sh+1 (second half)
                    acc |= Vector256.ShiftLeft(Vector256.ShiftRightLogical(l1, 4), sh) | Vector256.ShiftLeft(Vector256.ShiftRightLogical(l2, 4), sh + 1);
                    ((l1 & fifteen) | Vector256.ShiftLeft(l2 & fifteen, 4)).CopyTo(ql.Slice(n / 2, 32));
                }
                acc.CopyTo(qh);
            }
        }
    }

    /// <summary>
    /// make_qkx2_quants (maxLeMin false) / make_qkx3_quants (true) for eight sub-blocks of 32, one
    /// per lane. L comes back as floats holding the integer quants.
    /// </summary>
    private static void Qkx8(ReadOnlySpan<Vector256<float>> x, ReadOnlySpan<Vector256<float>> w, Span<Vector256<float>> L,
        Span<Vector256<float>> aux, int nmax, float rmin, float rdelta, int nstep, bool maxLeMin,
        out Vector256<float> scaleOut, out Vector256<float> theMin)
    {
        const int n = 32;
        x = x[..n]; w = w[..n]; L = L[..n]; aux = aux[..n];
        var zero = Vector256<float>.Zero;
        var min = x[0];
        var max = x[0];
        var sumW = w[0];
        var sumX = sumW * x[0];
        for (int i = 1; i < n; i++)
        {
            min = Vector256.ConditionalSelect(Vector256.LessThan(x[i], min), x[i], min);
            max = Vector256.ConditionalSelect(Vector256.GreaterThan(x[i], max), x[i], max);
            sumW += w[i];
            sumX += w[i] * x[i];
        }
        min = Vector256.ConditionalSelect(Vector256.GreaterThan(min, zero), zero, min);
        // lanes the reference returns early for; their arithmetic below is discarded
        var flat = maxLeMin ? Vector256.LessThanOrEqual(max, min) : Vector256.Equals(max, min);
        var vnmax = Vector256.Create((float)nmax);
        var inmax = Vector256.Create(nmax);
        var iscale = vnmax / (max - min);
        var scale = Vector256<float>.One / iscale;
        var bestError = zero;
        for (int i = 0; i < n; i++)
        {
            var l = Vector256.ConvertToSingle(Clamp(NearestInt(iscale * (x[i] - min)), inmax));
            L[i] = l;
            var diff = scale * l + min - x[i];
            bestError += w[i] * (diff * diff);
        }
        for (int step = 0; step <= nstep; step++)
        {
            iscale = Vector256.Create(rmin + rdelta * step + nmax) / (max - min);
            var sumL = zero;
            var sumL2 = zero;
            var sumXL = zero;
            for (int i = 0; i < n; i++)
            {
                var l = Vector256.ConvertToSingle(Clamp(NearestInt(iscale * (x[i] - min)), inmax));
                aux[i] = l;
                var wl = w[i] * l;
                sumL += wl;
                sumL2 += wl * l;
                sumXL += wl * x[i];
            }
            var D = sumW * sumL2 - sumL * sumL;
            var ok = Vector256.GreaterThan(D, zero) & ~flat;
            if (ok.ExtractMostSignificantBits() == 0) continue;
            var thisScale = (sumW * sumXL - sumX * sumL) / D;
            var thisMin = (sumL2 * sumX - sumL * sumXL) / D;
            var minPos = Vector256.GreaterThan(thisMin, zero);
            thisMin = Vector256.ConditionalSelect(minPos, zero, thisMin);
            thisScale = Vector256.ConditionalSelect(minPos, sumXL / sumL2, thisScale);
            var err = zero;
            for (int i = 0; i < n; i++)
            {
                var diff = thisScale * aux[i] + thisMin - x[i];
                err += w[i] * (diff * diff);
            }
            var win = ok & Vector256.LessThan(err, bestError);
            if (win.ExtractMostSignificantBits() == 0) continue;
            for (int i = 0; i < n; i++) L[i] = Vector256.ConditionalSelect(win, aux[i], L[i]);
            bestError = Vector256.ConditionalSelect(win, err, bestError);
            scale = Vector256.ConditionalSelect(win, thisScale, scale);
            min = Vector256.ConditionalSelect(win, thisMin, min);
        }
        if (flat.ExtractMostSignificantBits() != 0)
            for (int i = 0; i < n; i++) L[i] = Vector256.ConditionalSelect(flat, zero, L[i]);
        scaleOut = Vector256.ConditionalSelect(flat, zero, scale);
        theMin = -min;
    }

    /// <summary>Same result as <see cref="Q6_K.QuantizeReference"/>.</summary>
    [SkipLocalsInit]
    public static void QuantizeQ6(ReadOnlySpan<float> x, Span<byte> y, ReadOnlySpan<float> importance)
    {
        const int QK = 256, Bytes = 210;
        int nb = BlockSpans.ForQuantize(x, y, importance, QK, Bytes);
        Span<Vector256<float>> xT = stackalloc Vector256<float>[16];
        Span<Vector256<float>> wT = stackalloc Vector256<float>[16];
        Span<Vector256<int>> LT = stackalloc Vector256<int>[16];
        Span<Vector256<int>> aux = stackalloc Vector256<int>[16];
        Span<byte> L = stackalloc byte[QK];
        Span<float> scales = stackalloc float[16];
        ref float xr = ref MemoryMarshal.GetReference(x);
        for (int i = 0; i < nb; i++)
        {
            ref float xb = ref Unsafe.Add(ref xr, i * QK);
            var yb = y.Slice(i * Bytes, Bytes);
            for (int g = 0; g < 2; g++)
            {
                Transpose8(ref Unsafe.Add(ref xb, 128 * g), 16, xT);
                if (importance.IsEmpty)
                    for (int l = 0; l < 16; l++) wT[l] = xT[l] * xT[l];
                else
                    Transpose8(ref Unsafe.AsRef(in importance[i * QK + 128 * g]), 16, wT);
                Qx8(xT, wT, LT, aux, 32).CopyTo(scales.Slice(8 * g, 8));
                for (int l = 0; l < 16; l++)
                    for (int j = 0; j < 8; j++) L[128 * g + 16 * j + l] = (byte)LT[l].GetElement(j);
            }
            float maxScale = 0, maxAbsScale = 0;
            for (int ib = 0; ib < 16; ib++)
            {
                float abs = MathF.Abs(scales[ib]);
                if (abs > maxAbsScale) { maxAbsScale = abs; maxScale = scales[ib]; }
            }
            if (maxAbsScale < QuantMath.GroupMaxEps)
            {
                yb.Clear();
                continue;
            }
            float iscale = -128f / maxScale;
            ushort dh = Fp16Bits.FromFloat(1 / iscale);
            Unsafe.WriteUnaligned(ref yb[208], dh);
            var sc = yb.Slice(192, 16);
            for (int ib = 0; ib < 16; ib++)
                sc[ib] = (byte)(sbyte)Math.Min(127, QuantMath.NearestInt(iscale * scales[ib]));
            float dAll = Fp16Bits.ToFloat(dh);
            for (int j = 0; j < 16; j++)
            {
                float d = dAll * (sbyte)sc[j];
                if (d == 0) continue;
                var vd = Vector256.Create(d);
                for (int k = 0; k < 16; k += 8)
                {
                    var q = NearestInt(Vector256.LoadUnsafe(ref xb, (nuint)(16 * j + k)) / vd);
                    q = Vector256.Max(Vector256.Create(-32), Vector256.Min(Vector256.Create(31), q)) + Vector256.Create(32);
                    StoreBytes(q, L.Slice(16 * j + k, 8));
                }
            }
            var ql = yb[..128];
            var qh = yb.Slice(128, 64);
            var low = Vector256.Create((byte)0xF);
            for (int j = 0; j < QK; j += 128)
            {
                var q1 = Vector256.Create(L.Slice(j, 32));
                var q2 = Vector256.Create(L.Slice(j + 32, 32));
                var q3 = Vector256.Create(L.Slice(j + 64, 32));
                var q4 = Vector256.Create(L.Slice(j + 96, 32));
                ((q1 & low) | Vector256.ShiftLeft(q3 & low, 4)).CopyTo(ql.Slice(j / 2, 32));
                ((q2 & low) | Vector256.ShiftLeft(q4 & low, 4)).CopyTo(ql.Slice(j / 2 + 32, 32));
                (Vector256.ShiftRightLogical(q1, 4) | Vector256.ShiftLeft(Vector256.ShiftRightLogical(q2, 4), 2)
                    | Vector256.ShiftLeft(Vector256.ShiftRightLogical(q3, 4), 4) | Vector256.ShiftLeft(Vector256.ShiftRightLogical(q4, 4), 6))
                    .CopyTo(qh.Slice(j / 4, 32));
            }
        }
    }

    /// <summary>
    /// make_qx_quants with rmse_type 1 for eight sub-blocks of 16, one per lane; the weights are
    /// x² or the importance. Returns the scales; L gets quants offset by nmax.
    /// </summary>
    private static Vector256<float> Qx8(ReadOnlySpan<Vector256<float>> x, ReadOnlySpan<Vector256<float>> w,
        Span<Vector256<int>> L, Span<Vector256<int>> aux, int nmax)
    {
        const int n = 16;
        x = x[..n]; w = w[..n]; L = L[..n]; aux = aux[..n];
        var zero = Vector256<float>.Zero;
        var max = zero;
        var amax = zero;
        for (int i = 0; i < n; i++)
        {
            var ax = Vector256.Abs(x[i]);
            var gt = Vector256.GreaterThan(ax, amax); // first of equal magnitudes wins, as in the reference
            amax = Vector256.ConditionalSelect(gt, ax, amax);
            max = Vector256.ConditionalSelect(gt, x[i], max);
        }
        var flat = Vector256.LessThan(amax, Vector256.Create(QuantMath.GroupMaxEps));
        var lo = Vector256.Create(-nmax);
        var hi = Vector256.Create(nmax - 1);
        var off = Vector256.Create(nmax);
        var iscale = Vector256.Create((float)-nmax) / max;
        var sumlx = zero;
        var suml2 = zero;
        for (int i = 0; i < n; i++)
        {
            var li = Vector256.Max(lo, Vector256.Min(hi, NearestInt(iscale * x[i])));
            L[i] = li + off;
            var l = Vector256.ConvertToSingle(li);
            sumlx += w[i] * x[i] * l;
            suml2 += w[i] * l * l;
        }
        var scale = Vector256.ConditionalSelect(Vector256.Equals(suml2, zero), zero, sumlx / suml2);
        var best = scale * sumlx;
        for (int step = -9; step <= 9; step++)
        {
            if (step == 0) continue;
            iscale = Vector256.Create(-(nmax + 0.1f * step)) / max;
            sumlx = suml2 = zero;
            for (int i = 0; i < n; i++)
            {
                var li = Vector256.Max(lo, Vector256.Min(hi, NearestInt(iscale * x[i])));
                aux[i] = li;
                var l = Vector256.ConvertToSingle(li);
                sumlx += w[i] * x[i] * l;
                suml2 += w[i] * l * l;
            }
            var win = Vector256.GreaterThan(suml2, zero) & Vector256.GreaterThan(sumlx * sumlx, best * suml2) & ~flat;
            if (win.ExtractMostSignificantBits() == 0) continue;
            var wi = win.AsInt32();
            for (int i = 0; i < n; i++) L[i] = Vector256.ConditionalSelect(wi, aux[i] + off, L[i]);
            scale = Vector256.ConditionalSelect(win, sumlx / suml2, scale);
            best = Vector256.ConditionalSelect(win, scale * sumlx, best);
        }
        if (flat.ExtractMostSignificantBits() != 0)
            for (int i = 0; i < n; i++) L[i] = Vector256.ConditionalSelect(flat.AsInt32(), Vector256<int>.Zero, L[i]);
        return Vector256.ConditionalSelect(flat, zero, scale);
    }

    /// <summary>
    /// QuantMath.NearestInt per lane, bit for bit: the 1.5·2^23 trick, read back from the integer
    /// bits as the reference does (so even out-of-range inputs give the reference's value).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static Vector256<int> NearestInt(Vector256<float> v) =>
        ((v + Vector256.Create(12582912f)).AsInt32() & Vector256.Create(0x007F_FFFF)) - Vector256.Create(0x0040_0000);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<int> Clamp(Vector256<int> l, Vector256<int> nmax) =>
        Vector256.Max(Vector256<int>.Zero, Vector256.Min(nmax, l));

    /// <summary>Eight int32 lanes (each 0..255) to eight bytes.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void StoreBytes(Vector256<int> q, Span<byte> dst)
    {
        var s = Vector256.Narrow(q, q);
        var b = Vector256.Narrow(s, s);
        Unsafe.WriteUnaligned(ref MemoryMarshal.GetReference(dst[..8]), b.AsUInt64().GetElement(0));
    }

    /// <summary>out[l] lane j = x[stride·j + l], for l below stride: eight sub-blocks side by side.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Transpose8(ref float x, int stride, Span<Vector256<float>> dst)
    {
        dst = dst[..stride];
        ref float d = ref Unsafe.As<Vector256<float>, float>(ref MemoryMarshal.GetReference(dst));
        for (int j = 0; j < 8; j++)
            for (int l = 0; l < stride; l++)
                Unsafe.Add(ref d, 8 * l + j) = Unsafe.Add(ref x, stride * j + l);
    }
}
