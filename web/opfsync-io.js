// opfsync-io.js — the I/O helpers of the OPFS VFS (wasm/internal/opfs).
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
})();
