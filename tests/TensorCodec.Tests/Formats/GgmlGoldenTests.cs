using System.Runtime.InteropServices;
using System.Text.Json;
using TensorCodec.Formats;
using TensorCodec.Numerics;

namespace TensorCodec.Tests.Formats;

/// <summary>
/// Bit-exactness against ggml (commit d99724f2): every case in Fixtures/ggml/*.json must
/// quantize to the same bytes and dequantize to the same float bits, with the scalar references
/// alone (every type at <see cref="SimdLevel.Scalar"/>) and with each vector level the machine has.
/// </summary>
[Collection(SimdCollection.Name)]
public class GgmlGoldenTests
{
    private static readonly string Dir = Path.Combine(AppContext.BaseDirectory, "Fixtures", "ggml");

    public sealed record Case(string File, string Type, int GgmlType, int BlockSize, int TypeSize, int NPerRow, int NRows,
        bool Imatrix, string Quant, string Dequant, string Input, string? ImatrixFile)
    {
        public override string ToString() => $"{Path.GetFileNameWithoutExtension(File)}:{Type}{(Imatrix ? "+imat" : "")}";
    }

    public static IEnumerable<object[]> Cases()
    {
        foreach (var json in Directory.GetFiles(Dir, "*.json").Order(StringComparer.Ordinal))
        {
            using var doc = JsonDocument.Parse(File.ReadAllText(json));
            foreach (var c in doc.RootElement.EnumerateArray())
            {
                string name = c.GetProperty("case").GetString()!;
                bool imat = c.GetProperty("imatrix").GetBoolean();
                yield return [new Case(Path.GetFileName(json), c.GetProperty("type").GetString()!, c.GetProperty("ggml_type").GetInt32(),
                    c.GetProperty("block_size").GetInt32(), c.GetProperty("type_size").GetInt32(),
                    c.GetProperty("n_per_row").GetInt32(), c.GetProperty("nrows").GetInt32(), imat,
                    c.GetProperty("quant").GetString()!, c.GetProperty("dequant").GetString()!,
                    name + ".f32", imat ? name + ".imatrix.f32" : null)];
            }
        }
    }

    /// <summary>Every case at AVX2 and at AVX-512.</summary>
    public static IEnumerable<object[]> CasesAtVectorLevels() =>
        from c in Cases() from level in (IEnumerable<object[]>)SimdLevels.Vector() select new[] { c[0], level[0] };

    internal static float[] ReadF32(string file) => MemoryMarshal.Cast<byte, float>(File.ReadAllBytes(Path.Combine(Dir, file))).ToArray();

    [SkippableTheory]
    [MemberData(nameof(CasesAtVectorLevels))]
    public void Quantize_matches_ggml_bytes(Case c, string level)
    {
        using var _ = SimdLevels.Force(level);
        CheckQuantize(c);
    }

    [SkippableTheory]
    [MemberData(nameof(CasesAtVectorLevels))]
    public void Dequantize_matches_ggml_bits(Case c, string level)
    {
        using var _ = SimdLevels.Force(level);
        CheckDequantize(c);
    }

    /// <summary>
    /// The scalar references behind the fast paths must match ggml on their own, for every type: at
    /// the scalar level each dispatcher (Q8_0, Q4_0, the k-quants, BF16 …) runs its reference code.
    /// </summary>
    [Theory]
    [MemberData(nameof(Cases))]
    public void Scalar_references_match_ggml(Case c)
    {
        using var _ = Simd.Force(SimdLevel.Scalar);
        Assert.False(Q8_0Fast.IsSupported || Q4_0Fast.IsSupported || KQuantFast.IsSupported || KQuantQuantizeFast.IsSupported);
        CheckQuantize(c);
        CheckDequantize(c);
    }

    static void CheckQuantize(Case c)
    {
        var fmt = BlockFormats.Get(c.Type);
        Assert.Equal(c.GgmlType, fmt.GgmlTypeId);
        Assert.Equal(c.BlockSize, fmt.BlockSize);
        Assert.Equal(c.TypeSize, fmt.BlockBytes);
        var input = ReadF32(c.Input).AsSpan(0, c.NPerRow * c.NRows).ToArray();
        var imat = c.ImatrixFile is null ? null : ReadF32(c.ImatrixFile);
        var expected = File.ReadAllBytes(Path.Combine(Dir, c.Quant));
        var actual = new byte[expected.Length];
        fmt.Quantize(input, actual, c.NPerRow, imat);
        GoldenCompare.SameBytes(expected, actual, c.NPerRow / c.BlockSize * c.TypeSize, c.TypeSize);
    }

    static void CheckDequantize(Case c)
    {
        var fmt = BlockFormats.Get(c.Type);
        var quant = File.ReadAllBytes(Path.Combine(Dir, c.Quant));
        var expected = ReadF32(c.Dequant);
        Assert.Equal(c.NPerRow * c.NRows, expected.Length);
        var actual = new float[expected.Length];
        fmt.Dequantize(quant, actual);
        GoldenCompare.SameBits(expected, actual);
    }
}
