using System.Buffers;
using TensorCodec.Coders;
using TensorCodec.Numerics;

namespace TensorCodec.Tests.Coders;

/// <summary><see cref="ChunkDecoder.DecodePair"/> (two chunks, their rANS streams interleaved) has exactly the
/// results of two <see cref="ChunkDecoder.Decode"/> calls, on good chunks and damaged ones, at every SIMD level.</summary>
[Collection(SimdCollection.Name)]
public class ChunkDecoderPairTests
{
    public static TheoryData<string> Levels() => SimdLevels.All();

    static byte[] Encode(byte[] raw, DType t)
    {
        var dst = new byte[ChunkCodec.MaxEncodedLength(raw.Length)];
        Assert.Equal(OperationStatus.Done, ChunkCodec.Encode(raw, t, dst, out int w));
        return dst.AsSpan(0, w).ToArray();
    }

    static (OperationStatus, int, byte[]) One(byte[] enc, int room)
    {
        using var d = new ChunkDecoder();
        var o = new byte[room];
        var st = d.Decode(enc, o, out int w);
        return (st, w, st == OperationStatus.Done ? o.AsSpan(0, w).ToArray() : []);
    }

    static void AssertPairMatches(ChunkDecoder decoder, byte[] a, int roomA, byte[] b, int roomB, string what)
    {
        var oa = new byte[roomA];
        var ob = new byte[roomB];
        decoder.DecodePair(a, oa, out var sa, out int wa, b, ob, out var sb, out int wb);
        var (ea, ewa, da) = One(a, roomA);
        var (eb, ewb, db) = One(b, roomB);
        Assert.True(ea == sa && ewa == wa, $"{what}: first chunk {sa}/{wa}, alone {ea}/{ewa}");
        Assert.True(eb == sb && ewb == wb, $"{what}: second chunk {sb}/{wb}, alone {eb}/{ewb}");
        if (sa == OperationStatus.Done) Assert.True(da.AsSpan().SequenceEqual(oa.AsSpan(0, wa)), $"{what}: first chunk's bytes differ");
        if (sb == OperationStatus.Done) Assert.True(db.AsSpan().SequenceEqual(ob.AsSpan(0, wb)), $"{what}: second chunk's bytes differ");
    }

    [SkippableTheory]
    [MemberData(nameof(Levels))]
    public void Pairs_decode_as_two_single_calls(string level)
    {
        var r = new Random(21);
        var chunks = new List<(byte[] Enc, int Length, string Name)>();
        foreach (var t in new[] { DType.BF16, DType.F32, DType.F16, DType.I32, DType.U8 })
            foreach (int mode in new[] { 3, 4 })
                foreach (int n in new[] { 0, 31, 4_000, 70_001 })
                {
                    var raw = TestData.Make(t, n, mode, n + mode + (int)t);
                    chunks.Add((Encode(raw, t), raw.Length, $"{t}/{mode}/{n}"));
                }
        using var _ = SimdLevels.Force(level);
        using var decoder = new ChunkDecoder();
        for (int it = 0; it < 120; it++)
        {
            var a = chunks[r.Next(chunks.Count)];
            var b = chunks[r.Next(chunks.Count)];
            string what = $"{a.Name} + {b.Name} at {level}";
            AssertPairMatches(decoder, a.Enc, a.Length, b.Enc, b.Length, what);
            // Too small a destination, and damage to either chunk, are reported as a single call reports them.
            AssertPairMatches(decoder, a.Enc, Math.Max(0, a.Length - 1), b.Enc, b.Length, what + ", short first destination");
            for (int k = 0; k < 4; k++)
            {
                var bad = (r.Next(2) == 0 ? a : b).Enc.ToArray();
                if (bad.Length == 0) continue;
                bad[r.Next(bad.Length)] ^= (byte)(1 << r.Next(8));
                if (r.Next(2) == 0) AssertPairMatches(decoder, bad, a.Length, b.Enc, b.Length, what + ", damaged first");
                else AssertPairMatches(decoder, a.Enc, a.Length, bad, b.Length, what + ", damaged second");
            }
        }
    }
}
