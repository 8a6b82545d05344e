using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using Rtt.Core.Json;
using Rtt.Registry;

namespace Rtt.Core.Tests;

/// <summary>symbols.json's entries are copied token by token; the bytes must be the ones a JsonDocument per entry gave.</summary>
public sealed class JsonCopyTests
{
    private static readonly string[] Entries =
    [
        """{"input":"rtt.types/Text","kind":"agent","object":"sha256:00","output":"rtt.types/Text","source":"agents/a.agent.json","version":"1.0.0"}""",
        """{"input":{"type":"object","properties":{"q":{"type":"string"}},"required":["q"]},"kind":"tool","output":null,"source":"mcp/x.tools.json","version":"1.0.0-rc.1"}""",
        """{"a":[],"b":{},"c":[[],[{}],["x",true,false,null]],"d":"quote \" backslash \\ tab \t nl \n ctl \u0001 del \u007f","e":"é 日本 😀 \u2028 \u2029 <>&'+`"}""",
        """{"n":1,"m":[1.5,-0,1e+21,1e-7],"o":{"p":12345678901234567890}}""",
        """{"very long":"LONG","z":"Z"}""".Replace("LONG", new string('\u00e9', 300) + "\\\"" + new string('x', 300), StringComparison.Ordinal),
    ];

    [Fact]
    public void Token_copy_writes_the_bytes_a_document_writes()
    {
        foreach (var text in Entries)
        {
            var canonical = CanonicalJson.Serialize(JsonNode.Parse(text)); // entries are canonical UTF-8, as the scanner keeps them
            Assert.Equal(Encoding.UTF8.GetString(Written(canonical, document: true)), Encoding.UTF8.GetString(Written(canonical, document: false)));
        }

        static byte[] Written(byte[] entry, bool document)
        {
            using var stream = new MemoryStream();
            using (var writer = PrettyJson.Writer(stream))
            {
                writer.WriteStartObject();
                writer.WritePropertyName("rtt://s/x/y");
                writer.WriteStartArray();
                for (var i = 0; i < 2; i++)
                {
                    if (document)
                    {
                        using var doc = JsonDocument.Parse(entry);
                        doc.RootElement.WriteTo(writer);
                    }
                    else
                    {
                        JsonCopy.Write(entry, writer);
                    }
                }

                writer.WriteEndArray();
                writer.WriteEndObject();
            }

            return stream.ToArray();
        }
    }
}
