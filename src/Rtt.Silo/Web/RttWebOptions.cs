using System.Net;
using Rtt.Core.Errors;

namespace Rtt.Silo.Web;

/// <summary>
/// The silo's web host (the <c>Web</c> section, docs/panel.md): one Kestrel listener in the silo's own process, started only
/// when a feature that serves HTTP is enabled (the panel, the Orleans Dashboard). Loopback unless the operator names
/// another address.
/// </summary>
public sealed class RttWebOptions
{
    /// <summary>The address Kestrel listens on. 127.0.0.1 by default; anything else only when set explicitly.</summary>
    public string Bind { get; set; } = "127.0.0.1";

    /// <summary>The port (0: any free one, printed at start).</summary>
    public int Port { get; set; } = 7411;

    /// <summary>How long a browser session made from a login token lasts at most (minutes; the token's own expiry caps it too).</summary>
    public int SessionMinutes { get; set; } = 480;

    public IPAddress Address => IPAddress.Parse(Bind);

    public bool Loopback => IPAddress.IsLoopback(Address);

    public void Validate()
    {
        if (!IPAddress.TryParse(Bind, out _))
        {
            throw new HostingException(ErrorCodes.ConfigInvalid, $"\"{Bind}\" is not an IP address", "Web:Bind", "give 127.0.0.1 (the default), or an address of this machine to listen on it");
        }

        if (Port is < 0 or > 65535)
        {
            throw new HostingException(ErrorCodes.ConfigInvalid, $"port {Port} is out of range", "Web:Port", "use a port from 1 to 65535 (0: any free port), e.g. rtt up --panel --panel-port 7411");
        }

        if (SessionMinutes is < 1 or > 7 * 24 * 60)
        {
            throw new HostingException(ErrorCodes.ConfigInvalid, $"session length {SessionMinutes} min is not from 1 minute to 7 days", "Web:SessionMinutes", "for example 480 (8 hours)");
        }
    }
}

/// <summary>A feature switch of the web host (<c>Panel</c>, <c>Dashboard</c> sections).</summary>
public sealed class RttWebFeatureOptions
{
    public bool Enabled { get; set; }
}
