// A small client of the Convex sync protocol (docs: spec/wire-protocol.md, section 2),
// for live queries only: Connect, Authenticate as admin, ModifyQuerySet, Transitions.
// Writes and one-shot calls go through the HTTP API (api.js).

const INACTIVE_MS = 60000; // the server sends a JSON Ping every 15 s
const BACKOFF_MS = [250, 500, 1000, 2000, 4000, 8000];

const ZERO_TS = "AAAAAAAAAAA=";

export class SyncClient {
  // onState(state, detail): "connecting" | "live" | "refused" (detail: the server's words)
  constructor(adminKey, onState) {
    this.adminKey = adminKey;
    this.onState = onState;
    this.queries = new Map(); // queryId -> {path, args, listener}
    this.nextQueryId = 0;
    this.pendingMods = [];
    this.retries = 0;
    this.closed = false;
    this.sessionId = crypto.randomUUID ? crypto.randomUUID() : fallbackUuid();
    this.connectionCount = 0;
    this.lastCloseReason = "InitialConnect";
    this.open();
  }

  // Subscribe to path(args); listener({value} | {error, data}) on every change.
  // Returns a function that ends the subscription.
  subscribe(path, args, listener) {
    const queryId = this.nextQueryId++;
    this.queries.set(queryId, { path, args, listener });
    this.modify({ type: "Add", queryId, udfPath: path, args: [args] });
    return () => {
      if (this.queries.delete(queryId)) this.modify({ type: "Remove", queryId });
    };
  }

  close() {
    this.closed = true;
    clearTimeout(this.inactivity);
    clearTimeout(this.retryTimer);
    if (this.ws) this.ws.close(1000);
  }

  // --- the socket ---------------------------------------------------------------

  open() {
    const scheme = location.protocol === "https:" ? "wss" : "ws";
    const ws = new WebSocket(`${scheme}://${location.host}/api/sync`);
    this.ws = ws;
    this.version = { querySet: 0, identity: 0, ts: ZERO_TS };
    this.querySet = 0;
    this.pendingMods = [];
    this.onState("connecting");
    ws.onopen = () => this.greet();
    ws.onmessage = (event) => this.receive(JSON.parse(event.data));
    ws.onclose = (event) => this.lost(event.reason || `closed with code ${event.code}`);
    this.armInactivity();
  }

  greet() {
    this.send({
      type: "Connect",
      sessionId: this.sessionId,
      connectionCount: this.connectionCount++,
      lastCloseReason: this.lastCloseReason,
      clientTs: Date.now(),
    });
    this.send({ type: "Authenticate", baseVersion: 0, tokenType: "Admin", value: this.adminKey });
    const adds = [...this.queries].map(([queryId, q]) => ({
      type: "Add",
      queryId,
      udfPath: q.path,
      args: [q.args],
    }));
    this.querySet = 1;
    this.send({ type: "ModifyQuerySet", baseVersion: 0, newVersion: 1, modifications: adds });
  }

  modify(mod) {
    if (!this.ws || this.ws.readyState !== WebSocket.OPEN) return; // greet() sends the full set
    this.pendingMods.push(mod);
    if (this.pendingMods.length > 1) return;
    queueMicrotask(() => {
      const modifications = this.pendingMods;
      this.pendingMods = [];
      if (this.ws.readyState !== WebSocket.OPEN) return;
      const baseVersion = this.querySet++;
      this.send({ type: "ModifyQuerySet", baseVersion, newVersion: this.querySet, modifications });
    });
  }

  send(message) {
    this.ws.send(JSON.stringify(message));
  }

  receive(message) {
    this.armInactivity();
    switch (message.type) {
      case "Transition":
        return this.transition(message);
      case "AuthError":
        this.closed = true;
        this.onState("refused", message.error);
        return this.ws.close(1000);
      case "FatalError":
        this.ourReason = `FatalError: ${message.error}`;
        return this.ws.close(1000);
      default:
        return undefined; // Ping; no mutation or action is sent on this socket
    }
  }

  transition(message) {
    const start = message.startVersion;
    if (!sameVersion(start, this.version)) {
      this.ourReason = "StartVersionMismatch";
      this.ws.close(1000);
      return;
    }
    this.version = message.endVersion;
    this.retries = 0;
    if (this.version.identity > 0) this.onState("live");
    for (const mod of message.modifications) {
      const query = this.queries.get(mod.queryId);
      if (!query) continue;
      if (mod.type === "QueryUpdated") query.listener({ value: mod.value, logLines: mod.logLines });
      else if (mod.type === "QueryFailed")
        query.listener({ error: mod.errorMessage, data: mod.errorData, logLines: mod.logLines });
    }
  }

  armInactivity() {
    clearTimeout(this.inactivity);
    this.inactivity = setTimeout(() => {
      this.ourReason = "InactiveServer";
      this.ws.close(1000);
    }, INACTIVE_MS);
  }

  lost(reason) {
    clearTimeout(this.inactivity);
    if (this.closed) return;
    this.lastCloseReason = this.ourReason || reason;
    this.ourReason = null;
    this.onState("connecting", this.lastCloseReason);
    const delay = BACKOFF_MS[Math.min(this.retries++, BACKOFF_MS.length - 1)];
    this.retryTimer = setTimeout(() => this.open(), delay * (0.75 + Math.random() / 2));
  }
}

function sameVersion(a, b) {
  return a.querySet === b.querySet && a.identity === b.identity && a.ts === b.ts;
}

function fallbackUuid() {
  const hex = [...crypto.getRandomValues(new Uint8Array(16))].map((b) =>
    b.toString(16).padStart(2, "0"),
  );
  hex[6] = "4" + hex[6][1];
  hex[8] = ((parseInt(hex[8], 16) & 0x3f) | 0x80).toString(16);
  const h = hex.join("");
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}

// A u64 timestamp of the wire (base64 of 8 little-endian bytes) as a BigInt.
export function decodeTs(b64) {
  const bytes = atob(b64);
  let n = 0n;
  for (let i = 7; i >= 0; i--) n = (n << 8n) | BigInt(bytes.charCodeAt(i));
  return n;
}
