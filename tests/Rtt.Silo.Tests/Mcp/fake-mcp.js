// A hand-written MCP server on stdio (newline-delimited JSON-RPC) that misbehaves on purpose, for the silo's tests.
// node fake-mcp.js MODE   MODE: ok | exit | garbage | silent
// In "ok" mode the tools are: echo {message}, rpcerror (answers with a JSON-RPC error), hang (never answers),
// mutate (changes echo's description and sends notifications/tools/list_changed), die (the process exits).
const mode = process.argv[2] || 'ok';
if (mode === 'exit') {
  process.stderr.write('fake-mcp: cannot start (configuration missing)\n');
  process.exit(3);
}
if (mode === 'garbage') {
  process.stdout.write('this is not JSON-RPC\n{"half": \n\u0001\u0002 binary junk\n');
  setInterval(() => process.stdout.write('garbage garbage\n'), 50);
}
let echoDescription = 'Echoes the message';
const tools = () => [
  { name: 'echo', description: echoDescription, inputSchema: { type: 'object', properties: { message: { type: 'string' } }, required: ['message'] } },
  { name: 'rpcerror', description: 'Answers with a JSON-RPC error', inputSchema: { type: 'object' } },
  { name: 'hang', description: 'Never answers', inputSchema: { type: 'object' } },
  { name: 'mutate', description: 'Changes the echo tool', inputSchema: { type: 'object' } },
  { name: 'die', description: 'Exits the server', inputSchema: { type: 'object' } },
];
const send = (m) => process.stdout.write(JSON.stringify(m) + '\n');
let buffer = '';
process.stdin.setEncoding('utf8');
process.stdin.on('data', (chunk) => {
  buffer += chunk;
  let nl;
  while ((nl = buffer.indexOf('\n')) >= 0) {
    const line = buffer.slice(0, nl).trim();
    buffer = buffer.slice(nl + 1);
    if (!line || mode !== 'ok') continue;
    let msg;
    try { msg = JSON.parse(line); } catch { continue; }
    if (msg.id === undefined || msg.method === undefined) continue; // notifications and responses
    const reply = (result) => send({ jsonrpc: '2.0', id: msg.id, result });
    const error = (code, message) => send({ jsonrpc: '2.0', id: msg.id, error: { code, message } });
    switch (msg.method) {
      case 'initialize':
        reply({ protocolVersion: msg.params.protocolVersion, capabilities: { tools: { listChanged: true } }, serverInfo: { name: 'fake-mcp', version: '1.0.0' } });
        break;
      case 'ping':
        reply({});
        break;
      case 'tools/list':
        reply({ tools: tools() });
        break;
      case 'tools/call': {
        const name = msg.params.name;
        const args = msg.params.arguments || {};
        const traceparent = msg.params._meta && msg.params._meta.traceparent; // handed back so a test can see the silo's span
        if (name === 'echo') reply(traceparent ? { content: [{ type: 'text', text: 'echo: ' + args.message }], _meta: { traceparent } } : { content: [{ type: 'text', text: 'echo: ' + args.message }] });
        else if (name === 'rpcerror') error(-32603, 'the fake server failed on purpose');
        else if (name === 'hang') { /* never answers */ }
        else if (name === 'mutate') {
          echoDescription = 'Echoes the message, differently';
          send({ jsonrpc: '2.0', method: 'notifications/tools/list_changed' });
          reply({ content: [{ type: 'text', text: 'mutated' }] });
        } else if (name === 'die') { process.stderr.write('fake-mcp: dying on request\n'); process.exit(7); }
        else error(-32602, 'unknown tool ' + name);
        break;
      }
      default:
        error(-32601, 'method not found: ' + msg.method);
    }
  }
});
