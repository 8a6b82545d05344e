using System.Reflection;
using System.Runtime.Loader;
using System.Text.Json.Nodes;
using Microsoft.Extensions.Logging;
using Rtt.Core.Calls;
using Rtt.Core.Errors;
using Rtt.Drivers;
using Rtt.Fabric.Drivers;

namespace Rtt.Silo.Endpoints;

/// <summary>
/// A <c>dotnet</c> endpoint: the plugin assembly loaded into its own collectible <see cref="AssemblyLoadContext"/>
/// (its dependencies resolved from its folder, the contract assembly shared with the silo so the interface type is
/// the same), so a plan that names another version loads that one beside it and the old context is unloaded once
/// its calls have drained.
/// </summary>
public sealed class DotnetPlugin : IAsyncLaneDriver
{
    private readonly PluginLoadContext _context;
    private readonly IRttPlugin _plugin;

    private DotnetPlugin(string name, PluginLoadContext context, IRttPlugin plugin)
    {
        Name = name;
        _context = context;
        _plugin = plugin;
    }

    public string Name { get; }

    public string? NotReady => null;

    public static async Task<IAsyncLaneDriver> LoadAsync(JsonObject serve, EndpointContext context, CancellationToken cancellationToken)
    {
        var path = ServeSpec.ResolvePath(context.Workspace.Root, (string)serve["assembly"]!);
        var typeName = (string)serve["type"]!;
        if (!File.Exists(path))
        {
            throw new RttException(ErrorCodes.EndpointUnavailable, $"plugin assembly {path} does not exist", context.Hash, "build the plugin, or fix serve.assembly");
        }

        var alc = new PluginLoadContext(path);
        try
        {
            Assembly assembly;
            try
            {
                assembly = alc.LoadFromAssemblyPath(path);
            }
            catch (BadImageFormatException ex)
            {
                throw new RttException(ErrorCodes.EndpointUnavailable, $"plugin assembly {path} is not a .NET assembly: {ex.Message}", context.Hash, "point serve.assembly at the plugin's built .dll");
            }

            var type = assembly.GetType(typeName, throwOnError: false)
                ?? throw new RttException(ErrorCodes.EndpointUnavailable, $"plugin assembly {Path.GetFileName(path)} has no type {typeName}", context.Hash, "fix serve.type (namespace and class name)");
            if (!typeof(IRttPlugin).IsAssignableFrom(type) || type.IsAbstract || type.GetConstructor(Type.EmptyTypes) is null)
            {
                throw new RttException(ErrorCodes.EndpointUnavailable, $"{typeName} is not a public class implementing Rtt.Drivers.IRttPlugin with a parameterless constructor", context.Hash,
                    "implement IRttPlugin from the Rtt.Drivers.Abstractions package");
            }

            IRttPlugin plugin;
            try
            {
                plugin = (IRttPlugin)Activator.CreateInstance(type)!;
                var config = serve["config"]?.ToJsonString() ?? "{}";
                await plugin.InitializeAsync(new RttPluginContext(context.Hash, context.Workspace.Root, config), cancellationToken);
            }
            catch (Exception ex) when (ex is not OperationCanceledException)
            {
                var inner = ex is TargetInvocationException { InnerException: { } i } ? i : ex;
                throw new RttException(ErrorCodes.EndpointUnavailable, $"plugin {typeName} failed to start: {inner.GetType().Name}: {inner.Message}", context.Hash, "see the plugin's own documentation");
            }

            context.Logger.LogInformation("Plugin {Type} loaded from {Path} for endpoint {Endpoint}", typeName, path, context.Short);
            return new DotnetPlugin($"dotnet:{type.Name}", alc, plugin);
        }
        catch
        {
            alc.Unload();
            throw;
        }
    }

    public ValueTask<ReadOnlyMemory<byte>> CallAsync(ReadOnlyMemory<byte> request, CancellationToken cancellationToken) => _plugin.CallAsync(request, cancellationToken);

    public async ValueTask DisposeAsync()
    {
        try
        {
            await _plugin.DisposeAsync();
        }
        finally
        {
            _context.Unload(); // collected once nothing references the plugin's types any more
        }
    }

    private sealed class PluginLoadContext(string path) : AssemblyLoadContext($"rtt-plugin:{Path.GetFileName(path)}", isCollectible: true)
    {
        private readonly AssemblyDependencyResolver _resolver = new(path);

        protected override Assembly? Load(AssemblyName name)
        {
            if (name.Name == typeof(IRttPlugin).Assembly.GetName().Name)
            {
                return null; // the contract comes from the silo, so IRttPlugin is one type on both sides
            }

            var resolved = _resolver.ResolveAssemblyToPath(name);
            return resolved is null ? null : LoadFromAssemblyPath(resolved);
        }

        protected override IntPtr LoadUnmanagedDll(string unmanagedDllName)
        {
            var resolved = _resolver.ResolveUnmanagedDllToPath(unmanagedDllName);
            return resolved is null ? IntPtr.Zero : LoadUnmanagedDllFromPath(resolved);
        }
    }
}
