namespace TensorCodec.Tests.Formats;

/// <summary>The two checks every ggml golden test makes: quantized bytes equal, dequantized floats equal bit for bit;
/// a failure says how many differ and where the first one is.</summary>
static class GoldenCompare
{
    /// <summary>Bytes equal; the first difference is located by row, block and offset within the block.</summary>
    public static void SameBytes(byte[] expected, byte[] actual, int rowBytes, int typeSize)
    {
        Assert.Equal(expected.Length, actual.Length);
        var bad = Enumerable.Range(0, expected.Length).Where(i => expected[i] != actual[i]).ToList();
        if (bad.Count == 0) return;
        int f = bad[0];
        Assert.Fail($"{bad.Count} of {expected.Length} bytes differ; first at {f} (row {f / rowBytes}, block {f % rowBytes / typeSize}, offset {f % typeSize})");
    }

    /// <summary>Floats equal bit for bit (so −0 ≠ +0 and NaN payloads count).</summary>
    public static void SameBits(float[] expected, float[] actual)
    {
        Assert.Equal(expected.Length, actual.Length);
        var bad = Enumerable.Range(0, expected.Length)
            .Where(i => BitConverter.SingleToInt32Bits(expected[i]) != BitConverter.SingleToInt32Bits(actual[i])).ToList();
        if (bad.Count == 0) return;
        int f = bad[0];
        Assert.Fail($"{bad.Count} values differ; first at {f}: expected {expected[f]:R}, got {actual[f]:R}");
    }
}
