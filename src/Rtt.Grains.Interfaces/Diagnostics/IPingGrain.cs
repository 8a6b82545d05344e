namespace Rtt.Grains.Diagnostics;

/// <summary>
/// The smallest grain call there is: the same-run baseline of the control-path benchmark (`rtt bench control`), so the
/// cost of a real operation is read against what Orleans itself costs on this machine. Its methods are reads (no token)
/// but <see cref="Guarded"/>; with <see cref="Echo"/> and <see cref="Guarded"/> the benchmark splits a management call's
/// cost into what it carries and what its token costs.
/// </summary>
[Alias("rtt.IPingGrain")]
public interface IPingGrain : IGrainWithIntegerKey
{
    [Alias("Ping")]
    Task<int> Ping(int value);

    /// <summary>Answers the length of <paramref name="data"/>: a ping carrying what an apply carries (the plan's bytes), no token. A read.</summary>
    [Alias("Echo")]
    Task<int> Echo([Immutable] byte[] data);

    /// <summary>
    /// Answers like <see cref="Ping"/>, but it is not a read: a client's call needs a management token (admin) that the
    /// silo's filter checks and spends, as for apply; the token's cost with nothing behind it.
    /// </summary>
    [Alias("Guarded")]
    Task<int> Guarded(int value);

    /// <summary><see cref="Guarded(int)"/> with its admin token as an argument, as apply's is carried: the filter checks, spends and clears it.</summary>
    [Alias("Guarded/token")]
    Task<int> Guarded(int value, ManagementToken token);

    /// <summary>A <see cref="Ping(int)"/> carrying a token as an argument that nothing checks (a read): what carrying apply's token costs.</summary>
    [Alias("Ping/token")]
    Task<int> Ping(int value, ManagementToken token);

    /// <summary>
    /// The silo process's runtime counters. The benchmark reads them around its calls: what a call allocates on the silo
    /// (its garbage makes the gen0 collections), and whether the JIT is still compiling (a call measured before its code
    /// reached the optimized tier is a warm-up, not the silo's steady state). A read.
    /// </summary>
    [Alias("Runtime")]
    Task<SiloRuntimeView> Runtime();
}

/// <summary>The silo process's bytes allocated by every thread, collections per generation, methods the JIT compiled (every tier), and the time the collector has paused the process in all.</summary>
[GenerateSerializer, Immutable, Alias("rtt.SiloRuntimeView")]
public sealed record SiloRuntimeView(
    [property: Id(0)] long AllocatedBytes,
    [property: Id(1)] int Gen0Collections,
    [property: Id(2)] int Gen1Collections,
    [property: Id(3)] int Gen2Collections,
    [property: Id(4)] long CompiledMethods,
    [property: Id(5)] long GcPauseMicroseconds);
