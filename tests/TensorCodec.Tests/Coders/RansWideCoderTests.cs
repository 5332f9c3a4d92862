using System.Buffers;
using CsCheck;
using TensorCodec.Coders;
using TensorCodec.Numerics;

namespace TensorCodec.Tests.Coders;

/// <summary>
/// Stream method 5 (<see cref="RansWideCoder"/>, 32 interleaved rANS states): round trips, the vector encoder and
/// decoder against the scalar reference at every instruction-set level, and corrupt payloads refused cleanly.
/// </summary>
[Collection(SimdCollection.Name)]
public class RansWideCoderTests
{
    public static TheoryData<string> Levels() => SimdLevels.All();

    static ushort[] Freqs(ReadOnlySpan<byte> data)
    {
        var hist = new uint[256];
        FrequencyTable.Histogram(data, hist);
        var freqs = new ushort[256];
        if (!RansCoder.NormalizeFrequencies(hist, freqs)) freqs[0] = RansCoder.Scale; // empty input: any valid table
        return freqs;
    }

    /// <summary>Histogram, normalisation and method-5 encode, as the chunk encoder does it.</summary>
    internal static OperationStatus EncodeWithHistogram(ReadOnlySpan<byte> src, Span<byte> dst, out int written) =>
        RansWideCoder.Encode(src, Freqs(src), dst, out written, new ushort[RansWideCoder.WordScratchLength(src.Length)]);

    [Fact]
    public void Bit_flipped_payloads_never_throw() =>
        ByteCoderChecks.CorruptPayloadsNeverThrow(RansWideCoder.MaxEncodedLength, EncodeWithHistogram, RansWideCoder.Decode,
            HuffmanCoderTests.Make("skewed"), seed: 21);

    static byte[] Encode(ReadOnlySpan<byte> data, bool allowSimd)
    {
        var freqs = Freqs(data);
        var dst = new byte[RansWideCoder.MaxEncodedLength(data.Length)];
        var words = new ushort[RansWideCoder.WordScratchLength(data.Length)];
        Assert.Equal(OperationStatus.Done, RansWideCoder.Encode(data, freqs, dst, out int w, words, allowSimd));
        return dst.AsSpan(0, w).ToArray();
    }

    /// <summary>Sizes around the 32-symbol group and the vector loops' 32-word margin, and the stream kinds the codec meets.</summary>
    static IEnumerable<byte[]> Inputs()
    {
        var r = new Random(7);
        foreach (int n in new[] { 0, 1, 2, 31, 32, 33, 63, 64, 65, 100, 1000, 4097, 65_536, 100_003 })
        {
            var b = new byte[n]; r.NextBytes(b); yield return b;
            // An exponent-like stream: a few values, one dominant, rare outliers (frequencies 1 and near Scale).
            var e = new byte[n];
            for (int i = 0; i < n; i++) e[i] = (byte)(r.Next(1000) == 0 ? r.Next(256) : 120 + (int)Math.Min(9, -Math.Log(1 - r.NextDouble()) * 1.5));
            yield return e;
            yield return new byte[n]; // one symbol: frequency 4096, no words at all
            var two = new byte[n];     // two symbols, 4095 : 1
            if (n > 0) two[n / 2] = 9;
            yield return two;
        }
    }

    [Fact]
    public void Round_trips_random_streams()
    {
        Gen.Select(Gen.Int[0, 6000], Gen.Int[1, 256], Gen.Int).Sample((n, alphabet, seed) =>
        {
            var r = new Random(seed);
            var data = new byte[n];
            // Skewed over an alphabet of `alphabet` symbols: geometric-ish, like exponents.
            for (int i = 0; i < n; i++) data[i] = (byte)Math.Min(alphabet - 1, (int)(-Math.Log(1 - r.NextDouble()) * alphabet / 8));
            var payload = Encode(data, allowSimd: true);
            var back = new byte[n];
            Assert.Equal(OperationStatus.Done, RansWideCoder.Decode(payload, back));
            Assert.True(data.AsSpan().SequenceEqual(back));
        }, iter: 300);
    }

    [SkippableTheory]
    [MemberData(nameof(Levels))]
    public void Encoder_gives_the_scalar_bytes_and_decoders_agree(string level)
    {
        foreach (var data in Inputs())
        {
            var expected = Encode(data, allowSimd: false);
            var back = new byte[data.Length];
            Assert.Equal(OperationStatus.Done, RansWideCoder.Decode(expected, back, allowSimd: false));
            Assert.True(data.AsSpan().SequenceEqual(back), $"n={data.Length}: scalar round trip");
            using (SimdLevels.Force(level))
            {
                var actual = Encode(data, allowSimd: true);
                Assert.True(expected.AsSpan().SequenceEqual(actual), $"n={data.Length}: encoding differs at {level}");
                back.AsSpan().Clear();
                Assert.Equal(OperationStatus.Done, RansWideCoder.Decode(expected, back));
                Assert.True(data.AsSpan().SequenceEqual(back), $"n={data.Length}: decoding differs at {level}");
                // One byte short of the payload is refused, never half-written as Done.
                var freqs = Freqs(data);
                var words = new ushort[RansWideCoder.WordScratchLength(data.Length)];
                Assert.Equal(OperationStatus.DestinationTooSmall,
                    RansWideCoder.Encode(data, freqs, new byte[expected.Length - 1], out _, words, allowSimd: true));
            }
        }
    }

    [Fact]
    public void Payload_is_table_then_32_states_at_L_for_an_empty_stream()
    {
        var payload = Encode([], allowSimd: true);
        // Table: one run (count−1 = 0), start 0, length−1 = 0, freq−1 = 4095 as a varint (2 bytes); then 32 × L.
        Assert.Equal(new byte[] { 0, 0, 0, 0xFF, 0x1F }, payload[..5]);
        Assert.Equal(5 + 4 * RansWideCoder.States, payload.Length);
        for (int k = 0; k < RansWideCoder.States; k++)
            Assert.Equal(new byte[] { 0, 0, 1, 0 }, payload[(5 + 4 * k)..(9 + 4 * k)]);
        Assert.Equal(OperationStatus.Done, RansWideCoder.Decode(payload, Span<byte>.Empty));
        // A symbol of frequency 4096 costs nothing (x = 4096·(L >> 12) = L), so the length comes from the chunk.
        var one = new byte[] { 7 };
        Assert.Equal(OperationStatus.Done, RansWideCoder.Decode(payload, one));
        Assert.Equal(0, one[0]);
        // Any word left over is refused.
        Assert.Equal(OperationStatus.InvalidData, RansWideCoder.Decode([.. payload, 0, 0], Span<byte>.Empty));
    }

    [SkippableTheory]
    [MemberData(nameof(Levels))]
    public void Corrupt_payloads_are_refused_alike_at_every_level(string level)
    {
        var r = new Random(11);
        var data = new byte[20_000];
        for (int i = 0; i < data.Length; i++) data[i] = (byte)(120 + (int)Math.Min(12, -Math.Log(1 - r.NextDouble()) * 1.5));
        var good = Encode(data, allowSimd: false);
        int invalid = 0;
        for (int trial = 0; trial < 400; trial++)
        {
            var bad = good.ToArray();
            int kind = trial % 4;
            if (kind == 0) bad[r.Next(bad.Length)] ^= (byte)(1 << r.Next(8));
            else if (kind == 1) bad = bad[..r.Next(bad.Length)];
            else if (kind == 2) { int at = r.Next(bad.Length); bad = [.. bad[..at], (byte)r.Next(256), (byte)r.Next(256), .. bad[at..]]; }
            else for (int j = 0; j < 8; j++) bad[r.Next(bad.Length)] = (byte)r.Next(256);
            // Exact-size copies so a read past the end would hit the array bound, not slack.
            int outLen = trial % 7 == 0 ? data.Length - 1 - r.Next(50) : data.Length;
            var scalar = new byte[outLen];
            var vector = new byte[outLen];
            var s = RansWideCoder.Decode(bad, scalar, allowSimd: false);
            OperationStatus v;
            using (SimdLevels.Force(level)) v = RansWideCoder.Decode(bad, vector);
            Assert.Equal(s, v);
            Assert.True(s is OperationStatus.Done or OperationStatus.InvalidData);
            if (s == OperationStatus.Done) Assert.True(scalar.AsSpan().SequenceEqual(vector));
            else invalid++;
        }
        Assert.True(invalid > 300, $"only {invalid} of 400 corruptions detected");
    }

    [Fact]
    public void Random_bytes_never_throw()
    {
        Gen.Select(Gen.Byte.Array[0, 600], Gen.Int[0, 3000]).Sample((b, n) =>
        {
            var st = RansWideCoder.Decode(b, new byte[n]);
            Assert.True(st is OperationStatus.Done or OperationStatus.InvalidData);
        }, iter: 500);
    }

    [SkippableTheory]
    [MemberData(nameof(Levels))]
    public void Encoding_a_symbol_without_frequency_throws_at_every_level(string level)
    {
        var freqs = new ushort[256];
        freqs[1] = RansCoder.Scale;
        var data = new byte[100];
        data.AsSpan().Fill(1);
        data[50] = 2;
        using var forced = SimdLevels.Force(level);
        var e = Assert.Throws<ArgumentException>(() =>
            RansWideCoder.Encode(data, freqs, new byte[1000], out _, new ushort[RansWideCoder.WordScratchLength(100)]));
        Assert.Contains("symbol 2 has frequency 0", e.Message);
    }

    [Fact]
    public void Chunk_encoder_picks_method_5_for_a_long_exponent_stream_and_round_trips()
    {
        var r = new Random(3);
        var raw = new byte[2 * 40_000]; // BF16: a 40,000-byte exponent stream
        for (int i = 0; i < raw.Length; i += 2)
        {
            float x = (float)(r.NextDouble() * 2 - 1) * 0.05f;
            ushort bf = (ushort)(BitConverter.SingleToUInt32Bits(x) >> 16);
            raw[i] = (byte)bf;
            raw[i + 1] = (byte)(bf >> 8);
        }
        var stats = new ChunkStats();
        var enc = new byte[ChunkCodec.MaxEncodedLength(raw.Length)];
        Assert.Equal(OperationStatus.Done, ChunkCodec.Encode(raw, DType.BF16, enc, out int w, stats: stats));
        Assert.Contains(stats.Streams, s => s.Name == "BF16.exp" && s.Method == "RansWide");
        var back = new byte[raw.Length];
        Assert.Equal(OperationStatus.Done, ChunkCodec.Decode(enc.AsSpan(0, w), back, out int bw));
        Assert.Equal(raw.Length, bw);
        Assert.True(raw.AsSpan().SequenceEqual(back));
        // Below the threshold the 16-state coder stays.
        var small = raw.AsSpan(0, 2 * 1000).ToArray();
        var stats2 = new ChunkStats();
        Assert.Equal(OperationStatus.Done, ChunkCodec.Encode(small, DType.BF16, enc, out _, stats: stats2));
        Assert.DoesNotContain(stats2.Streams, s => s.Method == "RansWide");
    }
}
