using System.Buffers.Binary;
using System.Security.Cryptography;
using System.Text;

namespace Rtt.Core.Calls;

/// <summary>Route ids, shared by the planner's lane targets, the lane host and the clients that attach.</summary>
public static class RouteIds
{
    /// <summary>
    /// A route's lane id: the first 4 bytes (little endian) of SHA-256("from\0to"), never 0. The same route keeps
    /// its id across plans and restarts, so attached clients keep working through a swap.
    /// </summary>
    public static uint Of(string from, string to)
    {
        var hash = SHA256.HashData(Encoding.UTF8.GetBytes(from + "\0" + to));
        var id = BinaryPrimitives.ReadUInt32LittleEndian(hash);
        return id == 0 ? 1 : id;
    }
}
