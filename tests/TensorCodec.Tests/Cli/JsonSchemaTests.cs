using System.Buffers.Binary;
using System.Runtime.InteropServices;
using System.Text.Json;
using System.Text.RegularExpressions;
using static TensorCodec.Tests.Cli.CliTests;

namespace TensorCodec.Tests.Cli;

/// <summary>
/// The machine-readable side of docs/JSON.md: its per-command key tables, parsed, and a check of a
/// command's output against them. The page is the schema, so the two cannot drift apart.
/// </summary>
public static partial class JsonSchema
{
    public sealed record Key(string Path, string[] Types, bool Optional, string Meaning);

    public sealed record Section(string Name, string Command, IReadOnlyList<Key> Keys)
    {
        public Key? Find(string path) => Keys.FirstOrDefault(k => k.Path == path);
    }

    static readonly string[] KnownTypes =
        ["string", "integer", "number", "boolean", "object", "map of strings", "array of objects", "array of integers", "array of strings", "null"];

    [GeneratedRegex("^[a-z][a-z0-9]*(_[a-z0-9]+)*$")]
    private static partial Regex SnakeCase();

    public static bool IsSnakeCase(string key) => SnakeCase().IsMatch(key);

    public static string DocPath()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            var candidate = Path.Combine(dir.FullName, "docs", "JSON.md");
            if (File.Exists(candidate) && File.Exists(Path.Combine(dir.FullName, "TensorCodec.slnx"))) return candidate;
        }
        throw new FileNotFoundException($"docs/JSON.md not found above {AppContext.BaseDirectory}");
    }

    static readonly Lazy<IReadOnlyDictionary<string, Section>> Parsed = new(() => Parse(File.ReadAllLines(DocPath())));

    public static IReadOnlyDictionary<string, Section> Sections => Parsed.Value;

    /// <summary>Sections are <c>### `name`</c> headings followed by a <c>| `key` | type | meaning |</c> table.</summary>
    public static IReadOnlyDictionary<string, Section> Parse(IEnumerable<string> lines)
    {
        var sections = new Dictionary<string, Section>();
        string? name = null;
        List<Key>? keys = null;
        void Close()
        {
            if (name is null) return;
            var command = keys!.FirstOrDefault(k => k.Path == "command") ?? throw new InvalidDataException($"docs/JSON.md: section `{name}` has no `command` key");
            var literal = Regex.Match(command.Meaning, "`\"([^\"]+)\"`");
            if (!literal.Success) throw new InvalidDataException($"docs/JSON.md: section `{name}`: `command` does not give its value as `\"…\"`");
            sections.Add(name, new Section(name, literal.Groups[1].Value, keys!));
            name = null;
        }
        foreach (var line in lines)
        {
            var heading = Regex.Match(line, "^###\\s+`([^`]+)`\\s*$");
            if (heading.Success) { Close(); name = heading.Groups[1].Value; keys = []; continue; }
            if (line.StartsWith('#')) { Close(); continue; }
            if (name is null || !line.StartsWith("| `")) continue;
            var cells = line.Trim().Trim('|').Split('|').Select(c => c.Trim()).ToArray();
            if (cells.Length != 3) throw new InvalidDataException($"docs/JSON.md: section `{name}`: a key row has {cells.Length} cells, not 3: {line}");
            string path = cells[0].Trim('`');
            string type = cells[1];
            bool optional = type.EndsWith(", optional");
            if (optional) type = type[..^", optional".Length];
            var types = type.Split(" or ");
            foreach (var t in types)
                if (!KnownTypes.Contains(t)) throw new InvalidDataException($"docs/JSON.md: `{name}` key `{path}`: unknown type '{t}'");
            keys!.Add(new Key(path, types, optional, cells[2]));
        }
        Close();
        return sections;
    }

    static string Parent(string path)
    {
        int dot = path.LastIndexOf('.');
        return dot < 0 ? "" : path[..dot];
    }

    static string Leaf(string path) => path[(path.LastIndexOf('.') + 1)..];

    /// <summary>Parses a command's stdout and checks it against section <paramref name="name"/>; returns the document.</summary>
    public static JsonDocument Check(string stdout, string name)
    {
        JsonDocument doc;
        try { doc = JsonDocument.Parse(stdout); }
        catch (JsonException e) { throw new Xunit.Sdk.XunitException($"`{name}`: stdout is not JSON ({e.Message}):\n{stdout}"); }
        CheckObject(doc.RootElement, name);
        return doc;
    }

    /// <summary>Runs <c>tcodec ARGS --json</c>, which must succeed, and checks its stdout against section <paramref name="section"/>.</summary>
    public static JsonDocument Run(string section, params string[] args)
    {
        var (code, stdout, err) = Tcodec([.. args, "--json"]);
        Assert.True(code == 0, $"tcodec {string.Join(' ', args)}: exit {code}: {err}");
        return Check(stdout, section);
    }

    /// <summary>Checks one object (the whole output, or one element of a multi-input array).</summary>
    public static void CheckObject(JsonElement root, string name)
    {
        Assert.True(Sections.TryGetValue(name, out var section), $"docs/JSON.md has no section `{name}`");
        Assert.True(root.ValueKind == JsonValueKind.Object, $"`{name}`: output is {root.ValueKind}, not an object");
        var first = root.EnumerateObject().FirstOrDefault();
        Assert.True(first.Name == "command", $"`{name}`: the first key is '{first.Name}', not 'command'");
        Assert.Equal(section!.Command, first.Value.GetString());
        var errors = new List<string>();
        if (root.TryGetProperty("ok", out var ok) && ok.ValueKind == JsonValueKind.False && root.TryGetProperty("error", out _))
        {
            // A failed input of a multi-input call: exactly command, input, ok and error.
            var keys = root.EnumerateObject().Select(p => p.Name).ToArray();
            Assert.True(keys.SequenceEqual(["command", "input", "ok", "error"]), $"`{name}`: a failed input prints {string.Join(", ", keys)}");
            Assert.Equal(JsonValueKind.String, root.GetProperty("error").ValueKind);
            return;
        }
        Walk(root, "", section, errors);
        Assert.True(errors.Count == 0, $"`{name}` does not match docs/JSON.md:\n  " + string.Join("\n  ", errors) + "\n" + root);
    }

    static void Walk(JsonElement obj, string prefix, Section section, List<string> errors)
    {
        var present = new HashSet<string>();
        foreach (var p in obj.EnumerateObject())
        {
            string path = prefix.Length == 0 ? p.Name : prefix + "." + p.Name;
            present.Add(path);
            if (!IsSnakeCase(p.Name)) errors.Add($"'{path}': key is not snake_case");
            var key = section.Find(path);
            if (key is null) { errors.Add($"'{path}' is printed but not documented"); continue; }
            var v = p.Value;
            var matched = key.Types.FirstOrDefault(t => Matches(v, t));
            if (matched is null) { errors.Add($"'{path}' is {Describe(v)}, documented as {string.Join(" or ", key.Types)}"); continue; }
            if (matched == "object") Walk(v, path, section, errors);
            else if (matched == "array of objects")
                foreach (var e in v.EnumerateArray()) Walk(e, path + "[]", section, errors);
        }
        foreach (var key in section.Keys)
            if (!key.Optional && Parent(key.Path) == prefix && !present.Contains(key.Path))
                errors.Add($"'{key.Path}' is documented but not printed");
        CountsAgree(obj, prefix, errors);
    }

    /// <summary>A count and its list agree: <c>tensors</c> / <c>tensor_list</c>, <c>X_tokens</c> / <c>X_token_ids</c>.</summary>
    static void CountsAgree(JsonElement obj, string prefix, List<string> errors)
    {
        foreach (var p in obj.EnumerateObject())
        {
            if (p.Value.ValueKind != JsonValueKind.Array) continue;
            string? count = p.Name == "tensor_list" ? "tensors" : p.Name.EndsWith("token_ids") ? p.Name[..^"token_ids".Length] + "tokens" : null;
            if (count is null || !obj.TryGetProperty(count, out var n) || n.ValueKind != JsonValueKind.Number) continue;
            if (n.GetInt64() != p.Value.GetArrayLength())
                errors.Add($"'{Join(prefix, count)}' is {n.GetInt64()} but '{Join(prefix, p.Name)}' holds {p.Value.GetArrayLength()}");
        }
    }

    static string Join(string prefix, string key) => prefix.Length == 0 ? key : prefix + "." + key;

    static bool Matches(JsonElement v, string type) => type switch
    {
        "string" => v.ValueKind == JsonValueKind.String && v.GetString() is not ("NaN" or "Infinity" or "-Infinity"),
        "integer" => v.ValueKind == JsonValueKind.Number && v.TryGetInt64(out _),
        "number" => v.ValueKind == JsonValueKind.Number,
        "boolean" => v.ValueKind is JsonValueKind.True or JsonValueKind.False,
        "null" => v.ValueKind == JsonValueKind.Null,
        "object" => v.ValueKind == JsonValueKind.Object,
        "map of strings" => v.ValueKind == JsonValueKind.Object && v.EnumerateObject().All(p => p.Value.ValueKind == JsonValueKind.String),
        "array of objects" => v.ValueKind == JsonValueKind.Array && v.EnumerateArray().All(e => e.ValueKind == JsonValueKind.Object),
        "array of integers" => v.ValueKind == JsonValueKind.Array && v.EnumerateArray().All(e => e.ValueKind == JsonValueKind.Number && e.TryGetInt64(out _)),
        "array of strings" => v.ValueKind == JsonValueKind.Array && v.EnumerateArray().All(e => e.ValueKind == JsonValueKind.String),
        _ => false,
    };

    static string Describe(JsonElement v) => v.ValueKind switch
    {
        JsonValueKind.String => $"the string \"{v.GetString()}\"",
        JsonValueKind.Number => $"the number {v.GetRawText()}",
        _ => v.ValueKind.ToString().ToLowerInvariant(),
    };

    /// <summary>Tensor name → shape, read straight from a safetensors header (independent of the library's reader).</summary>
    public static Dictionary<string, long[]> SafetensorsShapes(string path)
    {
        var bytes = File.ReadAllBytes(path);
        long n = BinaryPrimitives.ReadInt64LittleEndian(bytes);
        using var header = JsonDocument.Parse(bytes.AsMemory(8, (int)n));
        return header.RootElement.EnumerateObject().Where(p => p.Name != "__metadata__")
            .ToDictionary(p => p.Name, p => p.Value.GetProperty("shape").EnumerateArray().Select(d => d.GetInt64()).ToArray());
    }

    public static long[] Shape(JsonElement tensor) => tensor.GetProperty("shape").EnumerateArray().Select(d => d.GetInt64()).ToArray();
}

/// <summary>docs/JSON.md itself follows the convention it states.</summary>
public class JsonDocTests
{
    /// <summary>The subcommand paths ("kv save") under <paramref name="command"/> that have a --json option.</summary>
    static IEnumerable<string> JsonCommands(System.CommandLine.Command command, string path)
    {
        if (path.Length > 0 && command.Options.Any(o => o.Name == "--json")) yield return path;
        foreach (var sub in command.Subcommands)
            foreach (var p in JsonCommands(sub, path.Length == 0 ? sub.Name : path + " " + sub.Name)) yield return p;
    }

    [Fact]
    public void Every_section_lists_command_first_and_snake_case_keys()
    {
        var sections = JsonSchema.Sections;
        // Every command of the real tree that takes --json has a section (logits --generate prints a second kind of object).
        string[] expected = [.. JsonCommands(TensorCodec.Cli.CliRoot.Create(), ""), "logits --generate"];
        Assert.Contains("convert", expected);
        Assert.Equal(expected.Order(), sections.Keys.Order());
        foreach (var s in sections.Values)
        {
            Assert.Equal("command", s.Keys[0].Path);
            Assert.Equal(s.Name.Split(" --")[0], s.Command);
            Assert.True(s.Keys.Any(k => k.Path == "input" && !k.Optional && k.Types.SequenceEqual(["string"])), $"`{s.Name}` has no `input` string");
            Assert.Equal(s.Keys.Count, s.Keys.Select(k => k.Path).Distinct().Count());
            foreach (var k in s.Keys)
            {
                foreach (var part in k.Path.Split('.')) Assert.True(JsonSchema.IsSnakeCase(part.Replace("[]", "")), $"`{s.Name}`: '{k.Path}' is not snake_case");
                // Words the convention retired.
                Assert.DoesNotContain(k.Path.Split('.')[^1].Replace("[]", ""), new[] { "type", "d_type", "dims", "elements", "count", "file", "path", "model", "total_values" });
                // A nested key's parent is documented, as an object or an array of objects.
                int dot = k.Path.LastIndexOf('.');
                if (dot > 0)
                {
                    string parent = k.Path[..dot];
                    var p = s.Find(parent.EndsWith("[]") ? parent[..^2] : parent);
                    Assert.True(p is not null && p.Types.Contains(parent.EndsWith("[]") ? "array of objects" : "object"), $"`{s.Name}`: '{k.Path}' has no documented parent");
                }
            }
            // `tokens` is a count wherever it appears.
            foreach (var k in s.Keys.Where(k => k.Path.EndsWith("tokens")))
                Assert.True(k.Types[0] == "integer", $"`{s.Name}`: '{k.Path}' is a count, documented as {k.Types[0]}");
        }
    }

    [Fact]
    public void The_checker_catches_what_the_convention_forbids()
    {
        // A checker that accepts everything would pass every test below it: show it refuses.
        var ok = """{ "command": "tensor stats", "input": "a", "imatrix": null, "dtype": "q4_K", "values": 4, "quantized_bytes": 2, "bits_per_value": 4.5, "mse": 0.1, "sqnr_db": null, "max_abs_error": 0.2, "cosine": 0.9 }""";
        JsonSchema.Check(ok, "tensor stats").Dispose();
        string[] bad =
        [
            ok.Replace("\"sqnr_db\": null", "\"sqnr_db\": \"Infinity\""),           // a named float literal
            ok.Replace("\"dtype\"", "\"d_type\""),                                  // an undocumented key
            ok.Replace("\"values\": 4, ", ""),                                      // a documented key missing
            ok.Replace("\"values\": 4", "\"values\": 4.5"),                          // a count that is not an integer
            ok.Replace("{ \"command\": \"tensor stats\", \"input\": \"a\"", "{ \"input\": \"a\", \"command\": \"tensor stats\""), // command not first
            ok.Replace("\"cosine\": 0.9", "\"cosine\": 0.9, \"Cosine\": 0.9"),         // not snake_case
        ];
        foreach (var json in bad)
            Assert.ThrowsAny<Xunit.Sdk.XunitException>(() => JsonSchema.Check(json, "tensor stats").Dispose());
        var counts = """{ "command": "logits", "input": "m", "config": null, "threads": 1, "kv": "f32", "kv_bytes": 1, "prompt_tokens": 1, "generated_tokens": 7, "timed_tokens": 7, "runs": 1, "prompt_tokens_per_s": 1, "tokens_per_s": 1, "tokens_per_cpu_s": 1, "min_tokens_per_s": 1, "max_tokens_per_s": 1, "generated_token_ids": [1,2,3,4,5,6,7,8] }""";
        Assert.ThrowsAny<Xunit.Sdk.XunitException>(() => JsonSchema.Check(counts, "logits --generate").Dispose());
    }
}

/// <summary>The container and tensor commands' --json against docs/JSON.md, on small fixtures.</summary>
public class JsonSchemaTests
{
    static readonly string Bard = TestFiles.Sample("bard-3m-bf16.safetensors");

    static JsonDocument Run(string section, params string[] args) => JsonSchema.Run(section, args);

    [Fact]
    public void Inspect_reports_shapes_in_pytorch_order()
    {
        using var doc = Run("inspect", "inspect", Bard);
        var root = doc.RootElement;
        Assert.Equal(Bard, root.GetProperty("input").GetString());
        var shapes = JsonSchema.SafetensorsShapes(Bard);
        var list = root.GetProperty("tensor_list").EnumerateArray().ToList();
        Assert.Equal(shapes.Count, list.Count);
        foreach (var t in list)
        {
            Assert.Equal(shapes[t.GetProperty("name").GetString()!], JsonSchema.Shape(t));
            Assert.Equal("bf16", t.GetProperty("dtype").GetString());
        }
        Assert.Equal(list.Sum(t => t.GetProperty("values").GetInt64()), root.GetProperty("values").GetInt64());

        using (var llama2c = Run("inspect", "inspect", TestFiles.Sample("stories260K.bin")))
            Assert.Equal("f32", llama2c.RootElement.GetProperty("tensor_list")[0].GetProperty("dtype").GetString());
    }

    [Fact]
    public void Inspect_of_a_sharded_folder_names_each_shard()
    {
        using var dir = new ScratchDir();
        string model = TensorCodec.Tests.Models.ModelDirectoryTests.Shard(Bard, TestFiles.Sample("config.json"), dir.File("bard"), 2);
        using var doc = Run("inspect", "inspect", model);
        var shapes = JsonSchema.SafetensorsShapes(Bard);
        foreach (var t in doc.RootElement.GetProperty("tensor_list").EnumerateArray())
        {
            Assert.StartsWith("model-0000", t.GetProperty("shard").GetString());
            Assert.Equal(shapes[t.GetProperty("name").GetString()!], JsonSchema.Shape(t));
        }
        Assert.Equal(shapes.Count, doc.RootElement.GetProperty("tensors").GetInt32());
    }

    [Fact]
    public void Inspect_of_a_tcz_matches_the_schema()
    {
        using var dir = new ScratchDir();
        var tcz = dir.File("m.tcz");
        var (code, _, err) = Tcodec("compress", TestFiles.Sample("stories260K.bin"), "-o", tcz);
        Assert.True(code == 0, err);
        using var doc = Run("inspect", "inspect", tcz);
        Assert.Equal("Tcz", doc.RootElement.GetProperty("format").GetString());
    }

    [Fact]
    public void Quantize_and_inspect_of_its_gguf_report_the_source_shapes()
    {
        // GGUF stores ne[] innermost first; both commands must print the safetensors (PyTorch) order.
        using var dir = new ScratchDir();
        var gguf = dir.File("bard.gguf");
        using var q = Run("quantize", "quantize", Bard, "-o", gguf, "--type", "q4_K_M", "--config", TestFiles.Fixture("quantize/config.json"), "-T", "2");
        var shapes = JsonSchema.SafetensorsShapes(Bard);
        var source = new Dictionary<string, string>();
        foreach (var t in q.RootElement.GetProperty("tensor_list").EnumerateArray())
        {
            string name = t.GetProperty("name").GetString()!, from = t.GetProperty("source_name").GetString()!;
            source[name] = from;
            Assert.Equal(shapes[from], JsonSchema.Shape(t));
        }
        Assert.Contains(q.RootElement.GetProperty("tensor_list").EnumerateArray(), t => t.GetProperty("dtype").GetString() == "q4_K");
        Assert.Equal("q4_K_M", q.RootElement.GetProperty("mix").GetString());

        // The GGUF itself, and its .tcz.
        var (code, _, err) = Tcodec("compress", gguf, "-o", gguf + ".tcz");
        Assert.True(code == 0, err);
        foreach (var file in new[] { gguf, gguf + ".tcz" })
        {
            using var inspect = Run("inspect", "inspect", file);
            var rows = inspect.RootElement.GetProperty("tensor_list").EnumerateArray().ToList();
            Assert.Equal(source.Count, rows.Count);
            foreach (var t in rows)
                Assert.Equal(shapes[source[t.GetProperty("name").GetString()!]], JsonSchema.Shape(t));
        }
    }

    [Fact]
    public void Tensor_commands_match_the_schema_and_an_exact_round_trip_has_null_sqnr()
    {
        using var dir = new ScratchDir();
        string f32 = TestFiles.Fixture("ggml/stories260k.f32"), q = dir.File("q.bin"), d = dir.File("d.f32");
        using (var doc = Run("tensor quantize", "tensor", "quantize", "-t", "q4_K", "-n", "256", f32, "-o", q))
        {
            Assert.Equal("q4_K", doc.RootElement.GetProperty("dtype").GetString());
            Assert.Equal(new FileInfo(q).Length, doc.RootElement.GetProperty("output_bytes").GetInt64());
        }
        using (var doc = Run("tensor dequantize", "tensor", "dequantize", "-t", "q4_K", "-n", "256", q, "-o", d))
            Assert.Equal(new FileInfo(d).Length, doc.RootElement.GetProperty("output_bytes").GetInt64());
        using (var doc = Run("tensor stats", "tensor", "stats", "-t", "q4_K", "-n", "256", f32))
            Assert.Equal(4.5, doc.RootElement.GetProperty("bits_per_value").GetDouble(), 6);

        // Regression: an exact round trip has infinite SQNR, which was printed as the string "Infinity".
        var exact = dir.File("exact.f32");
        File.WriteAllBytes(exact, MemoryMarshal.AsBytes(Enumerable.Range(0, 512).Select(i => (float)(i % 7 - 3)).ToArray().AsSpan()).ToArray());
        var (code, stdout, err) = Tcodec("tensor", "stats", "-t", "bf16", "-n", "256", exact, "--json");
        Assert.True(code == 0, err);
        Assert.DoesNotContain("Infinity", stdout);
        using var stats = JsonSchema.Check(stdout, "tensor stats");
        Assert.Equal(JsonValueKind.Null, stats.RootElement.GetProperty("sqnr_db").ValueKind);
        Assert.Equal(0, stats.RootElement.GetProperty("mse").GetDouble());
    }

    [Fact]
    public void Demo_matches_the_schema()
    {
        // Without the BF16 model and its tokens the demo has no lossy part: lossy is null.
        using var dir = new ScratchDir();
        File.Copy(TestFiles.Sample("stories260K.bin"), dir.File("stories260K.bin"));
        using var doc = Run("demo", "demo", "--samples", dir.Path);
        Assert.Equal(JsonValueKind.Null, doc.RootElement.GetProperty("lossy").ValueKind);
        Assert.True(doc.RootElement.GetProperty("ok").GetBoolean());
    }
}

/// <summary>compress, decompress and verify --json against docs/JSON.md.</summary>
public class JsonSchemaLosslessTests
{
    static JsonElement Run(string section, params string[] args)
    {
        var (code, stdout, err) = Tcodec([.. args, "--json"]);
        Assert.True(code == 0, $"tcodec {string.Join(' ', args)}: exit {code}: {err}");
        using var doc = JsonDocument.Parse(stdout);
        var root = doc.RootElement.Clone();
        if (root.ValueKind == JsonValueKind.Array)
            foreach (var e in root.EnumerateArray()) JsonSchema.CheckObject(e, section);
        else JsonSchema.CheckObject(root, section);
        return root;
    }

    [Fact]
    public void Compress_decompress_verify_match_the_schema()
    {
        using var dir = new ScratchDir();
        string tcz = dir.File("m.tcz"), back = dir.File("back.bin");
        var c = Run("compress", "compress", TestFiles.Sample("stories260K.bin"), "-o", tcz);
        Assert.Equal(JsonValueKind.Object, c.ValueKind);
        Assert.Equal(13, c.GetProperty("tensors").GetInt32());
        Assert.Equal(new FileInfo(tcz).Length, c.GetProperty("compressed_bytes").GetInt64());
        var v = Run("verify", "verify", tcz);
        Assert.True(v.GetProperty("ok").GetBoolean());
        var d = Run("decompress", "decompress", tcz, "-o", back);
        Assert.True(d.GetProperty("verified").GetBoolean());
        Assert.Equal(new FileInfo(back).Length, d.GetProperty("original_bytes").GetInt64());
    }

    [Fact]
    public void Several_inputs_give_an_array_of_objects()
    {
        using var dir = new ScratchDir();
        string a = dir.File("a.bin"), b = dir.File("b.bin");
        File.Copy(TestFiles.Sample("stories260K.bin"), a);
        File.WriteAllText(b, "not a tensor file");
        var c = Run("compress", "compress", a, b);
        Assert.Equal(JsonValueKind.Array, c.ValueKind);
        Assert.Equal([a, b], c.EnumerateArray().Select(e => e.GetProperty("input").GetString()));
        var v = Run("verify", "verify", a + ".tcz", b + ".tcz");
        Assert.Equal(2, v.GetArrayLength());

        // One damaged input: exit 1, and its object says so in the documented failure form.
        string junk = dir.File("junk.tcz");
        File.WriteAllBytes(junk, new byte[100]);
        var (code, stdout, err) = Tcodec("verify", a + ".tcz", junk, "--json");
        Assert.Equal(1, code);
        Assert.Contains("junk.tcz", err);
        using var doc = JsonDocument.Parse(stdout);
        var rows = doc.RootElement.EnumerateArray().ToList();
        Assert.Equal(2, rows.Count);
        foreach (var row in rows) JsonSchema.CheckObject(row, "verify");
        Assert.True(rows[0].GetProperty("ok").GetBoolean());
        Assert.False(rows[1].GetProperty("ok").GetBoolean());
    }
}

/// <summary>The model commands' --json (eval, logits, sweep, kv) against docs/JSON.md, on stories260K.</summary>
public class JsonSchemaModelTests
{
    static readonly string Model = TestFiles.Sample("stories260K.bin");

    static string Tokens(ScratchDir dir, int n)
    {
        var ids = File.ReadAllText(TestFiles.Fixture("engine/greedy.tokens.csv")).Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries);
        var path = dir.File("tokens.csv");
        File.WriteAllText(path, string.Join(",", Enumerable.Range(0, n).Select(i => ids[i % ids.Length])));
        return path;
    }

    static JsonDocument Run(string section, params string[] args) => JsonSchema.Run(section, args);

    [Fact]
    public void Eval_is_flat_with_and_without_a_base()
    {
        using var dir = new ScratchDir();
        var tokens = Tokens(dir, 200);
        var cache = dir.File("base.tclp");
        using (var alone = Run("eval", "eval", Model, "--tokens", tokens, "--ctx", "64", "--save-logits", cache))
        {
            Assert.Equal(Model, alone.RootElement.GetProperty("input").GetString());
            Assert.Equal(tokens, alone.RootElement.GetProperty("tokens_file").GetString());
            Assert.Equal(200, alone.RootElement.GetProperty("tokens").GetInt32());
            Assert.Equal(JsonValueKind.Null, alone.RootElement.GetProperty("kl_mean").ValueKind);
        }
        using var based = Run("eval", "eval", Model, "--tokens", tokens, "--ctx", "64", "--base-logits", cache);
        Assert.Equal(0, based.RootElement.GetProperty("kl_mean").GetDouble(), 1e-9);
        Assert.Equal(1, based.RootElement.GetProperty("top1_agreement").GetDouble());
    }

    [Fact]
    public void Logits_generate_counts_every_generated_id()
    {
        // Regression: --generate 8 printed 8 ids beside "generated_tokens": 7 (the timed forward passes).
        using (var g = Run("logits --generate", "logits", Model, "--generate", "8", "--runs", "1"))
        {
            Assert.Equal(8, g.RootElement.GetProperty("generated_tokens").GetInt32());
            Assert.Equal(8, g.RootElement.GetProperty("generated_token_ids").GetArrayLength());
            Assert.Equal(7, g.RootElement.GetProperty("timed_tokens").GetInt32());
        }
        using var dir = new ScratchDir();
        using var f = Run("logits", "logits", Model, "--tokens", "1,2,3", "-o", dir.File("l.f32"));
        Assert.Equal(3, f.RootElement.GetProperty("tokens").GetInt32());
        Assert.Equal(3L * f.RootElement.GetProperty("vocab").GetInt32() * 4, new FileInfo(dir.File("l.f32")).Length);
    }

    [Fact]
    public void Sweep_matches_the_schema()
    {
        using var dir = new ScratchDir();
        using var doc = Run("sweep", "sweep", Model, "--types", "q8_0,nf4", "--tokens", Tokens(dir, 140), "--ctx", "64", "-o", dir.File("rd"));
        var entries = doc.RootElement.GetProperty("entries").EnumerateArray().ToList();
        Assert.Equal(["q8_0", "nf4"], entries.Select(e => e.GetProperty("quant_type").GetString()));
        Assert.True(File.Exists(doc.RootElement.GetProperty("report").GetString()));
    }

    [Fact]
    public void Kv_save_load_bench_match_the_schema()
    {
        using var dir = new ScratchDir();
        var tokens = Tokens(dir, 96);
        var ctx = dir.File("ctx.tkv");
        using (var save = Run("kv save", "kv", "save", Model, "--tokens", tokens, "--count", "40", "-o", ctx, "--kv-codec", "q8"))
        {
            Assert.Equal(40, save.RootElement.GetProperty("tokens").GetInt32());
            Assert.Equal(new FileInfo(ctx).Length, save.RootElement.GetProperty("output_bytes").GetInt64());
            Assert.InRange(save.RootElement.GetProperty("ratio").GetDouble(), 0.01, 1);
        }
        using (var load = Run("kv load", "kv", "load", Model, ctx, "--generate", "5"))
        {
            Assert.Equal(5, load.RootElement.GetProperty("generated_tokens").GetInt32());
            Assert.True(load.RootElement.GetProperty("compared").GetBoolean());
            Assert.Equal(JsonValueKind.Number, load.RootElement.GetProperty("kl_mean").ValueKind);
        }
        using (var unchecked_ = Run("kv load", "kv", "load", Model, ctx, "--generate", "3", "--no-check"))
            Assert.False(unchecked_.RootElement.GetProperty("compared").GetBoolean());
        using var bench = Run("kv bench", "kv", "bench", Model, "--tokens", tokens, "--split", "all", "--ctx", "32", "--prompt", "16", "--windows", "1", "--kv-codec", "f32;q4");
        var rows = bench.RootElement.GetProperty("entries").EnumerateArray().ToList();
        Assert.Equal(2, rows.Count);
        Assert.True(rows[0].GetProperty("bit_identical").GetBoolean());
        Assert.True(rows[1].GetProperty("ratio").GetDouble() < rows[0].GetProperty("ratio").GetDouble());
    }
}
