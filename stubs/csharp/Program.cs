using Rtt.Fabric.Services;

// Sample echo service for the C# stub (Rtt.Fabric.Services.ServiceHost, UDS and SHM): answers each request with its
// payload; the payload "!fail" throws, which the stub answers with an RTT-CALL-004 error frame (docs/stub-protocol.md).
return ServiceHost.Run((request, response) =>
{
    if (request.SequenceEqual("!fail"u8))
    {
        throw new InvalidOperationException("the sample service was asked to fail");
    }

    request.CopyTo(response);
    return request.Length;
});
