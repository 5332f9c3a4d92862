using System.Security.Cryptography;
using TensorCodec.Containers;
using TensorCodec.Containers.Tcz;
using ZstdSharp;

namespace TensorCodec.Eval;

/// <summary>One file's lossless result next to the baselines people use today.</summary>
public sealed record LosslessComparisonRow(
    string File, string Format, long OriginalBytes, long Values, long TczBytes, double BitsPerValue,
    double EntropyBoundBitsPerValue, long Zstd3Bytes, long Zstd19Bytes, bool RoundTripExact,
    double CompressSeconds, double DecompressSeconds)
{
    public double TczVsZstd19 => Zstd19Bytes == 0 ? 1 : (double)TczBytes / Zstd19Bytes;
}

/// <summary>
/// Compresses a file into .tcz, decompresses it again and checks the sha256, then measures
/// zstd -3 and -19 on the same bytes. This is `tcodec demo` and the ratio benchmark.
/// </summary>
public static class LosslessComparison
{
    public static LosslessComparisonRow Run(string path, int threads = 1, string? workDir = null, bool includeZstd19 = true)
    {
        workDir ??= System.IO.Path.GetTempPath();
        var tcz = System.IO.Path.Combine(workDir, $"tcodec-{Guid.NewGuid():N}.tcz");
        var back = tcz + ".out";
        try
        {
            var sw = System.Diagnostics.Stopwatch.StartNew();
            var result = TczWriter.CompressFile(path, tcz, overwrite: false, new TczCompressOptions { Threads = threads, CollectStatistics = true });
            double compressSeconds = sw.Elapsed.TotalSeconds;
            sw.Restart();
            using (var reader = TczReader.Open(tcz)) reader.DecompressToFile(back, overwrite: false, threads);
            double decompressSeconds = sw.Elapsed.TotalSeconds;

            var tensors = result.Segments.Where(s => s.Segment.Kind == TczSegmentKind.Tensor).ToList();
            long values = tensors.Sum(s => s.Segment.ElementCount);
            // The bound counts tensor streams at their order-0 entropy; non-tensor bytes (headers)
            // count at what they actually cost, as no float model applies to them.
            double bound = result.Segments.Sum(s => s.Segment.Kind == TczSegmentKind.Tensor
                ? s.Stats.Streams.Sum(x => x.Order0EntropyBits) : s.Segment.EncodedLength * 8.0);
            // One read of the original serves both the sha256 check and the zstd baselines.
            var bytes = File.ReadAllBytes(path);
            bool exact = SHA256.HashData(bytes).SequenceEqual(Sha256(back));
            long z3 = ZstdSize(bytes, 3);
            long z19 = includeZstd19 ? ZstdSize(bytes, 19) : 0;
            long v = Math.Max(1, values);
            return new LosslessComparisonRow(
                System.IO.Path.GetFileName(path), result.Format.ToString(), result.OriginalBytes, values, result.CompressedBytes,
                result.CompressedBytes * 8.0 / v, bound / v, z3, z19, exact, compressSeconds, decompressSeconds);
        }
        finally
        {
            File.Delete(tcz);
            File.Delete(back);
        }
    }

    public static long ZstdSize(ReadOnlySpan<byte> data, int level)
    {
        using var compressor = new Compressor(level);
        return compressor.Wrap(data).Length;
    }

    static byte[] Sha256(string path)
    {
        using var fs = File.OpenRead(path);
        return SHA256.HashData(fs);
    }
}
