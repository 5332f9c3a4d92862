using System.Buffers;
using TensorCodec.Coders;
using TensorCodec.Numerics;

namespace TensorCodec.Tests.Coders;

/// <summary>The encoder's shortcuts for near-random streams (order-0 bound, sampled histogram) change speed, not bytes.</summary>
public class ChunkEncoderShortcutTests
{
    /// <summary>BF16 Gaussian weights: the exponent is coded, the sign+mantissa byte is near random.</summary>
    static byte[] Bf16Weights(int values, int seed)
    {
        var r = new Random(seed);
        var b = new byte[2 * values];
        for (int i = 0; i < values; i++)
        {
            float g = (float)(Math.Sqrt(-2 * Math.Log(1 - r.NextDouble())) * Math.Cos(2 * Math.PI * r.NextDouble()) * 0.02);
            ushort u = (ushort)(BitConverter.SingleToUInt32Bits(g) >> 16);
            b[2 * i] = (byte)u;
            b[2 * i + 1] = (byte)(u >> 8);
        }
        return b;
    }

    static byte[] Encode(byte[] raw, DType t, ChunkStats? stats)
    {
        using var enc = new ChunkEncoder();
        var dst = new byte[ChunkCodec.MaxEncodedLength(raw.Length)];
        Assert.Equal(OperationStatus.Done, enc.Encode(raw, t, dst, out int w, stats));
        return dst.AsSpan(0, w).ToArray();
    }

    [Fact]
    public void Sampled_decision_gives_the_bytes_of_the_full_count()
    {
        // With statistics the encoder counts every stream in full; without, it may judge a stream from a sample.
        foreach (int values in new[] { 1000, ChunkEncoder.SampleMinimum - 1, ChunkEncoder.SampleMinimum, 1 << 19 })
        {
            var raw = Bf16Weights(values, values);
            var stats = new ChunkStats();
            var exact = Encode(raw, DType.BF16, stats);
            Assert.Equal(exact, Encode(raw, DType.BF16, null));
            Assert.Contains(stats.Streams, s => s.Name == "BF16.sm" && s.Method == "Stored");
        }
    }

    [Fact]
    public void A_stream_random_only_where_sampled_still_round_trips()
    {
        // The sample sees random bytes, the rest is constant: the sampled verdict (stored) costs ratio, never correctness.
        const int values = 1 << 19;
        var raw = Bf16Weights(values, 9);
        var r = new Random(4);
        for (int i = 0; i < values; i++)
            if (i % 64 >= 16) raw[2 * i] = 0x40; else raw[2 * i] = (byte)r.Next(256);
        var encoded = Encode(raw, DType.BF16, null);
        Assert.True(encoded.Length <= ChunkCodec.MaxEncodedLength(raw.Length));
        var back = new byte[raw.Length];
        Assert.Equal(OperationStatus.Done, ChunkCodec.Decode(encoded, back, out int n));
        Assert.Equal(raw.Length, n);
        Assert.Equal(raw, back);
    }

    [Fact]
    public void A_skewed_mantissa_is_still_coded()
    {
        // Few distinct mantissas (a quantised tensor stored as BF16): the sample says "may pay", the full count codes it.
        const int values = 1 << 19;
        var raw = new byte[2 * values];
        var r = new Random(2);
        for (int i = 0; i < values; i++) { raw[2 * i] = (byte)(r.Next(4) * 16); raw[2 * i + 1] = 0x3C; }
        var stats = new ChunkStats();
        var exact = Encode(raw, DType.BF16, stats);
        Assert.Equal(exact, Encode(raw, DType.BF16, null));
        Assert.DoesNotContain(stats.Streams, s => s.Name == "BF16.sm" && s.Method == "Stored");
    }
}
