// Smoke test of the built web/dist/opfsync.wasm under Node: the module
// starts, registers the bridge, and serves open (memory) / put / get /
// query / close as wasm/BRIDGE.md says. (The browser suite tests the rest.)
// Usage: node tests/node/bridge-smoke.mjs <path to wasm_exec.js> <path to opfsync.wasm>
import { readFile } from 'node:fs/promises';
import { pathToFileURL } from 'node:url';

const [wasmExec, wasmPath] = process.argv.slice(2);
await import(pathToFileURL(wasmExec).href);

const waiting = new Map();
let nextId = 0;
const ready = new Promise((resolve) => { globalThis.opfsyncReady = resolve; });
globalThis.opfsyncPost = (json) => {
  const msg = JSON.parse(json);
  if (msg.id !== undefined && waiting.has(msg.id)) {
    waiting.get(msg.id)(msg);
    waiting.delete(msg.id);
  }
};
function call(op, args) {
  const id = ++nextId;
  return new Promise((resolve) => {
    waiting.set(id, resolve);
    globalThis.opfsyncBridge.request(JSON.stringify({ id, op, args }));
  });
}
function check(cond, what, got) {
  if (!cond) {
    console.error(`bridge smoke: ${what}: got ${JSON.stringify(got)}`);
    process.exit(1);
  }
}

const go = new globalThis.Go();
const { instance } = await WebAssembly.instantiate(await readFile(wasmPath), go.importObject);
go.run(instance);
await ready;

const schema = { version: 1, collections: { todos: { fields: { title: 'text', done: 'boolean' } } } };
let r = await call('open', { name: 'smoke', schema, storage: 'memory' });
check(r.result && r.result.clientId, 'open', r);
r = await call('put', { collection: 'todos', record: { id: 't1', title: 'Buy milk', done: false } });
check(r.result && r.result.mutationIds.length === 1, 'put', r);
r = await call('get', { collection: 'todos', id: 't1' });
check(r.result && r.result.title === 'Buy milk' && r.result.done === false, 'get', r);
r = await call('query', { sql: 'SELECT count(*) AS n FROM todos WHERE done = ?', params: [false] });
check(r.result && r.result.rows[0].n === 1, 'query', r);
r = await call('put', { collection: 'todos', record: { id: 't2', done: 'yes' } });
check(r.error && r.error.code === 'VALIDATION', 'invalid put', r);
r = await call('close', {});
check(r.result, 'close', r);
console.log('bridge smoke: opfsync.wasm serves open/put/get/query/close under Node');
process.exit(0);
