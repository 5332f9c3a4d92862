using System.Buffers.Binary;
using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;
using TensorCodec.Numerics;

namespace TensorCodec.Coders;

/// <summary>
/// Chunk mode 4 (FORMAT.md): whole ggml blocks split into mode 3's fields (<see cref="GgmlBlockFields"/>), with mode 3's
/// contexts, but each context coded by a static rANS table (<see cref="RansCoder"/>'s 12-bit tables and sixteen states)
/// instead of adaptive binary models: one decode-table load per symbol instead of one range-coder decision per bit.
/// A context with few symbols falls back to its field's shared table when its own table would not pay for itself.
/// All side fields (<c>d</c>, <c>m</c>, scales, mins) of the chunk come first, then the quants, in one rANS stream;
/// every quant context is per sub-block of 16 or 32 values, so the quants decode sixteen at a time with one table.
/// One instance serves one thread; its scratch grows to the largest chunk seen.
/// </summary>
internal sealed unsafe class GgmlTableCoder
{
    // Fields in table-section order, each with its contexts at a fixed base in one context space.
    const int FdExp = 0, FdTop = 1, FdLow = 2, FmExp = 3, FmTop = 4, FmLow = 5, FScale = 6, FMin = 7, FQuant = 8, Fields = 9;
    const int ExpCtx = 65;
    static ReadOnlySpan<int> Base => [0, 65, 129, 130, 195, 259, 260, 261, 277];
    const int Contexts = 277 + 33 * 4;                 // the largest quant field (Q5_K) last
    const int MaxSlots = Contexts + Fields;            // every context its own table, plus one shared per field
    const int States = RansCoder.States, Scale = RansCoder.Scale, ScaleBits = RansCoder.ScaleBits;
    const uint L = RansCoder.L;

    readonly GgmlBlock _block = new();
    byte[] _syms = [];
    ushort[] _ctx = [], _words = [];
    readonly uint[] _hist = new uint[Contexts * 256];
    readonly ushort[] _slotOf = new ushort[Contexts];   // context → table slot
    ushort[] _freqs = [];                               // slot × 256
    RansCoder.EncSymbol[] _enc = [];                    // slot × 256
    uint[] _dec = [];                                   // slot × Scale
    ushort[] _sideHalf = [];                            // decoder: d, m per block
    byte[] _sideBytes = [];                             // decoder: 16 scales, 8 mins per block

    /// <summary>Tables (slots) and table-section bytes of the last <see cref="Encode"/>, for measurements.</summary>
    internal int LastSlots, LastTableBytes;

    /// <summary>Contexts of field <paramref name="f"/> for <paramref name="type"/> (0: the type has no such field).</summary>
    static int FieldContexts(int type, int f) => f switch
    {
        FdExp => ExpCtx,
        FdTop => 64,
        FdLow => 1,
        FmExp => GgmlBlockFields.HasM(type) ? ExpCtx : 0,
        FmTop => GgmlBlockFields.HasM(type) ? 64 : 0,
        FmLow => GgmlBlockFields.HasM(type) ? 1 : 0,
        FScale => type is GgmlBlockFields.Q4_K or GgmlBlockFields.Q5_K or GgmlBlockFields.Q6_K ? 1 : 0,
        FMin => type is GgmlBlockFields.Q4_K or GgmlBlockFields.Q5_K ? 16 : 0,
        _ => GgmlFieldCoder.QuantContexts(type),
    };

    /// <summary>Symbols of field <paramref name="f"/> are below 2^this.</summary>
    static int FieldBits(int type, int f) => f switch
    {
        FdExp or FmExp => 6,
        FdTop or FmTop => 3,
        FdLow or FmLow => 7,
        FScale => type == GgmlBlockFields.Q6_K ? 8 : 6,
        FMin => 6,
        _ => GgmlBlockFields.QuantBits(type),
    };

    /// <summary>Side symbols per block: d (and m) as three, then the scales (and mins).</summary>
    static int SidePerBlock(int type) => (GgmlBlockFields.HasM(type) ? 6 : 3) + type switch
    {
        GgmlBlockFields.Q4_K or GgmlBlockFields.Q5_K or GgmlBlockFields.Q6_K => 16,
        _ => 0,
    };

    /// <summary>Codes the whole blocks of <paramref name="raw"/> (its length a multiple of the block size) into
    /// <paramref name="dst"/>; returns the bytes written, or −1 if they do not fit.</summary>
    [SkipLocalsInit]
    public int Encode(int type, ReadOnlySpan<byte> raw, Span<byte> dst)
    {
        int bb = GgmlBlockFields.BlockBytes(type), nb = raw.Length / bb, nv = GgmlBlockFields.BlockValues(type);
        int side = nb * SidePerBlock(type), total = side + nb * nv;
        byte[] syms = Scratch.Grow(ref _syms, total);
        ushort[] ctx = Scratch.Grow(ref _ctx, total);
        Array.Clear(_hist);
        Gather(type, raw, nb, syms, ctx, side);

        // Tables: per field the shared table, then the contexts whose own table pays.
        ushort[] freqs = Scratch.Grow(ref _freqs, MaxSlots * 256);
        RansCoder.EncSymbol[] enc = Scratch.Grow(ref _enc, MaxSlots * 256);
        int pos = 0, slots = 0;
        Span<uint> shared = stackalloc uint[256];
        Span<ushort> own = stackalloc ushort[256];
        Span<bool> owned = stackalloc bool[Contexts];
        owned.Clear();
        for (int f = 0; f < Fields; f++)
        {
            int nctx = FieldContexts(type, f), b0 = Base[f];
            if (nctx == 0) continue;
            SumHistograms(b0, nctx, owned, shared);
            var sharedFreqs = freqs.AsSpan(slots * 256, 256);
            if (!RansCoder.NormalizeFrequencies(shared, sharedFreqs)) return -1; // every field has symbols in a whole block
            int ownCount = 0;
            for (int c = 0; c < nctx; c++)
            {
                var h = _hist.AsSpan((b0 + c) * 256, 256);
                // Estimated without normalising every context (its correction loop dominated encoding): own table
                // bytes from rounded frequencies, own code length from the empirical entropy.
                long n = 0;
                for (int s = 0; s < 256; s++) n += h[s];
                if (n == 0) continue;
                double withShared = 0, withOwn = 8.0 * Varint.Size((uint)c);
                for (int s = 0; s < 256; s++)
                {
                    own[s] = h[s] == 0 ? (ushort)0 : (ushort)Math.Clamp((h[s] * (long)Scale + n / 2) / n, 1, Scale - 1);
                    if (h[s] == 0) continue;
                    withShared += h[s] * (ScaleBits - Math.Log2(sharedFreqs[s]));
                    withOwn += h[s] * Math.Log2((double)n / h[s]);
                }
                withOwn += 8.0 * EstimateTableBytes(h, n, own);
                if (withOwn < withShared) { owned[b0 + c] = true; ownCount++; }
            }
            // The shared table then only has to serve the contexts left to it (all of them, if none is).
            if (ownCount > 0 && ownCount < CountPresent(b0, nctx)) SumHistograms(b0, nctx, owned, shared);
            double tableCost = BestTable(shared, sharedFreqs, out int sharedShift, own);
            // A flat shared table costs no bytes: it wins where the field is near uniform or has few symbols (small chunks).
            int bits = FieldBits(type, f);
            double flatCost = 0;
            for (int s = 0; s < 256; s++) flatCost += shared[s] * (double)bits;
            bool flat = ownCount == CountPresent(b0, nctx) || flatCost <= tableCost;
            if (flat) Flat(sharedFreqs, bits);
            if (!Fits(dst, pos, 1 + RansCoder.TableSize(sharedFreqs) + Varint.MaxLength)) return -1;
            pos += Varint.Write(dst[pos..], (uint)(ownCount * 2 + (flat ? 1 : 0)));
            if (!flat) pos += WriteTable(sharedFreqs, sharedShift, dst[pos..], own);
            int sharedSlot = slots++;
            for (int c = 0, prev = -1; c < nctx; c++)
            {
                _slotOf[b0 + c] = (ushort)sharedSlot;
                if (!owned[b0 + c]) continue;
                var ownFreqs = freqs.AsSpan(slots * 256, 256);
                BestTable(_hist.AsSpan((b0 + c) * 256, 256), ownFreqs, out int shift, own);
                if (!Fits(dst, pos, Varint.MaxLength + 1 + RansCoder.TableSize(ownFreqs))) return -1;
                pos += Varint.Write(dst[pos..], (uint)(c - prev - 1));
                pos += WriteTable(ownFreqs, shift, dst[pos..], own);
                prev = c;
                _slotOf[b0 + c] = (ushort)slots++;
            }
        }

        LastSlots = slots;
        LastTableBytes = pos;
        fixed (RansCoder.EncSymbol* e0 = enc)
        fixed (byte* s0 = syms)
        fixed (ushort* c0 = ctx, slotOf = _slotOf, w0 = Scratch.Grow(ref _words, total + 1))
        {
            for (int t = 0; t < slots; t++) RansCoder.BuildEncSymbols(freqs.AsSpan(t * 256, 256), e0 + t * 256);
            uint* xs = stackalloc uint[States];
            for (int k = 0; k < States; k++) xs[k] = L;
            // Backwards, so the decoder runs forwards: quants (state = index among the quants mod 16), then the side symbols.
            ushort* w = w0 + total + 1;
            for (int i = total - 1; i >= side; i--) w = Put(xs + ((i - side) & (States - 1)), e0 + slotOf[c0[i]] * 256 + s0[i], w);
            for (int i = side - 1; i >= 0; i--) w = Put(xs + (i & (States - 1)), e0 + slotOf[c0[i]] * 256 + s0[i], w);
            int words = (int)(w0 + total + 1 - w);
            if (!Fits(dst, pos, 4 * States + 2 * words)) return -1;
            for (int k = 0; k < States; k++, pos += 4) BinaryPrimitives.WriteUInt32LittleEndian(dst[pos..], xs[k]);
            if (BitConverter.IsLittleEndian) new ReadOnlySpan<byte>(w, 2 * words).CopyTo(dst[pos..]);
            else for (int k = 0; k < words; k++) BinaryPrimitives.WriteUInt16LittleEndian(dst[(pos + 2 * k)..], w[k]);
            pos += 2 * words;
        }
        return pos;
    }

    /// <summary>Coarsest table precision: frequencies summing to 2^(12 − shift), shift ≤ this.</summary>
    const int MaxShift = 6;

    /// <summary>Normalises <paramref name="hist"/> at the precision (12 − shift bits) that minimises table bytes plus code
    /// bits (small contexts pay less for coarse tables than their bytes cost); <paramref name="freqs"/> gets the table scaled
    /// to 4096. Returns that cost in bits.</summary>
    static double BestTable(ReadOnlySpan<uint> hist, Span<ushort> freqs, out int shift, Span<ushort> tmp)
    {
        int present = 0;
        for (int s = 0; s < 256; s++) if (hist[s] != 0) present++;
        double best = double.MaxValue;
        shift = 0;
        for (int p = 0; p <= MaxShift && (Scale >> p) >= 2 * present; p++)
        {
            RansCoder.NormalizeFrequencies(hist, tmp, Scale >> p);
            double cost = 8.0 * (1 + RansCoder.TableSize(tmp));
            for (int s = 0; s < 256; s++)
                if (hist[s] != 0) cost += hist[s] * (ScaleBits - p - Math.Log2(tmp[s]));
            if (cost >= best) break; // the cost is convex in the precision here: stop at the first rise
            best = cost;
            shift = p;
            for (int s = 0; s < 256; s++) freqs[s] = (ushort)(tmp[s] << p);
        }
        return best;
    }

    /// <summary>Rounded (not normalised) table bytes at the cheapest of a few precisions, for the own-or-shared estimate.</summary>
    static int EstimateTableBytes(ReadOnlySpan<uint> h, long n, Span<ushort> tmp)
    {
        int best = int.MaxValue;
        for (int p = 0; p <= MaxShift; p += 2)
        {
            long scale = Scale >> p;
            for (int s = 0; s < 256; s++)
                tmp[s] = h[s] == 0 ? (ushort)0 : (ushort)Math.Clamp((h[s] * scale + n / 2) / n, 1, scale - 1);
            best = Math.Min(best, 1 + RansCoder.TableSize(tmp));
        }
        return best;
    }

    /// <summary>Writes the shift byte and the table at its precision (<paramref name="freqs"/> is scaled to 4096).</summary>
    static int WriteTable(ReadOnlySpan<ushort> freqs, int shift, Span<byte> dst, Span<ushort> tmp)
    {
        for (int s = 0; s < 256; s++) tmp[s] = (ushort)(freqs[s] >> shift);
        dst[0] = (byte)shift;
        return 1 + RansCoder.WriteTable(tmp, dst[1..]);
    }

    static bool Fits(Span<byte> dst, int pos, int need) => dst.Length - pos >= need;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static ushort* Put(uint* xp, RansCoder.EncSymbol* sym, ushort* w)
    {
        uint v = *xp;
        // Branchless renormalisation, as RansCoder's scalar encoder (the slot below w is always in the buffer).
        uint need = (v >> (32 - ScaleBits)) >= sym->Freq ? 1u : 0u;
        w[-1] = (ushort)v;
        w -= need;
        v >>= (int)(need << 4);
        *xp = RansCoder.EncodeState(v, sym);
        return w;
    }

    void SumHistograms(int b0, int nctx, ReadOnlySpan<bool> owned, Span<uint> sum)
    {
        sum.Clear();
        for (int c = 0; c < nctx; c++)
        {
            if (owned[b0 + c]) continue;
            var h = _hist.AsSpan((b0 + c) * 256, 256);
            for (int s = 0; s < 256; s++) sum[s] += h[s];
        }
    }

    int CountPresent(int b0, int nctx)
    {
        int n = 0;
        for (int c = 0; c < nctx; c++)
            if (_hist.AsSpan((b0 + c) * 256, 256).ContainsAnyExcept(0u)) n++;
        return n;
    }

    /// <summary>Splits every block and lists its symbols with their contexts: side symbols at [0, side), quants after.</summary>
    void Gather(int type, ReadOnlySpan<byte> raw, int nb, byte[] syms, ushort[] ctx, int side)
    {
        int bb = GgmlBlockFields.BlockBytes(type);
        bool hasM = GgmlBlockFields.HasM(type);
        var f = _block;
        uint[] hist = _hist;
        int k = 0, qk = side, prevD = 64, prevM = 64;
        Span<int> groupCtx = stackalloc int[16];
        for (int b = 0; b < nb; b++)
        {
            GgmlBlockFields.Split(type, raw.Slice(b * bb, bb), f);
            Half(f.D, FdExp, ref prevD, ref k);
            if (hasM) Half(f.M, FmExp, ref prevM, ref k);
            if (type is GgmlBlockFields.Q4_K or GgmlBlockFields.Q5_K)
            {
                for (int j = 0; j < 8; j++) Add(ref k, Base[FScale], f.Scale[j]);
                for (int j = 0; j < 8; j++) Add(ref k, Base[FMin] + (f.Scale[j] >> 2), f.Min[j]);
            }
            else if (type == GgmlBlockFields.Q6_K)
                for (int j = 0; j < 16; j++) Add(ref k, Base[FScale], f.Scale[j]);
            int groups = GroupContexts(type, f.D, f.M, f.Scale, f.Min, groupCtx);
            for (int g = 0; g < groups; g++)
            {
                int c = Base[FQuant] + groupCtx[g];
                for (int l = 0; l < 16; l++, qk++)
                {
                    byte q = f.Q[g * 16 + l];
                    syms[qk] = q;
                    ctx[qk] = (ushort)c;
                    hist[c * 256 + q]++;
                }
            }
        }

        void Half(ushort v, int field, ref int prev, ref int k)
        {
            int e = v >> 10;
            Add(ref k, Base[field] + prev, (byte)e);
            Add(ref k, Base[field + 1] + e, (byte)((v >> 7) & 7));
            Add(ref k, Base[field + 2], (byte)(v & 127));
            prev = e;
        }

        void Add(ref int k, int c, byte s)
        {
            syms[k] = s;
            ctx[k] = (ushort)c;
            hist[c * 256 + s]++;
            k++;
        }
    }

    /// <summary>The quant context of each group of sixteen quants of a block (mode 3's contexts); returns the group count.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static int GroupContexts(int type, ushort d, ushort m, ReadOnlySpan<byte> scale, ReadOnlySpan<byte> min, Span<int> ctx)
    {
        switch (type)
        {
            case GgmlBlockFields.Q4_K:
            case GgmlBlockFields.Q5_K:
            {
                float df = (float)BitConverter.UInt16BitsToHalf(d), mf = (float)BitConverter.UInt16BitsToHalf(m);
                int top = type == GgmlBlockFields.Q4_K ? 15 : 31;
                for (int j = 0; j < 8; j++) ctx[2 * j] = ctx[2 * j + 1] = GgmlFieldCoder.KQuantContext(df, mf, scale[j], min[j], top);
                return 16;
            }
            case GgmlBlockFields.Q6_K:
                for (int j = 0; j < 16; j++) ctx[j] = GgmlFieldCoder.Q6Context(scale[j]);
                return 16;
            default:
                ctx[0] = ctx[1] = GgmlFieldCoder.BlockContext(d);
                return 2;
        }
    }

    /// <summary>Decodes <paramref name="src"/> into the whole blocks of <paramref name="raw"/>; false if malformed: a bad
    /// table, a symbol outside its field, words left over or missing, or a final state that is not the initial one.</summary>
    [SkipLocalsInit]
    public bool Decode(int type, ReadOnlySpan<byte> src, Span<byte> raw) => Decode(type, src, raw, allowFast: true);

    /// <summary><paramref name="allowFast"/> = false decodes every quant with the checked single-symbol step (tests compare both).</summary>
    [SkipLocalsInit]
    internal bool Decode(int type, ReadOnlySpan<byte> src, Span<byte> raw, bool allowFast)
    {
        int bb = GgmlBlockFields.BlockBytes(type), nb = raw.Length / bb;
        int pos = 0, slots = 0;
        Span<ushort> freqs = stackalloc ushort[256];
        // Tables first (their count is not known until read): decode tables go to a slot each.
        for (int pass = 0; pass < 2; pass++)
        {
            // Pass 0 only counts the slots (so the decode-table scratch is sized once), pass 1 builds them.
            pos = 0;
            slots = 0;
            for (int f = 0; f < Fields; f++)
            {
                int nctx = FieldContexts(type, f), b0 = Base[f], bits = FieldBits(type, f);
                if (nctx == 0) continue;
                if (!Varint.TryRead(src, ref pos, out int head, 2 * nctx + 1)) return false;
                int own = head >> 1;
                if ((head & 1) != 0) Flat(freqs, bits);
                else if (!ReadTable(src, ref pos, freqs, bits)) return false;
                if (pass == 1) BuildTable(freqs, slots);
                int sharedSlot = slots++;
                for (int c = 0; c < nctx; c++) _slotOf[b0 + c] = (ushort)sharedSlot;
                for (int k = 0, c = -1; k < own; k++)
                {
                    if (!Varint.TryRead(src, ref pos, out int delta, nctx) || (c += delta + 1) >= nctx) return false;
                    if (!ReadTable(src, ref pos, freqs, bits)) return false;
                    if (pass == 1) BuildTable(freqs, slots);
                    _slotOf[b0 + c] = (ushort)slots++;
                }
            }
            if (pass == 0) Scratch.Grow(ref _dec, slots * Scale);
        }
        if (src.Length - pos < 4 * States || ((src.Length - pos) & 1) != 0 || !BitConverter.IsLittleEndian) return false;
        uint* xs = stackalloc uint[States];
        for (int k = 0; k < States; k++) xs[k] = BinaryPrimitives.ReadUInt32LittleEndian(src[(pos + 4 * k)..]);
        pos += 4 * States;

        ushort[] halves = Scratch.Grow(ref _sideHalf, 2 * nb);
        byte[] sideBytes = Scratch.Grow(ref _sideBytes, 24 * nb);
        bool hasM = GgmlBlockFields.HasM(type);
        var f0 = _block;
        Span<int> groupCtx = stackalloc int[16];
        fixed (byte* s0 = src)
        fixed (uint* tables = _dec)
        fixed (ushort* slotOf = _slotOf)
        fixed (byte* q = f0.Q)
        fixed (int* perm = RansCoder.s_renormPermute)
        {
            // 2: AVX-512VL steps, 1: AVX2 steps, 0: RansCoder's scalar eight-state step (or, not fast, the checked one).
            int vector = !allowFast || !BitConverter.IsLittleEndian ? 0
                : Simd.AllowAvx512 && Avx512F.VL.IsSupported ? 2
                : Simd.AllowAvx2 && Avx2.IsSupported ? 1 : 0;
            ushort* w = (ushort*)(s0 + pos), wend = (ushort*)(s0 + src.Length);
            var rd = new Reader { Xs = xs, W = w, WEnd = wend, Tables = tables, SlotOf = slotOf };
            // Side fields of every block.
            int prevD = 64, prevM = 64;
            for (int b = 0; b < nb; b++)
            {
                halves[2 * b] = rd.Half(Base[FdExp], ref prevD);
                if (hasM) halves[2 * b + 1] = rd.Half(Base[FmExp], ref prevM);
                var sb = sideBytes.AsSpan(24 * b, 24);
                if (type is GgmlBlockFields.Q4_K or GgmlBlockFields.Q5_K)
                {
                    for (int j = 0; j < 8; j++) sb[j] = rd.Next(Base[FScale]);
                    for (int j = 0; j < 8; j++) sb[16 + j] = rd.Next(Base[FMin] + (sb[j] >> 2));
                }
                else if (type == GgmlBlockFields.Q6_K)
                    for (int j = 0; j < 16; j++) sb[j] = rd.Next(Base[FScale]);
                if (rd.Bad) return false;
            }
            // Quants, sixteen at a time (states 0..15), then each block joined back.
            rd.Index = 0;
            for (int b = 0; b < nb; b++)
            {
                var f = f0;
                f.D = halves[2 * b];
                f.M = hasM ? halves[2 * b + 1] : (ushort)0;
                var sb = sideBytes.AsSpan(24 * b, 24);
                sb[..16].CopyTo(f.Scale);
                sb.Slice(16, 8).CopyTo(f.Min);
                int groups = GroupContexts(type, f.D, f.M, f.Scale, f.Min, groupCtx);
                if (vector != 0)
                {
                    // RansCoder's vector step with the group's table; the last few words go through the checked step.
                    var xa = Vector256.Load(xs);
                    var xb = Vector256.Load(xs + 8);
                    for (int g = 0; g < groups; g++)
                    {
                        uint* table = tables + slotOf[Base[FQuant] + groupCtx[g]] * Scale;
                        byte* o = q + 16 * g;
                        if (rd.WEnd - rd.W >= States)
                        {
                            if (vector == 2) RansCoder.StepAvx512(table, ref xa, ref xb, ref rd.W, o);
                            else RansCoder.StepAvx2(table, ref xa, ref xb, ref rd.W, o, perm);
                        }
                        else
                        {
                            xa.Store(xs);
                            xb.Store(xs + 8);
                            for (int l = 0; l < States; l++) o[l] = rd.Step(table, xs + l);
                            xa = Vector256.Load(xs);
                            xb = Vector256.Load(xs + 8);
                        }
                    }
                    xa.Store(xs);
                    xb.Store(xs + 8);
                }
                else
                    for (int g = 0; g < groups; g++)
                    {
                        uint* table = tables + slotOf[Base[FQuant] + groupCtx[g]] * Scale;
                        byte* o = q + 16 * g;
                        if (allowFast && rd.WEnd - rd.W >= States)
                        {
                            rd.W = RansCoder.DecodeEight(table, xs, rd.W, o);
                            rd.W = RansCoder.DecodeEight(table, xs + 8, rd.W, o + 8);
                        }
                        else
                            for (int l = 0; l < States; l++) o[l] = rd.Step(table, xs + l);
                    }
                if (rd.Bad) return false;
                GgmlBlockFields.Join(type, f, raw.Slice(b * bb, bb));
            }
            if (rd.W != rd.WEnd) return false;
            for (int k = 0; k < States; k++) if (xs[k] != L) return false;
            return true;
        }
    }

    /// <summary>The flat table of a field of <paramref name="bits"/> bits: every symbol 2^(12 − bits).</summary>
    static void Flat(Span<ushort> freqs, int bits)
    {
        freqs[..256].Clear();
        freqs[..(1 << bits)].Fill((ushort)(Scale >> bits));
    }

    /// <summary>A shift byte and a table in RansCoder's format summing to 2^(12 − shift), whose symbols are all below
    /// 2^<paramref name="bits"/>; <paramref name="freqs"/> gets it scaled to 4096.</summary>
    static bool ReadTable(ReadOnlySpan<byte> src, ref int pos, Span<ushort> freqs, int bits)
    {
        if (pos >= src.Length || src[pos] > MaxShift) return false;
        int shift = src[pos++];
        if (!RansCoder.ReadTable(src, ref pos, freqs, Scale >> shift) || freqs[(1 << bits)..256].ContainsAnyExcept((ushort)0)) return false;
        for (int s = 0; s < 256; s++) freqs[s] <<= shift;
        return true;
    }

    void BuildTable(ReadOnlySpan<ushort> freqs, int slot)
    {
        fixed (uint* t = &_dec[slot * Scale]) RansCoder.BuildDecodeTable(freqs, t);
    }

    /// <summary>The decoder's single-symbol step over the side fields: symbol i of the stream takes state i mod 16.</summary>
    struct Reader
    {
        public uint* Xs, Tables;
        public ushort* W, WEnd, SlotOf;
        public int Index;
        public bool Bad;

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public byte Next(int context) => Step(Tables + SlotOf[context] * Scale, Xs + (Index++ & (States - 1)));

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public byte Step(uint* table, uint* x)
        {
            uint e = table[*x & (Scale - 1)];
            uint v = RansCoder.DecodeState(e, *x);
            if (v < L)
            {
                if (W < WEnd) v = (v << 16) | *W++;
                else Bad = true;
            }
            *x = v;
            return (byte)e;
        }

        public ushort Half(int expBase, ref int prev)
        {
            int e = Next(expBase + prev);
            int t = Next(expBase + ExpCtx + e);
            int l = Next(expBase + ExpCtx + 64);
            prev = e;
            return (ushort)((e << 10) | (t << 7) | l);
        }
    }
}
