using System.CommandLine;
using System.Text.Json.Nodes;
using Rtt.Core.Json;
using Rtt.Core.Workspace;
using Spectre.Console;

namespace Rtt.Cli.Commands;

public static class KeysCommand
{
    public static Command Create()
    {
        var keys = new Command("keys", "List, create, trust and revoke signing keys");

        var json = RttCommands.JsonOption();
        var list = new Command("list", "List the workspace's keys: private keys, trusted and revoked keys") { json };
        list.SetAction(RttCommands.Guard((parse, _) =>
        {
            var rows = new WorkspaceKeys(RttCommands.FindWorkspace(parse)).List();
            if (parse.GetValue(json))
            {
                var array = new JsonArray();
                foreach (var k in rows)
                {
                    array.Add(new JsonObject
                    {
                        ["name"] = k.Name,
                        ["key_id"] = k.KeyId,
                        ["private_key"] = k.HasPrivateKey,
                        ["trusted"] = k.Trusted,
                        ["revoked"] = k.Revoked,
                        ["signing"] = k.Signing,
                    });
                }

                Console.Out.Write(PrettyJson.ToText(new JsonObject { ["keys"] = array }));
                return Task.FromResult(RttCommands.Ok);
            }

            var table = new Table().AddColumns("name", "key_id", "private", "state", "signing");
            foreach (var k in rows)
            {
                table.AddRow(Markup.Escape(k.Name), k.KeyId, k.HasPrivateKey ? "yes" : "", k.Revoked ? "[red]revoked[/]" : k.Trusted ? "trusted" : "", k.Signing ? "*" : "");
            }

            AnsiConsole.Write(table);
            return Task.FromResult(RttCommands.Ok);
        }));

        var newName = new Argument<string>("NAME") { Description = "Name of the new key" };
        var use = new Option<bool>("--use") { Description = "Make it the workspace's signing key" };
        var create = new Command("new", "Create a key pair; the workspace trusts its public key") { newName, use };
        create.SetAction(RttCommands.Guard((parse, _) =>
        {
            var made = new WorkspaceKeys(RttCommands.FindWorkspace(parse)).New(parse.GetValue(newName)!, parse.GetValue(use));
            Console.WriteLine($"Created key {made.Name} {made.KeyId}{(made.Signing ? " (now the signing key)" : "")}");
            return Task.FromResult(RttCommands.Ok);
        }));

        var file = new Argument<string>("FILE") { Description = "A public key file (.pub JSON) made by another workspace" };
        var name = new Option<string?>("--name") { Description = "Name to file it under (default: the file's name)" };
        var trust = new Command("trust", "Trust another signer's public key") { file, name };
        trust.SetAction(RttCommands.Guard((parse, _) =>
        {
            var added = new WorkspaceKeys(RttCommands.FindWorkspace(parse)).Trust(Path.GetFullPath(parse.GetValue(file)!), parse.GetValue(name));
            Console.WriteLine($"Trusted {added.Name} {added.KeyId}");
            return Task.FromResult(RttCommands.Ok);
        }));

        var key = new Argument<string>("KEY") { Description = "key_id (sha256:…) or name" };
        var reason = new Option<string>("--reason") { Description = "Why (recorded in revoked.json)", DefaultValueFactory = _ => "" };
        var revoke = new Command("revoke", "Revoke a key: anything it signed is refused from now on") { key, reason };
        revoke.SetAction(RttCommands.Guard((parse, _) =>
        {
            var ws = RttCommands.FindWorkspace(parse);
            var keyId = new WorkspaceKeys(ws).Revoke(parse.GetValue(key)!, parse.GetValue(reason) ?? "", DateTimeOffset.UtcNow);
            Console.WriteLine($"Revoked {keyId}");
            using var signing = ws.LoadSigningKey();
            if (signing.KeyId == keyId)
            {
                Console.Error.WriteLine("warning: that is the workspace's signing key; create a new one with `rtt keys new NAME --use`");
            }

            return Task.FromResult(RttCommands.Ok);
        }));

        keys.Subcommands.Add(list);
        keys.Subcommands.Add(create);
        keys.Subcommands.Add(trust);
        keys.Subcommands.Add(revoke);
        return keys;
    }
}
