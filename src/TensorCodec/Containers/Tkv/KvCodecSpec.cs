using System.Globalization;

namespace TensorCodec.Containers.Tkv;

/// <summary>How a .tkv file codes its sections (header byte 52).</summary>
public enum KvCodecKind : byte
{
    /// <summary>Raw F32: lossless.</summary>
    F32 = 0,
    /// <summary>Each value rounded to F16.</summary>
    F16 = 1,
    /// <summary>Per-layer, per-channel asymmetric quantization to 1…8 bits, then entropy coding.</summary>
    Quant = 2,
}

/// <summary>How the integer codes of a quantized section are transformed before entropy coding.</summary>
public enum KvDelta : byte
{
    /// <summary>Codes are entropy-coded as they are (minus its channel's mean code, mod 256).</summary>
    None = 0,
    /// <summary>CacheGen: every position codes its difference from the first position of its block of <c>anchor</c>.</summary>
    Anchor = 1,
    /// <summary>Each position codes its difference from the previous one.</summary>
    Previous = 2,
}

/// <summary>
/// The codec of a saved context (<c>--kv-codec</c>): <c>f32</c> (lossless), <c>f16</c>, or
/// <c>qB</c> = per-layer, per-channel asymmetric B-bit quantization, then entropy coding.
/// Options after a colon: <c>k=B,v=B</c> (key/value bits), <c>layers=B/B/…</c> (per layer, both),
/// <c>kl=…,vl=…</c> (per layer, keys/values), <c>delta=none|anchor|prev</c>, <c>anchor=N</c>.
/// Create one with <see cref="Parse"/>, which checks the ranges below.
/// </summary>
/// <param name="Kind">F32, F16 or quantized.</param>
/// <param name="KeyBits">Bits per key code, one entry per layer (1…8 for <see cref="KvCodecKind.Quant"/>, 0 otherwise).</param>
/// <param name="ValueBits">Bits per value code, one entry per layer (1…8 for <see cref="KvCodecKind.Quant"/>, 0 otherwise).</param>
/// <param name="Delta">How quantized codes are transformed before entropy coding.</param>
/// <param name="Anchor">Positions per anchor block for <see cref="KvDelta.Anchor"/> (1…65535).</param>
public sealed record KvCodecSpec(KvCodecKind Kind, byte[] KeyBits, byte[] ValueBits, KvDelta Delta = KvDelta.None, int Anchor = 16)
{
    /// <summary>True for <see cref="KvCodecKind.F32"/>: a restored context gives bit-identical logits.</summary>
    public bool Lossless => Kind == KvCodecKind.F32;

    /// <summary>Canonical name (<c>f32</c>, <c>f16</c>, or <c>q:kl=…,vl=…,delta=…</c> with every layer's bits), parseable back by <see cref="Parse"/>.</summary>
    public string Name => Kind switch
    {
        KvCodecKind.F32 => "f32",
        KvCodecKind.F16 => "f16",
        _ => string.Create(CultureInfo.InvariantCulture,
            $"q:kl={string.Join('/', KeyBits)},vl={string.Join('/', ValueBits)},delta={(Delta == KvDelta.Previous ? "prev" : Delta.ToString().ToLowerInvariant())}{(Delta == KvDelta.Anchor ? $",anchor={Anchor}" : "")}"),
    };

    /// <summary>The canonical <see cref="Name"/>.</summary>
    public override string ToString() => Name;

    /// <summary>Parses a codec name (see the type's summary) for a model of <paramref name="layers"/> layers.</summary>
    /// <exception cref="ArgumentException">Unknown name or option, a per-layer list whose length is not
    /// 1 or <paramref name="layers"/>, a bit depth outside 1…8, or an anchor outside 1…65535.</exception>
    public static KvCodecSpec Parse(string text, int layers)
    {
        var (name, options) = SpecText.Split(text, "KV codec");
        byte[] Fill(int b) => Enumerable.Repeat((byte)b, layers).ToArray();
        KvCodecSpec spec;
        if (name == "f32") spec = new(KvCodecKind.F32, Fill(0), Fill(0));
        else if (name == "f16") spec = new(KvCodecKind.F16, Fill(0), Fill(0));
        else if (name == "q") spec = new(KvCodecKind.Quant, Fill(8), Fill(8));
        else if (name.Length > 1 && name[0] == 'q' && int.TryParse(name[1..], NumberStyles.None, CultureInfo.InvariantCulture, out int bits))
            spec = new(KvCodecKind.Quant, Fill(bits), Fill(bits));
        else throw new ArgumentException($"unknown KV codec '{text}' (f32, f16, qB[:k=B,v=B,layers=B/B/…,delta=none|anchor|prev,anchor=N])");
        if (options.Count > 0 && spec.Kind != KvCodecKind.Quant) throw new ArgumentException($"KV codec '{name}' takes no parameters");
        foreach (var (key, value, part) in options)
        {
            byte[] PerLayer()
            {
                var b = value.Split('/').Select(x => byte.TryParse(x, NumberStyles.None, CultureInfo.InvariantCulture, out var v) ? v
                    : throw new ArgumentException($"'{part}' in '{text}': '{x}' is not a bit depth")).ToArray();
                if (b.Length == 1) return Fill(b[0]);
                if (b.Length != layers) throw new ArgumentException($"'{part}' in '{text}' lists {b.Length} layers, the model has {layers}");
                return b;
            }
            spec = key switch
            {
                "k" or "kl" => spec with { KeyBits = PerLayer() },
                "v" or "vl" => spec with { ValueBits = PerLayer() },
                "layers" => spec with { KeyBits = PerLayer(), ValueBits = PerLayer() },
                "delta" => spec with
                {
                    Delta = value switch
                    {
                        "none" => KvDelta.None, "anchor" => KvDelta.Anchor, "prev" => KvDelta.Previous,
                        _ => throw new ArgumentException($"'{part}' in '{text}': delta is none, anchor or prev"),
                    },
                },
                "anchor" => spec with { Anchor = int.TryParse(value, NumberStyles.None, CultureInfo.InvariantCulture, out int a) && a is >= 1 and <= 65535 ? a : throw new ArgumentException($"'{part}' in '{text}': anchor is 1…65535") },
                _ => throw new ArgumentException($"unknown KV codec parameter '{key}' in '{text}' (k, v, kl, vl, layers, delta, anchor)"),
            };
        }
        if (spec.Kind == KvCodecKind.Quant && spec.KeyBits.Concat(spec.ValueBits).Any(b => b is < 1 or > 8))
            throw new ArgumentException($"'{text}': bit depths must be 1…8");
        return spec;
    }
}

/// <summary>Sizes of one saved context, for reports.</summary>
/// <param name="FileBytes">The whole <c>.tkv</c> file.</param>
/// <param name="HeaderBytes">The header, its checksum and the file's trailing checksum.</param>
/// <param name="KeyBytes">All key sections, including their 12-byte section headers.</param>
/// <param name="ValueBytes">All value sections, including their 12-byte section headers.</param>
/// <param name="RawF16Bytes">Keys and values of all cached positions as F16, the "raw dump" baseline.</param>
public sealed record KvSaveStats(long FileBytes, long HeaderBytes, long KeyBytes, long ValueBytes, long RawF16Bytes);
