// The dedicated worker of go_js_wasm_chromium_exec: it gives wasm_exec.js a file system and a
// process object (stdout/stderr go to the page, everything else to the runner through synchronous
// XHRs), loads wasm_exec.js and opfsync-io.js, and runs the Go program.
'use strict';

let config = null;
let go = null;
const replies = new Map();
let nextReply = 1;

const post = (m) => postMessage(m);

function enosys(name) {
  const e = new Error(`${name}: not implemented`);
  e.code = 'ENOSYS';
  return e;
}

// One synchronous round trip to the runner's fs forwarding.
function rpc(op, args, body) {
  const xhr = new XMLHttpRequest();
  xhr.open('POST', config.fsPath, false);
  xhr.responseType = 'arraybuffer';
  xhr.setRequestHeader('x-fs', encodeURIComponent(JSON.stringify([op, ...args])));
  xhr.send(body ?? null);
  if (xhr.status !== 200) throw Object.assign(new Error(`${op}: HTTP ${xhr.status}`), { code: 'EIO' });
  const err = xhr.getResponseHeader('x-fs-error');
  if (err) throw Object.assign(new Error(`${op}: ${err}`), { code: err });
  const res = xhr.getResponseHeader('x-fs-result');
  return { result: res ? JSON.parse(decodeURIComponent(res)) : null, data: xhr.response };
}

let cwd = '/';
const abs = (p) => (typeof p === 'string' && !p.startsWith('/') ? `${cwd.replace(/\/$/, '')}/${p}` : p);
const stat = (s) => ({ ...s, isDirectory: () => s.isDir });

function writeOut(fd, bytes) {
  // Copy: bytes is a view of the wasm memory, which must not be cloned whole.
  post({ type: 'out', fd, data: bytes.slice() });
  return bytes.length;
}

function makeFS() {
  const fsAPI = {
    constants: config.constants,
    writeSync(fd, buf) {
      if (fd === 1 || fd === 2) return writeOut(fd, buf);
      return rpc('write', [fd, null], buf.slice()).result;
    },
    write(fd, buf, offset, length, position, callback) {
      try {
        const part = buf.subarray(offset, offset + length);
        if ((fd === 1 || fd === 2) && position === null) {
          callback(null, writeOut(fd, part));
        } else {
          callback(null, rpc('write', [fd, position], part.slice()).result);
        }
      } catch (e) {
        callback(e);
      }
    },
    read(fd, buffer, offset, length, position, callback) {
      try {
        const { result, data } = rpc('read', [fd, length, position]);
        buffer.set(new Uint8Array(data, 0, result), offset);
        callback(null, result);
      } catch (e) {
        callback(e);
      }
    },
  };
  const simple = {
    open: [0], close: [], fstat: [], stat: [0], lstat: [0], readdir: [0], mkdir: [0], unlink: [0], rmdir: [0],
    rename: [0, 1], truncate: [0], ftruncate: [], fsync: [], chmod: [0], fchmod: [], chown: [0], fchown: [],
    lchown: [0], utimes: [0], readlink: [0], link: [0, 1], symlink: [1],
  };
  for (const [op, pathArgs] of Object.entries(simple)) {
    fsAPI[op] = (...args) => {
      const callback = args.pop();
      for (const i of pathArgs) args[i] = abs(args[i]);
      let out;
      try {
        out = rpc(op, args).result;
      } catch (e) {
        callback(e);
        return;
      }
      if (op === 'stat' || op === 'lstat' || op === 'fstat') out = stat(out);
      callback(null, out ?? undefined);
    };
  }
  return fsAPI;
}

async function start(info) {
  cwd = config.cwd;
  globalThis.fs = makeFS();
  globalThis.process = {
    getuid: () => -1, getgid: () => -1, geteuid: () => -1, getegid: () => -1,
    getgroups() { throw enosys('getgroups'); },
    pid: -1, ppid: -1,
    umask() { throw enosys('umask'); },
    cwd: () => cwd,
    chdir(p) {
      const target = abs(p);
      const st = rpc('stat', [target]).result; // throws ENOENT & co.
      if (!st.isDir) throw Object.assign(new Error(`chdir ${p}: not a directory`), { code: 'ENOTDIR' });
      cwd = target;
    },
  };
  globalThis.path = {
    resolve(...segments) {
      let out = cwd;
      for (const s of segments) out = s.startsWith('/') ? s : `${out.replace(/\/$/, '')}/${s}`;
      const parts = [];
      for (const p of out.split('/')) {
        if (p === '' || p === '.') continue;
        if (p === '..') parts.pop(); else parts.push(p);
      }
      return `/${parts.join('/')}`;
    },
  };
  globalThis.goRunner = {
    profile: info.profile,
    persistent: info.persistent,
    setQuota(bytes) {
      const id = nextReply++;
      return new Promise((resolve, reject) => {
        replies.set(id, { resolve, reject });
        post({ type: 'quota', id, bytes: bytes ?? null });
      });
    },
  };

  importScripts('./wasm_exec.js', './opfsync-io.js');
  go = new Go();
  go.argv = config.argv;
  go.env = config.env;
  go.exit = (code) => {
    post({ type: 'exit', code });
    // Timers and callbacks the program left behind must not run it again
    // ("Go program has already exited"): stop the worker (the messages
    // already posted are delivered).
    self.close();
  };
  const { instance } = await WebAssembly.instantiateStreaming(fetch('./test.wasm'), go.importObject);
  globalThis.opfsyncMem = instance.exports.mem;
  await go.run(instance);
}

self.onmessage = (e) => {
  const m = e.data;
  switch (m.type) {
    case 'start':
      config = m.config;
      start(m.info).catch((err) => post({ type: 'fail', message: `start: ${err && err.stack || err}` }));
      break;
    case 'reply': {
      const r = replies.get(m.id);
      replies.delete(m.id);
      if (r) m.error ? r.reject(new Error(m.error)) : r.resolve(null);
      break;
    }
    case 'dump':
      // Like wasm_exec_node.js at exit: an event with id 0 makes an idle Go program report the
      // deadlock with every goroutine's stack. (A busy one never reads this message.)
      if (go && !go.exited) {
        go._pendingEvent = { id: 0 };
        go._resume();
      }
      break;
  }
};
