using System.Buffers.Binary;
using System.IO.Hashing;
using System.Runtime.InteropServices;
using TensorCodec.Containers;

namespace TensorCodec.Eval;

/// <summary>
/// Cached base-model log-probabilities for KL evaluation, so a sweep runs the base model once.
/// Layout (little-endian): "TCLOGPRB" magic, int32 version = 1, int32 vocab, int32 ctx,
/// int32 scoreFrom, int32 windows, uint64 xxHash64 of the evaluated token ids (int32 LE),
/// then windows × (ctx − 1 − scoreFrom) rows of vocab float32 log-softmax values.
/// </summary>
internal static class BaseLogitsFile
{
    static ReadOnlySpan<byte> Magic => "TCLOGPRB"u8;
    public const int HeaderSize = 8 + 4 * 5 + 8;

    public sealed record Header(int Vocab, int Ctx, int ScoreFrom, int Windows, ulong TokenHash)
    {
        public int RowsPerWindow => Ctx - 1 - ScoreFrom;
    }

    public static ulong HashTokens(ReadOnlySpan<int> tokens) => XxHash64.HashToUInt64(MemoryMarshal.AsBytes(tokens));

    /// <summary>Writes the file atomically as windows arrive; nothing appears under the name unless Commit runs.</summary>
    public sealed class Writer : IDisposable
    {
        readonly AtomicFileWriter _file;
        readonly Header _header;
        int _windows;

        public Writer(string path, Header header, bool overwrite)
        {
            _header = header;
            _file = new AtomicFileWriter(path, overwrite);
            Span<byte> h = stackalloc byte[HeaderSize];
            Magic.CopyTo(h);
            BinaryPrimitives.WriteInt32LittleEndian(h[8..], 1);
            BinaryPrimitives.WriteInt32LittleEndian(h[12..], header.Vocab);
            BinaryPrimitives.WriteInt32LittleEndian(h[16..], header.Ctx);
            BinaryPrimitives.WriteInt32LittleEndian(h[20..], header.ScoreFrom);
            BinaryPrimitives.WriteInt32LittleEndian(h[24..], header.Windows);
            BinaryPrimitives.WriteUInt64LittleEndian(h[28..], header.TokenHash);
            _file.Stream.Write(h);
        }

        /// <summary>Appends one window's log-probabilities, [RowsPerWindow][Vocab].</summary>
        public void WriteWindow(ReadOnlySpan<float> logProbs)
        {
            if (logProbs.Length != _header.RowsPerWindow * _header.Vocab) throw new ArgumentException("window size mismatch", nameof(logProbs));
            _file.Stream.Write(MemoryMarshal.AsBytes(logProbs));
            _windows++;
        }

        public void Commit()
        {
            if (_windows != _header.Windows) throw new InvalidOperationException($"wrote {_windows} of {_header.Windows} windows");
            _file.Commit();
        }

        public void Dispose() => _file.Dispose();
    }

    /// <summary>Reads windows in order, after checking the header matches the evaluation about to run.</summary>
    public sealed class Reader : IDisposable
    {
        readonly FileStream _stream;
        public Header Header { get; }

        public Reader(string path, Header expected)
        {
            InputFile.EnsureRegular(path);
            _stream = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, 1 << 16);
            try
            {
                Span<byte> h = stackalloc byte[HeaderSize];
                if (_stream.ReadAtLeast(h, HeaderSize, throwOnEndOfStream: false) != HeaderSize || !h[..8].SequenceEqual(Magic))
                    throw new InvalidDataException($"{path}: not a tcodec base-logits file");
                int version = BinaryPrimitives.ReadInt32LittleEndian(h[8..]);
                if (version != 1) throw new InvalidDataException($"{path}: base-logits version {version} is not supported");
                Header = new Header(BinaryPrimitives.ReadInt32LittleEndian(h[12..]), BinaryPrimitives.ReadInt32LittleEndian(h[16..]),
                    BinaryPrimitives.ReadInt32LittleEndian(h[20..]), BinaryPrimitives.ReadInt32LittleEndian(h[24..]),
                    BinaryPrimitives.ReadUInt64LittleEndian(h[28..]));
                void Same<T>(string field, T file, T run)
                {
                    if (!EqualityComparer<T>.Default.Equals(file, run))
                        throw new InvalidDataException($"{path}: field '{field}' is {file} in the base-logits file but {run} in this evaluation");
                }
                Same("vocab", Header.Vocab, expected.Vocab);
                Same("ctx", Header.Ctx, expected.Ctx);
                Same("score_from", Header.ScoreFrom, expected.ScoreFrom);
                Same("windows", Header.Windows, expected.Windows);
                if (Header.TokenHash != expected.TokenHash)
                    throw new InvalidDataException($"{path}: the base logits were computed on different tokens (token hash differs)");
                long expectedLength = HeaderSize + (long)Header.Windows * Header.RowsPerWindow * Header.Vocab * 4;
                if (_stream.Length != expectedLength)
                    throw new InvalidDataException($"{path}: file is {_stream.Length} bytes, its header implies {expectedLength}");
            }
            catch { _stream.Dispose(); throw; }
        }

        public void ReadWindow(Span<float> logProbs) => _stream.ReadExactly(MemoryMarshal.AsBytes(logProbs));

        public void Dispose() => _stream.Dispose();
    }
}
