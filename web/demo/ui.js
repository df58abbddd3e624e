// Small DOM and formatting helpers shared by the demo's modules.

/** $ finds one element (throws if it is missing: the markup and the code must agree). */
export function $(selector, root = document) {
  const found = root.querySelector(selector);
  if (!found) throw new Error(`demo: no element ${selector}`);
  return found;
}

/**
 * el builds an element: el('p', {className: 'x', onclick}, 'text', child).
 * Props are assigned as properties, except data-* and aria-* (attributes).
 */
export function el(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(props)) {
    if (value === undefined || value === null || value === false) continue;
    if (key.startsWith('data-') || key.startsWith('aria-') || key === 'role') node.setAttribute(key, String(value));
    else node[key] = value;
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : String(child));
  }
  return node;
}

/** timeAgo says how long ago ms (epoch milliseconds) was, in words. */
export function timeAgo(ms, now = Date.now()) {
  if (!ms) return 'never';
  const s = Math.round((now - ms) / 1000);
  if (s < 10) return 'just now';
  if (s < 60) return `${s} s ago`;
  const m = Math.round(s / 60);
  if (m < 60) return `${m} min ago`;
  const h = Math.round(m / 60);
  if (h < 24) return `${h} h ago`;
  return new Date(ms).toLocaleDateString(undefined, { day: 'numeric', month: 'short', year: 'numeric' });
}

/** clock formats ms as a local date and time. */
export function clock(ms) {
  return ms ? new Date(ms).toLocaleString() : '—';
}

/** clip shortens a text to n characters. */
export function clip(text, n = 80) {
  return text.length > n ? `${text.slice(0, n)}…` : text;
}

/** show renders a field value for people: strings quoted, the rest as JSON. */
export function show(value) {
  return typeof value === 'string' ? `“${clip(value, 120)}”` : clip(JSON.stringify(value), 120);
}

/**
 * coalesce wraps an async function so that calls during a run cause exactly
 * one more run after it (a burst of events costs at most two runs).
 */
export function coalesce(fn) {
  let running = false;
  let again = false;
  const run = async () => {
    if (running) {
      again = true;
      return;
    }
    running = true;
    try {
      do {
        again = false;
        await fn();
      } while (again);
    } finally {
      running = false;
    }
  };
  return run;
}
