using System.Diagnostics;

namespace TensorCodec.Cli;

/// <summary>
/// Where a whole process's time goes, for benchmarking: with TCODEC_TIMING=1 in the environment, each
/// <see cref="Mark"/> records wall time since the process started and the process's CPU time so far, and
/// <see cref="Dump"/> writes them to standard error. Off by default (one environment lookup, no output).
/// </summary>
static class Timing
{
    static readonly bool Enabled = Environment.GetEnvironmentVariable("TCODEC_TIMING") == "1";
    static readonly List<(string Stage, double WallMs, double CpuMs)> Marks = [];

    /// <summary>Records that <paramref name="stage"/> has ended now.</summary>
    public static void Mark(string stage)
    {
        if (!Enabled) return;
        using var p = Process.GetCurrentProcess();
        Marks.Add((stage, (DateTime.Now - p.StartTime).TotalMilliseconds, p.TotalProcessorTime.TotalMilliseconds));
    }

    /// <summary>Writes the recorded stages (wall and CPU since the previous mark, and the running totals) to standard error.</summary>
    public static void Dump()
    {
        if (!Enabled) return;
        Mark("exit");
        double wall = 0, cpu = 0;
        foreach (var (stage, w, c) in Marks)
        {
            Console.Error.WriteLine($"timing: {stage,-28} wall {w - wall,8:0.0} ms  cpu {c - cpu,8:0.0} ms  (total wall {w:0.0}, cpu {c:0.0})");
            (wall, cpu) = (w, c);
        }
    }
}
