namespace Rtt.Grains.Diagnostics;

/// <summary>
/// The smallest grain call there is: the same-run baseline of the control-path benchmark (`rtt bench control`), so the
/// cost of a real operation is read against what Orleans itself costs on this machine. A read: needs no token.
/// </summary>
[Alias("rtt.IPingGrain")]
public interface IPingGrain : IGrainWithIntegerKey
{
    [Alias("Ping")]
    Task<int> Ping(int value);
}
