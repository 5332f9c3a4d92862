using System.Buffers;
using System.Buffers.Binary;
using System.IO.Hashing;
using System.Text;
using System.Text.RegularExpressions;
using Microsoft.Win32.SafeHandles;
using TensorCodec.Coders;
using TensorCodec.Numerics;

namespace TensorCodec.Containers.Tcz;

/// <summary>What a .tcz archive coded against a reference, or with lossy optimizer state, needs and says (FORMAT.md, "Reference and lossy segments").</summary>
public sealed class TczReferenceInfo
{
    internal TczReferenceInfo(string label, UInt128 id, int tensors, int deltaSegments, int duplicateSegments, int lossySegments,
        int lossyDeltaSegments = 0, string? lossyDelta = null)
    {
        Label = label; Id = id; Tensors = tensors; DeltaSegments = deltaSegments; DuplicateSegments = duplicateSegments; LossySegments = lossySegments;
        LossyDeltaSegments = lossyDeltaSegments; LossyDelta = lossyDelta;
    }

    /// <summary>File name of the reference at compress time (for messages; the identity is <see cref="Id"/>).</summary>
    public string Label { get; }
    /// <summary>XXH128 over the names and checksums of the reference tensors the archive uses; zero when it uses none.</summary>
    public UInt128 Id { get; }
    /// <summary>Reference tensors the archive uses (0: no reference needed).</summary>
    public int Tensors { get; }
    /// <summary>Segments coded as a delta against a reference tensor.</summary>
    public int DeltaSegments { get; }
    /// <summary>Segments identical to an earlier segment of the same file (coded as nothing but a pointer and zeros).</summary>
    public int DuplicateSegments { get; }
    /// <summary>Segments stored lossy (quantized optimizer state, or lossy deltas): decompress rebuilds them, not the original bytes.</summary>
    public int LossySegments { get; }
    /// <summary>Of <see cref="LossySegments"/>, those stored as a lossy delta against the reference (<c>--delta-lossy</c>).</summary>
    public int LossyDeltaSegments { get; }
    /// <summary>The lossy delta codings used (<see cref="LossyDeltaSpec"/> spellings, comma-separated); null when none.</summary>
    public string? LossyDelta { get; }
    /// <summary>The identity as 32 hex digits.</summary>
    public string IdHex => Id.ToString("x32");
}

/// <summary>Header flag bits of a .tcz (1.0 writes none unless a reference or lossy mode is used).</summary>
internal static class TczFlags
{
    public const uint Reference = 1, Lossy = 2, Known = Reference | Lossy;
}

/// <summary>How one segment is coded beyond the plain chunk codec.</summary>
internal enum TczCoding : byte
{
    /// <summary>Delta against reference tensor <c>Arg</c> (XOR of bit patterns).</summary>
    Xor = 1,
    /// <summary>Delta against reference tensor <c>Arg</c> (difference of sign-magnitude bit patterns).</summary>
    Sub = 2,
    /// <summary>Identical to segment <c>Arg</c> (earlier in the file): XOR against it, all zero.</summary>
    Dup = 3,
    /// <summary>Blockwise absmax quantization (lossy): <c>Bits</c>, <c>Map</c>, <c>Arg</c> = block size.</summary>
    Quantized = 4,
    /// <summary>Lossy delta against reference tensor <c>Arg</c> (<c>Lossy</c>, rows of <c>Cols</c> values; LossyDelta.cs).</summary>
    LossyDelta = 5,
}

internal readonly record struct TczCodingEntry(int Segment, TczCoding Coding, int Arg, byte Bits = 0, QuantMap Map = 0,
    LossyDeltaSpec? Lossy = null, int Cols = 0);

internal sealed record TczRefTensor(string Name, DType DType, long[] Shape, long Length, ulong Hash);

/// <summary>
/// The reference section that follows the segments in the index when header flags are set: the reference's
/// identity, the reference tensors used, and one coding entry per segment that is not coded plainly.
/// </summary>
internal sealed class TczReferenceSection
{
    public const byte Version = 1;
    public string Label = "";
    public List<TczRefTensor> RefTensors = new();
    public List<TczCodingEntry> Entries = new();

    public UInt128 Id => ComputeId(RefTensors);

    public uint Flags =>
        (RefTensors.Count > 0 ? TczFlags.Reference : 0) | (Entries.Any(e => e.Coding is TczCoding.Quantized or TczCoding.LossyDelta) ? TczFlags.Lossy : 0);

    /// <summary>XXH128 of (name UTF-8, 0x00, XXH3 of the tensor's bytes as u64 LE) for each reference tensor in order.</summary>
    static UInt128 ComputeId(List<TczRefTensor> tensors)
    {
        if (tensors.Count == 0) return UInt128.Zero;
        var h = new XxHash128();
        Span<byte> u64 = stackalloc byte[8];
        foreach (var t in tensors)
        {
            h.Append(Encoding.UTF8.GetBytes(t.Name));
            h.Append([0]);
            BinaryPrimitives.WriteUInt64LittleEndian(u64, t.Hash);
            h.Append(u64);
        }
        return h.GetCurrentHashAsUInt128();
    }

    public TczReferenceInfo Info() => new(Label, Id, RefTensors.Count,
        Entries.Count(e => e.Coding is TczCoding.Xor or TczCoding.Sub), Entries.Count(e => e.Coding == TczCoding.Dup),
        Entries.Count(e => e.Coding is TczCoding.Quantized or TczCoding.LossyDelta), Entries.Count(e => e.Coding == TczCoding.LossyDelta),
        Entries.Any(e => e.Coding == TczCoding.LossyDelta)
            ? string.Join(",", Entries.Where(e => e.Lossy is not null).Select(e => e.Lossy!.ToString()).Distinct()) : null);

    public byte[] Serialize()
    {
        var w = new ArrayBufferWriter<byte>();
        w.WriteByte(Version);
        var label = Encoding.UTF8.GetBytes(Label);
        w.WriteVarUInt((ulong)label.Length);
        w.Write(label);
        Span<byte> id = stackalloc byte[16];
        BinaryPrimitives.WriteUInt128LittleEndian(id, Id);
        w.Write(id);
        w.WriteVarUInt((ulong)RefTensors.Count);
        foreach (var t in RefTensors)
        {
            var name = Encoding.UTF8.GetBytes(t.Name);
            w.WriteVarUInt((ulong)name.Length);
            w.Write(name);
            w.WriteByte((byte)t.DType);
            w.WriteVarUInt((ulong)t.Shape.Length);
            foreach (var d in t.Shape) w.WriteVarUInt((ulong)d);
            w.WriteVarUInt((ulong)t.Length);
            w.WriteUInt64(t.Hash);
        }
        w.WriteVarUInt((ulong)Entries.Count);
        foreach (var e in Entries)
        {
            w.WriteVarUInt((ulong)e.Segment);
            w.WriteByte((byte)e.Coding);
            w.WriteVarUInt((ulong)e.Arg);
            if (e.Coding == TczCoding.Quantized) { w.WriteByte(e.Bits); w.WriteByte((byte)e.Map); }
            if (e.Coding == TczCoding.LossyDelta)
            {
                w.WriteByte((byte)e.Lossy!.Method);
                w.WriteByte((byte)e.Lossy.Bits);
                w.WriteVarUInt((ulong)e.Lossy.Rank);
                w.WriteVarUInt((ulong)e.Cols);
            }
        }
        return w.WrittenSpan.ToArray();
    }

    /// <summary>Parses and checks the section against the segments it annotates; <paramref name="flags"/> must be what it implies.</summary>
    public static TczReferenceSection Parse(ReadOnlySpan<byte> data, long fileOffset, uint flags, IReadOnlyList<TczSegment> segments, string? path)
    {
        var r = new TczIndex.IndexReader(data, fileOffset, path, "corrupt .tcz reference section: ");
        static string Name(ref TczIndex.IndexReader r, string field)
        {
            long length = r.Long(field + "_length");
            if (length > TczConstants.MaxNameBytes) r.Fail(field + "_length", $"name length {length} exceeds {TczConstants.MaxNameBytes}");
            return r.Utf8(field, (int)length);
        }
        var section = new TczReferenceSection();
        byte version = r.Byte("reference.version");
        if (version != Version) r.Fail("reference.version", $"unknown section version {version}");
        section.Label = Name(ref r, "reference.label");
        ulong idLo = r.UInt64("reference.id"), idHi = r.UInt64("reference.id");
        var id = new UInt128(idHi, idLo);
        long refCount = r.Long("reference.tensor_count");
        if (refCount > r.Remaining / 12) r.Fail("reference.tensor_count", $"count {refCount} cannot fit in the section");
        for (long i = 0; i < refCount; i++)
        {
            string f = $"reference.tensor[{i}]";
            string name = Name(ref r, f + ".name");
            var dtype = (DType)r.Byte(f + ".dtype");
            if (!Enum.IsDefined(dtype) || dtype.ElementSize() == 0) r.Fail(f + ".dtype", $"dtype {(int)dtype} cannot be a reference");
            long rank = r.Long(f + ".rank");
            if (rank > TczConstants.MaxRank) r.Fail(f + ".rank", $"rank {rank} exceeds {TczConstants.MaxRank}");
            var shape = new long[rank];
            for (int d = 0; d < rank; d++) shape[d] = r.Long($"{f}.shape[{d}]");
            long length = r.Long(f + ".length");
            ulong hash = r.UInt64(f + ".hash");
            section.RefTensors.Add(new TczRefTensor(name, dtype, shape, length, hash));
        }
        if (section.Id != id) r.Fail("reference.id", "the identity does not match the tensors listed");
        long entryCount = r.Long("reference.entry_count");
        if (entryCount > r.Remaining / 3) r.Fail("reference.entry_count", $"count {entryCount} cannot fit in the section");
        int last = -1;
        for (long i = 0; i < entryCount; i++)
        {
            string f = $"reference.entry[{i}]";
            long seg = r.Long(f + ".segment");
            if (seg <= last || seg >= segments.Count) r.Fail(f + ".segment", $"segment {seg} out of order or out of range");
            var coding = (TczCoding)r.Byte(f + ".coding");
            long arg = r.Long(f + ".arg");
            byte bits = 0; QuantMap map = 0;
            LossyDeltaSpec? lossy = null; int cols = 0;
            var s = segments[(int)seg];
            if (s.Kind != TczSegmentKind.Tensor) r.Fail(f + ".segment", $"segment {seg} is not a tensor");
            switch (coding)
            {
                case TczCoding.Xor or TczCoding.Sub:
                    if (arg >= section.RefTensors.Count) r.Fail(f + ".arg", $"reference tensor {arg} out of range");
                    var rt = section.RefTensors[(int)arg];
                    if (rt.DType != s.DType || rt.Length != s.Length) r.Fail(f + ".arg", $"reference tensor '{rt.Name}' does not match {s.Label} in dtype or length");
                    if (coding == TczCoding.Sub && !DeltaTransform.Supports(DeltaKind.Sub, s.DType)) r.Fail(f + ".coding", $"difference coding is not defined for {s.DType}");
                    break;
                case TczCoding.Dup:
                    if (arg >= seg) r.Fail(f + ".arg", $"duplicate of segment {arg}, which is not earlier");
                    var src = segments[(int)arg];
                    if (src.Length != s.Length || src.Chunks.Count != s.Chunks.Count || !src.Chunks.Select(c => c.RawLength).SequenceEqual(s.Chunks.Select(c => c.RawLength)))
                        r.Fail(f + ".arg", $"{s.Label} is not chunked like its source {src.Label}");
                    if (section.Entries.Any(e => e.Segment == arg && e.Coding == TczCoding.Dup)) r.Fail(f + ".arg", "a duplicate of a duplicate");
                    break;
                case TczCoding.Quantized:
                    bits = r.Byte(f + ".bits");
                    map = (QuantMap)r.Byte(f + ".map");
                    if (bits is not (4 or 8)) r.Fail(f + ".bits", $"{bits} bits (4 or 8)");
                    if (!Enum.IsDefined(map)) r.Fail(f + ".map", $"unknown map {(int)map}");
                    if (arg < 1 || arg > 1 << 20) r.Fail(f + ".arg", $"block size {arg} outside 1..{1 << 20}");
                    if (s.DType != DType.F32 || s.Chunks.Any(c => c.RawLength % 4 != 0)) r.Fail(f + ".coding", $"{s.Label} is not F32 in whole values");
                    break;
                case TczCoding.LossyDelta:
                    (lossy, cols) = TczLossyDelta.ParseEntry(ref r, f, arg, s, section.RefTensors);
                    break;
                default: r.Fail(f + ".coding", $"unknown coding {(int)coding}"); break;
            }
            section.Entries.Add(new TczCodingEntry((int)seg, coding, (int)arg, bits, map, lossy, cols));
            last = (int)seg;
        }
        if (!r.AtEnd) r.Fail("reference", $"{r.Remaining} unexpected bytes after the last entry");
        if (section.Flags != flags) r.Fail("flags", $"header flags 0x{flags:X} do not match the section (0x{section.Flags:X})");
        return section;
    }
}

/// <summary>A reference file opened for delta coding: its tensors by name, read by offset.</summary>
internal sealed class TczReferenceFile : IDisposable
{
    readonly SafeFileHandle _handle;
    readonly Dictionary<string, TensorInfo> _tensors;
    public string Path { get; }
    public string Label => System.IO.Path.GetFileName(Path);

    public TczReferenceFile(string path)
    {
        Path = path;
        if (IsTcz(path))
            throw new TensorFormatException(path, 0, null, "a reference must be a tensor file (safetensors, GGUF, llama2.c), not a .tcz archive; decompress it first");
        var layout = TensorFileReader.Open(path);
        _tensors = new Dictionary<string, TensorInfo>(StringComparer.Ordinal);
        foreach (var t in layout.Tensors) _tensors.TryAdd(t.Name, t);
        _handle = File.OpenHandle(path, FileMode.Open, FileAccess.Read, FileShare.Read);
    }

    static bool IsTcz(string path)
    {
        using var f = File.OpenHandle(path, FileMode.Open, FileAccess.Read, FileShare.Read);
        Span<byte> head = stackalloc byte[8];
        return RandomAccess.Read(f, head, 0) == 8 && TczReader.HasMagic(head);
    }

    public TensorInfo? Find(string name) => _tensors.GetValueOrDefault(name);

    public void Read(TensorInfo t, long offset, Span<byte> destination) => TczReader.ReadExactly(_handle, destination, t.Offset + offset, Path);

    /// <summary>XXH3 of a tensor's bytes, read a MiB at a time.</summary>
    public ulong Hash(TensorInfo t)
    {
        var h = new XxHash3();
        var buf = ArrayPool<byte>.Shared.Rent(1 << 20);
        try
        {
            for (long o = 0; o < t.Length; o += 1 << 20)
            {
                var span = buf.AsSpan(0, (int)Math.Min(1 << 20, t.Length - o));
                Read(t, o, span);
                h.Append(span);
            }
        }
        finally { ArrayPool<byte>.Shared.Return(buf); }
        return h.GetCurrentHashAsUInt64();
    }

    public void Dispose() => _handle.Dispose();
}

/// <summary>
/// The per-segment codings of one archive, for the writer (forward, on the reading thread) and the reader
/// (inverse, on the decoding workers). The chunk codec itself is unchanged: a coded segment's chunks hold the
/// transformed bytes, while every raw hash (and the whole-file hash) covers what decompression gives back.
/// </summary>
internal sealed class TczSegmentCoder : IDisposable
{
    readonly TczReferenceSection _section;
    readonly Dictionary<int, TczCodingEntry> _bySegment;
    readonly TensorInfo?[] _refInfo;
    readonly TczReferenceFile? _reference;
    readonly IReadOnlyList<TczSegment> _segments;
    readonly Dictionary<TczSegment, int> _segmentIndex;
    readonly Dictionary<int, TczLossyDelta.Factors> _factors = new();
    bool _ownsReference;

    TczSegmentCoder(TczReferenceSection section, IReadOnlyList<TczSegment> segments, TczReferenceFile? reference)
    {
        _section = section;
        _segments = segments;
        _reference = reference;
        _bySegment = section.Entries.ToDictionary(e => e.Segment);
        _segmentIndex = new Dictionary<TczSegment, int>(ReferenceEqualityComparer.Instance);
        for (int i = 0; i < segments.Count; i++) _segmentIndex[segments[i]] = i;
        _refInfo = section.RefTensors.Select(t => reference?.Find(t.Name)).ToArray();
    }

    public TczReferenceSection Section => _section;

    public static readonly string[] DefaultOptimizerPatterns = ["optimizer.*.exp_avg", "optimizer.*.exp_avg_sq"];

    /// <summary>Glob (only * is special, matching any run of characters) to a whole-name regex.</summary>
    static Regex Glob(string pattern) =>
        new("^" + string.Join(".*", pattern.Split('*').Select(Regex.Escape)) + "$", RegexOptions.CultureInvariant);

    /// <summary>
    /// Decides how each segment of the input is coded: quantized when lossy optimizer bits are asked for and
    /// the name matches; otherwise, against the reference tensor of the same name, shape and dtype (the delta
    /// chosen per tensor kind, as measured in BENCHMARKS.md); otherwise a duplicate of an earlier identical
    /// tensor; otherwise plainly. Returns null when nothing is coded specially (the archive is then plain 1.0).
    /// </summary>
    public static TczSegmentCoder? Plan(IReadOnlyList<TczSegment> segments, SafeFileHandle input, string inputPath, TczCompressOptions options)
    {
        if (options.DeltaLossy is not null && options.Reference is null) throw new ArgumentException($"{inputPath}: --delta-lossy {options.DeltaLossy} needs a reference (--ref)");
        if (options.Reference is null && options.OptimizerBits == 0) return null;
        if (options.OptimizerBits is not (0 or 4 or 8)) throw new ArgumentOutOfRangeException(nameof(options), $"optimizer bits {options.OptimizerBits}: 4 or 8 (0 = lossless)");
        var reference = options.Reference is null ? null : new TczReferenceFile(options.Reference);
        try
        {
            var section = new TczReferenceSection { Label = reference?.Label ?? "" };
            var patterns = (options.OptimizerPatterns is { Count: > 0 } p ? p : DefaultOptimizerPatterns).Select(Glob).ToArray();
            var seen = new Dictionary<UInt128, int>();
            var refIndex = new Dictionary<string, int>(StringComparer.Ordinal);
            var factors = new Dictionary<int, TczLossyDelta.Factors>();
            int RefTensor(TensorInfo rt)
            {
                if (!refIndex.TryGetValue(rt.Name, out int ri))
                {
                    ri = section.RefTensors.Count;
                    refIndex[rt.Name] = ri;
                    section.RefTensors.Add(new TczRefTensor(rt.Name, rt.DType, rt.Shape, rt.Length, reference!.Hash(rt)));
                }
                return ri;
            }
            for (int i = 0; i < segments.Count; i++)
            {
                var s = segments[i];
                if (s.Kind != TczSegmentKind.Tensor || s.Length == 0) continue;
                if (options.OptimizerBits != 0 && s.DType == DType.F32 && s.Length >= 4 * OptimizerBlock(options.OptimizerBits)
                    && patterns.Any(r => r.IsMatch(s.Name)) && Scan(input, s, inputPath) is { Finite: true } scan)
                {
                    var map = !scan.NonNegative ? QuantMap.SignedDynamic : options.OptimizerBits == 8 ? QuantMap.UnsignedDynamic : QuantMap.UnsignedLinear;
                    section.Entries.Add(new TczCodingEntry(i, TczCoding.Quantized, OptimizerBlock(options.OptimizerBits), (byte)options.OptimizerBits, map));
                    continue;
                }
                var match = reference?.Find(s.Name) is { } m && m.DType == s.DType && m.Length == s.Length && m.Shape.SequenceEqual(s.Shape) ? m : null;
                if (match is not null && options.DeltaLossy is { } spec
                    && TczLossyDelta.TryPlan(s, match, reference!, input, inputPath, spec, out var f))
                {
                    section.Entries.Add(new TczCodingEntry(i, TczCoding.LossyDelta, RefTensor(match), Lossy: spec, Cols: (int)s.Shape[1]));
                    if (f is not null) factors[i] = f;
                    continue;
                }
                if (match is not null && ChooseDelta(s) is var kind and not DeltaKind.None)
                {
                    section.Entries.Add(new TczCodingEntry(i, kind == DeltaKind.Sub ? TczCoding.Sub : TczCoding.Xor, RefTensor(match)));
                    continue;
                }
                // Dedup within the file: a later identical tensor (same dtype and length) codes as zeros against the first.
                var h = HashSegment(input, s, inputPath);
                if (seen.TryGetValue(h, out int first) && segments[first].DType == s.DType && segments[first].Length == s.Length
                    && SameBytes(input, segments[first], s, inputPath))
                    section.Entries.Add(new TczCodingEntry(i, TczCoding.Dup, first));
                else seen.TryAdd(h, i);
            }
            if (section.Entries.Count == 0) { reference?.Dispose(); return null; }
            var coder = new TczSegmentCoder(section, segments, reference) { _ownsReference = true };
            foreach (var (seg, f) in factors) coder._factors[seg] = f;
            return coder;
        }
        catch
        {
            reference?.Dispose();
            throw;
        }
    }

    static int OptimizerBlock(int bits) => bits == 8 ? 256 : 128;

    /// <summary>The delta that pays for a tensor, by measurement (BENCHMARKS.md, "Checkpoints and fine-tunes"): the
    /// sign-magnitude difference for weights and second moments; the first moment changes too much in ten steps
    /// for any delta to pay (its XOR is larger than the tensor alone), so it is coded alone.</summary>
    static DeltaKind ChooseDelta(TczSegment s)
    {
        if (s.Name.EndsWith(".exp_avg", StringComparison.Ordinal)) return DeltaKind.None;
        return DeltaTransform.Supports(DeltaKind.Sub, s.DType) ? DeltaKind.Sub : DeltaKind.Xor;
    }

    readonly record struct ScanResult(bool Finite, bool NonNegative);

    static ScanResult Scan(SafeFileHandle input, TczSegment s, string path)
    {
        bool finite = true, nonNeg = true;
        ForEachBlock(input, s, path, span =>
        {
            for (int i = 0; i + 4 <= span.Length; i += 4)
            {
                float v = BinaryPrimitives.ReadSingleLittleEndian(span[i..]);
                if (!float.IsFinite(v)) finite = false;
                if (float.IsNegative(v)) nonNeg = false;
            }
        });
        return new ScanResult(finite, nonNeg);
    }

    delegate void SpanAction(ReadOnlySpan<byte> span);

    static void ForEachBlock(SafeFileHandle input, TczSegment s, string path, SpanAction action)
    {
        var buf = ArrayPool<byte>.Shared.Rent(1 << 20);
        try
        {
            for (long o = 0; o < s.Length; o += 1 << 20)
            {
                var span = buf.AsSpan(0, (int)Math.Min(1 << 20, s.Length - o));
                TczReader.ReadExactly(input, span, s.OriginalOffset + o, path);
                action(span);
            }
        }
        finally { ArrayPool<byte>.Shared.Return(buf); }
    }

    static UInt128 HashSegment(SafeFileHandle input, TczSegment s, string path)
    {
        var h = new XxHash128();
        ForEachBlock(input, s, path, span => h.Append(span));
        return h.GetCurrentHashAsUInt128();
    }

    static bool SameBytes(SafeFileHandle input, TczSegment a, TczSegment b, string path)
    {
        var other = ArrayPool<byte>.Shared.Rent(1 << 20);
        try
        {
            long o = 0;
            bool same = true;
            ForEachBlock(input, b, path, span =>
            {
                if (!same) return;
                var mine = other.AsSpan(0, span.Length);
                TczReader.ReadExactly(input, mine, a.OriginalOffset + o, path);
                same = span.SequenceEqual(mine);
                o += span.Length;
            });
            return same;
        }
        finally { ArrayPool<byte>.Shared.Return(other); }
    }

    /// <summary>
    /// Writer side, on the reading thread: <paramref name="raw"/> holds the original bytes of segment
    /// <paramref name="segment"/> at <paramref name="offset"/> within it. Leaves in <paramref name="raw"/> the bytes to code,
    /// appends to <paramref name="fileHash"/> what decompression will give back, and returns their hash and the dtype to code with.
    /// <paramref name="scratch"/> is at least as long as <paramref name="raw"/>.
    /// </summary>
    public DType Forward(int segment, long offset, Span<byte> raw, Span<byte> scratch, SafeFileHandle input, string inputPath, XxHash3 fileHash, out ulong rawHash)
    {
        var seg = _segments[segment];
        if (!_bySegment.TryGetValue(segment, out var e))
        {
            fileHash.Append(raw);
            rawHash = TczHash.Of(raw);
            return seg.DType;
        }
        var other = scratch[..raw.Length];
        switch (e.Coding)
        {
            case TczCoding.Quantized:
                BlockQuantizer.Encode(raw, other, e.Map, e.Bits, e.Arg);
                BlockQuantizer.Decode(other, raw, e.Map, e.Bits, e.Arg);
                fileHash.Append(raw);
                rawHash = TczHash.Of(raw);
                other.CopyTo(raw);
                // Codes and block maxima are bytes, not floats: zstd (U8) codes them.
                return DType.U8;
            case TczCoding.LossyDelta:
            {
                _reference!.Read(_refInfo[e.Arg]!, offset, other);
                var rebuilt = ArrayPool<byte>.Shared.Rent(raw.Length);
                try
                {
                    var r = rebuilt.AsSpan(0, raw.Length);
                    var dtype = TczLossyDelta.Forward(e, seg, _factors.GetValueOrDefault(segment), offset, raw, other, r);
                    fileHash.Append(r);
                    rawHash = TczHash.Of(r);
                    return dtype;
                }
                finally { ArrayPool<byte>.Shared.Return(rebuilt); }
            }
            case TczCoding.Dup:
                fileHash.Append(raw);
                rawHash = TczHash.Of(raw);
                TczReader.ReadExactly(input, other, _segments[e.Arg].OriginalOffset + offset, inputPath);
                DeltaTransform.Forward(DeltaKind.Xor, 1, raw, other);
                return seg.DType;
            default:
                fileHash.Append(raw);
                rawHash = TczHash.Of(raw);
                _reference!.Read(_refInfo[e.Arg]!, offset, other);
                var kind = e.Coding == TczCoding.Sub ? DeltaKind.Sub : DeltaKind.Xor;
                DeltaTransform.Forward(kind, seg.DType.ElementSize(), raw, other);
                return DeltaTransform.CodedDType(kind, seg.DType);
        }
    }

    /// <summary>True when segment <paramref name="seg"/> needs an inverse step after chunk decoding.</summary>
    public bool Applies(TczSegment seg) => _segmentIndex.TryGetValue(seg, out int i) && _bySegment.ContainsKey(i);

    /// <summary>Reader side: turns decoded chunk bytes of <paramref name="seg"/> back into what the raw hash covers.</summary>
    public void Inverse(TczReader reader, TczSegment seg, int chunkIndex, Span<byte> raw)
    {
        if (!_segmentIndex.TryGetValue(seg, out int si) || !_bySegment.TryGetValue(si, out var e)) return;
        long offset = seg.Chunks[chunkIndex].OriginalOffset - seg.OriginalOffset;
        var buf = ArrayPool<byte>.Shared.Rent(Math.Max(1, raw.Length));
        try
        {
            var other = buf.AsSpan(0, raw.Length);
            switch (e.Coding)
            {
                case TczCoding.Quantized:
                    if (!BlockQuantizer.IsWellFormed(raw, e.Bits, e.Arg))
                        throw new TensorFormatException(reader.Path, seg.Chunks[chunkIndex].FileOffset, $"chunk {chunkIndex}", $"{seg.Label}, chunk {chunkIndex}: quantized block data is malformed");
                    raw.CopyTo(other);
                    BlockQuantizer.Decode(other, raw, e.Map, e.Bits, e.Arg);
                    break;
                case TczCoding.LossyDelta:
                    if (_reference is null) throw MissingReference(reader.Path);
                    _reference.Read(_refInfo[e.Arg]!, offset, other);
                    TczLossyDelta.Inverse(e, seg, offset, raw, other, reader.Path, chunkIndex);
                    break;
                case TczCoding.Dup:
                    var src = _segments[e.Arg];
                    var enc = ArrayPool<byte>.Shared.Rent(src.Chunks[chunkIndex].EncodedLength);
                    try
                    {
                        using var decoder = new ChunkDecoder();
                        reader.DecodeChunk(src, chunkIndex, decoder, enc, other);
                    }
                    finally { ArrayPool<byte>.Shared.Return(enc); }
                    DeltaTransform.Inverse(DeltaKind.Xor, 1, raw, other);
                    break;
                default:
                    if (_reference is null) throw MissingReference(reader.Path);
                    _reference.Read(_refInfo[e.Arg]!, offset, other);
                    DeltaTransform.Inverse(e.Coding == TczCoding.Sub ? DeltaKind.Sub : DeltaKind.Xor, seg.DType.ElementSize(), raw, other);
                    break;
            }
        }
        finally { ArrayPool<byte>.Shared.Return(buf); }
    }

    public bool NeedsReference => _section.RefTensors.Count > 0;
    public bool HasReference => _reference is not null;

    public TensorFormatException MissingReference(string archive) =>
        new(archive, null, "reference", $"coded against reference '{_section.Label}' (id {_section.Id:x32}, {_section.RefTensors.Count} tensors): give it with --ref");

    /// <summary>Reader side: the coder of an archive's section, with <paramref name="referencePath"/> checked to be its reference
    /// (every tensor it uses present with the same dtype, shape, length and checksum), or without a reference.</summary>
    public static TczSegmentCoder ForReader(TczReferenceSection section, IReadOnlyList<TczSegment> segments, string archive, string? referencePath)
    {
        if (referencePath is null) return new TczSegmentCoder(section, segments, null);
        var file = new TczReferenceFile(referencePath);
        try
        {
            foreach (var t in section.RefTensors)
            {
                var found = file.Find(t.Name);
                string? why = found is null ? "is missing"
                    : found.DType != t.DType || found.Length != t.Length || !found.Shape.SequenceEqual(t.Shape) ? $"is {found.DType} [{string.Join(", ", found.Shape)}], the archive used {t.DType} [{string.Join(", ", t.Shape)}]"
                    : file.Hash(found) != t.Hash ? "has different bytes" : null;
                if (why is not null)
                    throw new TensorFormatException(referencePath, found?.Offset, t.Name,
                        $"not the reference {System.IO.Path.GetFileName(archive)} was coded against ('{section.Label}', id {section.Id:x32}): tensor '{t.Name}' {why}");
            }
            return new TczSegmentCoder(section, segments, file) { _ownsReference = true };
        }
        catch
        {
            file.Dispose();
            throw;
        }
    }

    public void Dispose()
    {
        if (_ownsReference) _reference?.Dispose();
    }
}
