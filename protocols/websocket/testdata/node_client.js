// Node interop client for the goes WebSocket server, run by TestInteropNode.
// Usage: node node_client.js ws://127.0.0.1:PORT/ LIMIT
// Prints one JSON object with what it observed; the Go test checks it.
'use strict';
const WebSocket = require('ws');

const url = process.argv[2];
const limit = Number(process.argv[3]);

function open(opts) {
  return new Promise((resolve, reject) => {
    const w = new WebSocket(url, opts);
    w.once('open', () => resolve(w));
    w.once('error', reject);
  });
}

function nextMessage(w) {
  return new Promise((resolve) => w.once('message', (data, isBinary) => resolve({ data, isBinary })));
}

function closed(w) {
  return new Promise((resolve) => w.once('close', (code, reason) => resolve({ code, reason: reason.toString() })));
}

async function main() {
  const r = {};
  const w = await open({ perMessageDeflate: true });
  r.extensions = w.extensions;

  w.send('hello');
  let m = await nextMessage(w);
  r.text = { data: m.data.toString(), isBinary: m.isBinary };

  w.send(Buffer.from([0, 1, 2, 253, 254, 255]));
  m = await nextMessage(w);
  r.binary = { hex: m.data.toString('hex'), isBinary: m.isBinary };

  // One text message in three frames.
  w.send('frag-', { fin: false });
  w.send('ment-', { fin: false });
  w.send('ed', { fin: true });
  m = await nextMessage(w);
  r.fragmented = m.data.toString();

  const unicode = 'κόσμε 👋 ünïcödé ✓';
  w.send(unicode);
  m = await nextMessage(w);
  r.utf8 = m.data.toString() === unicode;

  const big = 'goes websocket large message '.repeat(40000); // ~1.1 MiB
  w.send(big);
  m = await nextMessage(w);
  r.large = m.data.length === Buffer.byteLength(big) && m.data.toString() === big;

  let c = closed(w);
  w.close(4000, 'bye');
  r.close = await c;

  // Invalid UTF-8 in a text frame: the server must fail with 1007.
  const w2 = await open({ perMessageDeflate: false });
  c = closed(w2);
  w2.send(Buffer.from([0xce, 0xba, 0xed, 0xa0, 0x80]), { binary: false });
  r.invalidUtf8 = await c;

  // A message over the limit: 1009.
  const w3 = await open({ perMessageDeflate: false });
  c = closed(w3);
  w3.send('y'.repeat(limit + 1));
  r.tooBig = await c;

  console.log(JSON.stringify(r));
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
