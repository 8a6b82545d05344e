using System.Text;
using System.Text.Unicode;

namespace Rtt.Registry;

/// <summary>
/// Strings kept as UTF-8 bytes (compact tables), compared in <see cref="string.CompareOrdinal(string, string)"/> order:
/// UTF-16 code units, not code points, so the order is the one every <c>StringComparer.Ordinal</c> table gives.
/// </summary>
internal static class Utf8Ordinal
{
    private static readonly UTF8Encoding Strict = new(encoderShouldEmitUTF8Identifier: false, throwOnInvalidBytes: true);

    /// <summary>
    /// Compares two valid UTF-8 strings in UTF-16 ordinal order. Byte order is code point order, which is UTF-16 order
    /// except that U+E000-U+FFFF (lead bytes EE, EF) sort after the supplementary planes (lead bytes F0-F4, surrogates
    /// D800-DFFF in UTF-16). The first differing byte of two valid strings is at the same place in the same kind of
    /// sequence (their common prefix is whole sequences or the same lead byte), so remapping those lead bytes there suffices.
    /// </summary>
    public static int Compare(ReadOnlySpan<byte> a, ReadOnlySpan<byte> b)
    {
        var at = a.CommonPrefixLength(b);
        if (at == a.Length || at == b.Length)
        {
            return a.Length.CompareTo(b.Length);
        }

        return Rank(a[at]).CompareTo(Rank(b[at]));
    }

    private static int Rank(byte lead) => lead is 0xEE or 0xEF ? lead + 0x10 : lead;

    /// <summary>The UTF-8 bytes of <paramref name="text"/>; false when it holds a lone surrogate (no UTF-8 form).</summary>
    public static bool TryEncode(string text, out byte[] utf8)
    {
        try
        {
            utf8 = Strict.GetBytes(text);
            return true;
        }
        catch (EncoderFallbackException)
        {
            utf8 = [];
            return false;
        }
    }

    /// <summary>Encodes into <paramref name="buffer"/> (grown when too small); false when the text holds a lone surrogate.</summary>
    public static bool TryEncode(ReadOnlySpan<char> text, ref byte[] buffer, out int length)
    {
        if (buffer.Length < text.Length * 3)
        {
            buffer = new byte[Math.Max(text.Length * 3, 64)];
        }

        var status = Utf8.FromUtf16(text, buffer, out _, out length, replaceInvalidSequences: false);
        return status == System.Buffers.OperationStatus.Done;
    }

    public static string Decode(ReadOnlySpan<byte> utf8) => Encoding.UTF8.GetString(utf8);
}
