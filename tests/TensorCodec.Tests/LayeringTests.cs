using System.Reflection;
using System.Reflection.Emit;

namespace TensorCodec.Tests;

/// <summary>
/// The layer rule (README "Layout"), checked on the compiled assembly rather than on source text, so a fully
/// qualified name or a <c>global using</c> cannot slip past it: every type, signature and IL reference of a
/// namespace may point only at namespaces in lower layers (or its own).
/// </summary>
public class LayeringTests
{
    // Rank per layer. Equal ranks are siblings and may not use each other either.
    static readonly (string Namespace, int Rank)[] Layers =
    [
        ("TensorCodec", 0),               // the shared exception type only
        ("TensorCodec.Numerics", 0),
        ("TensorCodec.Coders", 1),
        ("TensorCodec.Formats", 1),
        ("TensorCodec.Containers", 2),
        ("TensorCodec.Containers.Tcz", 3),
        ("TensorCodec.Containers.Tkv", 3),
        ("TensorCodec.Models", 4),
        ("TensorCodec.Tokenizers", 4),
        ("TensorCodec.Quantization", 5),
        ("TensorCodec.Engine", 6),
        ("TensorCodec.Eval", 7),
    ];

    static readonly Assembly Core = typeof(TensorFormatException).Assembly;

    [Fact]
    public void No_namespace_uses_one_above_it()
    {
        var violations = new SortedSet<string>(StringComparer.Ordinal);
        foreach (var type in Core.GetTypes())
        {
            string from = type.Namespace ?? "";
            if (from.Length == 0 || !from.StartsWith("TensorCodec", StringComparison.Ordinal)) continue; // compiler-emitted
            int fromRank = RankOf(from, type);
            foreach (var used in References(type))
            {
                string to = used.Namespace ?? "";
                if (used.Assembly != Core || to == from || !to.StartsWith("TensorCodec", StringComparison.Ordinal)) continue;
                int toRank = RankOf(to, used);
                // Root-namespace types are shared by all; an upward or sideways use is a violation.
                if (to == "TensorCodec") continue;
                if (toRank >= fromRank) violations.Add($"{from} ({type.Name}) uses {to} ({used.Name})");
            }
        }
        Assert.True(violations.Count == 0, "layering violations:\n" + string.Join("\n", violations));
    }

    [Fact]
    public void Every_namespace_of_the_core_library_has_a_layer()
    {
        var unknown = Core.GetTypes().Select(t => t.Namespace).Where(n => n is not null && n.StartsWith("TensorCodec", StringComparison.Ordinal))
            .Distinct().Where(n => Layers.All(l => l.Namespace != n)).ToList();
        Assert.True(unknown.Count == 0, "namespaces without a layer (add them to the table and to README): " + string.Join(", ", unknown));
    }

    [Fact]
    public void The_core_library_has_no_presentation_or_native_dependency()
    {
        string[] banned = ["ScottPlot", "SkiaSharp", "HarfBuzzSharp", "Spectre.Console", "System.CommandLine"];
        var refs = Core.GetReferencedAssemblies().Select(a => a.Name ?? "").ToList();
        var bad = refs.Where(r => banned.Any(b => r.StartsWith(b, StringComparison.OrdinalIgnoreCase))).ToList();
        Assert.True(bad.Count == 0, "TensorCodec references " + string.Join(", ", bad));
        Assert.DoesNotContain(refs, r => r.StartsWith("TensorCodec.", StringComparison.Ordinal)); // nothing above the core
    }

    static int RankOf(string ns, Type where)
    {
        foreach (var (name, rank) in Layers) if (name == ns) return rank;
        throw new Xunit.Sdk.XunitException($"namespace {ns} (type {where.FullName}) has no layer in LayeringTests");
    }

    const BindingFlags All = BindingFlags.Public | BindingFlags.NonPublic | BindingFlags.Instance | BindingFlags.Static | BindingFlags.DeclaredOnly;

    /// <summary>Every type a type names: base, interfaces, members' signatures, and what its method bodies touch.</summary>
    static IEnumerable<Type> References(Type type)
    {
        var found = new HashSet<Type>();
        void Add(Type? t)
        {
            if (t is null || t.IsGenericParameter) return;
            if (t.HasElementType) { Add(t.GetElementType()); return; }
            if (t.IsGenericType && !t.IsGenericTypeDefinition)
            {
                foreach (var a in t.GetGenericArguments()) Add(a);
                t = t.GetGenericTypeDefinition();
            }
            found.Add(t);
        }
        Add(type.BaseType);
        foreach (var i in type.GetInterfaces()) Add(i);
        foreach (var f in type.GetFields(All)) Add(f.FieldType);
        foreach (var p in type.GetProperties(All)) Add(p.PropertyType);
        foreach (var m in type.GetMethods(All).Cast<MethodBase>().Concat(type.GetConstructors(All)))
        {
            if (m is MethodInfo mi) Add(mi.ReturnType);
            foreach (var p in m.GetParameters()) Add(p.ParameterType);
            MethodBody? body;
            try { body = m.GetMethodBody(); } catch (Exception) { continue; }
            if (body is null) continue;
            foreach (var l in body.LocalVariables) Add(l.LocalType);
            var il = body.GetILAsByteArray();
            if (il is null) continue;
            foreach (var token in MemberTokens(il))
            {
                MemberInfo? member;
                try
                {
                    member = m.Module.ResolveMember(token,
                        type.IsGenericType ? type.GetGenericArguments() : null,
                        m.IsGenericMethod ? m.GetGenericArguments() : null);
                }
                catch (Exception) { continue; } // tokens of generic instantiations outside our context
                switch (member)
                {
                    case Type t: Add(t); break;
                    case FieldInfo f: Add(f.DeclaringType); Add(f.FieldType); break;
                    case MethodBase mb: Add(mb.DeclaringType); break;
                }
            }
        }
        return found;
    }

    static readonly Dictionary<short, OpCode> OpCodesByValue = typeof(OpCodes).GetFields(BindingFlags.Public | BindingFlags.Static)
        .Select(f => (OpCode)f.GetValue(null)!).ToDictionary(o => o.Value);

    /// <summary>The metadata tokens an IL stream refers to (methods, fields, types).</summary>
    static IEnumerable<int> MemberTokens(byte[] il)
    {
        for (int pc = 0; pc < il.Length;)
        {
            short value = il[pc] == 0xFE ? (short)(0xFE00 | il[pc + 1]) : il[pc];
            pc += il[pc] == 0xFE ? 2 : 1;
            var op = OpCodesByValue[value];
            switch (op.OperandType)
            {
                case OperandType.InlineMethod: case OperandType.InlineField: case OperandType.InlineType: case OperandType.InlineTok:
                    yield return BitConverter.ToInt32(il, pc); pc += 4; break;
                case OperandType.InlineNone: break;
                case OperandType.ShortInlineBrTarget: case OperandType.ShortInlineI: case OperandType.ShortInlineVar: pc += 1; break;
                case OperandType.InlineVar: pc += 2; break;
                case OperandType.InlineI8: case OperandType.InlineR: pc += 8; break;
                case OperandType.InlineSwitch: pc += 4 + 4 * BitConverter.ToInt32(il, pc); break;
                default: pc += 4; break; // InlineBrTarget, InlineI, InlineSig, InlineString, ShortInlineR
            }
        }
    }
}
