using System.CommandLine;
using System.Globalization;
using System.Runtime.InteropServices;
using Rtt.Core.Workspace;
using Rtt.Views;
using Rtt.Views.Mount;

namespace Rtt.Cli.Commands;

/// <summary><c>rtt view mount</c> and <c>rtt view unmount</c>: the recorded view sets as a read-only FUSE file system (docs/views.md).</summary>
public static class ViewMountCommands
{
    public static Command Mount()
    {
        var provider = new Option<string?>("--provider", "-p") { Description = "Serve this provider's files at the root of DIR" };
        var all = new Option<bool>("--all") { Description = "Serve every provider that has a recorded view set, one folder each" };
        var env = new Option<string?>("--env", "-e") { Description = "The environment whose view sets are served; default: $RTT_ENV, else none" };
        var poll = new Option<int>("--poll-ms") { Description = "How often the registry is checked for a newly recorded view set", DefaultValueFactory = _ => 250 };
        var watch = new Option<bool>("--watch") { Description = "Also watch agents/common/ and overlays/: record the views again on a change (as `rtt view build --record-only`) so the mount follows the sources" };
        var dir = new Argument<string>("DIR") { Description = "An empty folder to mount on" };
        var command = new Command("mount", "Serve the recorded views read-only at DIR (FUSE), byte for byte what `rtt view build` writes; runs until `rtt view unmount DIR`")
        {
            provider, all, env, poll, watch, dir,
        };
        command.SetAction(RttCommands.Guard(async (parse, cancellationToken) =>
        {
            var p = parse.GetValue(provider);
            var everything = parse.GetValue(all);
            if (p is null == !everything)
            {
                throw new Core.Errors.RttException(Core.Errors.ErrorCodes.ViewNameInvalid, "give either --provider P or --all", null,
                    "rtt view mount --provider claude DIR, or rtt view mount --all DIR");
            }

            if (p is not null)
            {
                ViewNames.Provider(p, "--provider");
            }

            var e = parse.GetValue(env) ?? (Environment.GetEnvironmentVariable("RTT_ENV") is { Length: > 0 } x ? x : null);
            if (e is not null)
            {
                ViewNames.Env(e, "--env");
            }

            var ws = RttCommands.FindWorkspace(parse);
            var options = new ViewMountOptions(parse.GetValue(dir)!, p, everything, e, TimeSpan.FromMilliseconds(Math.Max(20, parse.GetValue(poll))), parse.GetValue(watch));
            using var mount = ViewMount.Start(ws, options, line => Console.Error.WriteLine($"rtt view mount: {line}"));
            var stop = () =>
            {
                try
                {
                    ViewMount.Unmount(mount.MountPoint, lazy: true); // readers inside keep being served until they leave
                }
                catch (Core.Errors.RttException)
                {
                }
            };
            using var term = PosixSignalRegistration.Create(PosixSignal.SIGTERM, ctx =>
            {
                ctx.Cancel = true;
                stop();
            });
            using var onCancel = cancellationToken.Register(stop);
            var tree = mount.Tree;
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"mounted {mount.MountPoint}: {string.Join(", ", tree.Sets.Select(s => s.Key))} ({tree.FileCount} file(s), {tree.TotalBytes} bytes); stop with `rtt view unmount {mount.MountPoint}`"));
            await mount.Stopped;
            Console.WriteLine($"unmounted {mount.MountPoint}");
            return RttCommands.Ok;
        }));
        return command;
    }

    public static Command Unmount()
    {
        var lazy = new Option<bool>("--lazy") { Description = "Detach now even when a reader is inside; the mount is freed when the last one leaves" };
        var dir = new Argument<string>("DIR") { Description = "The folder `rtt view mount` serves" };
        var command = new Command("unmount", "Unmount a view mount (also one whose process was killed); refused while a reader is inside unless --lazy") { lazy, dir };
        command.SetAction(RttCommands.Guard((parse, _) =>
        {
            ViewMount.Unmount(parse.GetValue(dir)!, parse.GetValue(lazy));
            Console.WriteLine($"unmounted {Path.GetFullPath(parse.GetValue(dir)!)}");
            return Task.FromResult(RttCommands.Ok);
        }));
        return command;
    }
    /// <summary>
    /// <c>rtt up --mount-views DIR</c>: the silo process keeps a mount of every provider's views (environment from
    /// <c>RTT_ENV</c>), following the sources, and unmounts it when it stops. Null without the option.
    /// </summary>
    public static SiloViewMount? StartWithSilo(RttWorkspace workspace, string? dir)
    {
        if (dir is null)
        {
            return null;
        }

        var env = Environment.GetEnvironmentVariable("RTT_ENV") is { Length: > 0 } e ? ViewNames.Env(e, "RTT_ENV") : null;
        var mount = ViewMount.Start(workspace, new ViewMountOptions(dir, null, All: true, env, TimeSpan.FromMilliseconds(250), WatchSources: true),
            line => Console.Error.WriteLine($"rtt view mount: {line}"));
        return new SiloViewMount(mount);
    }
}

/// <summary>A view mount kept by the silo process: disposing unmounts it (lazily: a reader inside does not hold up the stop).</summary>
public sealed class SiloViewMount(ViewMount mount) : IDisposable
{
    private bool _disposed;

    public ViewMount Mount => mount;

    public void Dispose()
    {
        if (_disposed)
        {
            return;
        }

        _disposed = true;
        try
        {
            ViewMount.Unmount(mount.MountPoint, lazy: true);
            mount.Stopped.Wait(TimeSpan.FromSeconds(5));
        }
        catch (Core.Errors.RttException ex)
        {
            Console.Error.WriteLine($"rtt view mount: {ex.Headline}");
        }

        mount.Dispose();
    }
}
