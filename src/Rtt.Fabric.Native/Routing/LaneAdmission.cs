using System.Net.Sockets;
using System.Runtime.InteropServices;
using Rtt.Core.Errors;
using Rtt.Core.Tokens;

namespace Rtt.Fabric.Routing;

/// <summary>
/// Who may attach a lane (docs/security.md, docs/tokens.md). A presented token is always verified (issuer trusted, chain,
/// time, revocation), must allow <c>open</c>, <c>tx</c> and <c>rx</c> on the route's target symbol, and its nonce is
/// spent (one token, one lane); the lane is closed when it expires. Without a token: strict mode refuses; dev mode admits
/// a Unix-socket peer running as the silo's user (or root), never a TCP peer. Checked once per attach, never per frame.
/// </summary>
/// <summary>What an admitted token allows a lane: until when, and which symbols (the lane's frames are held to it).</summary>
public sealed record LaneGrant(DateTimeOffset Expires, string Saddr);

public sealed class LaneAdmission(TokenVerifier verifier, bool strict)
{
    public static readonly string[] AttachVerbs = ["open", "rx", "tx"];

    public bool Strict { get; } = strict;

    public TokenVerifier Verifier { get; } = verifier;

    /// <summary>Admits or throws an RttException (RTT-TOKEN-…); returns the token's grant, or null for a token-less dev attach.</summary>
    public LaneGrant? Admit(string symbol, string? token, Socket peer)
    {
        if (string.IsNullOrEmpty(token))
        {
            if (Strict)
            {
                throw Missing(symbol, "the lane host runs in strict mode: every attach presents a token");
            }

            if (peer.AddressFamily != AddressFamily.Unix)
            {
                throw Missing(symbol, "a TCP attach always presents a token");
            }

            var uid = PeerUid(peer);
            if (uid is not { } u || (u != 0 && u != GetEuid()))
            {
                throw Missing(symbol, $"the peer runs as another user (uid {uid?.ToString(System.Globalization.CultureInfo.InvariantCulture) ?? "unknown"})");
            }

            return null;
        }

        var rights = Verifier.Admit(token, symbol, AttachVerbs).Rights;
        return new LaneGrant(rights.Expires, rights.Saddr);
    }

    private static TokenException Missing(string symbol, string why) =>
        new(ErrorCodes.TokenMissing, $"no capability token for \"{symbol}\": {why}", symbol, "attach with a token (`rtt token issue`; rtt call makes its own with the workspace key)");

    /// <summary>The peer's uid from SO_PEERCRED (Linux), or null.</summary>
    public static int? PeerUid(Socket socket)
    {
        if (!OperatingSystem.IsLinux() || socket.AddressFamily != AddressFamily.Unix)
        {
            return null;
        }

        Span<byte> cred = stackalloc byte[12]; // struct ucred { pid_t pid; uid_t uid; gid_t gid; }
        try
        {
            return socket.GetRawSocketOption(1 /* SOL_SOCKET */, 17 /* SO_PEERCRED */, cred) == 12
                ? System.Buffers.Binary.BinaryPrimitives.ReadInt32LittleEndian(cred[4..]) : null;
        }
        catch (SocketException)
        {
            return null;
        }
    }

    [DllImport("libc", EntryPoint = "geteuid")]
    private static extern int GetEuid();
}
