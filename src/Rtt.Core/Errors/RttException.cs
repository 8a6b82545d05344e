namespace Rtt.Core.Errors;

/// <summary>
/// An error a user can act on: a stable code, what went wrong, where (file, field, route),
/// and what to do about it. The CLI prints these as one or two lines and exits 1.
/// </summary>
public class RttException : Exception
{
    public RttException(string code, string message, string? location = null, string? remedy = null, Exception? inner = null)
        : base(message, inner)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(code);
        Code = code;
        Location = location;
        Remedy = remedy;
    }

    /// <summary>Stable code such as <c>RTT-WS-002</c>; listed in docs/errors.md.</summary>
    public string Code { get; }

    /// <summary>The file, field or address at fault, when there is one.</summary>
    public string? Location { get; }

    /// <summary>What the user can do about it.</summary>
    public string? Remedy { get; }

    /// <summary>The one-line summary: <c>RTT-XXX-NNN: message (at location)</c>.</summary>
    public string Headline => Location is null ? $"{Code}: {Message}" : $"{Code}: {Message} ({Location})";
}

/// <summary>Workspace layout, discovery and file errors.</summary>
public sealed class WorkspaceException(string code, string message, string? location = null, string? remedy = null, Exception? inner = null)
    : RttException(code, message, location, remedy, inner);

/// <summary>Key, signature and trust-store errors.</summary>
public sealed class SigningException(string code, string message, string? location = null, string? remedy = null, Exception? inner = null)
    : RttException(code, message, location, remedy, inner);

/// <summary>A document that is not valid JSON, or not of the expected shape.</summary>
public sealed class DocumentException(string code, string message, string? location = null, string? remedy = null, Exception? inner = null)
    : RttException(code, message, location, remedy, inner);

/// <summary>Silo start-up, storage and connection errors.</summary>
public sealed class HostingException(string code, string message, string? location = null, string? remedy = null, Exception? inner = null)
    : RttException(code, message, location, remedy, inner);
