namespace Rtt.Registry;

/// <summary>
/// A shared source of registry objects by hash (in a cluster: the database's object table, which every silo publishes
/// its workspace's objects to). Returns the stored bytes as they are: the caller checks them against the hash.
/// </summary>
public interface IRemoteObjects
{
    /// <summary>The bytes stored under this hash, or null when there are none.</summary>
    byte[]? Fetch(string hash);
}
