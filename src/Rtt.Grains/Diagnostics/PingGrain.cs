namespace Rtt.Grains.Diagnostics;

/// <summary>Answers at once with what it was given (see <see cref="IPingGrain"/>).</summary>
public sealed class PingGrain : Grain, IPingGrain
{
    public Task<int> Ping(int value) => Task.FromResult(value);

    public Task<int> Echo(byte[] data) => Task.FromResult(data.Length);

    public Task<int> Guarded(int value) => Task.FromResult(value);

    public Task<int> Guarded(int value, ManagementToken token) => Task.FromResult(value);

    public Task<int> Ping(int value, ManagementToken token) => Task.FromResult(value);

    public Task<SiloRuntimeView> Runtime() =>
        Task.FromResult(new SiloRuntimeView(GC.GetTotalAllocatedBytes(precise: true), GC.CollectionCount(0), GC.CollectionCount(1), GC.CollectionCount(2),
            System.Runtime.JitInfo.GetCompiledMethodCount(), (long)GC.GetTotalPauseDuration().TotalMicroseconds));
}
