// A loopback HTTP proxy that adds `Authorization: Bearer <token>` to every request and streams both ways unchanged
// (Host and Origin included, so the gateway's DNS rebinding checks still see what the client sent). The conformance
// suite (@modelcontextprotocol/conformance 0.1.13) has no option for request headers, and `rtt mcp serve --http`
// refuses requests without the credential; McpConformanceTests puts this in between.
//
// usage: node bearer-proxy.mjs TARGET_URL TOKEN_FILE   (prints "listening http://127.0.0.1:PORT" once ready)
import http from 'node:http';
import fs from 'node:fs';

const target = new URL(process.argv[2]);
const token = fs.readFileSync(process.argv[3], 'utf8').trim();

const server = http.createServer((req, res) => {
  const headers = { ...req.headers, authorization: `Bearer ${token}` };
  const upstream = http.request(
    { hostname: target.hostname, port: target.port, path: req.url, method: req.method, headers },
    (answer) => {
      res.writeHead(answer.statusCode, answer.headers);
      answer.pipe(res);
    });
  upstream.on('error', () => { if (!res.headersSent) { res.writeHead(502); } res.end(); });
  res.on('close', () => upstream.destroy());
  req.pipe(upstream);
});
server.listen(0, '127.0.0.1', () => console.log(`listening http://127.0.0.1:${server.address().port}`));
process.on('SIGTERM', () => process.exit(0));
