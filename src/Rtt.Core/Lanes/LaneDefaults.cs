namespace Rtt.Core.Lanes;

/// <summary>
/// The one copy of the lane defaults and limits that more than one assembly needs: the fabric's per-lane options
/// (<c>LaneOptions</c>), the silo's lane configuration (<c>Lanes:*</c>, <c>RttLaneOptions</c>), the autotune trace, the
/// stub conformance check and the service host all take them from here.
/// </summary>
public static class LaneDefaults
{
    /// <summary>Largest payload a frame may carry by default (64 KiB; <c>Lanes:MaxPayload</c>).</summary>
    public const int MaxPayload = 64 * 1024;

    /// <summary>Bytes per SHM ring by default (1 MiB, a plan's <c>ring_size</c> 256 pages; <c>Lanes:RingCapacity</c>).</summary>
    public const int RingCapacity = 1 << 20;

    /// <summary>
    /// Longest Unix socket path RTT uses, in characters of the full path: <c>sun_path</c> holds 108 bytes with the
    /// terminator, less a margin. Longer workspace paths get a short socket in the temp folder (<c>RttWorkspace.StateSocket</c>);
    /// a configured one that is longer is refused at start-up.
    /// </summary>
    public const int MaxSocketPath = 100;

    /// <summary>Whether <paramref name="path"/> (made full) fits <see cref="MaxSocketPath"/>.</summary>
    public static bool SocketPathFits(string path) => Path.GetFullPath(path).Length <= MaxSocketPath;
}
