// opfsync-worker.js — the classic dedicated-worker bootstrap of the opfsync
// engine (protocol: wasm/BRIDGE.md). It only wires messages: page → Go and
// Go → page, every message one JSON string, forwarded untouched.
//
// Started by opfsync.js as `new Worker(new URL('./opfsync-worker.js',
// import.meta.url))`. wasm_exec.js, opfsync-io.js and opfsync.wasm are
// loaded relative to this script's own URL, so web/dist/ can be copied
// anywhere. It must be a *dedicated* worker: OPFS
// FileSystemSyncAccessHandle exists nowhere else.
//
// A failure to start (a script or the wasm missing, a wasm that does not
// compile, the Go program exiting) is reported to the page as
// {"event":"error","data":{"code":"INTERNAL","message":…,"fatal":true}}, so
// openStore rejects with a message instead of hanging.
'use strict';

(() => {
  const here = self.location.href;
  /** Messages received before Go called opfsyncReady, in order. */
  let queue = [];
  let ready = false;
  let dead = false;

  function fatal(message) {
    if (dead) return;
    dead = true;
    queue = [];
    postMessage(JSON.stringify({ event: 'error', data: { code: 'INTERNAL', message, fatal: true } }));
  }

  self.onmessage = (e) => {
    if (dead) return;
    if (ready) globalThis.opfsyncBridge.request(e.data);
    else queue.push(e.data);
  };

  try {
    importScripts(new URL('./wasm_exec.js', here).href, new URL('./opfsync-io.js', here).href);
  } catch (err) {
    fatal(`opfsync worker: could not load wasm_exec.js / opfsync-io.js next to ${here} (${err && err.message || err}). ` +
      'Serve every file of web/dist/ from the same folder.');
    return;
  }

  globalThis.opfsyncPost = (json) => postMessage(json);
  globalThis.opfsyncReady = () => {
    if (ready || dead) return;
    ready = true;
    const pending = queue;
    queue = [];
    for (const msg of pending) globalThis.opfsyncBridge.request(msg);
  };

  start().catch((err) => fatal(String(err && err.message || err)));

  async function start() {
    const url = new URL('./opfsync.wasm', here).href;
    let resp;
    try {
      resp = await fetch(url);
    } catch (err) {
      throw new Error(`opfsync worker: could not fetch ${url} (${err && err.message || err}); is the server reachable?`);
    }
    if (!resp.ok) {
      throw new Error(`opfsync worker: fetching ${url} answered HTTP ${resp.status}; copy opfsync.wasm next to opfsync-worker.js (web/dist/).`);
    }
    const go = new Go();
    let exitCode;
    const exit = go.exit;
    go.exit = (code) => { exitCode = code; exit.call(go, code); };
    let result;
    const type = (resp.headers.get('Content-Type') || '').split(';')[0].trim().toLowerCase();
    if (type === 'application/wasm' && WebAssembly.instantiateStreaming) {
      const copy = resp.clone();
      try {
        result = await WebAssembly.instantiateStreaming(resp, go.importObject);
      } catch (err) {
        // A proxy that rewrites the body or headers can break streaming
        // compilation even with the right type; compiling the bytes works.
        result = await instantiateBytes(copy, go, url);
      }
    } else {
      // The server sends a wrong MIME type: instantiateStreaming would
      // refuse it, so compile from the bytes.
      result = await instantiateBytes(resp, go, url);
    }
    const instance = result.instance;
    globalThis.opfsyncMem = instance.exports.mem;
    const exited = go.run(instance);
    exited.then(() => {
      const code = exitCode === undefined ? '' : ` (exit code ${exitCode})`;
      fatal(`opfsync worker: the engine stopped${code}; see the worker's console. Reopen the store.`);
    }, (err) => fatal(`opfsync worker: the engine crashed: ${err && err.message || err}`));
  }

  async function instantiateBytes(resp, go, url) {
    const bytes = await resp.arrayBuffer();
    try {
      return await WebAssembly.instantiate(bytes, go.importObject);
    } catch (err) {
      throw new Error(`opfsync worker: ${url} is not a loadable WebAssembly module (${err && err.message || err}); rebuild it with make build.`);
    }
  }
})();
