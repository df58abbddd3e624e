// opfsync-io.js — the I/O helpers of the OPFS VFS (wasm/internal/opfs) and of the IndexedDB VFS
// (wasm/internal/idb), at the end of this file.
//
// A classic script: the worker loads it with importScripts() next to wasm_exec.js. It defines
// globalThis.opfsyncIO, which the Go VFS calls once per SQLite read or write, so that a 4 KiB page
// costs one syscall/js crossing instead of one per argument, view and option object.
//
// Contract
// - globalThis.opfsyncMem must be the Go instance's WebAssembly.Memory (instance.exports.mem); the
//   worker bootstrap sets it right after instantiation, before Go runs. The helpers rebuild their
//   Uint8Array view of opfsyncMem.buffer on every call, because growing the memory detaches the old
//   buffer.
// - `handle` is a FileSystemSyncAccessHandle; `ptr` is a Go pointer (unsafe.Pointer(&buf[0]), which
//   on GOARCH=wasm is the offset in linear memory) and `len` the number of bytes there; `at` and
//   `size` are byte offsets in the file (safe integers).
// - Every helper returns a number on success and NEVER throws: on failure it returns the Error it
//   caught (a DOMException such as QuotaExceededError or InvalidStateError), so Go reads `name` and
//   `message` only on the error path. The Go side tells the two apart without another crossing (a
//   JS number is stored inline in a js.Value).
//     read(handle, ptr, len, at)   → bytes read (fewer than len at end of file; Go zero-fills)
//     write(handle, ptr, len, at)  → bytes written
//     truncate(handle, size)       → 0
//     size(handle)                 → the file size
//     flush(handle)                → 0 (persists every write so far: SQLite's xSync)
//     close(handle)                → 0
//     probe(ptr, len)              → the sum of the bytes at ptr (Open checks opfsyncMem with it)
// - One {at} options object is reused by read and write (allocating one per call was measurably
//   slower); it is safe because the handle methods are synchronous and JS is single-threaded here.
// - opfsyncIO.calls counts the calls per helper (tests compare it with the VFS's own counters).
(() => {
  'use strict';
  const opts = { at: 0 };
  const calls = { read: 0, write: 0, truncate: 0, size: 0, flush: 0, close: 0 };
  const view = (ptr, len) => new Uint8Array(globalThis.opfsyncMem.buffer, ptr, len);

  globalThis.opfsyncIO = {
    calls,
    read(handle, ptr, len, at) {
      calls.read++;
      try {
        opts.at = at;
        return handle.read(view(ptr, len), opts);
      } catch (e) {
        return e;
      }
    },
    write(handle, ptr, len, at) {
      calls.write++;
      try {
        opts.at = at;
        return handle.write(view(ptr, len), opts);
      } catch (e) {
        return e;
      }
    },
    truncate(handle, size) {
      calls.truncate++;
      try {
        handle.truncate(size);
        return 0;
      } catch (e) {
        return e;
      }
    },
    size(handle) {
      calls.size++;
      try {
        return handle.getSize();
      } catch (e) {
        return e;
      }
    },
    flush(handle) {
      calls.flush++;
      try {
        handle.flush();
        return 0;
      } catch (e) {
        return e;
      }
    },
    close(handle) {
      calls.close++;
      try {
        handle.close();
        return 0;
      } catch (e) {
        return e;
      }
    },
    probe(ptr, len) {
      try {
        let sum = 0;
        for (const b of view(ptr, len)) sum += b;
        return sum;
      } catch (e) {
        return e;
      }
    },
  };

  // globalThis.opfsyncIDB — the IndexedDB VFS's helpers (wasm/internal/idb). A database is one
  // IndexedDB database with two object stores: 'blocks' (key [file, index], value a Uint8Array of
  // one block) and 'files' (key file, value its size in bytes); file is 0 (main), 1 (journal) or
  // 2 (WAL). Every helper that waits returns a Promise and never throws (a thrown error becomes a
  // rejection); Go awaits them from a goroutine.
  //   lock(name)          → a function that releases the Web Lock `name` (its Promise settles
  //                         once the lock is free), or null when another context holds it
  //                         (rejects without navigator.locks)
  //   exists(name)        → whether the IndexedDB database exists (without creating it)
  //   open(name)          → the IDBDatabase, created with its object stores when new
  //   sizes(db)           → [main, journal, wal] sizes
  //   load(db, file, from, to) → {keys, data}: the indexes of the stored blocks in [from, to) and
  //                         their bytes back to back (every block is blockSize long)
  //   commit(db, ptr, keys, blockSize, cuts, sizes) → resolves when one readwrite transaction
  //                         (durability 'strict') has committed: it deletes blocks [file, from…)
  //                         for each cuts pair [file, from], stores the blocks at opfsyncMem[ptr…]
  //                         under keys [file, index, file, index, …] and the sizes pairs
  //                         [file, size]; rejects with the transaction's error (QuotaExceededError
  //                         when the disk or the quota is full). The bytes are copied before
  //                         commit returns.
  //   close(db), remove(name) → remove resolves once the database is deleted
  const req = (r) => new Promise((resolve, reject) => {
    r.onsuccess = () => resolve(r.result);
    r.onerror = () => reject(r.error);
  });
  const done = (tx) => new Promise((resolve, reject) => {
    tx.oncomplete = () => resolve();
    tx.onabort = () => reject(tx.error || new DOMException('IndexedDB transaction aborted', 'AbortError'));
  });
  const attempt = (f) => { try { return f(); } catch (e) { return Promise.reject(e); } };
  const idbCalls = { load: 0, commit: 0 };

  globalThis.opfsyncIDB = {
    calls: idbCalls,
    lock: (name) => attempt(() => new Promise((resolve, reject) => {
      if (!globalThis.navigator || !navigator.locks) throw new DOMException('Web Locks (navigator.locks) are not available', 'NotSupportedError');
      const held = navigator.locks.request(name, { ifAvailable: true }, (lock) => {
        if (!lock) { resolve(null); return undefined; }
        // The release function's Promise settles once the lock is free.
        return new Promise((release) => resolve(() => { release(); return held; }));
      });
      held.catch(reject);
    })),
    exists: (name) => attempt(() => new Promise((resolve, reject) => {
      const r = indexedDB.open(name);
      let created = false;
      r.onupgradeneeded = () => { created = true; r.transaction.abort(); };
      r.onsuccess = () => { r.result.close(); resolve(true); };
      r.onerror = (e) => {
        if (created) { e.preventDefault(); resolve(false); } else reject(r.error);
      };
    })),
    open: (name) => attempt(() => new Promise((resolve, reject) => {
      const r = indexedDB.open(name, 1);
      r.onupgradeneeded = () => {
        r.result.createObjectStore('blocks');
        r.result.createObjectStore('files');
      };
      r.onsuccess = () => resolve(r.result);
      r.onerror = () => reject(r.error);
      r.onblocked = () => reject(new DOMException(`IndexedDB database ${name} is blocked by an older connection`, 'InvalidStateError'));
    })),
    sizes: (db) => attempt(() => {
      // Read in a readwrite transaction over both stores: it starts only
      // once no other transaction touches them, so a leftover one (WebKit
      // keeps those of a terminated worker, even read-only ones, which
      // would block only our writes) shows here at open, not at a commit.
      const files = db.transaction(['blocks', 'files'], 'readwrite').objectStore('files');
      return Promise.all([0, 1, 2].map((f) => req(files.get(f)).then((s) => s || 0)));
    }),
    load: (db, file, from, to) => attempt(() => {
      idbCalls.load++;
      const blocks = db.transaction('blocks', 'readonly').objectStore('blocks');
      const range = IDBKeyRange.bound([file, from], [file, to], false, true);
      return Promise.all([req(blocks.getAllKeys(range)), req(blocks.getAll(range))]).then(([keys, values]) => {
        const size = values.reduce((n, v) => n + v.byteLength, 0);
        const data = new Uint8Array(size);
        let at = 0;
        for (const v of values) { data.set(v, at); at += v.byteLength; }
        return { keys: keys.map((k) => k[1]), data };
      });
    }),
    commit: (db, ptr, keys, blockSize, cuts, sizes) => attempt(() => {
      idbCalls.commit++;
      const tx = db.transaction(['blocks', 'files'], 'readwrite', { durability: 'strict' });
      const blocks = tx.objectStore('blocks');
      const files = tx.objectStore('files');
      for (let i = 0; i < cuts.length; i += 2) blocks.delete(IDBKeyRange.bound([cuts[i], cuts[i + 1]], [cuts[i], Infinity]));
      const mem = new Uint8Array(globalThis.opfsyncMem.buffer, ptr, (keys.length / 2) * blockSize);
      for (let i = 0, at = 0; i < keys.length; i += 2, at += blockSize) {
        blocks.put(mem.slice(at, at + blockSize), [keys[i], keys[i + 1]]);
      }
      for (let i = 0; i < sizes.length; i += 2) files.put(sizes[i + 1], sizes[i]);
      const p = done(tx);
      if (tx.commit) tx.commit();
      return p;
    }),
    close: (db) => { try { db.close(); } catch { /* already closed */ } },
    remove: (name) => attempt(() => new Promise((resolve, reject) => {
      const r = indexedDB.deleteDatabase(name);
      r.onsuccess = () => resolve();
      r.onerror = () => reject(r.error);
      r.onblocked = () => reject(new DOMException(`IndexedDB database ${name} is still open`, 'NoModificationAllowedError'));
    })),
  };
})();
