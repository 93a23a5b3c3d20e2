// DOM helpers: elements built from data, never from HTML strings (no injection).

// h("div", {class: "x", onclick: fn}, "text", child, ...)
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (name.startsWith("on")) el.addEventListener(name.slice(2), value);
    else if (name === "dataset") Object.assign(el.dataset, value);
    else el.setAttribute(name, value === true ? "" : value);
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const child of children) {
    if (child === undefined || child === null || child === false) continue;
    if (Array.isArray(child)) append(el, child);
    else el.append(child instanceof Node ? child : String(child));
  }
}

// Replace el's children.
export function fill(el, ...children) {
  el.replaceChildren();
  append(el, children);
  return el;
}

// A convex-encoded value as short text for a table cell.
export function cellText(value) {
  if (value === undefined) return "";
  if (value === null) return "null";
  if (typeof value === "object") {
    if ("$integer" in value) return `${int64(value.$integer)}n`;
    if ("$bytes" in value) return `<${Math.floor((value.$bytes.length * 3) / 4)} bytes>`;
    if ("$float" in value) return floatOf(value.$float);
    const text = JSON.stringify(value);
    return text.length > 80 ? `${text.slice(0, 77)}...` : text;
  }
  return String(value);
}

function int64(b64) {
  const bytes = atob(b64);
  let n = 0n;
  for (let i = 7; i >= 0; i--) n = (n << 8n) | BigInt(bytes.charCodeAt(i));
  return BigInt.asIntN(64, n).toString();
}

function floatOf(b64) {
  const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
  return String(new DataView(bytes.buffer).getFloat64(0, true));
}

// A time in ms since the epoch as local date and time.
export function when(ms) {
  if (typeof ms !== "number") return "";
  return new Date(ms).toLocaleString();
}

export function pretty(value) {
  return JSON.stringify(value, null, 2);
}

// A message line in el: kind "error" | "ok" | "" (plain).
export function say(el, text, kind = "") {
  fill(el, text);
  el.className = `message ${kind}`;
}
