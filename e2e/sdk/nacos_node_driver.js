// Drives the official Nacos Node.js SDK (npm `nacos`, HTTP v1 with UDP
// push) for e2e/tests/sdk_compat.rs.
//
// Usage: node nacos_node_driver.js HOST:HTTP_PORT
//
// Reads one JSON command per line on stdin and answers one JSON line on
// stdout: {"ok": true, "result": ...} or {"ok": false, "error": "..."}.
// The first line written is {"ready": true}. Commands: register,
// deregister, list, subscribe, events, quit. SDK logs go to stderr.
'use strict';

const readline = require('readline');
const { NacosNamingClient } = require('nacos');

const server = process.argv[2];
const log = (level) => (...args) => process.stderr.write(`[${level}] ${args.map(String).join(' ')}\n`);
const logger = { debug: () => {}, info: log('info'), warn: log('warn'), error: log('error') };

const hosts = (list) => (list || []).map((h) => `${h.ip}:${h.port}`).sort();
const reply = (answer) => process.stdout.write(JSON.stringify(answer) + '\n');

async function main() {
  const client = new NacosNamingClient({ logger, serverList: server, namespace: 'public' });
  client.on('error', (err) => logger.error(err && err.stack ? err.stack : err));
  await client.ready();
  // What each subscription saw: the hosts and when (ms since the epoch).
  const events = {};
  reply({ ready: true });
  const lines = readline.createInterface({ input: process.stdin });
  for await (const line of lines) {
    try {
      const cmd = JSON.parse(line);
      const service = cmd.service || '';
      let result = true;
      switch (cmd.op) {
        case 'register':
          await client.registerInstance(service, { ip: cmd.ip, port: cmd.port });
          break;
        case 'deregister':
          await client.deregisterInstance(service, { ip: cmd.ip, port: cmd.port });
          break;
        case 'list':
          result = hosts(await client.getAllInstances(service, 'DEFAULT_GROUP', '', false));
          break;
        case 'subscribe':
          events[service] = events[service] || [];
          client.subscribe(service, (list) => events[service].push({ at: Date.now(), hosts: hosts(list) }));
          break;
        case 'events':
          result = events[service] || [];
          break;
        case 'quit':
          await client.close();
          reply({ ok: true, result: true });
          process.exit(0);
          break;
        default:
          throw new Error(`unknown op ${cmd.op}`);
      }
      reply({ ok: true, result });
    } catch (err) {
      reply({ ok: false, error: String(err && err.message ? err.message : err) });
    }
  }
  await client.close();
}

main().catch((err) => {
  process.stderr.write(`driver failed: ${err && err.stack ? err.stack : err}\n`);
  process.exit(1);
});
