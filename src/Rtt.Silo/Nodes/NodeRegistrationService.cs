using System.Collections.Immutable;
using System.Diagnostics;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Rtt.Core.Errors;
using Rtt.Core.Nodes;
using Rtt.Core.Workspace;
using Rtt.Grains.Nodes;
using Rtt.Grains.Reconciling;
using Rtt.Reconciling;
using Rtt.Reconciling.Resilience;
using Rtt.Silo.Hosting;

namespace Rtt.Silo.Nodes;

/// <summary>
/// Registers this silo's node in its node grain once the silo is up, then publishes silo.json so that
/// clients on this machine find the gateway. On shutdown it removes silo.json.
/// </summary>
public sealed class NodeRegistrationService(
    IGrainFactory grains,
    RttSiloOptions options,
    RttWorkspace workspace,
    ILocalSiloDetails silo,
    TimeProvider time,
    IParticipantLedgerStore ledgers,
    RttRetryOptions retry,
    IServiceProvider services,
    ILogger<NodeRegistrationService> logger) : IHostedService
{
    public NodeRecord? Record { get; private set; }

    /// <summary>The plan in force when the silo started (after recovery).</summary>
    public string? AppliedPlanId { get; private set; }

    /// <summary>What recovery did at start-up, if anything.</summary>
    public string? Recovery { get; private set; }

    /// <summary>The key this silo signs with now, for silo.json (clients holding it present MAC tokens); null when it cannot be read.</summary>
    private string? SigningKeyId()
    {
        try
        {
            return workspace.Signer.Current().KeyId;
        }
        catch (RttException ex)
        {
            logger.LogWarning("silo.json names no signing key ({Code}: {Message}): clients present signed tokens", ex.Code, ex.Message);
            return null;
        }
    }

    public async Task StartAsync(CancellationToken cancellationToken)
    {
        var lanes = services.GetService(typeof(INodeLaneHost)) as INodeLaneHost;
        var facts = ToFacts(options.NodeId, MachineTopology.ReadLocal(), silo.SiloAddress.ToString())
            with
            {
                LaneSocket = lanes is Lanes.LaneHostService { Running: true } host ? Path.GetFullPath(host.ControlSocket) : null,
                LaneTcp = lanes is Lanes.LaneHostService { Running: true } tcpHost ? tcpHost.TcpAdvertised : null,
            };
        var node = grains.GetGrain<INodeGrain>(options.NodeId);
        // Each state-changing call presents its own token (the management filter spends one per call; docs/security.md).
        Rtt.Grains.ManagementCalls.Present(workspace, Core.Tokens.ManagementTokens.Admin);
        Record = await node.Register(facts);
        // In a cluster the node's grain may still be active on another silo (it was placed there while this one was
        // down): it deactivates when asked and the next call places it here. That can take a few seconds.
        // Asked again as Retry:ServeLanes says (about 10 s); giving up is logged.
        var serving = Stopwatch.StartNew();
        var served = await new RetryPolicy("Retry:ServeLanes", retry.ServeLanes, _ => false, logger).ExecuteAsync(
            $"node {options.NodeId} serving its applied lanes (its grain is still on another silo)",
            async _ =>
            {
                Rtt.Grains.ManagementCalls.Present(workspace, Core.Tokens.ManagementTokens.Admin);
                return await node.ServeLanes();
            },
            again: done => !done,
            cancellationToken);

        if (!served && lanes is { Running: true } && await ledgers.ReadAsync(PlanTargets.NodePrefix + options.NodeId) is { } ledger)
        {
            // The committed target in the shared ledger store is what the grain would serve: serve it from here, so the
            // node's routes come back with its silo even while the grain lingers elsewhere.
            await lanes.ServeAsync(LaneTarget.Of(ledger.AppliedTarget));
            logger.LogWarning("Node {NodeId}: its grain stayed on another silo for {Seconds:0} s; the lanes of its applied plan {Plan} are served from the ledger store, and plans that change this node abort until the grain moves here",
                options.NodeId, serving.Elapsed.TotalSeconds, ledger.AppliedPlan ?? "none");
        }

        var history = await grains.GetGrain<IReconcilerGrain>(IReconcilerGrain.ClusterKey).History(); // activation replays the WAL and recovers
        AppliedPlanId = history.AppliedPlanId;
        Recovery = history.Recovery;
        new SiloInfo(Environment.ProcessId, options.NodeId, options.SiloPort, options.GatewayPort, options.ClusterId, options.ServiceId, time.GetUtcNow(), SigningKeyId(), SiloInfo.NewestMacFormat, TokenArgument: true)
            .Write(workspace.SiloInfoPath);
        logger.LogInformation("Node {NodeId} registered (registration {Registrations}, first on {First:u})",
            options.NodeId, Record.Registrations, Record.FirstRegistered);
    }

    public Task StopAsync(CancellationToken cancellationToken)
    {
        try
        {
            File.Delete(workspace.SiloInfoPath);
        }
        catch (IOException ex)
        {
            logger.LogWarning(ex, "Could not remove {Path}", workspace.SiloInfoPath);
        }

        return Task.CompletedTask;
    }

    /// <summary>Maps the machine's topology to the wire record.</summary>
    public static NodeFacts ToFacts(string nodeId, MachineTopology machine, string siloAddress) => new(
        nodeId,
        machine.HostName,
        machine.CpuModel,
        machine.LogicalCores,
        machine.MemoryBytes,
        [.. machine.NumaNodes.Select(n => new NumaNodeFacts(n.Id, MachineTopology.FormatCpuList(n.Cpus), n.Cpus.Count, n.MemoryBytes))],
        siloAddress);
}
