using System.Text;
using TensorCodec.Containers;
using TensorCodec.Numerics;

namespace TensorCodec.Tests.Containers;

/// <summary>Fixture paths and small generated files shared by the container tests.</summary>
internal static class ContainerTestData
{
    public static string Fixture(params string[] parts) =>
        Path.Combine([AppContext.BaseDirectory, "Fixtures", .. parts]);

    public static string Stories260K => TestFiles.Sample("stories260K.bin");
    public static string BardBf16 => TestFiles.Sample("bard-3m-bf16.safetensors");

    public static byte[] Bytes(int n, int seed)
    {
        var b = new byte[n];
        new Random(seed).NextBytes(b);
        return b;
    }

    /// <summary>A raw safetensors file from a literal header (unpadded) and a zero data section.</summary>
    public static byte[] RawSafetensors(string json, int dataLength)
    {
        var h = Encoding.UTF8.GetBytes(json);
        var file = new byte[8 + h.Length + dataLength];
        BitConverter.TryWriteBytes(file.AsSpan(0, 8), (ulong)h.Length);
        h.CopyTo(file, 8);
        return file;
    }

    public static byte[] SmallSafetensors() => SafetensorsWriter.ToBytes(
    [
        new("a.weight", DType.F32, [2, 3], TensorByteSource.FromMemory(Bytes(24, 1))),
        new("b.bias", DType.BF16, [3], TensorByteSource.FromMemory(Bytes(6, 2))),
        new("c.idx", DType.I64, [1], TensorByteSource.FromMemory(Bytes(8, 3))),
    ], [new("format", "pt")]);

    /// <summary>Metadata exercising every GGUF value type, including nested arrays.</summary>
    public static List<KeyValuePair<string, GgufValue>> AllValueTypes() =>
    [
        new("general.architecture", GgufValue.String("llama")),
        new("t.u8", GgufValue.UInt8(200)),
        new("t.i8", GgufValue.Int8(-100)),
        new("t.u16", GgufValue.UInt16(60000)),
        new("t.i16", GgufValue.Int16(-30000)),
        new("t.u32", GgufValue.UInt32(4_000_000_000)),
        new("t.i32", GgufValue.Int32(-2_000_000_000)),
        new("t.f32", GgufValue.Float32(3.25f)),
        new("t.bool", GgufValue.Bool(true)),
        new("t.str", GgufValue.String("héllo ▁wörld \n\"")),
        new("t.u64", GgufValue.UInt64(ulong.MaxValue)),
        new("t.i64", GgufValue.Int64(long.MinValue)),
        new("t.f64", GgufValue.Float64(-1e300)),
        new("t.nan", GgufValue.Float32(BitConverter.Int32BitsToSingle(0x7FC0_1234))),
        new("t.arr.str", GgufValue.Array(GgufArray.Of("<unk>", "<s>", "</s>", "▁the"))),
        new("t.arr.f32", GgufValue.Array(GgufArray.Of(-1f, 0f, 2.5f))),
        new("t.arr.i32", GgufValue.Array(GgufArray.Of(1, 2, 3, 6))),
        new("t.arr.bool", GgufValue.Array(GgufArray.Of(true, false, true))),
        new("t.arr.u8", GgufValue.Array(GgufArray.Of(new byte[] { 1, 2, 255 }))),
        new("t.arr.i8", GgufValue.Array(GgufArray.Of(new sbyte[] { -1, 2 }))),
        new("t.arr.u16", GgufValue.Array(GgufArray.Of(new ushort[] { 1, 65535 }))),
        new("t.arr.i16", GgufValue.Array(GgufArray.Of(new short[] { -1, 2 }))),
        new("t.arr.u32", GgufValue.Array(GgufArray.Of(new uint[] { 7 }))),
        new("t.arr.u64", GgufValue.Array(GgufArray.Of(new ulong[] { 1, ulong.MaxValue }))),
        new("t.arr.i64", GgufValue.Array(GgufArray.Of(new long[] { -5 }))),
        new("t.arr.f64", GgufValue.Array(GgufArray.Of(new double[] { Math.PI }))),
        new("t.arr.empty", GgufValue.Array(GgufArray.Of(System.Array.Empty<string>()))),
        new("t.arr.nested", GgufValue.Array(GgufArray.Of(
            GgufArray.Of(1, 2),
            GgufArray.Of("x"),
            GgufArray.Of(GgufArray.Of(1.5, 2.5), GgufArray.Of(System.Array.Empty<bool>()))))),
    ];

    /// <summary>
    /// F32, F16, Q4_0 and Q6_K tensors; the last tensor ends on an alignment boundary so that
    /// every proper prefix of the file cuts into a tensor or the header.
    /// </summary>
    public static List<GgufTensor> SmallGgufTensors() =>
    [
        new("blk.0.attn_q.weight", GgmlTypes.Q4_0, [64, 2], TensorByteSource.FromMemory(Bytes(2 * 2 * 18, 10))),
        new("blk.0.ffn_down.weight", GgmlTypes.Q6_K, [256], TensorByteSource.FromMemory(Bytes(210, 11))),
        new("token_embd.weight", GgmlTypes.F16, [16], TensorByteSource.FromMemory(Bytes(32, 12))),
        new("output_norm.weight", GgmlTypes.F32, [8, 2], TensorByteSource.FromMemory(Bytes(64, 13))),
    ];

    public static byte[] SmallGguf() => GgufWriter.ToBytes(AllValueTypes(), SmallGgufTensors());

    public static Llama2cConfig TinyLlamaConfig(bool shared = true) => new(8, 12, 2, 2, 1, 10, 4, shared);

    public static Dictionary<string, ReadOnlyMemory<float>> TinyLlamaWeights(Llama2cConfig c, int seed)
    {
        var rng = new Random(seed);
        var d = new Dictionary<string, ReadOnlyMemory<float>>();
        foreach (var (name, shape) in c.Layout())
        {
            long n = 1;
            foreach (var x in shape) n *= x;
            d[name] = Enumerable.Range(0, (int)n).Select(_ => (float)rng.NextDouble() - 0.5f).ToArray();
        }
        return d;
    }

    public static byte[] TinyLlama2c(bool shared = true) =>
        Llama2cWriter.ToBytes(TinyLlamaConfig(shared), TinyLlamaWeights(TinyLlamaConfig(shared), 5));
}
