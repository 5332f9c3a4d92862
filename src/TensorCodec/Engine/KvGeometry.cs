using TensorCodec.Models;

namespace TensorCodec.Engine;

/// <summary>
/// What a session tells its KV cache, once: the model's shape, the positions to hold, the most
/// positions stored in one <see cref="IKvCache.Store"/> call, and the session's RoPE angles (for
/// caches that quantize keys before rotation).
/// </summary>
internal sealed record KvGeometry(int Layers, int KvHeads, int HeadDim, int Capacity, int MaxBatch, RopeTable Rope)
{
    /// <summary>Channels of one position's keys (or values): KvHeads × HeadDim.</summary>
    public int KvDim => KvHeads * HeadDim;

    /// <summary>The geometry of a session of <paramref name="config"/> holding <paramref name="capacity"/> positions.</summary>
    public static KvGeometry For(ModelConfig config, int capacity, int maxBatch = 64) =>
        new(config.Layers, config.KvHeads, config.HeadDim, capacity, Math.Max(1, maxBatch), RopeTable.For(config, capacity));

    /// <summary>A geometry without a model (tests, tools): adjacent-pair RoPE with θ = 10000 unless given.</summary>
    public static KvGeometry Of(int layers, int kvHeads, int headDim, int capacity, int maxBatch = 64, RopeStyle rope = RopeStyle.AdjacentPairs, float ropeTheta = 10000f) =>
        new(layers, kvHeads, headDim, capacity, Math.Max(1, maxBatch), new RopeTable(rope, ropeTheta, headDim, capacity));
}
