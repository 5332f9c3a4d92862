using System.Numerics.Tensors;
using System.Runtime.InteropServices;
using TensorCodec.Engine;
using TensorCodec.Formats;
using TensorCodec.Numerics;

namespace TensorCodec.Tests.Engine;

/// <summary>
/// The engine's decode-a-row path (<see cref="BlockMatrix"/>) for the iq2/iq1 types, which the fused kernels
/// (<see cref="IQuantMatrix"/>, tested in IQuantKernelTests) are checked against: MatVec must equal the dot
/// product with the dequantized row exactly and MatMul (decoded tiles) must agree with it.
/// </summary>
public unsafe class IQ2EngineTests
{
    [Theory]
    [InlineData("iq2_xxs")]
    [InlineData("iq2_xs")]
    [InlineData("iq2_s")]
    [InlineData("iq1_s")]
    [InlineData("iq1_m")]
    public void Packed_weights_multiply_like_their_dequantized_rows(string type)
    {
        var f = BlockFormats.Get(type);
        string dir = Path.Combine(AppContext.BaseDirectory, "Fixtures", "ggml-iq");
        var w = MemoryMarshal.Cast<byte, float>(File.ReadAllBytes(Path.Combine(dir, "stories260k.f32"))).ToArray();
        var imat = MemoryMarshal.Cast<byte, float>(File.ReadAllBytes(Path.Combine(dir, "stories260k.imatrix.f32"))).ToArray();
        const int cols = 256;
        int rows = w.Length / cols;
        var packed = new byte[rows * f.BlockBytes];
        f.Quantize(w, packed, cols, imat);
        var decoded = new float[w.Length];
        f.Dequantize(packed, decoded);
        var rng = new Random(3);
        var x = new float[2 * cols];
        for (int i = 0; i < x.Length; i++) x[i] = (float)(rng.NextDouble() * 2 - 1);
        fixed (byte* p = packed)
        {
            Assert.False(QuantizedMatrix.HasKernel(f.GgmlTypeId));
            Assert.IsType<IQuantMatrix>(WeightMatrix.Create(DType.Packed, p, rows, cols, null, ggmlType: f.GgmlTypeId));
            var m = new BlockMatrix(f, p, rows, cols);
            Assert.Equal(type, m.TypeName);
            Assert.Equal(packed.Length, m.ByteSize);
            var y = new float[rows];
            m.MatVec(x.AsSpan(0, cols), y, 0, rows);
            var yy = new float[2 * rows];
            m.MatMul(x, 2, yy, 0, rows);
            for (int r = 0; r < rows; r++)
            {
                var row = decoded.AsSpan(r * cols, cols);
                Assert.Equal(TensorPrimitives.Dot(row, x.AsSpan(0, cols)), y[r]);
                for (int t = 0; t < 2; t++)
                {
                    float expected = TensorPrimitives.Dot(row, x.AsSpan(t * cols, cols));
                    // MatMul's F32 kernel may sum in another order: allow a few ulps of the row's magnitude.
                    float tol = 1e-5f * (TensorPrimitives.SumOfMagnitudes(row) + 1);
                    Assert.True(MathF.Abs(expected - yy[t * rows + r]) <= tol, $"{type}: row {r}, token {t}: {yy[t * rows + r]} vs {expected}");
                }
            }
        }
    }
}
