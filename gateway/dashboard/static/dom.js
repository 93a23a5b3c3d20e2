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

// An object's fields, nested ones flattened to dotted names, as a definition list;
// byte counts and durations in words a person reads.
export function kv(obj, id) {
  const rows = [];
  const walk = (value, prefix) => {
    if (value && typeof value === "object" && !Array.isArray(value) && !isSpecial(value)) {
      for (const [k, v] of Object.entries(value)) walk(v, prefix ? `${prefix}.${k}` : k);
    } else rows.push([prefix, value]);
  };
  walk(obj, "");
  return h("dl", { class: "kv", id }, rows.map(([k, v]) => [h("dt", {}, k), h("dd", { dataset: { key: k } }, human(k, v))]));
}

function isSpecial(value) {
  const keys = Object.keys(value);
  return keys.length === 1 && keys[0].startsWith("$");
}

function human(key, value) {
  if (typeof value === "number" && /bytes|Bytes$/.test(key)) return bytes(value);
  if (typeof value === "number" && /perHour$/.test(key)) return `${bytes(value)}/h`;
  if (typeof value === "number" && /(^|\.)uptimeS$|AgeS$|LagS$/.test(key)) return seconds(value);
  if (typeof value === "number" && /Ms$/.test(key) && value > 1e12) return when(value);
  if (Array.isArray(value)) return value.length ? JSON.stringify(value) : "none";
  return cellText(value);
}

export function bytes(n) {
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let i = 0;
  while (Math.abs(n) >= 1024 && i < units.length - 1) (n /= 1024), i++;
  return `${i ? n.toFixed(1) : n} ${units[i]}`;
}

export function seconds(s) {
  if (s < 120) return `${s.toFixed(1)} s`;
  if (s < 7200) return `${(s / 60).toFixed(1)} min`;
  if (s < 172800) return `${(s / 3600).toFixed(1)} h`;
  return `${(s / 86400).toFixed(1)} d`;
}
