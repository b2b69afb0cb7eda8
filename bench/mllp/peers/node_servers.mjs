// Baseline (c): MLLP servers from npm that ACK every message without persistence.
//   simple-hl7  hl7.Server.createTcpServer(handler): parses each frame, res.end() sends its AA ACK
//   medplum     @medplum/hl7 Hl7Server: parses each frame (Hl7Message), conn.send(message.buildAck())
// Usage: node node_servers.mjs simple-hl7|medplum --ready-file FILE [--port N]
// Run from the repository (node_modules/ must resolve). Writes "PORT" to the ready file.
import { renameSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);
const args = process.argv.slice(2);
const impl = args[0];
const opt = (name, dflt) => {
  const i = args.indexOf(name);
  return i >= 0 ? args[i + 1] : dflt;
};
const port = Number(opt('--port', '0'));
const readyFile = opt('--ready-file', '');

function ready(address) {
  if (!readyFile) return;
  writeFileSync(`${readyFile}.tmp`, `${address.port}\n`);
  renameSync(`${readyFile}.tmp`, readyFile);
}

if (impl === 'simple-hl7') {
  const hl7 = require('simple-hl7');
  const server = hl7.Server.createTcpServer((err, req, res) => {
    if (err) return;
    res.end();
  });
  server.start(port);
  server.server.on('listening', () => ready(server.server.address()));
} else if (impl === 'medplum') {
  const { Hl7Server } = await import('@medplum/hl7');
  const server = new Hl7Server((connection) => {
    connection.addEventListener('message', ({ message }) => {
      connection.send(message.buildAck());
    });
  });
  await server.start(port);
  ready(server.server.address());
} else {
  console.error('usage: node node_servers.mjs simple-hl7|medplum --ready-file FILE [--port N]');
  process.exit(2);
}
