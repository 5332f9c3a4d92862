namespace TensorCodec.Tokenizers;

/// <summary>A special token the text is split on before tokenizing, with llama.cpp's strip attributes.</summary>
internal readonly record struct SpecialToken(int Id, string Text, bool LStrip, bool RStrip);

/// <summary>A piece of input: raw text to tokenize (<see cref="Id"/> = −1), or one special token's id.</summary>
internal readonly record struct Fragment(int Start, int Length, int Id)
{
    public bool IsText => Id < 0;
}

/// <summary>
/// llama.cpp's <c>tokenizer_st_partition</c>: for each special token, longest first, every occurrence in
/// the remaining text fragments (leftmost first, without overlap) is cut out as that token; LStrip /
/// RStrip tokens also swallow the ASCII whitespace before / after them.
/// </summary>
internal static class SpecialTokenSplitter
{
    /// <summary>The tokens ordered as llama.cpp tries them: longer text first (ties by id, for a stable order).</summary>
    public static SpecialToken[] Order(IEnumerable<SpecialToken> tokens) =>
        tokens.Where(t => t.Text.Length > 0).OrderByDescending(t => System.Text.Encoding.UTF8.GetByteCount(t.Text)).ThenBy(t => t.Id).ToArray();

    /// <summary>Splits <paramref name="text"/> on <paramref name="specials"/>; <paramref name="unicodeSpace"/> strips any Unicode whitespace (Hugging Face) rather than C's ASCII <c>isspace</c> (llama.cpp).</summary>
    public static List<Fragment> Split(string text, IReadOnlyList<SpecialToken> specials, bool unicodeSpace = false)
    {
        var frags = new List<Fragment>();
        return Split(text, 0, text.Length, specials, unicodeSpace);
    }

    /// <summary>Splits <c>text[start..start+length]</c>; fragment offsets index <paramref name="text"/>.</summary>
    public static List<Fragment> Split(string text, int from, int count, IReadOnlyList<SpecialToken> specials, bool unicodeSpace)
    {
        var frags = new List<Fragment>();
        if (count == 0) return frags;
        frags.Add(new Fragment(from, count, -1));
        var next = new List<Fragment>();
        foreach (var sp in specials)
        {
            next.Clear();
            foreach (var f in frags)
            {
                if (!f.IsText) { next.Add(f); continue; }
                int start = f.Start, length = f.Length;
                while (true)
                {
                    int match = text.AsSpan(start, length).IndexOf(sp.Text, StringComparison.Ordinal);
                    if (match < 0) { if (length > 0) next.Add(new Fragment(start, length, -1)); break; }
                    match += start;
                    int leftLen = match - start;
                    if (sp.LStrip) while (leftLen > 0 && IsSpace(text[start + leftLen - 1], unicodeSpace)) leftLen--;
                    if (leftLen > 0) next.Add(new Fragment(start, leftLen, -1));
                    next.Add(new Fragment(match, sp.Text.Length, sp.Id));
                    int rightStart = match + sp.Text.Length, rightLen = start + length - rightStart;
                    if (sp.RStrip) while (rightLen > 0 && IsSpace(text[rightStart], unicodeSpace)) { rightStart++; rightLen--; }
                    start = rightStart; length = rightLen;
                    if (length == 0) break;
                }
            }
            (frags, next) = (next, frags);
        }
        return frags;
    }

    /// <summary>C's <c>isspace</c> in the "C" locale, or Unicode whitespace.</summary>
    static bool IsSpace(char c, bool unicode) => unicode ? char.IsWhiteSpace(c) : c is ' ' or '\t' or '\n' or '\v' or '\f' or '\r';
}
