using System.Numerics.Tensors;

namespace TensorCodec.Engine;

/// <summary>Picking tokens from logits, and a greedy generation loop.</summary>
internal static class Sampling
{
    /// <summary>Index of the largest logit (the first one on ties, as llama2.c's argmax).</summary>
    public static int ArgMax(ReadOnlySpan<float> logits) => TensorPrimitives.IndexOfMax(logits);

    /// <summary>
    /// Greedy decoding: feeds <paramref name="prompt"/>, then appends the argmax token until
    /// <paramref name="destination"/> is full or the session is. Returns the number of generated tokens.
    /// </summary>
    public static int Greedy(LlamaSession session, ReadOnlySpan<int> prompt, Span<int> destination)
    {
        var logits = session.Prefill(prompt);
        int n = 0;
        while (n < destination.Length)
        {
            int next = ArgMax(logits);
            destination[n++] = next;
            if (n == destination.Length || session.Position >= session.Capacity) break;
            logits = session.Forward(next);
        }
        return n;
    }
}
