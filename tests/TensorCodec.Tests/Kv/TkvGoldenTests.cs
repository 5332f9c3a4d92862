using System.Security.Cryptography;
using TensorCodec.Containers.Tkv;

namespace TensorCodec.Tests.Kv;

/// <summary>
/// Pins the bytes of .tkv files written from a synthetic context (no model run, so the bytes do
/// not depend on the machine's SIMD width): the container's layout, the section quantizer, the
/// delta coding and the entropy coder must keep producing these files exactly.
/// </summary>
public class TkvGoldenTests
{
    internal const int Layers = 3, KvHeads = 2, HeadDim = 16, Vocab = 50, TokenCount = 41;

    /// <summary>Deterministic keys/values with the features that matter: an outlier channel, a constant channel, exact zeros and −0.</summary>
    internal static (int[] Tokens, byte[] ModelId, float[][] Keys, float[][] Values) Synthetic()
    {
        var rng = new Random(8);
        int kvDim = KvHeads * HeadDim, positions = TokenCount - 1;
        var tokens = Enumerable.Range(0, TokenCount).Select(_ => rng.Next(Vocab)).ToArray();
        var id = Enumerable.Range(0, 16).Select(i => (byte)(i * 37 + 11)).ToArray();
        float[][] Make(float outlier) => Enumerable.Range(0, Layers).Select(l =>
        {
            var x = new float[positions * kvDim];
            for (int p = 0; p < positions; p++)
                for (int c = 0; c < kvDim; c++)
                    x[p * kvDim + c] = c switch
                    {
                        5 => 0.75f,                                   // constant channel: scale 0
                        7 => p % 3 == 0 ? -0f : 0f,                   // signed zeros
                        _ => (float)((rng.NextDouble() * 2 - 1) * (c % 11 == 3 ? outlier : 1) + 0.125 * (c % 5) + 0.01 * l),
                    };
            return x;
        }).ToArray();
        return (tokens, id, Make(9), Make(1));
    }

    public static TheoryData<string, string> Golden => new()
    {
        { "f32", "559e6d9dadd0ba5cccb10bb156dc15dca06c83b86d3614faf07b3c2e2317ab8e:26458" },
        { "f16", "8ad96c4793fce9983c07d3a36dc4751bf072d0c4a6e05b1f1d6f28bd7db496c5:13633" },
        { "q8", "e25630eb524ba55d32cb02f1a4d0d1413c765a7217f7459cf7a896a26317bbb3:8960" },
        { "q4", "ff4099b84deadeaa09f355eafe7b94c6608a75a52306c3e2225f7c2744015c8b:5507" },
        { "q1", "9fc10395a829f10abb19914db256103f7e6d9d24363b7311c64eada4d4a6ac12:3008" },
        { "q4:k=4,v=3", "a3b69de3e3b48bc87f274823be3d0ed6ec7751977ef8bad5c7c0c661bdf73f83:5064" },
        { "q3:kl=4/3/5,vl=2/3/8", "63cca9b3826be8fa8d5604a7c46d948e60d7d70fa57b41e664bd50f9762291a0:5633" },
        { "q4:delta=anchor,anchor=8", "22bad8ca00ce58952b82f82c410fcadd66cb1a508269b94286419d6f7ab808b6:6127" },
        { "q5:delta=prev", "6643ce9085e19d24c0d3d9919175fe51616679624f3350572cbcd25c7f747ea1:7137" },
    };

    static byte[] Write(string codec)
    {
        var (tokens, id, keys, values) = Synthetic();
        var ms = new MemoryStream();
        var stats = TkvWriter.Write(ms, new TkvHeader(id, Layers, KvHeads, HeadDim, Vocab, tokens, KvCodecSpec.Parse(codec, Layers)), keys, values);
        Assert.Equal(ms.Length, stats.FileBytes);
        return ms.ToArray();
    }

    [Theory]
    [MemberData(nameof(Golden))]
    public void Tkv_bytes_are_pinned(string codec, string sha256)
    {
        var file = Write(codec);
        Assert.Equal(sha256, Convert.ToHexStringLower(SHA256.HashData(file)) + ":" + file.Length);
        // And the reader gives back the header and, for f32, the exact values.
        var r = new TkvReader(new MemoryStream(file), "golden.tkv");
        var (tokens, id, keys, values) = Synthetic();
        Assert.Equal(tokens, r.Header.Tokens);
        Assert.Equal(id, r.Header.ModelId);
        Assert.Equal(KvCodecSpec.Parse(codec, Layers).Name, r.Header.Codec.Name);
        var (k, v) = r.ReadSections();
        if (codec == "f32")
            for (int l = 0; l < Layers; l++) { Assert.Equal(keys[l], k[l]); Assert.Equal(values[l], v[l]); }
    }

    /// <summary>Truncated, extended or mutated files: always a <see cref="TensorFormatException"/> naming the file, never another exception.</summary>
    [Theory]
    [InlineData("f32")]
    [InlineData("q4")]
    [InlineData("q3:kl=4/3/5,vl=2/3/8")]
    [InlineData("q4:delta=anchor,anchor=8")]
    [InlineData("f16")]
    public void Damaged_files_are_refused_cleanly(string codec)
    {
        var file = Write(codec);
        var rng = new Random(81);
        void Refused(byte[] bad, string what)
        {
            try
            {
                var r = new TkvReader(new MemoryStream(bad), "fuzz.tkv");
                r.ReadSections();
            }
            catch (TensorFormatException e)
            {
                Assert.Equal("fuzz.tkv", e.FilePath);
                Assert.NotNull(e.Offset);
                Assert.NotNull(e.Field);
                return;
            }
            catch (Exception e) { Assert.Fail($"{codec}, {what}: {e.GetType().Name} instead of a format error: {e}"); }
            Assert.Fail($"{codec}, {what}: accepted");
        }
        for (int len = 0; len < file.Length; len += 1 + len / 8) Refused(file[..len], $"truncated to {len}");
        Refused([.. file, 0], "one extra byte");
        for (int i = 0; i < 300; i++)
        {
            var bad = (byte[])file.Clone();
            int at = rng.Next(file.Length), flips = 1 + rng.Next(3);
            for (int f = 0; f < flips; f++) bad[Math.Min(file.Length - 1, at + f)] ^= (byte)(1 << rng.Next(8));
            Refused(bad, $"bits flipped at {at}");
        }
        // Lengths and counts crafted past the checksums: the header fields, then a section length.
        foreach (int field in new[] { 12, 32, 36, 40, 44, 48 })
            foreach (int value in new[] { -1, 0, int.MaxValue, 1 << 20 })
            {
                var bad = (byte[])file.Clone();
                BitConverter.TryWriteBytes(bad.AsSpan(field), value);
                Refused(bad, $"header field at {field} = {value}");
            }
    }
}
