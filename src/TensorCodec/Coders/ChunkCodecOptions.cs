namespace TensorCodec.Coders;

/// <summary>Settings of a <see cref="ChunkEncoder"/>. Decoding needs none: every chunk describes itself.</summary>
public sealed class ChunkCodecOptions
{
    /// <summary>zstd level for data without float structure (U8, Packed, Unknown, and as the integer alternative).</summary>
    public int ZstdLevel { get; init; } = 3;
    /// <summary>
    /// Also measure each stream's order-1 entropy (previous symbol as context) in the statistics.
    /// Off by default: the 64K-entry pair histogram costs about as much as coding the chunk.
    /// </summary>
    public bool MeasureOrder1 { get; init; } = false;
    /// <summary>Let FP8 chunks use split transforms 10/11 where they pay (<see cref="Fp8Split"/>); off: always transform 0, for measurements and tests.</summary>
    internal bool Fp8Fields { get; init; } = true;
    /// <summary>
    /// Let chunks of ggml block tensors (quantized GGUF) use chunk mode 3, which codes the blocks' fields apart with
    /// adaptive context models (<see cref="GgmlFieldCoder"/>) where that is smaller. It saves 2–7 % against zstd -19
    /// but codes at about 5–10 MB/s per core, so it is off by default; the CLI turns it on from level 10.
    /// </summary>
    public bool GgmlFields { get; init; } = false;
    /// <summary>
    /// Let BF16 and F32 chunks use split transforms 12/13 (<see cref="ContextMixCoder"/>): sign, exponent and top mantissa
    /// bits range coded with mixed context models where that is smaller. About 1.3 % smaller than the order-0 coders on
    /// bard-3m BF16, but it codes at a few MB/s per core, so it is off by default; the CLI turns it on at level 19.
    /// </summary>
    public bool ContextMix { get; init; } = false;
    /// <summary>
    /// Let chunks of ggml block tensors use chunk mode 4: mode 3's fields and contexts coded with static per-context rANS
    /// tables (<see cref="GgmlTableCoder"/>) where that is smaller, at rANS speed. On by default.
    /// </summary>
    public bool GgmlTables { get; init; } = true;
    /// <summary>The defaults: zstd level 3, no order-1 measurement.</summary>
    public static ChunkCodecOptions Default { get; } = new();
}
