// The service worker of the demo (web/demo/), at the site root so that its
// scope also covers ../dist/, where opfsync's engine worker lives: a
// dedicated worker is controlled by the service worker whose scope covers
// the worker's own URL, and the demo's cached engine must load offline too.
// The logic is in demo/sw.js; it answers only the demo's files and
// navigations to the demo, never /sync/* or /healthz or other pages.
self.OPFSYNC_DEMO_BASE = new URL('./demo/', self.location).href;
importScripts('./demo/sw.js');
