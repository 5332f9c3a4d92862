using TensorCodec.Coders;
using TensorCodec.Numerics;

namespace TensorCodec.Tests.Coders;

public class FloatSplitTests
{
    static void SplitMergeRoundTrips(SplitTransform t, byte[] raw, int count)
    {
        var streams = new byte[FloatSplit.StreamCount(t) * count];
        FloatSplit.Split(t, raw, streams);
        var back = new byte[raw.Length];
        FloatSplit.Merge(t, streams, back);
        Assert.Equal(raw, back);
    }

    [Theory]
    [InlineData("Bytes")] [InlineData("BF16")] [InlineData("F16")]
    [InlineData("F32")] [InlineData("Planes2")] [InlineData("Planes4")] [InlineData("Planes8")]
    [InlineData("ZigZag2")] [InlineData("ZigZag4")] [InlineData("ZigZag8")]
    public void SplitMergeRoundTripsRandomBits(string transform)
    {
        var t = Enum.Parse<SplitTransform>(transform); // by name: the enum is internal, a public test's parameter cannot be
        var r = new Random((int)t);
        int e = FloatSplit.ElementSize(t);
        foreach (int n in new[] { 0, 1, 15, 16, 17, 33, 1000 })
        {
            var raw = new byte[n * e];
            r.NextBytes(raw);
            SplitMergeRoundTrips(t, raw, n);
        }
    }

    [Fact]
    public void Bf16FieldsLandInTheDocumentedStreams()
    {
        // 0xC0A1 = sign 1, exponent 0x81, mantissa 0x21.
        byte[] raw = [0xA1, 0xC0];
        var s = new byte[2];
        FloatSplit.Split(SplitTransform.BF16, raw, s);
        Assert.Equal(0x81, s[0]);
        Assert.Equal(0x80 | 0x21, s[1]);
    }

    [Fact]
    public void F16AndF32FieldsLandInTheDocumentedStreams()
    {
        // F16 0xFAB5: sign 1, exp 0x1E, mantissa 0x2B5.
        var s = new byte[3];
        FloatSplit.Split(SplitTransform.F16, new byte[] { 0xB5, 0xFA }, s);
        Assert.Equal(new byte[] { 0x1E, 0x4 | 0x2, 0xB5 }, s);
        // F32 0xC1A2B3C4: sign 1, exp 0x83, mantissa 0x22B3C4.
        var s4 = new byte[4];
        FloatSplit.Split(SplitTransform.F32, new byte[] { 0xC4, 0xB3, 0xA2, 0xC1 }, s4);
        Assert.Equal(new byte[] { 0x83, 0x80 | 0x22, 0xB3, 0xC4 }, s4);
    }

    [Fact]
    public void AllBf16AndF16PatternsRoundTrip()
    {
        var raw = new byte[65536 * 2];
        for (int v = 0; v < 65536; v++) { raw[2 * v] = (byte)v; raw[2 * v + 1] = (byte)(v >> 8); }
        foreach (var t in new[] { SplitTransform.BF16, SplitTransform.F16, SplitTransform.Planes2, SplitTransform.ZigZag2 })
            SplitMergeRoundTrips(t, raw, 65536);
    }

    [Fact]
    public void EveryDTypeMapsToATransformOfItsElementSize()
    {
        foreach (var d in TestData.AllDTypes)
        {
            if (d.ElementSize() == 0) continue;
            Assert.Equal(d.ElementSize(), FloatSplit.ElementSize(FloatSplit.ForDType(d)));
        }
    }
}
