using TensorCodec.Formats;

namespace TensorCodec.Quantization;

/// <summary>
/// The quantizer's GPTQ path: one whole weight matrix at a time (peak memory: that matrix, its input's H and H's factor),
/// reusing the factor while consecutive weights share an input (q/k/v, gate/up).
/// </summary>
internal sealed class GptqTensorEncoder(ICalibration calibration, int threads)
{
    float[]? _h;
    GptqFactor? _factor;

    /// <summary>How many tensors were written with GPTQ.</summary>
    public int Encoded { get; private set; }

    /// <summary>Whether GPTQ can write <paramref name="t"/>: a 2-D weight of a type it handles, with H for its input.</summary>
    public bool Handles(ModelQuantizer.PlannedTensor t) =>
        t.Dims.Length == 2 && Gptq.Supports(t.Choice.Type) && t.RowLength % BlockFormats.FromGgmlType(t.Choice.Type)!.BlockSize == 0
        && calibration.Hessian(t.Name) is { } h && h.LongLength == t.RowLength * t.RowLength;

    /// <summary>Writes <paramref name="t"/>'s bytes with GPTQ.</summary>
    public void Encode(ModelQuantizer.PlannedTensor t, Stream output, CancellationToken ct)
    {
        var fmt = BlockFormats.FromGgmlType(t.Choice.Type)!;
        var h = calibration.Hessian(t.Name)!;
        int cols = checked((int)t.RowLength), rows = checked((int)t.Rows);
        if (!ReferenceEquals(h, _h)) { _factor = Gptq.Factor(h, cols); _h = h; }
        var w = t.Load();
        var bytes = new byte[t.Bytes];
        Gptq.Quantize(w, rows, cols, _factor!, fmt, t.Importance, bytes, threads, ct);
        output.Write(bytes);
        Encoded++;
    }
}
