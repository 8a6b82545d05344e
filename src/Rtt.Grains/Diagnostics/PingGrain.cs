namespace Rtt.Grains.Diagnostics;

/// <summary>Answers at once with what it was given (see <see cref="IPingGrain"/>).</summary>
public sealed class PingGrain : Grain, IPingGrain
{
    public Task<int> Ping(int value) => Task.FromResult(value);
}
