using System.Diagnostics;
using System.IO.Compression;
using System.Xml.Linq;
using TensorCodec.Tests.Cli;
using Xunit.Abstractions;

namespace TensorCodec.Tests.Packaging;

/// <summary>
/// Packs the library and the tool as a user would, installs the tool from the local package into a
/// scratch tool path (no nuget.org: the only source is the pack folder) and runs it.
/// </summary>
public class PackageTests(ITestOutputHelper output)
{
    const long MaxToolPackageBytes = 15L << 20;
#if DEBUG
    const string Configuration = "Debug";
#else
    const string Configuration = "Release";
#endif

    [SkippableFact]
    public void Both_packages_pack_and_the_installed_tool_round_trips()
    {
        string? dotnet = FindOnPath("dotnet");
        bool ci = string.Equals(Environment.GetEnvironmentVariable("CI"), "true", StringComparison.OrdinalIgnoreCase);
        if (dotnet is null && ci) Assert.Fail("CI=true but `dotnet` is not on PATH: CI must run the packaging test");
        Skip.If(dotnet is null, "`dotnet` is not on PATH (the packaging test packs and installs the tool with it)");
        string root = RepoRoot();
        var clock = Stopwatch.StartNew();
        using var dir = new ScratchDir();
        string pkg = Path.Combine(dir.Path, "pkg");

        // --no-build: the test run has just built both projects in this configuration, and packing
        // them again must not rebuild the assemblies this test process has loaded.
        foreach (var project in new[] { "src/TensorCodec", "src/TensorCodec.Cli" })
            Run(dotnet!, root, null, "pack", project, "-c", Configuration, "--no-build", "-o", pkg);

        string lib = Assert.Single(Directory.GetFiles(pkg, "TensorCodec.*.nupkg"), f => !Path.GetFileName(f).StartsWith("TensorCodec.Cli."));
        string tool = Assert.Single(Directory.GetFiles(pkg, "TensorCodec.Cli.*.nupkg"));
        Assert.True(File.Exists(Path.ChangeExtension(lib, ".snupkg")), $"no symbols package beside {Path.GetFileName(lib)}");
        long toolBytes = new FileInfo(tool).Length;
        output.WriteLine($"{Path.GetFileName(lib)}: {new FileInfo(lib).Length:N0} bytes; {Path.GetFileName(tool)}: {toolBytes:N0} bytes");
        Assert.True(toolBytes <= MaxToolPackageBytes, $"tool package is {toolBytes:N0} bytes, over the {MaxToolPackageBytes:N0}-byte goal");

        var libMeta = CheckMetadata(lib, "TensorCodec", "lib/net10.0/TensorCodec.xml", "lib/net10.0/TensorCodec.dll");
        var toolMeta = CheckMetadata(tool, "TensorCodec.Cli", "tools/net10.0/any/tcodec.dll", "tools/net10.0/any/samples/bard-3m-bf16.safetensors");
        using (var zip = ZipFile.OpenRead(tool))
            Assert.DoesNotContain(zip.Entries, e => e.FullName.Contains("/runtimes/") || e.Name.Contains("Skia") || e.Name.Contains("HarfBuzz"));
        string version = toolMeta.Version;
        Assert.Equal(libMeta.Version, version);

        // Only the pack folder as a source, and a fresh package cache, so nothing stale or remote is used.
        string config = Path.Combine(dir.Path, "nuget.config");
        new XDocument(new XElement("configuration",
            new XElement("packageSources", new XElement("clear"), new XElement("add", new XAttribute("key", "local"), new XAttribute("value", pkg))))).Save(config);
        string tools = Path.Combine(dir.Path, "tools");
        var env = new Dictionary<string, string> { ["NUGET_PACKAGES"] = Path.Combine(dir.Path, "nuget-packages") };
        Run(dotnet!, dir.Path, env, "tool", "install", "--tool-path", tools, "--configfile", config, "TensorCodec.Cli", "--version", version);

        // The installed apphost finds the runtime through DOTNET_ROOT when dotnet is not in a default location.
        string tcodec = Path.Combine(tools, OperatingSystem.IsWindows() ? "tcodec.exe" : "tcodec");
        var toolEnv = new Dictionary<string, string> { ["NO_COLOR"] = "1" };
        if (Environment.GetEnvironmentVariable("DOTNET_ROOT") is null)
            toolEnv["DOTNET_ROOT"] = Path.GetDirectoryName(new FileInfo(dotnet!).ResolveLinkTarget(true)?.FullName ?? dotnet!)!;
        string installed = Run(tcodec, dir.Path, toolEnv, "--version").Trim();
        var (code, built, err) = CliTests.Tcodec("--version");
        Assert.True(code == 0, err);
        Assert.Equal(built.Trim(), installed);
        Assert.StartsWith(version, installed);

        string input = Path.Combine(dir.Path, "stories260K.bin"), tcz = input + ".tcz", restored = Path.Combine(dir.Path, "restored.bin");
        File.Copy(TestFiles.Sample("stories260K.bin"), input);
        Run(tcodec, dir.Path, toolEnv, "compress", input, "-o", tcz, "-T", "2");
        Run(tcodec, dir.Path, toolEnv, "decompress", tcz, "-o", restored);
        Assert.Equal(File.ReadAllBytes(input), File.ReadAllBytes(restored));
        output.WriteLine($"pack, install and round trip: {clock.Elapsed.TotalSeconds:F1} s");
    }

    /// <summary>The nuspec's id, version, a real description, MIT license expression, a packed readme; and the named files.</summary>
    static (string Id, string Version) CheckMetadata(string nupkg, string id, params string[] files)
    {
        using var zip = ZipFile.OpenRead(nupkg);
        var nuspec = Assert.Single(zip.Entries, e => e.FullName.EndsWith(".nuspec") && !e.FullName.Contains('/'));
        XDocument doc;
        using (var s = nuspec.Open()) doc = XDocument.Load(s);
        var meta = doc.Root!.Elements().Single(e => e.Name.LocalName == "metadata");
        string? Get(string name) => meta.Elements().FirstOrDefault(e => e.Name.LocalName == name)?.Value;
        var license = meta.Elements().Single(e => e.Name.LocalName == "license");
        Assert.Equal(id, Get("id"));
        Assert.Equal("expression", (string?)license.Attribute("type"));
        Assert.Equal("MIT", license.Value);
        Assert.Equal("README.md", Get("readme"));
        Assert.False(string.IsNullOrWhiteSpace(Get("authors")));
        string description = Get("description") ?? "";
        Assert.True(description.Length > 100 && description != "Package Description", $"{id}: description '{description}'");
        var repo = meta.Elements().Single(e => e.Name.LocalName == "repository");
        Assert.Equal("git", (string?)repo.Attribute("type"));
        foreach (var f in files.Append("README.md").Append("LICENSE"))
            Assert.True(zip.GetEntry(f) is not null, $"{Path.GetFileName(nupkg)} has no {f}");
        return (id, Get("version")!);
    }

    /// <summary>Runs a process to completion (at most 5 minutes), failing the test with its output if it exits non-zero.</summary>
    static string Run(string exe, string cwd, Dictionary<string, string>? env, params string[] args)
    {
        var psi = new ProcessStartInfo(exe) { WorkingDirectory = cwd, RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var a in args) psi.ArgumentList.Add(a);
        psi.Environment["DOTNET_CLI_TELEMETRY_OPTOUT"] = "1";
        psi.Environment["DOTNET_NOLOGO"] = "1";
        psi.Environment["DOTNET_SKIP_FIRST_TIME_EXPERIENCE"] = "1";
        foreach (var (k, v) in env ?? []) psi.Environment[k] = v;
        using var p = Process.Start(psi)!;
        var stdout = p.StandardOutput.ReadToEndAsync();
        var stderr = p.StandardError.ReadToEndAsync();
        if (!p.WaitForExit(TimeSpan.FromMinutes(5)))
        {
            p.Kill(entireProcessTree: true);
            Assert.Fail($"{Path.GetFileName(exe)} {string.Join(' ', args)}: no exit after 5 minutes");
        }
        Assert.True(p.ExitCode == 0, $"{Path.GetFileName(exe)} {string.Join(' ', args)} exited {p.ExitCode}:\n{stdout.Result}\n{stderr.Result}");
        return stdout.Result;
    }

    static string? FindOnPath(string name)
    {
        string exe = OperatingSystem.IsWindows() ? name + ".exe" : name;
        foreach (var d in (Environment.GetEnvironmentVariable("PATH") ?? "").Split(Path.PathSeparator, StringSplitOptions.RemoveEmptyEntries))
        {
            string candidate = Path.Combine(d, exe);
            if (File.Exists(candidate)) return candidate;
        }
        return null;
    }

    static string RepoRoot()
    {
        for (var d = new DirectoryInfo(AppContext.BaseDirectory); d is not null; d = d.Parent)
            if (File.Exists(Path.Combine(d.FullName, "TensorCodec.slnx"))) return d.FullName;
        throw new InvalidOperationException($"no TensorCodec.slnx above {AppContext.BaseDirectory}");
    }
}
