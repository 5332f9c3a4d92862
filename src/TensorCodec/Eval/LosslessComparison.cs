using System.Security.Cryptography;
using TensorCodec.Containers;
using TensorCodec.Containers.Tcz;
using ZstdSharp;

namespace TensorCodec.Eval;

/// <summary>One file's lossless result next to the baselines people use today.</summary>
/// <param name="File">File name (without folder).</param>
/// <param name="Format">Container format the file was recognised as.</param>
/// <param name="OriginalBytes">Size of the file.</param>
/// <param name="Values">Tensor values in it (0 for an opaque file).</param>
/// <param name="TczBytes">Size of its .tcz.</param>
/// <param name="BitsPerValue">.tcz bits per tensor value, headers included.</param>
/// <param name="EntropyBoundBitsPerValue">The order-0 entropy of the codec's streams per value (non-tensor bytes at their coded cost): what a perfect order-0 coder of the same streams would reach.</param>
/// <param name="Zstd3Bytes">zstd level 3 of the same bytes.</param>
/// <param name="Zstd19Bytes">zstd level 19 of the same bytes (0 when not measured).</param>
/// <param name="RoundTripExact">Decompressing the .tcz gave back the file's exact SHA-256.</param>
/// <param name="CompressSeconds">Wall time of the compression.</param>
/// <param name="DecompressSeconds">Wall time of the decompression to a file.</param>
public sealed record LosslessComparisonRow(
    string File, string Format, long OriginalBytes, long Values, long TczBytes, double BitsPerValue,
    double EntropyBoundBitsPerValue, long Zstd3Bytes, long Zstd19Bytes, bool RoundTripExact,
    double CompressSeconds, double DecompressSeconds)
{
    /// <summary>.tcz size over zstd -19 size (below 1: .tcz is smaller; 1 when zstd -19 was not measured).</summary>
    public double TczVsZstd19 => Zstd19Bytes == 0 ? 1 : (double)TczBytes / Zstd19Bytes;
}

/// <summary>
/// Compresses a file into .tcz, decompresses it again and checks the sha256, then measures
/// zstd -3 and -19 on the same bytes. This is `tcodec demo` and the ratio benchmark.
/// </summary>
public static class LosslessComparison
{
    /// <summary>Compresses <paramref name="path"/> to a temporary .tcz in <paramref name="workDir"/> (default: the temp folder), decompresses it, checks the round trip, measures zstd, and deletes both temporary files.</summary>
    /// <param name="path">The file to measure.</param>
    /// <param name="threads">Threads for .tcz compression and decompression (zstd runs on one).</param>
    /// <param name="workDir">Folder for the temporary files.</param>
    /// <param name="includeZstd19">Also measure zstd -19 (slow on large files).</param>
    /// <exception cref="TensorFormatException">The file claims a format it does not follow.</exception>
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

    internal static long ZstdSize(ReadOnlySpan<byte> data, int level)
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
