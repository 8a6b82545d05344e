namespace Rtt.Grains;

/// <summary>
/// An RTT error (stable code, location, remedy) as it crosses the wire from a grain to its caller. Grains throw
/// the core's RttException; a grain call filter turns it into this serializable form.
/// </summary>
[GenerateSerializer, Alias("rtt.RttGrainException")]
public sealed class RttGrainException : Exception
{
    public RttGrainException(string code, string message, string? location, string? remedy)
        : base(message)
    {
        Code = code;
        Location = location;
        Remedy = remedy;
    }

    public RttGrainException()
    {
    }

    public RttGrainException(string message)
        : base(message)
    {
    }

    public RttGrainException(string message, Exception innerException)
        : base(message, innerException)
    {
    }

    [Id(0)]
    public string Code { get; private set; } = "";

    [Id(1)]
    public string? Location { get; private set; }

    [Id(2)]
    public string? Remedy { get; private set; }

    /// <summary>The one-line form the CLI prints.</summary>
    public string Headline => Location is null ? $"{Code}: {Message}" : $"{Code}: {Message} ({Location})";
}
