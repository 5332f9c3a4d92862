namespace TensorCodec.Tests;

/// <summary>Paths to fixtures and a scratch folder that cleans itself up.</summary>
public static class TestFiles
{
    public static string Sample(string name) => Path.Combine(AppContext.BaseDirectory, "samples", name);
    public static string Fixture(string name) => Path.Combine(AppContext.BaseDirectory, "Fixtures", name);

    /// <summary>
    /// A file or folder under the shared data folder (../shared beside the clone), or null when it is
    /// absent. CI is required to have it: with CI=true a missing path fails the test instead.
    /// </summary>
    public static string? Shared(string relative)
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            var candidate = Path.Combine(dir.FullName, "shared", relative);
            if (File.Exists(candidate) || Directory.Exists(candidate)) return candidate;
            candidate = Path.Combine(dir.FullName, "..", "shared", relative);
            if (File.Exists(candidate) || Directory.Exists(candidate)) return Path.GetFullPath(candidate);
        }
        if (string.Equals(Environment.GetEnvironmentVariable("CI"), "true", StringComparison.OrdinalIgnoreCase))
            throw new InvalidOperationException($"CI=true but shared/{relative} was not found above {AppContext.BaseDirectory}: CI must run the shared-data tests");
        return null;
    }

    /// <summary><see cref="Shared"/>, skipping the test (with the path as its reason) when the data is absent outside CI.</summary>
    public static string SharedOrSkip(string relative)
    {
        var path = Shared(relative);
        Skip.If(path is null, $"shared/{relative} not found (the shared data folder is optional outside CI)");
        return path!;
    }
}

public sealed class ScratchDir : IDisposable
{
    public string Path { get; } = System.IO.Path.Combine(System.IO.Path.GetTempPath(), "tcodec-test-" + Guid.NewGuid().ToString("N"));
    public ScratchDir() => Directory.CreateDirectory(Path);
    public string File(string name) => System.IO.Path.Combine(Path, name);
    public void Dispose() { try { Directory.Delete(Path, true); } catch (IOException) { } }
}

/// <summary>Seeds that are the same in every process (string.GetHashCode is randomised per process).</summary>
public static class Seeds
{
    /// <summary>FNV-1a of the UTF-16 code units, folded to 16 bits.</summary>
    public static int Of(string s)
    {
        uint h = 2166136261;
        foreach (char c in s) h = (h ^ c) * 16777619;
        return (int)((h ^ (h >> 16)) & 0xFFFF);
    }
}
