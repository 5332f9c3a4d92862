using System.Buffers;
using System.Numerics.Tensors;
using System.Runtime.InteropServices;
using TensorCodec.Coders;
using TensorCodec.Formats;
using TensorCodec.Numerics;

namespace TensorCodec.Containers.Tkv;

/// <summary>
/// One section's payload (the keys or the values of a layer, [positions][kvDim]): raw F32, F16,
/// or per-channel asymmetric codes (<see cref="AsymmetricQuant"/>) made uniform by centring or
/// delta coding, then entropy-coded by <see cref="ChunkCodec"/>.
/// </summary>
internal static class TkvSection
{
    public static byte[] Encode(ChunkEncoder encoder, ReadOnlySpan<float> x, int positions, int kvDim, KvCodecSpec codec, int bits)
    {
        int n = positions * kvDim;
        x = x[..n];
        byte[] raw;
        DType dtype;
        byte[] prefix = [];
        switch (codec.Kind)
        {
            case KvCodecKind.F32:
                raw = MemoryMarshal.AsBytes(x).ToArray();
                dtype = DType.F32;
                break;
            case KvCodecKind.F16:
                var h = new Half[n];
                TensorPrimitives.ConvertToHalf(x, h);
                raw = MemoryMarshal.AsBytes(h.AsSpan()).ToArray();
                dtype = DType.F16;
                break;
            default:
                // Per channel over all positions: channel ranges differ by orders of magnitude (key outliers).
                var zero = new Half[kvDim];
                var scale = new Half[kvDim];
                var center = new byte[kvDim];
                raw = new byte[n];
                var column = new float[positions];
                var codes = new byte[positions];
                for (int ch = 0; ch < kvDim; ch++)
                {
                    for (int p = 0; p < positions; p++) column[p] = x[p * kvDim + ch];
                    AsymmetricQuant.Range(column, bits, out scale[ch], out zero[ch]);
                    AsymmetricQuant.Quantize(column, scale[ch], zero[ch], bits, codes);
                    long sum = 0;
                    for (int p = 0; p < positions; p++) { raw[p * kvDim + ch] = codes[p]; sum += codes[p]; }
                    center[ch] = (byte)Math.Round(sum / (double)positions);
                }
                // Channels centre at different codes; one order-0 coder over all of them sees the
                // mixture. Coding each code's difference from its channel's mean code (mod 256)
                // lines the channels up at 0. Delta modes replace the centre with a reference position.
                if (codec.Delta == KvDelta.None)
                    for (int i = 0; i < n; i++) raw[i] -= center[i % kvDim];
                else
                    ApplyDelta(raw, positions, kvDim, codec, forward: true);
                prefix = new byte[5 * kvDim];
                MemoryMarshal.AsBytes(zero.AsSpan()).CopyTo(prefix);
                MemoryMarshal.AsBytes(scale.AsSpan()).CopyTo(prefix.AsSpan(2 * kvDim));
                center.CopyTo(prefix.AsSpan(4 * kvDim));
                dtype = DType.I8;
                break;
        }
        var dst = new byte[prefix.Length + ChunkCodec.MaxEncodedLength(raw.Length)];
        prefix.CopyTo(dst, 0);
        // MaxEncodedLength bounds every chunk, so the destination cannot be too small.
        if (encoder.Encode(raw, dtype, dst.AsSpan(prefix.Length), out int len) != OperationStatus.Done)
            throw new InvalidOperationException("chunk encoder overran MaxEncodedLength");
        return dst.AsSpan(0, prefix.Length + len).ToArray();
    }

    /// <summary>Decodes a payload; <paramref name="error"/> makes the exception for a damaged one.</summary>
    public static float[] Decode(ChunkDecoder decoder, ReadOnlySpan<byte> payload, int positions, int kvDim, KvCodecSpec codec, int bits, Func<string, TensorFormatException> error)
    {
        int n = positions * kvDim;
        var x = new float[n];
        OperationStatus st;
        switch (codec.Kind)
        {
            case KvCodecKind.F32:
                st = DecodeExactly(decoder, payload, MemoryMarshal.AsBytes(x.AsSpan()));
                break;
            case KvCodecKind.F16:
                var h = new Half[n];
                st = DecodeExactly(decoder, payload, MemoryMarshal.AsBytes(h.AsSpan()));
                TensorPrimitives.ConvertToSingle(h, x);
                break;
            default:
                if (payload.Length < 5 * kvDim) throw error("is too short for its scales");
                var zero = MemoryMarshal.Cast<byte, Half>(payload[..(2 * kvDim)]);
                var scale = MemoryMarshal.Cast<byte, Half>(payload.Slice(2 * kvDim, 2 * kvDim));
                var center = payload.Slice(4 * kvDim, kvDim);
                var codes = new byte[n];
                st = DecodeExactly(decoder, payload[(5 * kvDim)..], codes);
                if (st != OperationStatus.Done) break;
                if (codec.Delta == KvDelta.None)
                    for (int i = 0; i < n; i++) codes[i] += center[i % kvDim];
                else
                    ApplyDelta(codes, positions, kvDim, codec, forward: false);
                int levels = (1 << bits) - 1;
                for (int p = 0; p < positions; p++)
                    for (int ch = 0; ch < kvDim; ch++)
                    {
                        int c = codes[p * kvDim + ch];
                        if (c > levels) throw error($"code {c} exceeds {bits} bits");
                        x[p * kvDim + ch] = AsymmetricQuant.Value(c, scale[ch], zero[ch]);
                    }
                break;
        }
        if (st != OperationStatus.Done) throw error($"does not decode ({st})");
        return x;
    }

    /// <summary>Decodes a chunk that must fill <paramref name="destination"/> exactly (a section's size is fixed by its header).</summary>
    static OperationStatus DecodeExactly(ChunkDecoder decoder, ReadOnlySpan<byte> source, Span<byte> destination)
    {
        var st = decoder.Decode(source, destination, out int written);
        return st == OperationStatus.Done && written != destination.Length ? OperationStatus.NeedMoreData : st;
    }

    /// <summary>Differences modulo 256 between code rows: invertible for any bit depth ≤ 8.</summary>
    static void ApplyDelta(byte[] codes, int positions, int d, KvCodecSpec codec, bool forward)
    {
        if (codec.Delta == KvDelta.Anchor)
        {
            for (int p = 0; p < positions; p++)
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
            for (int p = positions - 1; p >= 1; p--)
                for (int ch = 0; ch < d; ch++) codes[p * d + ch] -= codes[(p - 1) * d + ch];
        else
            for (int p = 1; p < positions; p++)
                for (int ch = 0; ch < d; ch++) codes[p * d + ch] += codes[(p - 1) * d + ch];
    }
}
