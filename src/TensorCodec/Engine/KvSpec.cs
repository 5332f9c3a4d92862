using System.Globalization;

using TensorCodec.Models;

namespace TensorCodec.Engine;

/// <summary>The family of a KV cache type (<see cref="KvSpec.Kind"/>).</summary>
public enum KvKind : byte
{
    /// <summary>Keys and values in F32, the engine's precision (<c>f32</c>).</summary>
    F32,
    /// <summary>Keys and values rounded to F16 (<c>f16</c>).</summary>
    F16,
    /// <summary>llama.cpp q8_0 per position: blocks of 32 channels, int8 codes plus an F16 scale (<c>q8_0</c>).</summary>
    Q8_0,
    /// <summary>KIVI-style asymmetric low-bit codes with an exact residual (<c>kivi2</c>, <c>kivi4</c>, <c>kvmix</c>, <c>kivi:…</c>).</summary>
    Kivi,
}

/// <summary>
/// A KV-cache type as named on the command line (<c>--kv</c>): <c>f32</c>, <c>f16</c>, <c>q8_0</c>,
/// <c>kivi2</c>, <c>kivi4</c>, <c>kvmix</c> (K4/V2), each KIVI-style name optionally followed by
/// <c>:k=B,v=B,g=G,r=R,s=S,p=0|1,c=0|1</c>. Creates the cache and knows its exact size for a context length.
/// The parameters after <paramref name="Kind"/> apply to <see cref="KvKind.Kivi"/> only (docs/KV.md).
/// </summary>
/// <param name="Kind">The cache family.</param>
/// <param name="KeyBits">KIVI key bits: 1, 2, 3, 4 or 8.</param>
/// <param name="ValueBits">KIVI value bits: 1, 2, 3, 4 or 8.</param>
/// <param name="Group">KIVI group size G, a positive multiple of 8: keys share a range per channel over G positions,
/// values per position over min(G, head size) channels.</param>
/// <param name="Residual">KIVI residual R ≥ 0: at least the newest R positions (at most R+G−1) stay exact F32.</param>
/// <param name="Sink">Attention-sink positions S ≥ 0 at the start that stay exact (not in KIVI).</param>
/// <param name="PreRope">Quantize keys before RoPE (from KVQuant); scores re-rotate them.</param>
/// <param name="Clip">Choose each group's range by least squared error over trimmed ends (experimental).</param>
public sealed record KvSpec(KvKind Kind, int KeyBits = 0, int ValueBits = 0, int Group = 32, int Residual = 32, int Sink = 0, bool PreRope = false, bool Clip = false)
{
    /// <summary>The default cache: F32 keys and values.</summary>
    public static KvSpec F32 { get; } = new(KvKind.F32);

    /// <summary>Canonical name, parseable back by <see cref="Parse"/>.</summary>
    public string Name => Kind switch
    {
        KvKind.F32 => "f32",
        KvKind.F16 => "f16",
        KvKind.Q8_0 => "q8_0",
        _ => string.Create(CultureInfo.InvariantCulture, $"kivi:k={KeyBits},v={ValueBits},g={Group},r={Residual}{(Sink > 0 ? $",s={Sink}" : "")}{(PreRope ? ",p=1" : "")}{(Clip ? ",c=1" : "")}"),
    };

    /// <summary>The canonical <see cref="Name"/>.</summary>
    public override string ToString() => Name;

    /// <summary>Parses a <c>--kv</c> name: <c>f32</c>, <c>f16</c>, <c>q8_0</c> (or <c>q8</c>), <c>kivi2</c>, <c>kivi3</c>,
    /// <c>kivi4</c>, <c>kivi8</c>, <c>kvmix</c> or <c>kivi</c> (K2/V2), the KIVI ones optionally with <c>:k=…,v=…,g=…,r=…,s=…,p=…,c=…</c>.</summary>
    /// <exception cref="ArgumentException">Unknown name or parameter, a non-numeric value, parameters on a non-KIVI type,
    /// or a value out of range (bits not 1/2/3/4/8, g not a positive multiple of 8, negative r or s).</exception>
    public static KvSpec Parse(string text)
    {
        var (name, options) = SpecText.Split(text, "KV cache");
        KvSpec spec = name switch
        {
            "f32" => F32,
            "f16" => new(KvKind.F16),
            "q8_0" or "q8" => new(KvKind.Q8_0),
            "kivi2" => new(KvKind.Kivi, 2, 2),
            "kivi3" => new(KvKind.Kivi, 3, 3),
            "kivi4" => new(KvKind.Kivi, 4, 4),
            "kivi8" => new(KvKind.Kivi, 8, 8),
            "kvmix" => new(KvKind.Kivi, 4, 2),
            "kivi" => new(KvKind.Kivi, 2, 2),
            _ => throw new ArgumentException($"unknown KV cache type '{text}' (f32, f16, q8_0, kivi2, kivi4, kvmix[:k=4,v=2,g=32,r=32,s=0])"),
        };
        if (options.Count == 0) return spec;
        if (spec.Kind != KvKind.Kivi) throw new ArgumentException($"KV cache type '{name}' takes no parameters");
        foreach (var (key, value, part) in options)
        {
            if (!int.TryParse(value, NumberStyles.None, CultureInfo.InvariantCulture, out int v))
                throw new ArgumentException($"KV cache parameter '{part}' in '{text}' is not KEY=NUMBER");
            spec = key switch
            {
                "k" => spec with { KeyBits = v },
                "v" => spec with { ValueBits = v },
                "g" => spec with { Group = v },
                "r" => spec with { Residual = v },
                "s" => spec with { Sink = v },
                "p" => spec with { PreRope = v != 0 },
                "c" => spec with { Clip = v != 0 },
                _ => throw new ArgumentException($"unknown KV cache parameter '{key}' in '{text}' (k, v, g, r, s, p, c)"),
            };
        }
        spec.Validate(text);
        return spec;
    }

    void Validate(string text)
    {
        if (Kind != KvKind.Kivi) return;
        if (KeyBits is not (1 or 2 or 3 or 4 or 8) || ValueBits is not (1 or 2 or 3 or 4 or 8))
            throw new ArgumentException($"'{text}': key and value bits must be 1, 2, 3, 4 or 8");
        if (Group < 8 || Group % 8 != 0) throw new ArgumentException($"'{text}': group size g must be a positive multiple of 8");
        if (Residual < 0) throw new ArgumentException($"'{text}': residual r must be ≥ 0");
        if (Sink < 0) throw new ArgumentException($"'{text}': sink s must be ≥ 0");
    }

    /// <summary>The cache for <paramref name="geometry"/> (what a session calls, once).</summary>
    internal IKvCache Create(KvGeometry geometry) => Kind switch
    {
        KvKind.F32 => new F32KvCache(geometry),
        KvKind.F16 => new F16KvCache(geometry),
        KvKind.Q8_0 => new Q8KvCache(geometry),
        _ => new KiviKvCache(geometry, KeyBits, ValueBits, Group, Residual, Sink, PreRope, Clip),
    };

    /// <summary>
    /// Bytes a cache of this type allocates beyond <see cref="BytesFor(int, int, int, int)"/> at its capacity:
    /// 0 for f32, f16 and q8_0. KIVI also owns its F32 ring of R + G + MaxBatch positions (of which
    /// BytesFor counts only the exact residual), the code and scale slots of positions still in the
    /// residual, and 16 bytes of padding; this does not grow with the capacity once it exceeds R + G + MaxBatch.
    /// Object headers and per-layer counters (under 1 KiB) are not counted.
    /// </summary>
    internal long OverheadBytes(KvGeometry g) => Kind == KvKind.Kivi
        ? KiviKvCache.OwnedBytes(g, KeyBits, ValueBits, Group, Residual, Sink) - BytesFor(g.Layers, g.KvHeads, g.HeadDim, g.Capacity)
        : 0;

    /// <summary>
    /// Exact bytes of keys, values and their scales/zeros once <paramref name="tokens"/> positions
    /// are cached (what the representation needs, not what is preallocated for the capacity).
    /// </summary>
    public long BytesFor(int layers, int kvHeads, int headDim, int tokens)
    {
        long lh = (long)layers * kvHeads;
        switch (Kind)
        {
            case KvKind.F32: return lh * tokens * headDim * 2 * 4;
            case KvKind.F16: return lh * tokens * headDim * 2 * 2;
            case KvKind.Q8_0: return lh * tokens * 2 * (headDim + headDim / Q8KvCache.Block * 2);
            default:
                int q = KiviKvCache.QuantizedCount(tokens, Group, Residual);
                int vGroup = KiviKvCache.ValueGroup(Group, headDim);
                long keys = (long)(q / Group) * headDim * (Group * KeyBits / 8 + 4);
                long values = (long)q * (headDim * ValueBits / 8 + headDim / vGroup * 4);
                long residual = (long)(tokens - q) * headDim * 2 * 4;
                long sink = (long)Math.Min(Sink, q) * headDim * 2 * 4; // exact copies beside their (unused) codes
                return lh * (keys + values + residual + sink);
        }
    }

    /// <summary><see cref="BytesFor(int, int, int, int)"/> for the KV shape of model <paramref name="c"/>.</summary>
    public long BytesFor(ModelConfig c, int tokens) => BytesFor(c.Layers, c.KvHeads, c.HeadDim, tokens);
}
