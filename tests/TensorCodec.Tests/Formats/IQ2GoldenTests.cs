using System.Runtime.InteropServices;
using System.Text.Json;
using TensorCodec.Formats;

namespace TensorCodec.Tests.Formats;

/// <summary>
/// Bit-exactness of the iq2/iq1 families against ggml (llama.cpp 34af94cd, Fixtures/ggml-iq): quantizing
/// reproduces ggml's bytes — which depends on the grids and the neighbour maps ggml builds at start-up —
/// and dequantizing its float bits, with and without an importance matrix where ggml allows both.
/// </summary>
public class IQ2GoldenTests
{
    static readonly string Dir = Path.Combine(AppContext.BaseDirectory, "Fixtures", "ggml-iq");

    // The manifests also list iq3_xxs, iq3_s, q1_0 and q2_0; those have their own tests.
    static readonly string[] Types = ["iq2_xxs", "iq2_xs", "iq2_s", "iq1_s", "iq1_m"];

    public sealed record Case(string Name, string Type, int GgmlType, int TypeSize, int NPerRow, int NRows, bool Imatrix, string Quant, string Dequant)
    {
        public override string ToString() => $"{Name}:{Type}{(Imatrix ? "+imat" : "")}";
    }

    public static TheoryData<Case> Cases()
    {
        var d = new TheoryData<Case>();
        foreach (var c in AllCases()) d.Add(c);
        return d;
    }

    static List<Case> AllCases()
    {
        var d = new List<Case>();
        foreach (var json in Directory.GetFiles(Dir, "*.json").Order(StringComparer.Ordinal))
        {
            using var doc = JsonDocument.Parse(File.ReadAllText(json));
            foreach (var c in doc.RootElement.EnumerateArray())
            {
                string type = c.GetProperty("type").GetString()!;
                if (!Types.Contains(type)) continue;
                d.Add(new Case(c.GetProperty("case").GetString()!, type, c.GetProperty("ggml_type").GetInt32(), c.GetProperty("type_size").GetInt32(),
                    c.GetProperty("n_per_row").GetInt32(), c.GetProperty("nrows").GetInt32(), c.GetProperty("imatrix").GetBoolean(),
                    c.GetProperty("quant").GetString()!, c.GetProperty("dequant").GetString()!));
            }
        }
        return d;
    }

    static float[] ReadF32(string file) => MemoryMarshal.Cast<byte, float>(File.ReadAllBytes(Path.Combine(Dir, file))).ToArray();

    [Fact]
    public void Every_type_has_golden_cases_with_and_without_imatrix_where_ggml_allows()
    {
        var cases = AllCases();
        foreach (var t in Types)
        {
            Assert.Contains(cases, c => c.Type == t && c.Imatrix && c.Name == "synth");
            Assert.Contains(cases, c => c.Type == t && c.Imatrix && c.Name == "stories260k");
            bool optional = !BlockFormats.RequiresImportance(BlockFormats.Get(t));
            Assert.Equal(optional, cases.Any(c => c.Type == t && !c.Imatrix));
        }
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public void Quantize_matches_ggml_bytes(Case c)
    {
        var fmt = BlockFormats.Get(c.Type);
        Assert.Equal(c.GgmlType, fmt.GgmlTypeId);
        Assert.Equal(c.TypeSize, fmt.BlockBytes);
        var input = ReadF32(c.Name + ".f32").AsSpan(0, c.NPerRow * c.NRows).ToArray();
        var imat = c.Imatrix ? ReadF32(c.Name + ".imatrix.f32") : null;
        var expected = File.ReadAllBytes(Path.Combine(Dir, c.Quant));
        var actual = new byte[expected.Length];
        fmt.Quantize(input, actual, c.NPerRow, imat);
        GoldenCompare.SameBytes(expected, actual, c.NPerRow / 256 * c.TypeSize, c.TypeSize); // every iq2/iq1 block holds 256 values
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

    [Theory]
    [InlineData("iq2_xxs")]
    [InlineData("iq2_xs")]
    [InlineData("iq1_s")]
    public void Refuses_to_quantize_without_an_importance_matrix(string type)
    {
        var fmt = BlockFormats.Get(type);
        Assert.True(fmt.UsesImportance);
        Assert.True(BlockFormats.RequiresImportance(fmt));
        var x = ReadF32("synth.f32").AsSpan(0, 512).ToArray();
        var e = Assert.Throws<ArgumentException>(() => fmt.Quantize(x, new byte[2 * fmt.BlockBytes], 256));
        Assert.Contains("importance matrix", e.Message);
        Assert.Contains(type, e.Message);
    }

    [Theory]
    [InlineData("iq2xxs_grid.uint64", 256)]
    [InlineData("iq2xs_grid.uint64", 512)]
    [InlineData("iq2s_grid.uint64", 1024)]
    [InlineData("iq1s_grid.uint64", 2048)]
    public void Grids_equal_ggml_tables(string file, int size)
    {
        var expected = MemoryMarshal.Cast<byte, ulong>(File.ReadAllBytes(Path.Combine(Dir, "tables", file))).ToArray();
        var grid = size switch { 256 => IQ2Grids.Grid256, 512 => IQ2Grids.Grid512, 1024 => IQ2Grids.Grid1024, _ => IQ2Grids.Grid2048 };
        Assert.Equal(size, expected.Length);
        Assert.Equal(expected, grid.Table);
        // Every code the quantizers can form (levels 0..2) is on the grid or has neighbours, nearest first.
        int offGrid = 0;
        for (int code = 0; code < IQGrid.MapSize; code++)
        {
            bool reachable = Enumerable.Range(0, 8).All(k => ((code >> 2 * k) & 3) != 3);
            if (!reachable || grid.Map[code] >= 0) continue;
            offGrid++;
            var nb = grid.Neighbours[code];
            Assert.NotNull(nb);
            Assert.NotEmpty(nb);
        }
        Assert.Equal(6561 - size, offGrid);
    }

    [Fact]
    public void Sign_tables_equal_ggml()
    {
        Assert.Equal(File.ReadAllBytes(Path.Combine(Dir, "tables", "ksigns_iq2xs.uint8")), IQ2Grids.KSigns);
        Assert.Equal(new byte[] { 1, 2, 4, 8, 16, 32, 64, 128 }, File.ReadAllBytes(Path.Combine(Dir, "tables", "kmask_iq2xs.uint8")));
    }
}
