// The gateway's HTTP API (spec/wire-protocol.md, section 1) with the admin key.

// A request the gateway refused before any function ran: its {code, message}.
export class Refusal extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

async function post(path, body, headers = {}) {
  let response;
  try {
    response = await fetch(path, {
      method: "POST",
      headers: { "Content-Type": "application/json", ...headers },
      body: JSON.stringify(body),
      cache: "no-store",
    });
  } catch (err) {
    throw new Refusal(0, "Unreachable", `the gateway does not answer (${err.message})`);
  }
  const text = await response.text();
  let data;
  try {
    data = JSON.parse(text);
  } catch {
    data = { code: `HTTP${response.status}`, message: text.slice(0, 300) };
  }
  if (!response.ok) throw new Refusal(response.status, data.code, data.message || text);
  return data;
}

export class Api {
  constructor(adminKey) {
    this.adminKey = adminKey;
  }

  // A function's outcome: {status: "success", value, logLines} or
  // {status: "error", errorMessage, errorData?, logLines}. kind: query | mutation |
  // action | function (any kind, internal ones too).
  call(kind, path, args = {}) {
    const body = { path, args, format: "convex_encoded_json" };
    return post(`/api/${kind}`, body, { Authorization: `Convex ${this.adminKey}` });
  }

  // The value, or throw the gateway's words.
  async value(kind, path, args = {}) {
    const outcome = await this.call(kind, path, args);
    if (outcome.status !== "success") {
      const err = new Error(outcome.errorMessage);
      err.data = outcome.errorData;
      err.logLines = outcome.logLines || [];
      throw err;
    }
    return outcome.value;
  }
}

// Whether the gateway takes this key: an admin-only query, refused with 403 otherwise.
export async function checkKey(adminKey) {
  await new Api(adminKey).call("query", "_system/disk:status", {});
}

// A single-use login token (from `outpost dashboard`) traded for the admin key.
export async function redeemLoginToken(token) {
  const answer = await post("/dashboard/login", { token });
  return answer.adminKey;
}
