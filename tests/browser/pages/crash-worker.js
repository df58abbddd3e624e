// crash-worker.js — test only (faults.test.mjs; the harness copies it next
// to opfsync-worker.js in the served dist/ folder). It is the real worker
// bootstrap plus one message, "overflow": run the JS stack nearly out, then
// call into the engine from ever shallower depths until a call runs Go
// through (answered as usual) or is refused. One of those calls runs out of
// stack inside Go's frames — the exception is swallowed here, as a Promise
// callback's would be — and what the worker does about that is what the
// test checks. The outcome is posted as {"overflow": "ran" | "refused"}.
'use strict';

self.addEventListener('message', (e) => {
  if (e.data !== 'overflow') return;
  e.stopImmediatePropagation();
  const request = globalThis.opfsyncBridge.request;
  const json = JSON.stringify({
    id: 1e6, op: 'query',
    args: { sql: 'WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 100) SELECT sum(x) AS n FROM c' },
  });
  let outcome = '';
  // Each level, on its way back up, calls the engine while no call has
  // run or been refused; a call that throws anything else is thrown on to
  // the level above, which tries again with a little more stack.
  const dive = () => {
    try {
      dive();
    } catch (e) {
      if (outcome) return;
      try {
        request(json);
        outcome = 'ran';
      } catch (err) {
        if (!/not run again/.test(err && err.message)) throw err;
        outcome = 'refused';
      }
    }
  };
  dive();
  postMessage(JSON.stringify({ overflow: outcome }));
});

importScripts('./opfsync-worker.js');
