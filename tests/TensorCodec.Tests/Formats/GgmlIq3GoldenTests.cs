using System.Runtime.InteropServices;
using System.Text.Json;
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
        int rowBytes = c.NPerRow / c.BlockSize * c.TypeSize;
        var bad = Enumerable.Range(0, expected.Length).Where(i => expected[i] != actual[i]).ToList();
        Assert.True(bad.Count == 0,
            $"{bad.Count} of {expected.Length} bytes differ; first at {(bad.Count > 0 ? bad[0] : -1)} " +
            $"(row {(bad.Count > 0 ? bad[0] / rowBytes : -1)}, block {(bad.Count > 0 ? bad[0] % rowBytes / c.TypeSize : -1)}, " +
            $"offset {(bad.Count > 0 ? bad[0] % c.TypeSize : -1)})");
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
        int bad = 0, first = -1;
        for (int i = 0; i < expected.Length; i++)
            if (BitConverter.SingleToInt32Bits(expected[i]) != BitConverter.SingleToInt32Bits(actual[i]))
            {
                bad++;
                if (first < 0) first = i;
            }
        Assert.True(bad == 0, $"{bad} values differ; first at {first}: expected {(first >= 0 ? expected[first] : 0)} got {(first >= 0 ? actual[first] : 0)}");
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
}
