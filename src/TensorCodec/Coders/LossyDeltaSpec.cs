namespace TensorCodec.Coders;

/// <summary>How a lossy fine-tune delta is stored (the method byte of the archive, FORMAT.md "Lossy deltas").</summary>
public enum LossyDeltaMethod : byte
{
    /// <summary>BitDelta-style: the sign of each delta value times one F16 scale per row (the row's mean |delta|).</summary>
    BitDelta = 1,
    /// <summary>Per-row absmax symmetric N-bit codes of the delta (2 bits: −1, 0, +1 times the row scale).</summary>
    Bits = 2,
    /// <summary>A rank-R factor L·Rᵀ of the delta in F16 (truncated SVD), optionally plus N-bit codes of what remains.</summary>
    LowRank = 3,
}

/// <summary>
/// A lossy delta coding as given to <c>tcodec compress --delta-lossy</c>: <c>bitdelta</c>, <c>bits:N</c> (N = 2 … 8),
/// <c>lowrank:R</c> or <c>lowrank:R+bits:N</c> (R = 1 … 4096, and at most min(rows, cols) of every tensor it applies to).
/// </summary>
public sealed record LossyDeltaSpec
{
    /// <summary>Largest rank accepted (the factors of a larger rank would rarely be smaller than the delta).</summary>
    public const int MaxRank = 4096;

    /// <summary>The method.</summary>
    public LossyDeltaMethod Method { get; }
    /// <summary>Bits per code of the (residual) delta: 2 … 8; 1 for <see cref="LossyDeltaMethod.BitDelta"/>; 0 for a low-rank factor alone.</summary>
    public int Bits { get; }
    /// <summary>Rank of the factor (<see cref="LossyDeltaMethod.LowRank"/> only; 0 otherwise).</summary>
    public int Rank { get; }

    internal LossyDeltaSpec(LossyDeltaMethod method, int bits, int rank)
    {
        string? why = method switch
        {
            LossyDeltaMethod.BitDelta => bits == 1 && rank == 0 ? null : "bitdelta takes no parameters",
            LossyDeltaMethod.Bits => bits is >= 2 and <= 8 && rank == 0 ? null : $"bits:{bits}: N must be 2..8",
            LossyDeltaMethod.LowRank => rank is < 1 or > MaxRank ? $"rank {rank} outside 1..{MaxRank}"
                : bits is 0 or (>= 2 and <= 8) ? null : $"+bits:{bits}: N must be 2..8",
            _ => $"unknown method {(int)method}",
        };
        if (why is not null) throw new ArgumentException(why);
        Method = method; Bits = bits; Rank = rank;
    }

    /// <summary>Parses <c>bitdelta</c>, <c>bits:N</c>, <c>lowrank:R</c> or <c>lowrank:R+bits:N</c>.</summary>
    /// <exception cref="ArgumentException">Anything else, with the reason.</exception>
    public static LossyDeltaSpec Parse(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        string t = text.Trim().ToLowerInvariant();
        try
        {
            if (t == "bitdelta") return new LossyDeltaSpec(LossyDeltaMethod.BitDelta, 1, 0);
            if (t.StartsWith("bits:", StringComparison.Ordinal)) return new LossyDeltaSpec(LossyDeltaMethod.Bits, Number(t[5..], "N"), 0);
            if (t.StartsWith("lowrank:", StringComparison.Ordinal))
            {
                var parts = t[8..].Split('+');
                if (parts.Length > 2 || (parts.Length == 2 && !parts[1].StartsWith("bits:", StringComparison.Ordinal)))
                    throw new ArgumentException("expected lowrank:R or lowrank:R+bits:N");
                int rank = Number(parts[0], "R");
                int bits = parts.Length == 2 ? Number(parts[1][5..], "N") : 0;
                return new LossyDeltaSpec(LossyDeltaMethod.LowRank, bits, rank);
            }
            throw new ArgumentException("expected bitdelta, bits:N, lowrank:R or lowrank:R+bits:N");
        }
        catch (ArgumentException e)
        {
            throw new ArgumentException($"--delta-lossy '{text}': {e.Message}");
        }
    }

    static int Number(string s, string what) =>
        int.TryParse(s, System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out int v)
            ? v : throw new ArgumentException($"{what} '{s}' is not a whole number");

    /// <summary>The option's spelling (what <see cref="Parse"/> reads back).</summary>
    public override string ToString() => Method switch
    {
        LossyDeltaMethod.BitDelta => "bitdelta",
        LossyDeltaMethod.Bits => $"bits:{Bits}",
        _ => Bits == 0 ? $"lowrank:{Rank}" : $"lowrank:{Rank}+bits:{Bits}",
    };
}
