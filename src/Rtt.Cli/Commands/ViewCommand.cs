using System.CommandLine;
using System.Globalization;
using System.Text;
using System.Text.Json.Nodes;
using Rtt.Core.Workspace;
using Rtt.Registry;
using Rtt.Views;

namespace Rtt.Cli.Commands;

/// <summary><c>rtt view build|diff|import|clean|verify|mount|unmount</c>: provider views from one base and its overlays (docs/views.md).</summary>
public static class ViewCommand
{
    public static Command Create()
    {
        var command = new Command("view", "Provider views: merge each base agent with its overlays and write each provider's native files");
        command.Subcommands.Add(Build());
        command.Subcommands.Add(Diff());
        command.Subcommands.Add(Import());
        command.Subcommands.Add(Clean());
        command.Subcommands.Add(Verify());
        command.Subcommands.Add(ViewMountCommands.Mount());
        command.Subcommands.Add(ViewMountCommands.Unmount());
        return command;
    }

    private static Command Verify()
    {
        var command = new Command("verify", "Check every recorded view: signatures, and that its base merged with its overlays gives its content; exit 1 naming each fault");
        command.SetAction(RttCommands.Guard((parse, _) =>
        {
            using var store = RegistryStore.Open(RttCommands.FindWorkspace(parse));
            var faults = 0;
            var views = store.Index.Entries.Where(e => e.Key.StartsWith("view:", StringComparison.Ordinal)).ToList();
            foreach (var (key, hash) in views)
            {
                try
                {
                    ViewRecorder.VerifyProvenance(store, hash);
                }
                catch (Core.Errors.RttException ex)
                {
                    faults++;
                    Console.Error.WriteLine($"fault: {key}: {ex.Headline}");
                }
            }

            Console.WriteLine(faults == 0 ? $"ok: {views.Count} view(s) verified" : $"{faults} fault(s) in {views.Count} view(s)");
            return Task.FromResult(faults == 0 ? RttCommands.Ok : RttCommands.UserError);
        }));
        return command;
    }

    private static Option<string?> ProviderOption(string description) => new("--provider", "-p") { Description = description };

    private static Option<string?> EnvOption() => new("--env", "-e") { Description = "The environment whose overlays apply (overlays/env/<env>/); default: $RTT_ENV, else none" };

    /// <summary>--env, else the RTT_ENV variable, else no environment.</summary>
    private static string? EnvOf(ParseResult parse, Option<string?> env) => parse.GetValue(env) ?? DefaultEnv;

    private static string? DefaultEnv => Environment.GetEnvironmentVariable("RTT_ENV") is { Length: > 0 } e ? e : null;

    private static Command Build()
    {
        var provider = ProviderOption("Build only this provider (default: every provider named under overlays/provider/ or built before)");
        var env = EnvOption();
        var recordOnly = new Option<bool>("--record-only") { Description = "Record the views and each provider's view set in the registry (what `rtt view mount` serves) without writing providers/" };
        var command = new Command("build", "Write providers/<provider>/ files: only files whose bytes change; stale files rtt wrote are removed; files it does not own are never touched") { provider, env, recordOnly };
        command.SetAction(RttCommands.Guard((parse, _) =>
        {
            var ws = RttCommands.FindWorkspace(parse);
            var builder = new ViewBuilder(ws);
            var result = builder.Build(parse.GetValue(provider), EnvOf(parse, env), parse.GetValue(recordOnly));
            foreach (var set in result.Sets ?? [])
            {
                Console.WriteLine($"{"recorded",-10} {set.Key} ({set.Files.Count} file(s))");
            }

            if (parse.GetValue(recordOnly))
            {
                Console.WriteLine($"{result.Plan.Views.Count} view(s) recorded, {result.Sets?.Count ?? 0} new view set(s); providers/ not written");
                return Task.FromResult(RttCommands.Ok);
            }

            PrintChanges(result.Plan, verbose: false);
            foreach (var note in ProviderFormats.CodexNotes(result.Plan.Views.Where(v => v.Provider == ProviderFormats.OpenAi).Select(v => v.Content)))
            {
                Console.Error.WriteLine($"note: {ViewBuilder.ProvidersFolder}/{ProviderFormats.OpenAi}: {note}");
            }

            Console.WriteLine(Summary(result));
            return Task.FromResult(RttCommands.Ok);
        }));
        return command;
    }

    private static Command Diff()
    {
        var provider = ProviderOption("Compare only this provider");
        var env = EnvOption();
        var verbose = new Option<bool>("--verbose", "-v") { Description = "Print a unified diff of each file" };
        var command = new Command("diff", "Show what `rtt view build` would change; exit 1 when something would change, 0 when nothing would") { provider, env, verbose };
        command.SetAction(RttCommands.Guard((parse, _) =>
        {
            var ws = RttCommands.FindWorkspace(parse);
            var plan = new ViewBuilder(ws).Plan(parse.GetValue(provider), EnvOf(parse, env));
            using (var store = RegistryStore.Open(ws))
            {
                ViewBuilder.ThrowOnConflicts(plan, store.Strict); // a build would refuse: so does its preview
            }

            PrintChanges(plan, parse.GetValue(verbose));
            var changes = plan.Changes.ToList();
            Console.WriteLine(changes.Count == 0
                ? $"no changes: {plan.Unchanged} file(s) up to date"
                : string.Create(CultureInfo.InvariantCulture,
                    $"{changes.Count(c => c.Kind == FileChangeKind.Added)} added, {changes.Count(c => c.Kind == FileChangeKind.Changed)} changed, {changes.Count(c => c.Kind == FileChangeKind.Removed)} removed, {plan.Unchanged} unchanged"));
            return Task.FromResult(changes.Count == 0 ? RttCommands.Ok : RttCommands.UserError);
        }));
        return command;
    }

    private static Command Import()
    {
        var provider = ProviderOption("The provider the files were written for (claude: subagent .md files; openai: an AGENTS.md; any other: its .agent.json views)");
        provider.Required = true;
        var path = new Argument<string>("PATH") { Description = "A file, or a folder holding them (claude: a .claude/agents folder or a folder holding one)" };
        var command = new Command("import", "Turn existing provider files into bases (agents/common/) plus provider overlays (overlays/provider/<provider>/)") { provider, path };
        command.SetAction(RttCommands.Guard((parse, _) =>
        {
            var ws = RttCommands.FindWorkspace(parse);
            var result = ViewImporter.Import(ws, parse.GetValue(provider)!, Path.GetFullPath(parse.GetValue(path)!));
            foreach (var written in result.Written)
            {
                Console.WriteLine($"wrote      {written}");
            }

            foreach (var kept in result.Unchanged)
            {
                Console.WriteLine($"kept       {kept}");
            }

            foreach (var warning in result.Warnings)
            {
                Console.Error.WriteLine($"warning: {warning}");
            }

            foreach (var e in result.Errors)
            {
                Console.Error.WriteLine($"error {e.Error.Headline}");
                if (e.Error.Remedy is not null)
                {
                    Console.Error.WriteLine($"  hint: {e.Error.Remedy}");
                }
            }

            Console.WriteLine($"imported {result.Agents.Count} agent(s): {string.Join(", ", result.Agents)}; run `rtt view build` to write the provider files");
            if (result.Errors.Count > 0)
            {
                Console.WriteLine($"refused {result.Errors.Count} file(s), listed above; the others were imported");
            }

            return Task.FromResult(result.Errors.Count == 0 ? RttCommands.Ok : RttCommands.UserError);
        }));
        return command;
    }

    private static Command Clean()
    {
        var provider = ProviderOption("Clean only this provider");
        var command = new Command("clean", "Remove every file `rtt view build` wrote (its owned-files manifests say which); other files stay") { provider };
        command.SetAction(RttCommands.Guard((parse, _) =>
        {
            var plan = new ViewBuilder(RttCommands.FindWorkspace(parse)).Clean(parse.GetValue(provider));
            PrintChanges(plan, verbose: false);
            Console.WriteLine($"removed {plan.Changes.Count()} file(s)");
            return Task.FromResult(RttCommands.Ok);
        }));
        return command;
    }

    private static void PrintChanges(ViewPlan plan, bool verbose)
    {
        foreach (var conflict in plan.Conflicts)
        {
            Console.Error.WriteLine($"warning: overlays disagree (the later one wins): {conflict}");
        }

        foreach (var change in plan.Changes.OrderBy(c => c.WorkspacePath, StringComparer.Ordinal))
        {
            Console.WriteLine($"{change.Kind.ToString().ToLowerInvariant(),-10} {change.WorkspacePath}");
            if (verbose)
            {
                Console.Out.Write(TextDiff.Unified($"a/{change.WorkspacePath}", $"b/{change.WorkspacePath}", Text(change.Before), Text(change.After)));
            }
        }

        static string? Text(byte[]? bytes) => bytes is null ? null : Encoding.UTF8.GetString(bytes);
    }

    /// <summary>One line for a build, also the detail of <c>rtt up</c>'s views step.</summary>
    public static string Summary(ViewBuildResult result)
    {
        var plan = result.Plan;
        var changes = plan.Changes.ToList();
        var providers = plan.Providers.Count == 0 ? "no provider" : string.Join(", ", plan.Providers.Select(p => p.Provider));
        return string.Create(CultureInfo.InvariantCulture,
            $"{plan.Views.Count} view(s) for {providers} (env {plan.Env ?? "none"}): {changes.Count(c => c.Kind == FileChangeKind.Added)} added, {changes.Count(c => c.Kind == FileChangeKind.Changed)} changed, {changes.Count(c => c.Kind == FileChangeKind.Removed)} removed, {plan.Unchanged} unchanged; {result.Recorded.Count(r => r.Added)} new view object(s) recorded");
    }

    /// <summary><c>rtt up</c>'s step: build every provider's views (no environment unless <c>RTT_ENV</c> names one).</summary>
    public static JsonObject Step(RttWorkspace ws)
    {
        var result = new ViewBuilder(ws).Build(null, DefaultEnv);
        return new JsonObject { ["step"] = "views", ["status"] = "ok", ["detail"] = Summary(result) };
    }
}
