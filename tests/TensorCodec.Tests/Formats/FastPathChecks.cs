namespace TensorCodec.Tests.Formats;

/// <summary>The shape of every reference and fast quantizer.</summary>
internal delegate void Quantizer(ReadOnlySpan<float> x, Span<byte> y);

/// <summary>The shape of every reference and fast dequantizer.</summary>
internal delegate void Dequantizer(ReadOnlySpan<byte> y, Span<float> x);

/// <summary>The fast-vs-reference cross-check, written once for the ggml and our own formats.</summary>
internal static class FastPathChecks
{
    /// <summary>The fast path's bytes equal the reference's, and its decoded floats equal them bit for bit (−0 included).</summary>
    public static void FastMatchesReference(float[] x, int bytes, Quantizer reference, Quantizer fast, Dequantizer dequantReference, Dequantizer dequantFast)
    {
        var a = new byte[bytes];
        var b = new byte[bytes];
        reference(x, a);
        fast(x, b);
        Assert.Equal(a, b);
        var da = new float[x.Length];
        var db = new float[x.Length];
        dequantReference(a, da);
        dequantFast(a, db);
        for (int i = 0; i < da.Length; i++) Assert.Equal(BitConverter.SingleToInt32Bits(da[i]), BitConverter.SingleToInt32Bits(db[i]));
    }
}
