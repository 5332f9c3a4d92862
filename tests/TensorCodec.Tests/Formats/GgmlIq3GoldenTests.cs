using System.Runtime.InteropServices;
using System.Text.Json;
using TensorCodec.Engine;
using TensorCodec.Formats;

namespace TensorCodec.Tests.Formats;

/// <summary>
/// Bit-exactness of IQ3_XXS, IQ3_S, Q1_0 and Q2_0 against ggml (llama.cpp 34af94cd): the cases of
/// Fixtures/ggml-iq/*.json for these types (synth 256-wide without and 512-wide with an imatrix,
/// stories260k with and without) quantize to the golden bytes and dequantize to the golden bits;
/// and the grid tables in <see cref="IQ3Grids"/> equal ggml's dumped tables.
/// </summary>
public class GgmlIq3GoldenTests
{
    private static readonly string Dir = Path.Combine(AppContext.BaseDirectory, "Fixtures", "ggml-iq");
    private static readonly string[] Types = ["iq3_xxs", "iq3_s", "q1_0", "q2_0"];

    public sealed record Case(string Type, int GgmlType, int BlockSize, int TypeSize, int NPerRow, int NRows,
        string Quant, string Dequant, string Input, string? ImatrixFile)
    {
        public override string ToString() => $"{Input[..^4]}:{Type}{(ImatrixFile is null ? "" : "+imat")}";
    }

    public static IEnumerable<object[]> Cases()
    {
        foreach (var json in Directory.GetFiles(Dir, "*.json").Order(StringComparer.Ordinal))
        {
            using var doc = JsonDocument.Parse(File.ReadAllText(json));
            if (doc.RootElement.ValueKind != JsonValueKind.Array) continue; // tables.json lives in tables/
            foreach (var c in doc.RootElement.EnumerateArray())
            {
                string type = c.GetProperty("type").GetString()!;
                if (!Types.Contains(type)) continue;
                string name = c.GetProperty("case").GetString()!;
                bool imat = c.GetProperty("imatrix").GetBoolean();
                yield return [new Case(type, c.GetProperty("ggml_type").GetInt32(), c.GetProperty("block_size").GetInt32(),
                    c.GetProperty("type_size").GetInt32(), c.GetProperty("n_per_row").GetInt32(), c.GetProperty("nrows").GetInt32(),
                    c.GetProperty("quant").GetString()!, c.GetProperty("dequant").GetString()!,
                    name + ".f32", imat ? name + ".imatrix.f32" : null)];
            }
        }
    }

    private static float[] ReadF32(string file) => MemoryMarshal.Cast<byte, float>(File.ReadAllBytes(Path.Combine(Dir, file))).ToArray();

    [Fact]
    public void Every_type_has_cases_with_and_without_imatrix()
    {
        var cases = Cases().Select(o => (Case)o[0]).ToList();
        foreach (var t in Types)
        {
            Assert.Contains(cases, c => c.Type == t && c.ImatrixFile is null);
            Assert.Contains(cases, c => c.Type == t && c.ImatrixFile is not null);
        }
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public void Quantize_matches_ggml_bytes(Case c)
    {
        var fmt = BlockFormats.Get(c.Type);
        Assert.Equal(c.GgmlType, fmt.GgmlTypeId);
        Assert.Equal(c.BlockSize, fmt.BlockSize);
        Assert.Equal(c.TypeSize, fmt.BlockBytes);
        var info = TensorCodec.Containers.GgmlTypes.Get(c.GgmlType);
        Assert.Equal((c.Type, c.BlockSize, c.TypeSize), (info.Name.ToLowerInvariant(), info.BlockSize, info.TypeSize));
        var input = ReadF32(c.Input).AsSpan(0, c.NPerRow * c.NRows).ToArray();
        var imat = c.ImatrixFile is null ? null : ReadF32(c.ImatrixFile);
        var expected = File.ReadAllBytes(Path.Combine(Dir, c.Quant));
        var actual = new byte[expected.Length];
        fmt.Quantize(input, actual, c.NPerRow, imat);
        GoldenCompare.SameBytes(expected, actual, c.NPerRow / c.BlockSize * c.TypeSize, c.TypeSize);
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public void Dequantize_matches_ggml_bits(Case c)
    {
        var fmt = BlockFormats.Get(c.Type);
        var quant = File.ReadAllBytes(Path.Combine(Dir, c.Quant));
        var expected = ReadF32(c.Dequant);
        Assert.Equal(c.NPerRow * c.NRows, expected.Length);
        var actual = new float[expected.Length];
        fmt.Dequantize(quant, actual);
        GoldenCompare.SameBits(expected, actual);
    }

    [Fact]
    public void Grid_tables_equal_ggml_tables()
    {
        var tables = Path.Combine(Dir, "tables");
        Assert.Equal(MemoryMarshal.Cast<byte, uint>(File.ReadAllBytes(Path.Combine(tables, "iq3xxs_grid.uint32"))).ToArray(),
            IQ3Grids.Iq3xxsGrid.ToArray());
        Assert.Equal(MemoryMarshal.Cast<byte, uint>(File.ReadAllBytes(Path.Combine(tables, "iq3s_grid.uint32"))).ToArray(),
            IQ3Grids.Iq3sGrid.ToArray());
        var ksigns = File.ReadAllBytes(Path.Combine(tables, "ksigns_iq2xs.uint8"));
        Assert.Equal(ksigns, Enumerable.Range(0, 128).Select(IQ3Grids.KSigns).ToArray());
        Assert.Equal([1, 2, 4, 8, 16, 32, 64, 128], File.ReadAllBytes(Path.Combine(tables, "kmask_iq2xs.uint8")));
    }

    [Theory]
    [InlineData(256, 2)]
    [InlineData(512, 3)]
    public void Neighbour_maps_follow_iq3xs_init(int gridSize, int nwant)
    {
        var lat = IQ3Grids.For(gridSize);
        Assert.Equal(gridSize, lat.Map.Count(m => m >= 0));
        // Every off-grid code lists exactly the grid points at its nwant smallest distances, by (distance, index).
        for (int code = 0; code < 4096; code += 7)
        {
            if (lat.Map[code] >= 0) continue;
            var d2 = Enumerable.Range(0, gridSize).Select(j => (D: Enumerable.Range(0, 4).Sum(i =>
                (lat.Grid[4 * j + i] - (2 * ((code >> (3 * i)) & 7) + 1)) * (lat.Grid[4 * j + i] - (2 * ((code >> (3 * i)) & 7) + 1))), J: j)).ToList();
            var cut = d2.Select(p => p.D).Distinct().Order().Take(nwant).ToHashSet();
            var want = d2.Where(p => cut.Contains(p.D)).OrderBy(p => p.D).ThenBy(p => p.J).Select(p => (ushort)p.J).ToArray();
            int at = -lat.Map[code] - 1;
            Assert.Equal(want.Length, lat.Neighbours[at]);
            Assert.Equal(want, lat.Neighbours.AsSpan(at + 1, want.Length).ToArray());
        }
    }

    [Fact]
    public void Iq3_s_all_zero_block_shifts_the_next_blocks_like_ggml()
    {
        // ggml's cursors for qs/signs skip an all-zero 32-block: the next block's data lands in its slot.
        var x = new float[256];
        var rng = new Random(3);
        for (int i = 32; i < 256; i++) x[i] = (float)(rng.NextDouble() * 2 - 1);
        var fmt = BlockFormats.Get("iq3_s");
        var y = new byte[110];
        fmt.Quantize(x, y, 256);
        Assert.True(y.AsSpan(2 + 56, 8).IndexOfAnyExcept((byte)0) < 0, "the last qs slot stays empty");
        Assert.True(y.AsSpan(74 + 28, 4).IndexOfAnyExcept((byte)0) < 0, "the last signs slot stays empty");
    }

    [Theory]
    [InlineData("iq3_xxs")]
    [InlineData("iq3_s")]
    [InlineData("q1_0")]
    [InlineData("q2_0")]
    public unsafe void Engine_runs_the_type_packed_by_decoding_rows(string type)
    {
        // The engine picks the fused kernel (IQuantMatrix, tested in IQuantKernelTests against this path);
        // the decode-a-row BlockMatrix keeps the packed bytes and decodes a row per dot product, so its
        // result is exactly dequantize → F32 dot.
        var f = BlockFormats.Get(type);
        const int rows = 8, cols = 512;
        var rng = new Random(5);
        var w = Enumerable.Range(0, rows * cols).Select(_ => (float)(rng.NextDouble() * 2 - 1)).ToArray();
        var x = Enumerable.Range(0, cols).Select(_ => (float)(rng.NextDouble() * 2 - 1)).ToArray();
        var packed = new byte[rows * cols / f.BlockSize * f.BlockBytes];
        f.Quantize(w, packed, cols);
        var wHat = new float[w.Length];
        f.Dequantize(packed, wHat);
        var y = new float[rows];
        fixed (byte* p = packed)
        {
            Assert.IsType<IQuantMatrix>(WeightMatrix.Create(TensorCodec.Numerics.DType.Packed, p, rows, cols, null, ggmlType: f.GgmlTypeId));
            var m = new BlockMatrix(f, p, rows, cols);
            Assert.Equal(type, m.TypeName);
            m.MatVec(x, y, 0, rows);
        }
        for (int r = 0; r < rows; r++)
            Assert.Equal(System.Numerics.Tensors.TensorPrimitives.Dot(wHat.AsSpan(r * cols, cols), x), y[r]);
    }
}

/// <summary>The IQ3 fast dequantizers against the goldens at each SIMD level and against the scalar references on arbitrary blocks.</summary>
[Collection(SimdCollection.Name)]
public class GgmlIq3SimdTests
{
    public static IEnumerable<object[]> CasesAtLevels() =>
        from c in GgmlIq3GoldenTests.Cases()
        where ((GgmlIq3GoldenTests.Case)c[0]).Type.StartsWith("iq3", StringComparison.Ordinal)
        from level in new[] { nameof(TensorCodec.Numerics.SimdLevel.Scalar), nameof(TensorCodec.Numerics.SimdLevel.Avx2) }
        select new[] { c[0], level };

    [SkippableTheory]
    [MemberData(nameof(CasesAtLevels))]
    public void Dequantize_matches_ggml_bits_at_level(GgmlIq3GoldenTests.Case c, string level)
    {
        using var _ = SimdLevels.Force(level);
        new GgmlIq3GoldenTests().Dequantize_matches_ggml_bits(c);
    }

    [SkippableTheory]
    [InlineData("iq3_xxs", 98)]
    [InlineData("iq3_s", 110)]
    public void Fast_dequantize_equals_reference_on_arbitrary_blocks(string type, int blockBytes)
    {
        Skip.IfNot(IQ3_XXSFast.IsSupported, "no AVX2 on this machine");
        var rng = new Random(17);
        const int nb = 64;
        var q = new byte[nb * blockBytes];
        rng.NextBytes(q);
        for (int i = 0; i < nb; i++)
        {
            // any finite fp16 scale, either sign (exponent 31 would be Inf/NaN)
            ushort h = (ushort)rng.Next(0, 0x10000);
            if ((h >> 10 & 31) == 31) h ^= 1 << 10;
            q[i * blockBytes] = (byte)h;
            q[i * blockBytes + 1] = (byte)(h >> 8);
        }
        var fast = new float[nb * 256];
        var reference = new float[nb * 256];
        if (type == "iq3_xxs") { IQ3_XXSFast.Dequantize(q, fast); IQ3_XXS.DequantizeReference(q, reference); }
        else { IQ3_SFast.Dequantize(q, fast); IQ3_S.DequantizeReference(q, reference); }
        Assert.Equal(reference.Select(BitConverter.SingleToInt32Bits), fast.Select(BitConverter.SingleToInt32Bits));
    }
}
