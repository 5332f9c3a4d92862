namespace TensorCodec.Tests;

/// <summary>Paths to fixtures and a scratch folder that cleans itself up.</summary>
public static class TestFiles
{
    public static string Sample(string name) => Path.Combine(AppContext.BaseDirectory, "samples", name);
    public static string Fixture(string name) => Path.Combine(AppContext.BaseDirectory, "Fixtures", name);

    /// <summary>The shared data folder when it exists (benchmarks and optional tests only).</summary>
    public static string? Shared(string relative)
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            var candidate = Path.Combine(dir.FullName, "shared", relative);
            if (File.Exists(candidate) || Directory.Exists(candidate)) return candidate;
            candidate = Path.Combine(dir.FullName, "..", "shared", relative);
            if (File.Exists(candidate) || Directory.Exists(candidate)) return Path.GetFullPath(candidate);
        }
        return null;
    }
}

public sealed class ScratchDir : IDisposable
{
    public string Path { get; } = System.IO.Path.Combine(System.IO.Path.GetTempPath(), "tcodec-test-" + Guid.NewGuid().ToString("N"));
    public ScratchDir() => Directory.CreateDirectory(Path);
    public string File(string name) => System.IO.Path.Combine(Path, name);
    public void Dispose() { try { Directory.Delete(Path, true); } catch (IOException) { } }
}
