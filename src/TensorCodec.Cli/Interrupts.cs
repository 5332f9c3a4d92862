using System.Runtime.InteropServices;
using TensorCodec.Containers;

namespace TensorCodec.Cli;

/// <summary>
/// SIGINT, SIGTERM, SIGHUP and SIGQUIT: cancel the command so it unwinds through its own cleanup (the
/// temporary output is deleted, the progress bar restores the cursor) and exits 128+signal. If it has
/// not finished within a grace period, or on a second signal, delete the temporary files and restore
/// the terminal here, then exit.
/// </summary>
sealed class Interrupts : IDisposable
{
    static readonly TimeSpan Grace = TimeSpan.FromSeconds(3);
    readonly CancellationTokenSource _cts = new();
    readonly List<PosixSignalRegistration> _registrations = [];
    int _signal;

    public CancellationToken Token => _cts.Token;

    /// <summary>128 + the signal that interrupted the command, or null if none did.</summary>
    public int? ExitCode => _signal == 0 ? null : 128 + _signal;

    public Interrupts()
    {
        foreach (var (sig, number) in new[] { (PosixSignal.SIGINT, 2), (PosixSignal.SIGTERM, 15), (PosixSignal.SIGHUP, 1), (PosixSignal.SIGQUIT, 3) })
        {
            try { _registrations.Add(PosixSignalRegistration.Create(sig, ctx => OnSignal(ctx, number))); }
            catch (PlatformNotSupportedException) { } // SIGHUP/SIGQUIT do not exist on Windows
        }
    }

    void OnSignal(PosixSignalContext ctx, int number)
    {
        ctx.Cancel = true; // we end the process ourselves, after cleanup
        if (Interlocked.CompareExchange(ref _signal, number, 0) != 0)
        {
            Exit(); // second signal: the user does not want to wait
            return;
        }
        _cts.Cancel();
        Task.Delay(Grace).ContinueWith(_ => Exit());
    }

    void Exit()
    {
        AtomicFileWriter.AbandonAll();
        RestoreTerminal();
        Announce("interrupted; no output was written");
        Environment.Exit(128 + _signal);
    }

    static int _announced;

    /// <summary>Prints the interruption line once per process: the command's own unwinding and the grace-period
    /// exit both report it, and a slow unwind (over <see cref="Grace"/>) used to print it twice.</summary>
    public static void Announce(string message)
    {
        if (Interlocked.Exchange(ref _announced, 1) == 0)
            Console.Error.WriteLine($"tcodec: {message}");
    }

    /// <summary>Shows the cursor again (a progress bar hides it) on whichever stream is a terminal.</summary>
    public static void RestoreTerminal()
    {
        try
        {
            if (!Console.IsOutputRedirected) Console.Out.Write("\u001b[?25h");
            else if (!Console.IsErrorRedirected) Console.Error.Write("\u001b[?25h");
        }
        catch (IOException) { }
    }

    public void Dispose()
    {
        foreach (var r in _registrations) r.Dispose();
        _cts.Dispose();
    }
}
