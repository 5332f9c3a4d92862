using System.Buffers.Binary;
using TensorCodec.Containers;
using static TensorCodec.Tests.Containers.ContainerTestData;

namespace TensorCodec.Tests.Containers;

/// <summary>
/// Seeded random-mutation fuzzing of the three parsers: whatever the input, a reader either
/// succeeds with a self-consistent <see cref="TensorFile"/> or throws
/// <see cref="TensorFormatException"/> — never another exception type, never runs out of memory.
///
/// Runs 3000 iterations per format by default. For a long run:
///   TCODEC_FUZZ_ITERATIONS=1000000 TCODEC_FUZZ_SEED=42 \
///     dotnet test -c Release --filter FullyQualifiedName~ContainerFuzzTests
/// A failure message names the seed and iteration so the case can be replayed.
/// </summary>
public class ContainerFuzzTests
{
    internal static int Iterations =>
        int.TryParse(Environment.GetEnvironmentVariable("TCODEC_FUZZ_ITERATIONS"), out int n) && n > 0 ? n : 3000;

    internal static int Seed =>
        int.TryParse(Environment.GetEnvironmentVariable("TCODEC_FUZZ_SEED"), out int s) ? s : 20240611;

    public static TheoryData<string> Formats => new() { "safetensors", "gguf", "llama2c" };

    [Theory]
    [MemberData(nameof(Formats))]
    public void MutatedFilesOnlyEverThrowTensorFormatException(string format)
    {
        byte[] seedFile = format switch
        {
            "safetensors" => SmallSafetensors(),
            "gguf" => SmallGguf(),
            _ => TinyLlama2c(),
        };
        Func<Stream, TensorFile> parse = format switch
        {
            "safetensors" => s => SafetensorsFile.Read(s, "fuzz"),
            "gguf" => s => GgufFile.Read(s, "fuzz"),
            _ => s => Llama2cFile.Read(s, "fuzz"),
        };

        int seed = Seed + format.Length;
        var rng = new Random(seed);
        int accepted = 0;
        for (int i = 0; i < Iterations; i++)
        {
            var input = format == "safetensors" && rng.Next(2) == 0
                ? MutateSafetensorsHeader(seedFile, rng)
                : Mutate(seedFile, rng);
            foreach (var reader in new[] { parse, s => TensorFileReader.Read(s, "fuzz") })
            {
                try
                {
                    var f = reader(new MemoryStream(input, writable: false));
                    CheckInvariants(f, input.Length);
                    accepted++;
                }
                catch (TensorFormatException) { }
                catch (Exception e)
                {
                    Assert.Fail($"{format} seed {seed} iteration {i}: {e.GetType().Name}: {e.Message}\n{e.StackTrace}\ninput: {Convert.ToHexString(input.AsSpan(0, Math.Min(input.Length, 512)))}");
                }
            }
        }
        Assert.True(accepted > 0, "no mutant was accepted: the fuzzer is not exercising the success path");
    }

    static void CheckInvariants(TensorFile f, long length)
    {
        Assert.Equal(length, f.FileLength);
        long end = 0;
        foreach (var t in f.Tensors)
        {
            Assert.True(t.Offset >= end, $"{t.Name} overlaps or is out of order");
            Assert.True(t.Length >= 0 && t.Offset + t.Length <= length, $"{t.Name} out of bounds");
            end = t.Offset + t.Length;
        }
    }

    /// <summary>
    /// Mutates only the JSON header and fixes up the length prefix, so mutants get past the
    /// length check and exercise the JSON and validation rules rather than dying at byte 0.
    /// </summary>
    static byte[] MutateSafetensorsHeader(byte[] file, Random rng)
    {
        int n = (int)BinaryPrimitives.ReadUInt64LittleEndian(file);
        var header = Mutate(file[8..(8 + n)], rng);
        var data = file[(8 + n)..];
        if (rng.Next(4) == 0) data = data[..rng.Next(data.Length + 1)];
        var result = new byte[8 + header.Length + data.Length];
        BinaryPrimitives.WriteUInt64LittleEndian(result, (ulong)header.Length);
        header.CopyTo(result, 8);
        data.CopyTo(result, 8 + header.Length);
        return result;
    }

    internal static byte[] Mutate(byte[] original, Random rng)
    {
        var b = new List<byte>(original);
        int edits = rng.Next(1, 5);
        for (int e = 0; e < edits && b.Count > 0; e++)
        {
            int at = rng.Next(b.Count);
            switch (rng.Next(9))
            {
                case 0: b[at] ^= (byte)(1 << rng.Next(8)); break;
                case 1: b[at] = (byte)rng.Next(256); break;
                case 2: b[at] = new byte[] { 0, 1, 0x7F, 0x80, 0xFF, (byte)'{', (byte)'"', (byte)'[' }[rng.Next(8)]; break;
                case 3: b.RemoveRange(at, b.Count - at); break;
                case 4: b.RemoveRange(at, Math.Min(b.Count - at, rng.Next(1, 16))); break;
                case 5: b.InsertRange(at, Enumerable.Range(0, rng.Next(1, 16)).Select(_ => (byte)rng.Next(256))); break;
                case 6:
                {
                    // Interesting 64/32-bit integers land on length and count fields.
                    ulong[] vals = [0, 1, 0x7F, 0xFF, 0xFFFF, 0xFFFF_FFFF, 0x8000_0000_0000_0000, ulong.MaxValue, (ulong)rng.Next(), 1UL << rng.Next(64)];
                    var v = new byte[8];
                    BinaryPrimitives.WriteUInt64LittleEndian(v, vals[rng.Next(vals.Length)]);
                    int n = rng.Next(2) == 0 ? 4 : 8;
                    for (int k = 0; k < n && at + k < b.Count; k++) b[at + k] = v[k];
                    break;
                }
                case 7:
                {
                    // Rewrite a decimal number (safetensors shapes/offsets) with another one.
                    int digit = b.FindIndex(at, x => x is >= (byte)'0' and <= (byte)'9');
                    if (digit < 0) break;
                    int stop = digit;
                    while (stop < b.Count && b[stop] is >= (byte)'0' and <= (byte)'9') stop++;
                    string[] nums = ["0", "1", "7", "8", "4294967296", "9223372036854775807", "9223372036854775808", "18446744073709551616", rng.Next(1000).ToString()];
                    b.RemoveRange(digit, stop - digit);
                    b.InsertRange(digit, System.Text.Encoding.ASCII.GetBytes(nums[rng.Next(nums.Length)]));
                    break;
                }
                default:
                {
                    // Splice: duplicate a chunk of the file somewhere else.
                    int from = rng.Next(b.Count), len = Math.Min(b.Count - from, rng.Next(1, 64));
                    var chunk = b.GetRange(from, len);
                    for (int k = 0; k < len && at + k < b.Count; k++) b[at + k] = chunk[k];
                    break;
                }
            }
        }
        return b.ToArray();
    }
}
