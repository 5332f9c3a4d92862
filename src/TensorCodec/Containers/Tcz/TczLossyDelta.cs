using System.Buffers;
using Microsoft.Win32.SafeHandles;
using TensorCodec.Coders;
using TensorCodec.Numerics;

namespace TensorCodec.Containers.Tcz;

/// <summary>
/// The archive side of <c>--delta-lossy</c> (coding 5 of the reference section, FORMAT.md "Lossy deltas"): which
/// tensors take it, the whole-tensor low-rank factors computed when planning, and the per-chunk forward and inverse
/// steps around <see cref="LossyDelta"/>.
/// </summary>
internal static class TczLossyDelta
{
    /// <summary>The low-rank factors of one tensor's delta, rounded to F16 (rows × R and cols × R, row-major).</summary>
    internal sealed record Factors(Half[] Left, Half[] Right);

    /// <summary>Reads and checks the coding-5 fields of entry <paramref name="f"/> for segment <paramref name="s"/>.</summary>
    public static (LossyDeltaSpec Spec, int Cols) ParseEntry(ref TczIndex.IndexReader r, string f, long arg, TczSegment s, List<TczRefTensor> refs)
    {
        byte method = r.Byte(f + ".method"), bits = r.Byte(f + ".bits");
        long rank = r.Long(f + ".rank"), cols = r.Long(f + ".cols");
        if (arg >= refs.Count) r.Fail(f + ".arg", $"reference tensor {arg} out of range");
        var rt = refs[(int)arg];
        if (rt.DType != s.DType || rt.Length != s.Length) r.Fail(f + ".arg", $"reference tensor '{rt.Name}' does not match {s.Label} in dtype or length");
        if (!LossyDelta.Supports(s.DType)) r.Fail(f + ".coding", $"a lossy delta is not defined for {s.DType}");
        if (s.Shape.Length != 2 || s.Shape[1] != cols || cols < 1 || cols > int.MaxValue / 2)
            r.Fail(f + ".cols", $"{cols} columns do not match {s.Label} [{string.Join(", ", s.Shape)}] (a 2-D tensor)");
        if (s.Chunks.Any(c => c.RawLength % s.DType.ElementSize() != 0)) r.Fail(f + ".coding", $"{s.Label} is not chunked in whole values");
        LossyDeltaSpec spec = null!;
        try { spec = new LossyDeltaSpec((LossyDeltaMethod)method, bits, (int)Math.Min(rank, int.MaxValue)); }
        catch (ArgumentException e) { r.Fail(f + ".method", e.Message); }
        if (spec.Rank > Math.Min(s.Shape[0], s.Shape[1])) r.Fail(f + ".rank", $"rank {spec.Rank} exceeds min(rows, cols) of {s.Label}");
        return (spec, (int)cols);
    }

    /// <summary>
    /// True when segment <paramref name="s"/> (matched to <paramref name="rt"/> of the reference by name, shape and
    /// dtype) is a 2-D float tensor whose delta is finite and at most <see cref="LossyDelta.MaxDelta"/>; then
    /// <paramref name="factors"/> holds its low-rank factors (null for the methods without one).
    /// </summary>
    /// <exception cref="ArgumentException">The rank exceeds min(rows, cols) of the tensor (named).</exception>
    public static bool TryPlan(TczSegment s, TensorInfo rt, TczReferenceFile reference, SafeFileHandle input, string inputPath, LossyDeltaSpec spec,
        out Factors? factors)
    {
        factors = null;
        if (s.Shape.Length != 2 || !LossyDelta.Supports(s.DType) || s.Length > Array.MaxLength / 2) return false;
        int rows = (int)s.Shape[0], cols = (int)s.Shape[1];
        if (spec.Rank > Math.Min(rows, cols))
            throw new ArgumentException($"--delta-lossy {spec}: rank {spec.Rank} exceeds min(rows, cols) = {Math.Min(rows, cols)} of tensor '{s.Name}' [{rows}, {cols}]");
        var delta = Delta(s, rt, reference, input, inputPath);
        foreach (var d in delta)
            if (!(Math.Abs(d) <= LossyDelta.MaxDelta)) return false;
        if (spec.Method != LossyDeltaMethod.LowRank) return true;
        var (left, right, _) = TruncatedSvd.Factor(delta, rows, cols, spec.Rank);
        factors = new Factors(left.Select(v => (Half)v).ToArray(), right.Select(v => (Half)v).ToArray());
        return true;
    }

    /// <summary>The whole delta, target − reference, in F32.</summary>
    static float[] Delta(TczSegment s, TensorInfo rt, TczReferenceFile reference, SafeFileHandle input, string inputPath)
    {
        int n = (int)(s.Length / s.DType.ElementSize());
        var target = new byte[s.Length];
        var refBytes = new byte[s.Length];
        TczReader.ReadExactly(input, target, s.OriginalOffset, inputPath);
        reference.Read(rt, 0, refBytes);
        var t = new float[n];
        var b = new float[n];
        LossyDelta.ToFloat(target, s.DType, t);
        LossyDelta.ToFloat(refBytes, s.DType, b);
        for (int i = 0; i < n; i++) t[i] -= b[i];
        return t;
    }

    /// <summary>
    /// Writer side: <paramref name="raw"/> holds the original bytes of a chunk at <paramref name="offset"/> of the
    /// segment, <paramref name="reference"/> the reference's bytes there. Leaves the payload in <paramref name="raw"/>
    /// and the rebuilt bytes (what decompression gives back) in <paramref name="rebuilt"/>; returns the dtype to code
    /// the payload with. A chunk that does not fit its payload keeps its bytes (rebuilt = raw) and its dtype.
    /// </summary>
    public static DType Forward(TczCodingEntry e, TczSegment seg, Factors? factors, long offset, Span<byte> raw, ReadOnlySpan<byte> reference, Span<byte> rebuilt)
    {
        int w = seg.DType.ElementSize(), n = raw.Length / w;
        long first = offset / w;
        var spec = e.Lossy!;
        if (!LossyDelta.Fits(spec, e.Cols, first, n, seg.DType))
        {
            raw.CopyTo(rebuilt);
            return seg.DType;
        }
        var delta = new float[n];
        var b = new float[n];
        LossyDelta.ToFloat(raw, seg.DType, delta);
        LossyDelta.ToFloat(reference, seg.DType, b);
        for (int i = 0; i < n; i++) delta[i] -= b[i];
        ReadOnlySpan<Half> leftRows = default, right = default;
        if (factors is not null)
        {
            long r0 = first / e.Cols, r1 = (first + n - 1) / e.Cols;
            leftRows = factors.Left.AsSpan((int)(r0 * spec.Rank), (int)((r1 - r0 + 1) * spec.Rank));
            right = factors.Right;
        }
        LossyDelta.Encode(spec, e.Cols, first, delta, leftRows, right, raw);
        if (!LossyDelta.Decode(spec, e.Cols, first, raw, reference, seg.DType, rebuilt))
            throw new InvalidOperationException($"{seg.Label}: the lossy delta encoder wrote a payload its decoder refuses");
        // Scales, factors and packed codes are bytes, not values of the dtype: zstd (U8) codes them.
        return DType.U8;
    }

    /// <summary>Reader side: turns a decoded chunk of <paramref name="seg"/> back into the rebuilt values, in place.</summary>
    public static void Inverse(TczCodingEntry e, TczSegment seg, long offset, Span<byte> raw, ReadOnlySpan<byte> reference, string archive, int chunkIndex)
    {
        int w = seg.DType.ElementSize(), n = raw.Length / w;
        long first = offset / w;
        if (!LossyDelta.Fits(e.Lossy!, e.Cols, first, n, seg.DType)) return; // held verbatim
        var payload = ArrayPool<byte>.Shared.Rent(raw.Length);
        try
        {
            raw.CopyTo(payload);
            if (!LossyDelta.Decode(e.Lossy!, e.Cols, first, payload.AsSpan(0, raw.Length), reference, seg.DType, raw))
                throw new TensorFormatException(archive, seg.Chunks[chunkIndex].FileOffset, $"chunk {chunkIndex}", $"{seg.Label}, chunk {chunkIndex}: lossy delta data is malformed");
        }
        finally { ArrayPool<byte>.Shared.Return(payload); }
    }
}
