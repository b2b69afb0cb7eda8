// Peer benchmark: npm simple-hl7 (Parser.parse) and @medplum/hl7 (Hl7Message.parse, which
// @medplum/hl7 takes from @medplum/core) parsing the same files.
//
// Each input file holds one message per line (segments end in CR, messages in LF). Messages are
// decoded to strings before timing. Each parser gets a warm-up pass (JIT) over the first 2,000
// messages, then parses the messages in file order until all are parsed or the time budget runs
// out. Reports messages parsed per wall-clock second and per CPU second of the process
// (process.cpuUsage, which includes V8's GC and compiler threads: the CPU a message costs). Prints one JSON line per (parser, workload)
// (see bench/peers/README.md).
//
// Usage: node node_peers.mjs [--budget SECONDS] WORKLOAD=FILE...
// Run from the repository (or with NODE_PATH) so that node_modules/ resolves.
import { existsSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { performance } from 'node:perf_hooks';

const require = createRequire(import.meta.url);
const simpleHl7 = require('simple-hl7');
const { Hl7Message } = await import('@medplum/core');
// A package's version from its package.json (found upwards from its entry point: some packages do
// not export ./package.json).
function version(pkg) {
  for (let dir = dirname(require.resolve(pkg)); dir !== dirname(dir); dir = dirname(dir)) {
    const file = join(dir, 'package.json');
    if (!existsSync(file)) continue;
    const json = JSON.parse(readFileSync(file, 'utf8'));
    if (json.name === pkg) return json.version;
  }
  return '?';
}

const parsers = [
  {
    impl: `simple-hl7 ${version('simple-hl7')} (node ${process.versions.node})`,
    make: () => {
      const p = new simpleHl7.Parser();
      return (m) => p.parse(m).segments.length;
    },
  },
  {
    impl: `@medplum/hl7 ${version('@medplum/hl7')} Hl7Message.parse (node ${process.versions.node})`,
    make: () => (m) => Hl7Message.parse(m).segments.length,
  },
];

function run(impl, parse, workload, messages, budget) {
  for (const m of messages.slice(0, 2000)) parse(m);  // warm-up
  let n = 0;
  let segments = 0;
  const cpuStart = process.cpuUsage();
  const start = performance.now();
  const deadline = start + budget * 1000;
  for (const m of messages) {
    segments += parse(m);
    n++;
    if ((n & 255) === 0 && performance.now() >= deadline) break;
  }
  const seconds = (performance.now() - start) / 1000;
  const cpu = process.cpuUsage(cpuStart);
  const cpuSeconds = (cpu.user + cpu.system) / 1e6;
  return {
    impl, workload, op: 'parse', messages: n, of: messages.length,
    seconds: Number(seconds.toFixed(4)), cpu_seconds: Number(cpuSeconds.toFixed(4)),
    msgs_per_s: Number((n / seconds).toFixed(1)), msgs_per_cpu_s: Number((n / cpuSeconds).toFixed(1)),
    check_segments: segments,
  };
}

let budget = 5;
const inputs = [];
const args = process.argv.slice(2);
for (let i = 0; i < args.length; i++) {
  if (args[i] === '--budget') budget = Number(args[++i]);
  else inputs.push(args[i]);
}
if (inputs.length === 0) {
  console.error('usage: node node_peers.mjs [--budget SECONDS] WORKLOAD=FILE...');
  process.exit(2);
}
for (const spec of inputs) {
  const eq = spec.indexOf('=');
  const workload = spec.slice(0, eq);
  const messages = readFileSync(spec.slice(eq + 1), 'utf8').split('\n').filter((m) => m.length);
  for (const p of parsers) {
    console.log(JSON.stringify(run(p.impl, p.make(), workload, messages, budget)));
  }
}
