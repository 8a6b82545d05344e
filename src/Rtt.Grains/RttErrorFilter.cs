using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Rtt.Core.Errors;

namespace Rtt.Grains;

/// <summary>Turns an RttException thrown in a grain into a <see cref="RttGrainException"/> the caller can deserialize.</summary>
public sealed class RttErrorFilter : IIncomingGrainCallFilter
{
    public async Task Invoke(IIncomingGrainCallContext context)
    {
        try
        {
            await context.Invoke();
        }
        catch (RttException ex)
        {
            throw new RttGrainException(ex.Code, ex.Message, ex.Location, ex.Remedy);
        }
    }
}

public static class RttGrainsSiloExtensions
{
    /// <summary>
    /// Registers what every silo hosting RTT grains needs beyond storage: the error filter, the node placement, the
    /// default retry settings, and no fault points (a crash test registers its own <see cref="Rtt.Reconciling.IFaultPoints"/>, before or after this).
    /// </summary>
    public static ISiloBuilder AddRttGrains(this ISiloBuilder silo)
    {
        silo.Services.TryAddSingleton<Rtt.Reconciling.IFaultPoints>(Rtt.Reconciling.NoFaultPoints.Instance);
        silo.Services.TryAddSingleton(new Rtt.Reconciling.Resilience.RttRetryOptions()); // the silo host registers the configured ones
        silo.Services.AddSingleton<IIncomingGrainCallFilter, RttErrorFilter>();
        silo.Services.AddPlacementDirector<Nodes.NodeSiloPlacement, Nodes.NodeSiloPlacementDirector>();
        RttExceptions.Add(silo.Services);
        return silo;
    }
}
