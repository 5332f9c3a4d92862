using System.IO.Hashing;
using System.Numerics.Tensors;
using System.Runtime.InteropServices;
using System.Text;
using TensorCodec.Containers;
using TensorCodec.Containers.Tkv;

namespace TensorCodec.Engine;

/// <summary>
/// The keys and values of a prompt's positions, captured from a run and restored into a session.
/// Holds positions 0…n−2 of an n-token prompt: the last token is fed again on restore, which is
/// what produces the next-token logits without storing them. Saved as a <c>.tkv</c> file by
/// <see cref="TkvWriter"/> and read by <see cref="TkvReader"/>.
/// </summary>
public sealed class KvContext
{
    /// <summary>Transformer layers of the model the context belongs to.</summary>
    public int Layers { get; }
    /// <summary>Key/value heads per layer.</summary>
    public int KvHeads { get; }
    /// <summary>Channels per head.</summary>
    public int HeadDim { get; }
    /// <summary>Vocabulary size of the model.</summary>
    public int Vocab { get; }
    /// <summary>The whole prompt, including the last token, which is not cached (see <see cref="Restore"/>).</summary>
    public int[] Tokens { get; }
    /// <summary>16-byte identity of the model (<see cref="ModelIdentity"/>).</summary>
    public byte[] ModelId { get; }
    /// <summary>Per layer, [position][kvDim], RoPE applied.</summary>
    public float[][] Keys { get; }
    /// <summary>Per layer, [position][kvDim].</summary>
    public float[][] Values { get; }
    /// <summary>Cached positions: all tokens but the last.</summary>
    public int Positions => Tokens.Length - 1;
    /// <summary>Channels of one position's keys (or values): <see cref="KvHeads"/> × <see cref="HeadDim"/>.</summary>
    public int KvDim => KvHeads * HeadDim;
    /// <summary>The codec this context was read with (F32 for a captured one).</summary>
    public string Codec { get; private init; } = "f32";

    KvContext(int layers, int kvHeads, int headDim, int vocab, int[] tokens, byte[] modelId, float[][] keys, float[][] values)
    {
        Layers = layers; KvHeads = kvHeads; HeadDim = headDim; Vocab = vocab; Tokens = tokens; ModelId = modelId; Keys = keys; Values = values;
    }

    /// <summary>xxHash128 of the model file's bytes (a sharded model's shards, in order) followed by its parsed
    /// config: weights + config, whichever path (folder, index, file) named them.</summary>
    public static byte[] ModelIdentity(LlamaModel model)
    {
        var h = new XxHash128();
        if (model.Files.Count > 0)
            foreach (var path in model.Files)
                using (var f = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, 1 << 20)) h.Append(f);
        else h.Append(Encoding.UTF8.GetBytes(model.Source));
        h.Append(Encoding.UTF8.GetBytes(model.Config.IdentityText()));
        return h.GetHashAndReset();
    }

    /// <summary>Runs all but the last of <paramref name="tokens"/> and records the keys and values the model stores.</summary>
    public static KvContext Capture(LlamaModel model, ReadOnlySpan<int> tokens, int threads = 1, byte[]? modelId = null)
    {
        var c = model.Config;
        if (tokens.Length < 2) throw new ArgumentException("a context needs at least 2 tokens");
        if (tokens.Length > c.MaxSeqLen) throw new ArgumentException($"{tokens.Length} tokens exceed the model's maximum positions {c.MaxSeqLen}");
        int n = tokens.Length - 1, d = c.KvDim;
        var keys = new float[c.Layers][];
        var values = new float[c.Layers][];
        using (var s = model.CreateSession(new LlamaSessionOptions { Threads = threads, Capacity = n }))
        {
            s.Forward(tokens[..n], Span<float>.Empty, n);
            var cache = (F32KvCache)s.Cache;
            for (int l = 0; l < c.Layers; l++)
            {
                keys[l] = new float[n * d]; values[l] = new float[n * d];
                for (int p = 0; p < n; p++) cache.Read(l, p, keys[l].AsSpan(p * d, d), values[l].AsSpan(p * d, d));
            }
        }
        return new KvContext(c.Layers, c.KvHeads, c.HeadDim, c.VocabSize, tokens.ToArray(), modelId ?? ModelIdentity(model), keys, values);
    }

    /// <summary>
    /// A session holding this context, positioned after its cached positions. Feed
    /// <c>Tokens[^1]</c> next: its logits are the prompt's next-token distribution.
    /// </summary>
    public LlamaSession Restore(LlamaModel model, int extraCapacity, int threads = 1)
    {
        CheckModel(model, null);
        int capacity = Math.Min(model.Config.MaxSeqLen, Positions + 1 + Math.Max(0, extraCapacity));
        var s = model.CreateSession(new LlamaSessionOptions { Threads = threads, Capacity = capacity });
        int batch = s.Cache.Geometry.MaxBatch;
        for (int l = 0; l < Layers; l++)
            for (int p = 0; p < Positions; p += batch)
            {
                int n = Math.Min(batch, Positions - p);
                s.Cache.Store(l, p, n, Keys[l].AsSpan(p * KvDim, n * KvDim), Values[l].AsSpan(p * KvDim, n * KvDim));
            }
        s.AdoptCachedPositions(Positions);
        return s;
    }

    /// <summary>Refuses a model other than the one the context was saved from.</summary>
    public void CheckModel(LlamaModel model, byte[]? modelId, string? source = null)
    {
        var c = model.Config;
        string where = source is null ? "KV context" : source;
        if (c.Layers != Layers || c.KvHeads != KvHeads || c.HeadDim != HeadDim || c.VocabSize != Vocab)
            throw new InvalidDataException($"{where}: saved for a model with {Layers} layers, {KvHeads} KV heads of {HeadDim}, vocabulary {Vocab}; " +
                $"{model.Source} has {c.Layers} layers, {c.KvHeads} KV heads of {c.HeadDim}, vocabulary {c.VocabSize}");
        if (modelId is not null && !modelId.AsSpan().SequenceEqual(ModelId))
            throw new InvalidDataException($"{where}: saved from a different model (identity {Convert.ToHexStringLower(ModelId)}); " +
                $"{model.Source} has identity {Convert.ToHexStringLower(modelId)}. A KV cache only makes sense with the exact weights that produced it");
    }

    /// <summary>Saves this context as a <c>.tkv</c> file coded with <paramref name="codec"/>.</summary>
    public KvSaveStats Write(Stream output, KvCodecSpec codec) =>
        TkvWriter.Write(output, new TkvHeader(ModelId, Layers, KvHeads, HeadDim, Vocab, Tokens, codec), Keys, Values);

    /// <summary>Keys and values of all cached positions as F16, the "raw dump" baseline.</summary>
    public long RawF16Bytes => 2L * Layers * Positions * KvDim * 2;

    /// <summary>The F16 dump itself (layer-major, keys then values), for baselines such as zstd.</summary>
    public byte[] RawF16Dump()
    {
        var all = new Half[(int)(RawF16Bytes / 2)];
        int o = 0, n = Positions * KvDim;
        for (int l = 0; l < Layers; l++)
        {
            TensorPrimitives.ConvertToHalf(Keys[l].AsSpan(0, n), all.AsSpan(o, n)); o += n;
            TensorPrimitives.ConvertToHalf(Values[l].AsSpan(0, n), all.AsSpan(o, n)); o += n;
        }
        return MemoryMarshal.AsBytes(all.AsSpan()).ToArray();
    }

    /// <summary>Reads the <c>.tkv</c> file at <paramref name="path"/> (see <see cref="Read(Stream, string, LlamaModel, byte[])"/>).</summary>
    /// <exception cref="IOException">The path is not a regular file (a FIFO, device or directory), or cannot be read.</exception>
    public static KvContext Read(string path, LlamaModel? model = null, byte[]? modelId = null)
    {
        InputFile.EnsureRegular(path); // a FIFO would block the open
        using var f = File.OpenRead(path);
        return Read(f, path, model, modelId);
    }

    /// <summary>Reads a <c>.tkv</c> file held in memory (see <see cref="Read(Stream, string, LlamaModel, byte[])"/>).</summary>
    public static KvContext Read(byte[] file, string source, LlamaModel? model = null, byte[]? modelId = null) =>
        Read(new MemoryStream(file, writable: false), source, model, modelId);

    /// <summary>
    /// Reads and verifies a <c>.tkv</c> file. With <paramref name="model"/>, also refuses a context
    /// saved from another model, before decoding anything. A damaged file is a
    /// <see cref="TensorFormatException"/> naming the file, the field and its offset.
    /// </summary>
    public static KvContext Read(Stream file, string source, LlamaModel? model = null, byte[]? modelId = null)
    {
        var reader = new TkvReader(file, source);
        var h = reader.Header;
        var ctx = new KvContext(h.Layers, h.KvHeads, h.HeadDim, h.Vocab, h.Tokens, h.ModelId, new float[h.Layers][], new float[h.Layers][]) { Codec = h.Codec.Name };
        // Check the model before decoding anything: a wrong model is the likeliest mistake.
        if (model is not null) ctx.CheckModel(model, modelId ?? ModelIdentity(model), source);
        var (keys, values) = reader.ReadSections();
        keys.CopyTo(ctx.Keys, 0);
        values.CopyTo(ctx.Values, 0);
        return ctx;
    }
}
