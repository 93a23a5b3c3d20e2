// The dashboard's shell: login, the live link, tabs; each section is its own module,
// loaded when its tab is first opened.

import { Api, checkKey, redeemLoginToken, Refusal } from "./api.js";
import { fill, say } from "./dom.js";
import { SyncClient } from "./sync.js";

const KEY = "outpost.adminKey"; // sessionStorage: gone when the tab closes
const SECTIONS = ["data", "functions", "logs", "devices", "scheduler", "replication", "health"];

const $ = (id) => document.getElementById(id);
let session = null; // {api, sync, adminKey}
let shown = null; // {name, unmount}

async function start() {
  $("login").addEventListener("submit", onLogin);
  $("logout").addEventListener("click", () => logout(""));
  window.addEventListener("hashchange", () => (loginToken() ? logInWithToken() : route()));
  if (loginToken()) return logInWithToken();
  const saved = sessionStorage.getItem(KEY);
  if (saved) return enter(saved).catch((err) => showLogin(err.message));
  showLogin("");
}

// The one-time token of `outpost dashboard`'s link (#login=...), if the address has one.
function loginToken() {
  return new URLSearchParams(location.hash.slice(1)).get("login");
}

async function logInWithToken() {
  const token = loginToken();
  history.replaceState(null, "", location.pathname + location.search); // drop it at once
  if (session) logout("");
  try {
    await enter(await redeemLoginToken(token));
  } catch (err) {
    showLogin(err.message);
  }
}

async function onLogin(event) {
  event.preventDefault();
  const key = $("key").value.trim();
  if (!key) return showLogin("Enter the admin key.");
  say($("login-message"), "Checking...");
  try {
    await enter(key);
  } catch (err) {
    showLogin(err.message);
  }
}

// Check the key with the gateway, then open the live link and the first section.
async function enter(adminKey) {
  try {
    await checkKey(adminKey);
  } catch (err) {
    if (err instanceof Refusal && err.status === 403) sessionStorage.removeItem(KEY);
    throw err;
  }
  sessionStorage.setItem(KEY, adminKey);
  $("key").value = "";
  const sync = new SyncClient(adminKey, onLinkState);
  session = { api: new Api(adminKey), sync, adminKey };
  $("login").hidden = true;
  $("tabs").hidden = false;
  $("logout").hidden = false;
  $("view").hidden = false;
  document.body.dataset.state = "ready";
  route();
}

function onLinkState(state, detail) {
  const pill = $("link");
  pill.className = `pill ${state === "live" ? "live" : state === "refused" ? "bad" : ""}`;
  pill.textContent = state === "live" ? "live" : state === "refused" ? "refused" : "connecting";
  pill.title = detail || "";
  if (state === "refused") logout(`The gateway refused the admin key: ${detail}`);
}

function logout(message) {
  sessionStorage.removeItem(KEY);
  if (shown) shown.unmount();
  shown = null;
  if (session) session.sync.close();
  session = null;
  showLogin(message);
}

function showLogin(message) {
  document.body.dataset.state = "login";
  $("login").hidden = false;
  $("tabs").hidden = true;
  $("logout").hidden = true;
  $("view").hidden = true;
  fill($("view"));
  say($("login-message"), message, message ? "error" : "");
  $("key").focus();
}

async function route() {
  if (!session) return;
  const wanted = location.hash.slice(1).split("/")[0];
  const name = SECTIONS.includes(wanted) ? wanted : "data";
  if (shown && shown.name === name) return;
  if (shown) shown.unmount();
  shown = { name, unmount: () => {} };
  for (const a of document.querySelectorAll("#tabs a")) {
    if (a.getAttribute("href") === `#${name}`) a.setAttribute("aria-current", "page");
    else a.removeAttribute("aria-current");
  }
  const view = fill($("view"));
  view.dataset.section = name;
  const current = shown;
  try {
    const module = await import(`./${name}.js`);
    if (shown !== current) return; // another tab was chosen meanwhile
    current.unmount = module.mount(view, session) || (() => {});
  } catch (err) {
    say(view, `This section failed to load: ${err.message}`, "error");
  }
}

start();
