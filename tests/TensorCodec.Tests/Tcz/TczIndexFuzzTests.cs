using TensorCodec.Containers.Tcz;

namespace TensorCodec.Tests.Tcz;

/// <summary>
/// The index hash normally stops damaged indexes before parsing; this drives the parser directly
/// with mutated indexes, as a crafted file with a recomputed hash would. Only
/// TensorFormatException may come out. Run long with TCODEC_FUZZ_ITERATIONS=1000000.
/// </summary>
public class TczIndexFuzzTests
{
    [Fact]
    public void MutatedIndexesAreRefusedCleanly()
    {
        using var dir = new ScratchDir();
        var tcz = dir.File("m.tcz");
        TczWriter.CompressFile(TestFiles.Sample("stories260K.bin"), tcz, false, new TczCompressOptions { ChunkSize = 32 * 1024 });
        var file = File.ReadAllBytes(tcz);
        long indexOffset = BitConverter.ToInt64(file, file.Length - 32);
        var index = file.AsSpan((int)indexOffset, file.Length - 32 - (int)indexOffset).ToArray();
        TczIndex.Parse(index, indexOffset, indexOffset, tcz); // the unmutated index parses

        int iterations = int.TryParse(Environment.GetEnvironmentVariable("TCODEC_FUZZ_ITERATIONS"), out var n) ? n : 3000;
        var rng = new Random(12345);
        int truncations = 0, truncationsRefused = 0;
        for (int it = 0; it < iterations; it++)
        {
            var bad = (byte[])index.Clone();
            switch (rng.Next(4))
            {
                case 0: bad[rng.Next(bad.Length)] ^= (byte)(1 << rng.Next(8)); break;
                case 1: bad[rng.Next(bad.Length)] = (byte)rng.Next(256); break;
                case 2: bad = bad.AsSpan(0, rng.Next(bad.Length)).ToArray(); truncations++; break;
                default: // a run of 0xFF makes huge varints and counts
                    int at = rng.Next(bad.Length);
                    for (int k = at; k < Math.Min(bad.Length, at + 1 + rng.Next(10)); k++) bad[k] = 0xFF;
                    break;
            }
            try { TczIndex.Parse(bad, indexOffset, indexOffset, tcz); }
            catch (TensorFormatException e)
            {
                Assert.Contains("m.tcz", e.Message);
                if (bad.Length < index.Length) truncationsRefused++;
            }
        }
        // Flips inside stored hashes parse fine (the chunk checks catch them later), but a cut
        // index can never describe the whole file.
        Assert.Equal(truncations, truncationsRefused);
    }
}
