using System.Globalization;

using TensorCodec.Models;

namespace TensorCodec.Engine;

public enum KvKind : byte { F32, F16, Q8_0, Kivi }

/// <summary>
/// A KV-cache type as named on the command line (<c>--kv</c>): <c>f32</c>, <c>f16</c>, <c>q8_0</c>,
/// <c>kivi2</c>, <c>kivi4</c>, <c>kvmix</c> (K4/V2), each KIVI-style name optionally followed by
/// <c>:k=B,v=B,g=G,r=R</c>. Creates the cache and knows its exact size for a context length.
/// </summary>
public sealed record KvSpec(KvKind Kind, int KeyBits = 0, int ValueBits = 0, int Group = 32, int Residual = 32, int Sink = 0, bool PreRope = false, bool Clip = false)
{
    public static KvSpec F32 { get; } = new(KvKind.F32);

    /// <summary>Canonical name, parseable back by <see cref="Parse"/>.</summary>
    public string Name => Kind switch
    {
        KvKind.F32 => "f32",
        KvKind.F16 => "f16",
        KvKind.Q8_0 => "q8_0",
        _ => string.Create(CultureInfo.InvariantCulture, $"kivi:k={KeyBits},v={ValueBits},g={Group},r={Residual}{(Sink > 0 ? $",s={Sink}" : "")}{(PreRope ? ",p=1" : "")}{(Clip ? ",c=1" : "")}"),
    };

    public override string ToString() => Name;

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

    public long BytesFor(ModelConfig c, int tokens) => BytesFor(c.Layers, c.KvHeads, c.HeadDim, tokens);
}
