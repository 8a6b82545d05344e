using System.CommandLine;
using System.Text.Json.Nodes;
using Rtt.Core.Json;
using Rtt.Core.Signing;
using Rtt.Core.Workspace;
using Rtt.Reconciling;
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
        var retired = new Option<bool>("--retired") { Description = "Retire it instead: what it signed up to now stays valid (default: compromised, everything it signed is refused)" };
        var revoke = new Command("revoke", "Revoke a key: as compromised (anything it signed is refused) or --retired") { key, reason, retired };
        revoke.SetAction(RttCommands.Guard((parse, _) =>
        {
            var ws = RttCommands.FindWorkspace(parse);
            var keyId = new WorkspaceKeys(ws).Revoke(parse.GetValue(key)!, parse.GetValue(reason) ?? "", DateTimeOffset.UtcNow,
                parse.GetValue(retired) ? Revocation.Retired : Revocation.Compromised);
            Console.WriteLine($"Revoked {keyId}{(parse.GetValue(retired) ? " (retired)" : " (compromised)")}");
            using var signing = SigningKey.Load(ws.PrivateKeyPath(ws.LoadSettings().SigningKey));
            if (signing.KeyId == keyId)
            {
                Console.Error.WriteLine("warning: that is the workspace's signing key, which now signs nothing; make a new one with `rtt keys rotate NEW`");
            }

            return Task.FromResult(RttCommands.Ok);
        }));

        var rotateName = new Argument<string>("NEW") { Description = "Name of the new signing key" };
        var compromised = new Option<bool>("--compromised") { Description = "The old key may be known to others: refuse everything it signed and re-sign the registry with the new key" };
        var rotateReason = new Option<string>("--reason") { Description = "Why (recorded in revoked.json)", DefaultValueFactory = _ => "" };
        var rotate = new Command("rotate", "Make a new signing key, revoke the old one (retired, or --compromised), re-sign what is in force and countersign the WAL")
        {
            rotateName, compromised, rotateReason,
        };
        rotate.SetAction(RttCommands.Guard((parse, _) =>
        {
            var report = KeyRotation.Rotate(RttCommands.FindWorkspace(parse), parse.GetValue(rotateName)!, parse.GetValue(compromised),
                parse.GetValue(rotateReason) ?? "", DateTimeOffset.UtcNow);
            Console.WriteLine($"Signing key is now {parse.GetValue(rotateName)} {report.NewKeyId}; {report.OldKeyId} is {report.Kind}");
            if (report.Resigned > 0)
            {
                Console.WriteLine($"  re-signed {report.Resigned} object(s) and manifest(s) with the new key");
            }

            if (report.WalSize is { } size)
            {
                Console.WriteLine($"  WAL countersigned by the new key at size {size}");
            }

            foreach (var note in report.Notes)
            {
                Console.WriteLine($"  note: {note}");
            }

            return Task.FromResult(RttCommands.Ok);
        }));

        keys.Subcommands.Add(list);
        keys.Subcommands.Add(create);
        keys.Subcommands.Add(trust);
        keys.Subcommands.Add(revoke);
        keys.Subcommands.Add(rotate);
        return keys;
    }
}
