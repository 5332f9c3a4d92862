using System.Diagnostics.CodeAnalysis;
using System.Runtime.CompilerServices;

namespace TensorCodec.Formats;

/// <summary>
/// The span checks every fast block kernel starts with, written once. The throws sit in separate
/// methods so the inlined check stays a compare and a branch.
/// </summary>
internal static class BlockSpans
{
    /// <summary>Whole blocks of <paramref name="blockSize"/> in <paramref name="x"/>; throws if <paramref name="y"/> cannot hold them.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static int ForQuantize(ReadOnlySpan<float> x, Span<byte> y, int blockSize, int blockBytes)
    {
        int nb = x.Length / blockSize;
        if (y.Length < nb * blockBytes) ThrowTooShort("destination", "y");
        return nb;
    }

    /// <summary><see cref="ForQuantize(ReadOnlySpan{float}, Span{byte}, int, int)"/>, plus: a non-empty importance must cover every element of <paramref name="x"/>.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static int ForQuantize(ReadOnlySpan<float> x, Span<byte> y, ReadOnlySpan<float> importance, int blockSize, int blockBytes)
    {
        int nb = ForQuantize(x, y, blockSize, blockBytes);
        if (!importance.IsEmpty && importance.Length < x.Length) ThrowTooShort("importance", "importance");
        return nb;
    }

    /// <summary>Whole blocks of <paramref name="blockSize"/> in <paramref name="dst"/>; throws if <paramref name="src"/> holds fewer.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static int ForDequantize(ReadOnlySpan<byte> src, Span<float> dst, int blockSize, int blockBytes)
    {
        int nb = dst.Length / blockSize;
        if (src.Length < nb * blockBytes) ThrowTooShort("source", "src");
        return nb;
    }

    [DoesNotReturn]
    static void ThrowTooShort(string what, string paramName) => throw new ArgumentException(what + " too short", paramName);
}
