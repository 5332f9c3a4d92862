using System.Buffers;
using System.Buffers.Binary;
using System.Globalization;
using System.IO.Hashing;
using System.Numerics.Tensors;
using System.Runtime.InteropServices;
using System.Text;
using TensorCodec.Coders;
using TensorCodec.Numerics;

namespace TensorCodec.Engine;

public enum KvCodecKind : byte { F32 = 0, F16 = 1, Quant = 2 }

/// <summary>How the integer codes of a quantized section are transformed before entropy coding.</summary>
public enum KvDelta : byte
{
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
/// </summary>
public sealed record KvCodecSpec(KvCodecKind Kind, byte[] KeyBits, byte[] ValueBits, KvDelta Delta = KvDelta.None, int Anchor = 16)
{
    public bool Lossless => Kind == KvCodecKind.F32;

    public string Name => Kind switch
    {
        KvCodecKind.F32 => "f32",
        KvCodecKind.F16 => "f16",
        _ => string.Create(CultureInfo.InvariantCulture,
            $"q:kl={string.Join('/', KeyBits)},vl={string.Join('/', ValueBits)},delta={(Delta == KvDelta.Previous ? "prev" : Delta.ToString().ToLowerInvariant())}{(Delta == KvDelta.Anchor ? $",anchor={Anchor}" : "")}"),
    };

    public override string ToString() => Name;

    public static KvCodecSpec Parse(string text, int layers)
    {
        string s = text.Trim().ToLowerInvariant();
        int colon = s.IndexOf(':');
        string name = colon < 0 ? s : s[..colon];
        byte[] Fill(int b) => Enumerable.Repeat((byte)b, layers).ToArray();
        KvCodecSpec spec;
        if (name == "f32") spec = new(KvCodecKind.F32, Fill(0), Fill(0));
        else if (name == "f16") spec = new(KvCodecKind.F16, Fill(0), Fill(0));
        else if (name == "q") spec = new(KvCodecKind.Quant, Fill(8), Fill(8));
        else if (name.Length > 1 && name[0] == 'q' && int.TryParse(name[1..], NumberStyles.None, CultureInfo.InvariantCulture, out int bits))
            spec = new(KvCodecKind.Quant, Fill(bits), Fill(bits));
        else throw new ArgumentException($"unknown KV codec '{text}' (f32, f16, qB[:k=B,v=B,layers=B/B/…,delta=none|anchor|prev,anchor=N])");
        if (colon >= 0)
        {
            if (spec.Kind != KvCodecKind.Quant) throw new ArgumentException($"KV codec '{name}' takes no parameters");
            foreach (var part in s[(colon + 1)..].Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
            {
                int eq = part.IndexOf('=');
                if (eq < 0) throw new ArgumentException($"KV codec parameter '{part}' in '{text}' is not KEY=VALUE");
                string key = part[..eq], value = part[(eq + 1)..];
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
        }
        if (spec.Kind == KvCodecKind.Quant && spec.KeyBits.Concat(spec.ValueBits).Any(b => b is < 1 or > 8))
            throw new ArgumentException($"'{text}': bit depths must be 1…8");
        return spec;
    }
}

/// <summary>Sizes of one saved context, for reports.</summary>
public sealed record KvSaveStats(long FileBytes, long HeaderBytes, long KeyBytes, long ValueBytes, long RawF16Bytes);

/// <summary>
/// The keys and values of a prompt's positions, captured from a run and savable as a <c>.tkv</c>
/// file (FORMAT.md, "KV context files"). Holds positions 0…n−2 of an n-token prompt: the last
/// token is fed again on restore, which is what produces the next-token logits without storing them.
/// </summary>
public sealed class KvContext
{
    public const int Version = 1;
    static ReadOnlySpan<byte> Magic => "TCODECKV"u8;
    const int FixedHeader = 56;

    public int Layers { get; }
    public int KvHeads { get; }
    public int HeadDim { get; }
    public int Vocab { get; }
    public int[] Tokens { get; }
    /// <summary>16-byte identity of the model (<see cref="ModelIdentity"/>).</summary>
    public byte[] ModelId { get; }
    /// <summary>Per layer, [position][kvDim].</summary>
    public float[][] Keys { get; }
    public float[][] Values { get; }
    public int Positions => Tokens.Length - 1;
    public int KvDim => KvHeads * HeadDim;
    /// <summary>The codec this context was read with (F32 for a captured one).</summary>
    public string Codec { get; private init; } = "f32";

    KvContext(int layers, int kvHeads, int headDim, int vocab, int[] tokens, byte[] modelId, float[][] keys, float[][] values)
    {
        Layers = layers; KvHeads = kvHeads; HeadDim = headDim; Vocab = vocab; Tokens = tokens; ModelId = modelId; Keys = keys; Values = values;
    }

    /// <summary>xxHash128 of the model file's bytes followed by its parsed config: weights + config.</summary>
    public static byte[] ModelIdentity(LlamaModel model)
    {
        var h = new XxHash128();
        if (File.Exists(model.Source))
            using (var f = new FileStream(model.Source, FileMode.Open, FileAccess.Read, FileShare.Read, 1 << 20)) h.Append(f);
        else h.Append(Encoding.UTF8.GetBytes(model.Source));
        h.Append(Encoding.UTF8.GetBytes(model.Config.ToString()));
        return h.GetHashAndReset();
    }

    /// <summary>Runs all but the last of <paramref name="tokens"/> and records the keys and values the model stores.</summary>
    public static KvContext Capture(LlamaModel model, ReadOnlySpan<int> tokens, int threads = 1, byte[]? modelId = null)
    {
        var c = model.Config;
        if (tokens.Length < 2) throw new ArgumentException("a context needs at least 2 tokens");
        if (tokens.Length > c.MaxSeqLen) throw new ArgumentException($"{tokens.Length} tokens exceed the model's maximum positions {c.MaxSeqLen}");
        int n = tokens.Length - 1;
        var rec = new RecordingCache(new F32KvCache(c, n), n);
        using (var s = model.CreateSession(new LlamaSessionOptions { Threads = threads, Capacity = n, Cache = rec }))
            s.Forward(tokens[..n], Span<float>.Empty, n);
        return new KvContext(c.Layers, c.KvHeads, c.HeadDim, c.VocabSize, tokens.ToArray(), modelId ?? ModelIdentity(model), rec.Keys, rec.Values);
    }

    /// <summary>
    /// A session holding this context, positioned after its cached positions. Feed
    /// <c>Tokens[^1]</c> next: its logits are the prompt's next-token distribution.
    /// </summary>
    public LlamaSession Restore(LlamaModel model, int extraCapacity, int threads = 1)
    {
        CheckModel(model, null);
        int capacity = Math.Min(model.Config.MaxSeqLen, Positions + 1 + Math.Max(0, extraCapacity));
        var cache = new F32KvCache(model.Config, capacity);
        for (int l = 0; l < Layers; l++)
            for (int p = 0; p < Positions; p++)
                cache.Store(l, p, Keys[l].AsSpan(p * KvDim, KvDim), Values[l].AsSpan(p * KvDim, KvDim));
        var s = model.CreateSession(new LlamaSessionOptions { Threads = threads, Capacity = capacity, Cache = cache });
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

    // ---------------------------------------------------------------- writing

    public KvSaveStats Write(Stream output, KvCodecSpec codec)
    {
        if (codec.KeyBits.Length != Layers || codec.ValueBits.Length != Layers)
            throw new ArgumentException($"KV codec has bit depths for {codec.KeyBits.Length} layers, the context has {Layers}");
        var header = new MemoryStream();
        Span<byte> fixedPart = stackalloc byte[FixedHeader];
        fixedPart.Clear();
        Magic.CopyTo(fixedPart);
        BinaryPrimitives.WriteUInt16LittleEndian(fixedPart[8..], Version);
        int headerSize = FixedHeader + 2 * Layers + 4 * Tokens.Length + 8;
        BinaryPrimitives.WriteInt32LittleEndian(fixedPart[12..], headerSize);
        ModelId.CopyTo(fixedPart[16..]);
        BinaryPrimitives.WriteInt32LittleEndian(fixedPart[32..], Layers);
        BinaryPrimitives.WriteInt32LittleEndian(fixedPart[36..], KvHeads);
        BinaryPrimitives.WriteInt32LittleEndian(fixedPart[40..], HeadDim);
        BinaryPrimitives.WriteInt32LittleEndian(fixedPart[44..], Vocab);
        BinaryPrimitives.WriteInt32LittleEndian(fixedPart[48..], Tokens.Length);
        fixedPart[52] = (byte)codec.Kind;
        fixedPart[53] = (byte)codec.Delta;
        BinaryPrimitives.WriteUInt16LittleEndian(fixedPart[54..], (ushort)codec.Anchor);
        header.Write(fixedPart);
        header.Write(codec.KeyBits);
        header.Write(codec.ValueBits);
        header.Write(MemoryMarshal.AsBytes(Tokens.AsSpan())); // little-endian hosts only, as the rest of the library
        Span<byte> h8 = stackalloc byte[8];
        BinaryPrimitives.WriteUInt64LittleEndian(h8, XxHash3.HashToUInt64(header.GetBuffer().AsSpan(0, (int)header.Length)));
        header.Write(h8);

        var file = new XxHash3();
        void Emit(ReadOnlySpan<byte> b) { output.Write(b); file.Append(b); }
        Emit(header.GetBuffer().AsSpan(0, (int)header.Length));
        long keyBytes = 0, valueBytes = 0;
        Span<byte> sh = stackalloc byte[12];
        for (int l = 0; l < Layers; l++)
            for (int kind = 0; kind < 2; kind++)
            {
                byte[] payload = EncodeSection(kind == 0 ? Keys[l] : Values[l], codec, kind == 0 ? codec.KeyBits[l] : codec.ValueBits[l]);
                BinaryPrimitives.WriteInt32LittleEndian(sh, payload.Length);
                BinaryPrimitives.WriteUInt64LittleEndian(sh[4..], XxHash3.HashToUInt64(payload));
                Emit(sh);
                Emit(payload);
                if (kind == 0) keyBytes += 12 + payload.Length; else valueBytes += 12 + payload.Length;
            }
        BinaryPrimitives.WriteUInt64LittleEndian(h8, file.GetCurrentHashAsUInt64());
        output.Write(h8);
        return new KvSaveStats(header.Length + keyBytes + valueBytes + 8, header.Length + 8, keyBytes, valueBytes, RawF16Bytes);
    }

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

    byte[] EncodeSection(float[] x, KvCodecSpec codec, int bits)
    {
        int n = Positions * KvDim;
        byte[] raw;
        DType dtype;
        byte[] prefix = [];
        switch (codec.Kind)
        {
            case KvCodecKind.F32:
                raw = MemoryMarshal.AsBytes(x.AsSpan(0, n)).ToArray();
                dtype = DType.F32;
                break;
            case KvCodecKind.F16:
                var h = new Half[n];
                TensorPrimitives.ConvertToHalf(x.AsSpan(0, n), h);
                raw = MemoryMarshal.AsBytes(h.AsSpan()).ToArray();
                dtype = DType.F16;
                break;
            default:
                // Per channel over all positions: channel ranges differ by orders of magnitude (key outliers).
                // zero and scale are F16 and the codes are computed against the rounded pair, which is what decodes.
                var zero = new Half[KvDim];
                var scale = new Half[KvDim];
                var center = new byte[KvDim];
                raw = new byte[n];
                int levels = (1 << bits) - 1;
                for (int ch = 0; ch < KvDim; ch++)
                {
                    float lo = float.PositiveInfinity, hi = float.NegativeInfinity;
                    for (int p = 0; p < Positions; p++) { float v = x[p * KvDim + ch]; lo = MathF.Min(lo, v); hi = MathF.Max(hi, v); }
                    zero[ch] = (Half)lo;
                    scale[ch] = (Half)((hi - (float)zero[ch]) / levels);
                    float z = (float)zero[ch], inv = (float)scale[ch] == 0 ? 0 : 1 / (float)scale[ch];
                    long sum = 0;
                    for (int p = 0; p < Positions; p++)
                    {
                        int c = Math.Clamp((int)MathF.Round((x[p * KvDim + ch] - z) * inv), 0, levels);
                        raw[p * KvDim + ch] = (byte)c;
                        sum += c;
                    }
                    center[ch] = (byte)Math.Round(sum / (double)Positions);
                }
                // Channels centre at different codes; one order-0 coder over all of them sees the
                // mixture. Coding each code's difference from its channel's mean code (mod 256)
                // lines the channels up at 0. Delta modes replace the centre with a reference position.
                if (codec.Delta == KvDelta.None)
                    for (int i = 0; i < n; i++) raw[i] -= center[i % KvDim];
                else
                    ApplyDelta(raw, codec, forward: true);
                prefix = new byte[5 * KvDim];
                MemoryMarshal.AsBytes(zero.AsSpan()).CopyTo(prefix);
                MemoryMarshal.AsBytes(scale.AsSpan()).CopyTo(prefix.AsSpan(2 * KvDim));
                center.CopyTo(prefix.AsSpan(4 * KvDim));
                dtype = DType.I8;
                break;
        }
        var dst = new byte[prefix.Length + ChunkCodec.MaxEncodedLength(raw.Length)];
        prefix.CopyTo(dst, 0);
        int len = ChunkCodec.Encode(raw, dtype, KvDim, dst.AsSpan(prefix.Length));
        return dst.AsSpan(0, prefix.Length + len).ToArray();
    }

    /// <summary>Differences modulo 256 between code rows: invertible for any bit depth ≤ 8.</summary>
    void ApplyDelta(byte[] codes, KvCodecSpec codec, bool forward)
    {
        if (codec.Delta == KvDelta.None) return;
        int d = KvDim;
        if (codec.Delta == KvDelta.Anchor)
        {
            for (int p = 0; p < Positions; p++)
            {
                int a = p / codec.Anchor * codec.Anchor;
                if (a == p) continue;
                for (int ch = 0; ch < d; ch++)
                    codes[p * d + ch] = forward ? (byte)(codes[p * d + ch] - codes[a * d + ch]) : (byte)(codes[p * d + ch] + codes[a * d + ch]);
            }
            return;
        }
        // Previous: encode backwards so each row still sees its undifferenced predecessor; decode forwards.
        if (forward)
            for (int p = Positions - 1; p >= 1; p--)
                for (int ch = 0; ch < d; ch++) codes[p * d + ch] -= codes[(p - 1) * d + ch];
        else
            for (int p = 1; p < Positions; p++)
                for (int ch = 0; ch < d; ch++) codes[p * d + ch] += codes[(p - 1) * d + ch];
    }

    // ---------------------------------------------------------------- reading

    /// <summary>
    /// Reads and verifies a <c>.tkv</c> file. With <paramref name="model"/>, also refuses a context
    /// saved from another model. Every failure names the file, the field and its offset.
    /// </summary>
    public static KvContext Read(byte[] file, string source, LlamaModel? model = null, byte[]? modelId = null)
    {
        int pos = 0;
        ReadOnlySpan<byte> Take(int n, string field)
        {
            if (n < 0 || file.Length - pos < n)
                throw new InvalidDataException($"{source}: truncated: {field} at offset {pos} needs {n} bytes, {Math.Max(0, file.Length - pos)} remain");
            var s = file.AsSpan(pos, n);
            pos += n;
            return s;
        }
        var fixedPart = Take(FixedHeader, "header");
        if (!fixedPart[..8].SequenceEqual(Magic)) throw new InvalidDataException($"{source}: not a TensorCodec KV context (magic at offset 0 is not \"TCODECKV\")");
        int version = BinaryPrimitives.ReadUInt16LittleEndian(fixedPart[8..]);
        if (version != Version) throw new InvalidDataException($"{source}: version {version} at offset 8 is not supported (this reader knows version {Version})");
        int headerSize = BinaryPrimitives.ReadInt32LittleEndian(fixedPart[12..]);
        int layers = BinaryPrimitives.ReadInt32LittleEndian(fixedPart[32..]);
        int kvHeads = BinaryPrimitives.ReadInt32LittleEndian(fixedPart[36..]);
        int headDim = BinaryPrimitives.ReadInt32LittleEndian(fixedPart[40..]);
        int vocab = BinaryPrimitives.ReadInt32LittleEndian(fixedPart[44..]);
        int count = BinaryPrimitives.ReadInt32LittleEndian(fixedPart[48..]);
        // Bound every count by what the file could hold before trusting it for an allocation.
        if (layers is < 1 or > 4096 || kvHeads is < 1 or > 4096 || headDim is < 1 or > 65536 || vocab < 1 || count < 2
            || (long)count * 4 > file.Length || (long)headerSize != FixedHeader + 2L * layers + 4L * count + 8)
            throw new InvalidDataException($"{source}: header at offset 0 is corrupted (layers {layers}, KV heads {kvHeads}, head size {headDim}, tokens {count}, header size {headerSize})");
        // The decoded size must be plausible for the file (a checksum is no defence against a crafted file).
        long perLayer = (long)(count - 1) * kvHeads * headDim;
        if (perLayer > Array.MaxLength || 2 * 4 * perLayer * layers > 1024L * file.Length)
            throw new InvalidDataException($"{source}: header at offset 32 describes {2 * perLayer * layers} values, implausible for a file of {file.Length} bytes");
        var rest = Take(headerSize - FixedHeader - 8, "header bit depths and tokens");
        ulong stored = BinaryPrimitives.ReadUInt64LittleEndian(Take(8, "header checksum"));
        if (XxHash3.HashToUInt64(file.AsSpan(0, headerSize - 8)) != stored)
            throw new InvalidDataException($"{source}: header checksum mismatch (bytes 0…{headerSize - 9}): the file is corrupted");
        var kind = (KvCodecKind)fixedPart[52];
        var delta = (KvDelta)fixedPart[53];
        int anchor = BinaryPrimitives.ReadUInt16LittleEndian(fixedPart[54..]);
        if (kind > KvCodecKind.Quant || delta > KvDelta.Previous || (delta == KvDelta.Anchor && anchor < 1))
            throw new InvalidDataException($"{source}: codec fields at offset 52 are invalid (codec {fixedPart[52]}, delta {fixedPart[53]}, anchor {anchor})");
        var codec = new KvCodecSpec(kind, rest[..layers].ToArray(), rest.Slice(layers, layers).ToArray(), delta, Math.Max(1, anchor));
        if (kind == KvCodecKind.Quant && codec.KeyBits.Concat(codec.ValueBits).Any(b => b is < 1 or > 8))
            throw new InvalidDataException($"{source}: bit depths at offset {FixedHeader} are outside 1…8");
        int[] tokens = MemoryMarshal.Cast<byte, int>(rest[(2 * layers)..]).ToArray();
        var ctx = new KvContext(layers, kvHeads, headDim, vocab, tokens, fixedPart.Slice(16, 16).ToArray(),
            new float[layers][], new float[layers][]) { Codec = codec.Name };
        if (tokens.Any(t => (uint)t >= (uint)vocab)) throw new InvalidDataException($"{source}: a token id in the header is outside the vocabulary {vocab}");
        // Check the model before decoding anything: a wrong model is the likeliest mistake.
        if (model is not null) ctx.CheckModel(model, modelId ?? ModelIdentity(model), source);

        for (int l = 0; l < layers; l++)
            for (int k = 0; k < 2; k++)
            {
                string field = $"layer {l} {(k == 0 ? "keys" : "values")}";
                int sectionAt = pos;
                var sh = Take(12, field + " section header");
                int len = BinaryPrimitives.ReadInt32LittleEndian(sh);
                ulong hash = BinaryPrimitives.ReadUInt64LittleEndian(sh[4..]);
                var payload = Take(len, field);
                if (XxHash3.HashToUInt64(payload) != hash)
                    throw new InvalidDataException($"{source}: {field} (section at offset {sectionAt}, {len} bytes) checksum mismatch: the file is corrupted");
                var x = ctx.DecodeSection(payload, codec, k == 0 ? codec.KeyBits[l] : codec.ValueBits[l], source, field, sectionAt);
                if (k == 0) ctx.Keys[l] = x; else ctx.Values[l] = x;
            }
        int end = pos;
        ulong fileHash = BinaryPrimitives.ReadUInt64LittleEndian(Take(8, "file checksum"));
        if (XxHash3.HashToUInt64(file.AsSpan(0, end)) != fileHash)
            throw new InvalidDataException($"{source}: file checksum at offset {end} does not match: the file is corrupted");
        if (pos != file.Length) throw new InvalidDataException($"{source}: {file.Length - pos} unexpected bytes after the file checksum at offset {pos}");
        return ctx;
    }

    float[] DecodeSection(ReadOnlySpan<byte> payload, KvCodecSpec codec, int bits, string source, string field, int at)
    {
        int n = Positions * KvDim;
        var x = new float[n];
        OperationStatus st;
        switch (codec.Kind)
        {
            case KvCodecKind.F32:
                st = ChunkCodec.Decode(payload, MemoryMarshal.AsBytes(x.AsSpan()), DType.F32);
                break;
            case KvCodecKind.F16:
                var h = new Half[n];
                st = ChunkCodec.Decode(payload, MemoryMarshal.AsBytes(h.AsSpan()), DType.F16);
                TensorPrimitives.ConvertToSingle(h, x);
                break;
            default:
                if (payload.Length < 5 * KvDim) throw new InvalidDataException($"{source}: {field} at offset {at} is too short for its scales");
                var zero = MemoryMarshal.Cast<byte, Half>(payload[..(2 * KvDim)]);
                var scale = MemoryMarshal.Cast<byte, Half>(payload.Slice(2 * KvDim, 2 * KvDim));
                var center = payload.Slice(4 * KvDim, KvDim);
                var codes = new byte[n];
                st = ChunkCodec.Decode(payload[(5 * KvDim)..], codes, DType.I8);
                if (st != OperationStatus.Done) break;
                if (codec.Delta == KvDelta.None)
                    for (int i = 0; i < n; i++) codes[i] += center[i % KvDim];
                else
                    ApplyDelta(codes, codec, forward: false);
                int levels = (1 << bits) - 1;
                for (int p = 0; p < Positions; p++)
                    for (int ch = 0; ch < KvDim; ch++)
                    {
                        int c = codes[p * KvDim + ch];
                        if (c > levels) throw new InvalidDataException($"{source}: {field} at offset {at}: code {c} exceeds {bits} bits");
                        x[p * KvDim + ch] = (float)zero[ch] + (float)scale[ch] * c;
                    }
                break;
        }
        if (st != OperationStatus.Done) throw new InvalidDataException($"{source}: {field} at offset {at} does not decode ({st})");
        return x;
    }

    /// <summary>Passes every call to an F32 cache and keeps a copy of what was stored.</summary>
    sealed class RecordingCache(F32KvCache inner, int positions) : IKvCache
    {
        public readonly float[][] Keys = Enumerable.Range(0, inner.Layers).Select(_ => new float[positions * inner.KvHeads * inner.HeadDim]).ToArray();
        public readonly float[][] Values = Enumerable.Range(0, inner.Layers).Select(_ => new float[positions * inner.KvHeads * inner.HeadDim]).ToArray();
        public int Layers => inner.Layers;
        public int KvHeads => inner.KvHeads;
        public int HeadDim => inner.HeadDim;
        public int Capacity => inner.Capacity;
        public long ByteSize => inner.ByteSize;
        public void Store(int layer, int position, ReadOnlySpan<float> k, ReadOnlySpan<float> v)
        {
            inner.Store(layer, position, k, v);
            int d = KvHeads * HeadDim;
            k[..d].CopyTo(Keys[layer].AsSpan(position * d, d));
            v[..d].CopyTo(Values[layer].AsSpan(position * d, d));
        }
        public void Scores(int layer, int kvHead, ReadOnlySpan<float> q, int count, Span<float> scores) => inner.Scores(layer, kvHead, q, count, scores);
        public void AccumulateValues(int layer, int kvHead, ReadOnlySpan<float> weights, int count, Span<float> output) => inner.AccumulateValues(layer, kvHead, weights, count, output);
        public void Clear() => inner.Clear();
    }
}
