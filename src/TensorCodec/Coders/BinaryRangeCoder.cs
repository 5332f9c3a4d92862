using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;

namespace TensorCodec.Coders;

/// <summary>
/// Adaptive binary range coder (the carry-propagating LZMA construction: 64-bit low, 32-bit range, byte-wise
/// renormalisation below 2^24) with probabilities of 16 bits. Each model bit is a <c>ushort</c> probability of a
/// zero plus a <c>byte</c> count that sets its adaptation rate: 1/2, 1/4, … down to 1/2^<see cref="MaxShift"/>, so
/// a fresh context learns as fast as a count would and a busy one settles into a slow, low-noise average. Layout in
/// FORMAT.md (chunk mode 3).
/// </summary>
internal static class BinaryRangeCoder
{
    public const int ProbBits = 16;
    public const ushort Half = 1 << (ProbBits - 1);
    public const int MaxShift = 9;
    const uint Top = 1u << 24;

    /// <summary>Adaptation shift for a bit seen <c>count</c> times (counts stop at 255): about 1/(count+1.5) early, then
    /// 1/64 … 1/512 once settled (the slower rates paid 0.14 % on bard-3m's GGUFs against stopping at 1/128).</summary>
    static readonly byte[] Shifts = BuildShifts();
    public const int MaxCount = 255;

    static byte[] BuildShifts()
    {
        var t = new byte[MaxCount + 1];
        for (int c = 0; c <= MaxCount; c++)
            t[c] = (byte)(c == 0 ? 1 : c < 3 ? 2 : c < 7 ? 3 : c < 15 ? 4 : c < 31 ? 5 : c < 63 ? 6 : c < 127 ? 7 : c < 255 ? 8 : MaxShift);
        return t;
    }

    /// <summary>Resets <paramref name="probs"/> to one half and the counts to zero.</summary>
    public static void Reset(Span<ushort> probs, Span<byte> counts)
    {
        probs.Fill(Half);
        counts.Clear();
    }

    /// <summary>The shift for <paramref name="count"/> (≤ <see cref="MaxCount"/>), and the count advanced.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static int Step(ref byte count)
    {
        int c = count;
        count = (byte)(c + ((c - MaxCount) >>> 31));
        return Unsafe.Add(ref MemoryMarshal.GetArrayDataReference(Shifts), c);
    }

    /// <summary>Encoder state over a caller's buffer; <see cref="Overflow"/> is set (and bytes dropped) if it fills.</summary>
    public ref struct Encoder
    {
        readonly Span<byte> _out;
        int _pos;
        ulong _low;
        uint _range;
        byte _cache;
        long _cacheSize;
        public bool Overflow;

        public Encoder(Span<byte> output)
        {
            _out = output; _pos = 0; _low = 0; _range = 0xFFFFFFFF; _cache = 0; _cacheSize = 1; Overflow = false;
        }

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public void Encode(ref ushort p, ref byte count, int bit)
        {
            uint bound = (_range >> ProbBits) * p;
            int shift = Step(ref count);
            if (bit == 0) { _range = bound; p += (ushort)((65536 - p) >> shift); }
            else { _low += bound; _range -= bound; p -= (ushort)(p >> shift); }
            while (_range < Top) { _range <<= 8; ShiftLow(); }
        }

        /// <summary>Codes <paramref name="bit"/> with probability <paramref name="p"/> (of a zero, 1..65535) that the caller
        /// models itself (no counter update).</summary>
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public void EncodeBit(uint p, int bit)
        {
            uint bound = (_range >> ProbBits) * p;
            if (bit == 0) _range = bound;
            else { _low += bound; _range -= bound; }
            while (_range < Top) { _range <<= 8; ShiftLow(); }
        }

        /// <summary>Codes the low <paramref name="bits"/> bits of <paramref name="symbol"/> MSB first through a bit tree
        /// of 2^bits − 1 nodes at <paramref name="probs"/>[0..] (node 1 is the root; index 0 unused).</summary>
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public void EncodeTree(ref ushort probs, ref byte counts, int bits, int symbol)
        {
            nint node = 1;
            for (int i = bits - 1; i >= 0; i--)
            {
                int b = (symbol >> i) & 1;
                Encode(ref Unsafe.Add(ref probs, node), ref Unsafe.Add(ref counts, node), b);
                node = (node << 1) | (nint)b;
            }
        }

        void ShiftLow()
        {
            if ((uint)_low < 0xFF000000u || (_low >> 32) != 0)
            {
                byte carry = (byte)(_low >> 32);
                byte temp = _cache;
                do
                {
                    Put((byte)(temp + carry));
                    temp = 0xFF;
                } while (--_cacheSize != 0);
                _cache = (byte)(_low >> 24);
            }
            _cacheSize++;
            _low = (_low & 0x00FFFFFF) << 8;
        }

        void Put(byte b)
        {
            if (_pos < _out.Length) _out[_pos++] = b;
            else Overflow = true;
        }

        /// <summary>Flushes the state; returns the bytes written (meaningless if <see cref="Overflow"/>).</summary>
        public int Finish()
        {
            for (int i = 0; i < 5; i++) ShiftLow();
            return _pos;
        }
    }

    /// <summary>Decoder state over the coded bytes. Reading past the end yields zero bytes and counts them in
    /// <see cref="Overread"/>, so corrupt input decodes to garbage (caught by the caller's checks), never out of bounds.</summary>
    public ref struct Decoder
    {
        readonly ReadOnlySpan<byte> _in;
        int _pos;
        uint _range, _code;
        public int Overread;

        public Decoder(ReadOnlySpan<byte> input)
        {
            _in = input; _pos = 0; _range = 0xFFFFFFFF; _code = 0; Overread = 0;
            // The encoder's first byte is its initial cache (zero), shifted out of the 32-bit code.
            for (int i = 0; i < 5; i++) _code = (_code << 8) | Next();
        }

        /// <summary>Bytes consumed so far.</summary>
        public readonly int Position => _pos;

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        uint Next()
        {
            if (_pos < _in.Length) return _in[_pos++];
            Overread++;
            return 0;
        }

        /// <summary>One bit coded with the caller's probability <paramref name="p"/> (of a zero, 1..65535).</summary>
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public int DecodeBit(uint p)
        {
            uint bound = (_range >> ProbBits) * p;
            int bit;
            if (_code < bound) { _range = bound; bit = 0; }
            else { _code -= bound; _range -= bound; bit = 1; }
            while (_range < Top) { _range <<= 8; _code = (_code << 8) | Next(); }
            return bit;
        }

        /// <summary>A symbol of <paramref name="bits"/> bits through the tree at <paramref name="probs"/>/<paramref name="counts"/>
        /// (the caller guarantees 2^bits entries); state in locals, written back once.</summary>
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public int DecodeTree(ref ushort probs, ref byte counts, int bits)
        {
            uint range = _range, code = _code;
            nint node = 1;
            for (int i = 0; i < bits; i++)
            {
                ref ushort p = ref Unsafe.Add(ref probs, node);
                int shift = Step(ref Unsafe.Add(ref counts, node));
                uint bound = (range >> ProbBits) * p;
                if (code < bound) { range = bound; p += (ushort)((65536 - p) >> shift); node <<= 1; }
                else { code -= bound; range -= bound; p -= (ushort)(p >> shift); node = (node << 1) | 1; }
                while (range < Top) { range <<= 8; code = (code << 8) | Next(); }
            }
            _range = range;
            _code = code;
            return (int)node - (1 << bits);
        }
    }
}
