using System.CommandLine;
using Spectre.Console;
using TensorCodec.Eval;
using TensorCodec.Quantization;

namespace TensorCodec.Cli.Commands;

/// <summary>quantize's mixed-precision options (--bpw, --size, --damage, --damage-chunks) and how their outcome is shown.</summary>
sealed class MixedPrecisionOptions
{
    public Option<double?> Bpw { get; } = new("--bpw")
    {
        Description = "Mixed precision: choose each tensor's type (q2_K … q6_K, iq4_xs, q8_0, f16; the 32-block types for other row lengths) " +
            "to least predicted damage with the whole file at most this many bits per weight (every stored byte over every weight)",
    };
    public Option<string?> Size { get; } = new("--size") { Description = "Mixed precision with the budget as a file size: bytes, or with a unit (KB, MB, KiB, MiB, GiB)" };
    public Option<string?> DamageOption { get; } = new("--damage")
    {
        Description = "How --bpw/--size predict each (tensor, type)'s damage: scaled (the H-weighted squared error scaled per tensor to one measured " +
            "KL divergence at its cheapest type; the default with --calibration), proxy (the H-weighted squared error alone; the default without), " +
            "or measured (KL divergence on calibration tokens with only that tensor quantized, for every type: slow)",
    };
    public Option<int> DamageChunks { get; } = new("--damage-chunks") { Description = "Calibration windows (of --calibration-ctx tokens) each measured KL divergence runs", DefaultValueFactory = _ => 16 };

    public IEnumerable<Option> All => [Bpw, Size, DamageOption, DamageChunks];

    /// <summary>The budget given, or null for llama.cpp's mix rules.</summary>
    public (double? Bpw, long? Bytes)? Target(ParseResult p)
    {
        double? bpw = p.GetValue(Bpw);
        string? size = p.GetValue(Size);
        if (bpw is not null && size is not null) throw new ArgumentException("give --bpw or --size, not both");
        if (bpw is { } b && !(b > 0 && b <= 64)) throw new ArgumentException($"--bpw {b}: give bits per weight above 0 and at most 64");
        if (bpw is null && size is null)
        {
            if (p.GetValue(DamageOption) is not null) throw new ArgumentException("--damage applies to --bpw or --size");
            return null;
        }
        return (bpw, size is null ? null : HfExport.ParseSize(size));
    }

    /// <summary>--damage; by default scaled when calibration tokens are given, else proxy.</summary>
    public DamageMode Damage(ParseResult p, bool calibrated) => p.GetValue(DamageOption)?.ToLowerInvariant() switch
    {
        null => calibrated ? DamageMode.Scaled : DamageMode.Proxy,
        "proxy" => DamageMode.Proxy,
        "measured" => DamageMode.Measured,
        "scaled" => DamageMode.Scaled,
        var s => throw new ArgumentException($"--damage {s}: use proxy, measured or scaled"),
    };

    /// <summary>The KL meter on the calibration tokens (for measured damage, and to measure the written file); null without tokens.</summary>
    public KldDamageMeter? Meter(ParseResult p, string modelPath, string? configPath, ReadOnlyMemory<int>? tokens, int ctx, int threads, CancellationToken ct)
    {
        if (tokens is not { } t)
        {
            if (Damage(p, false) != DamageMode.Proxy) throw new ArgumentException($"--damage {p.GetValue(DamageOption)} needs calibration tokens (--calibration FILE)");
            return null;
        }
        return new KldDamageMeter(modelPath, configPath, t.Span, ctx, p.GetValue(DamageChunks), threads, ct);
    }

    public static object? Json(QuantizeResult r, EvalResult? file) => r.MixedPrecision is not { } m ? null : new
    {
        budget_bytes = m.BudgetBytes, budget_bits_per_value = m.BudgetBitsPerWeight, smallest_bytes = m.SmallestBytes, largest_bytes = m.LargestBytes,
        planned_bytes = m.PlannedBytes, header_bytes = m.HeaderBytes, file_bits_per_value = r.OutputBytes * 8.0 / m.Elements,
        damage = m.Damage.ToString().ToLowerInvariant(), predicted_damage = m.PredictedDamage, measured_kl_mean = file?.Kl?.Mean,
        grid_bytes = m.Grid, exact = m.Exact, spearman = m.Spearman, spearman_within_type = m.SpearmanWithinType, seconds = m.Seconds,
        tensors = m.Tensors.Select(t => new
        {
            name = t.Name, dtype = JsonOutput.DType(t.Type), @fixed = t.Fixed, values = t.Elements, bytes = t.Bytes, damage = t.Damage,
            options = t.Options.Select(o => new { dtype = JsonOutput.DType(o.Type), bytes = o.Bytes, proxy = o.Proxy, measured_kl_mean = o.MeasuredKld, predicted = o.Predicted }),
        }),
    };

    public static void Print(QuantizeResult r, MixedPrecisionReport m, EvalResult? file)
    {
        bool measured = m.Damage != DamageMode.Proxy;
        var table = new Table().Border(TableBorder.Simple);
        table.AddColumns("tensor", "type", "dims (ne0 first)", "bytes", "bits/weight", measured ? "KLD alone" : "proxy", "alternatives (type: " + (measured ? "KLD" : "proxy") + ")");
        foreach (var c in table.Columns.Skip(3).Take(3)) c.RightAligned();
        var dims = r.Tensors.ToDictionary(t => t.Name, t => t.Dims);
        foreach (var t in m.Tensors)
        {
            string alt = string.Join("  ", t.Options.Where(o => o.Type != t.Type).Select(o => $"{o.Type}: {(measured ? o.Predicted : o.Proxy):G3}"));
            table.AddRow(Markup.Escape(t.Name), t.Fixed ? $"[grey]{t.Type}[/]" : $"[bold]{t.Type}[/]", Markup.Escape("[" + string.Join(", ", dims[t.Name]) + "]"),
                t.Bytes.ToString("N0"), $"{t.Bytes * 8.0 / Math.Max(1, t.Elements):0.000}", t.Fixed ? "" : $"{t.Damage:G4}", Markup.Escape(alt));
        }
        table.AddRow("[bold]header[/]", "", "", m.HeaderBytes.ToString("N0"), "", "", "");
        table.AddRow("[bold]file[/]", "", $"{m.Elements:N0} weights", $"[bold]{r.OutputBytes:N0}[/]", $"[bold]{r.OutputBytes * 8.0 / m.Elements:0.000}[/]",
            $"[bold]{m.PredictedDamage:G4}[/]", "");
        AnsiConsole.Write(table);
        foreach (var n in r.Notes) AnsiConsole.MarkupLine($"[yellow]note:[/] {Markup.Escape(n)}");
        AnsiConsole.MarkupLine($"budget {m.BudgetBytes:N0} bytes ({m.BudgetBitsPerWeight:0.000} bits/weight; achievable {m.SmallestBytes:N0} … {m.LargestBytes:N0}); " +
            $"written {r.OutputBytes:N0} bytes; knapsack grid {m.Grid} byte(s){(m.Exact ? ", exact" : ", costs rounded up")}; {m.Seconds:0.0} s choosing");
        string predicted = measured ? $"predicted KLD (Σ of each tensor's alone, {m.Damage.ToString().ToLowerInvariant()}) {m.PredictedDamage:G4}" : $"Σ proxy {m.PredictedDamage:G4}";
        AnsiConsole.MarkupLine(file?.Kl is { } kl
            ? $"{predicted}; measured KLD of the file on the same {file.Windows} calibration windows {kl.Mean:G4}"
            : $"{predicted} (no calibration tokens: the file's KLD was not measured)");
        if (m.Spearman is { } rho)
            AnsiConsole.MarkupLine($"proxy vs measured KLD, Spearman rank correlation: {rho:0.000} over every measured (tensor, type); {m.SpearmanWithinType:0.000} across tensors at a fixed type (mean over types)");
        AnsiConsole.MarkupLine($"{Markup.Escape(r.Input)} ({r.InputFormat}) → {Markup.Escape(r.Output)}: {CliCommon.Bytes(r.OutputBytes)}, {r.Tensors.Count} tensors, {r.Elapsed.TotalSeconds:0.00} s");
    }
}
