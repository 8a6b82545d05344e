using System.Text;
using Rtt.Core.Errors;
using Rtt.Registry;

namespace Rtt.Core.Tests;

public sealed class SourcesTests
{
    [Fact]
    public void Claude_subagent_becomes_an_agent_definition()
    {
        const string md = "---\nname: code-reviewer\ndescription: Expert reviewer.\ntools: Read, Grep, Read\nmodel: opus\n---\n\nYou are a reviewer.\nBe brief.\n";
        var agent = Sources.ClaudeSubagent(md, ".claude/agents/code-reviewer.md");
        Assert.Equal(("code-reviewer", "1.0.0"), (agent.Id, agent.Version));
        Assert.Equal("You are a reviewer.\nBe brief.\n", (string?)agent.Object["instructions"]);
        Assert.Equal(["Read", "Grep"], agent.Object["tools"]!.AsArray().Select(t => (string)t!));
        Assert.Equal("opus", (string?)agent.Object["model"]!["hint"]);
        Assert.Equal("rtt://agents/agent/code-reviewer", Assert.Single(agent.Symbols).Symbol);
    }

    [Theory]
    [InlineData("no front matter", ErrorCodes.YamlInvalid)]
    [InlineData("---\nname: x\n", ErrorCodes.YamlInvalid)]
    [InlineData("---\ndescription: d\n---\nbody", ErrorCodes.SchemaViolation)]
    [InlineData("---\nname: Bad Name\ndescription: d\n---\nbody", ErrorCodes.SchemaViolation)]
    public void Broken_subagents_are_refused(string md, string code)
    {
        Assert.Equal(code, Assert.Throws<RttException>(() => Sources.ClaudeSubagent(md, "x.md")).Code);
    }

    [Fact]
    public void Agent_schema_reports_the_field_at_fault()
    {
        var json = TestWorkspace.Agent("a").Replace("\"small\"", "42", StringComparison.Ordinal);
        var ex = Assert.Throws<RttException>(() => Sources.Agent(Encoding.UTF8.GetBytes(json), "a.agent.json"));
        Assert.Equal(ErrorCodes.SchemaViolation, ex.Code);
        Assert.Equal("a.agent.json: /model/hint", ex.Location);

        var extra = TestWorkspace.Agent("a").Replace("{\"id\"", "{\"colour\":\"red\",\"x-team\":\"core\",\"id\"", StringComparison.Ordinal);
        var unknown = Assert.Throws<RttException>(() => Sources.Agent(Encoding.UTF8.GetBytes(extra), "a.agent.json"));
        Assert.Contains("colour", unknown.Message + unknown.Location);
    }

    [Theory]
    [InlineData("1.0.0", true)]
    [InlineData("2.0.0-rc.1+build.5", true)]
    [InlineData("1.0", false)]
    [InlineData("01.0.0", false)]
    [InlineData("v1.0.0", false)]
    public void Versions_are_semver_2(string version, bool ok)
    {
        if (ok)
        {
            Assert.Equal(version, SchemaValidator.Semver(version, "x").ToFullString());
        }
        else
        {
            Assert.Equal(ErrorCodes.BadSemver, Assert.Throws<RttException>(() => SchemaValidator.Semver(version, "x")).Code);
        }
    }
}
