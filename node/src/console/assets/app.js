// Roster console. Plain JavaScript, no build step: the node embeds this file.
//
// Reads: /nacos/v1/ns/catalog/services (Nacos's console API),
// /roster/v1/console/service and /roster/v1/cluster.
// Writes: the Open API v1 (PUT and DELETE /nacos/v1/ns/instance), so the
// user's rights apply. The token from POST /nacos/v1/auth/login is kept in
// sessionStorage and sent as the accessToken parameter.
// Everything a client registered (names, metadata) is untrusted: it is only
// ever inserted as text, never as HTML.
"use strict";

const REFRESH_MS = { services: 5000, service: 3000, cluster: 2000 };
const TOKEN_KEY = "roster.token";
const USER_KEY = "roster.user";

const state = { info: null, timer: null, editing: null, armed: null, page: 1, pageSize: 20 };

// ---- DOM helpers -------------------------------------------------------

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k === "class") node.className = v;
    else if (k === "text") node.textContent = v;
    else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else if (k === "dataset") Object.assign(node.dataset, v);
    else node.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined || c === false) continue;
    node.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return node;
}

function $(id) { return document.getElementById(id); }

function pill(text, kind) { return el("span", { class: "pill " + (kind || "") }, text); }

function say(text, isError) {
  const box = $("message");
  box.textContent = text;
  box.className = isError ? "error" : "";
  box.hidden = false;
  clearTimeout(say.timer);
  say.timer = setTimeout(() => { box.hidden = true; }, isError ? 12000 : 5000);
}

// ---- API ---------------------------------------------------------------

class ApiError extends Error {
  constructor(status, text) {
    super(text);
    this.status = status;
  }
}

function token() { return sessionStorage.getItem(TOKEN_KEY); }

// The text of a v1 error body `caused: <message>;`.
function reason(body) {
  const m = /^caused: ([\s\S]*);\s*$/.exec(body.trim());
  return m ? m[1] : body.trim();
}

async function api(method, path, params) {
  const query = new URLSearchParams();
  for (const [k, v] of Object.entries(params || {})) {
    if (v !== undefined && v !== null && v !== "") query.set(k, String(v));
  }
  if (token()) query.set("accessToken", token());
  const init = { method, headers: {} };
  let url = path;
  if (method === "GET") {
    url += "?" + query.toString();
  } else {
    init.headers["Content-Type"] = "application/x-www-form-urlencoded";
    init.body = query.toString();
  }
  let response;
  try {
    response = await fetch(url, init);
  } catch (e) {
    throw new ApiError(0, "the member did not answer (" + e.message + ")");
  }
  const text = await response.text();
  if (!response.ok) {
    if (response.status === 403 && state.info && state.info.authEnabled && (!token() || /token/i.test(text))) showLogin();
    throw new ApiError(response.status, reason(text) || response.statusText);
  }
  const type = response.headers.get("Content-Type") || "";
  return type.includes("json") ? JSON.parse(text) : text;
}

function describe(e) {
  if (e.status === 403) return "Refused (403): " + e.message;
  if (e.status) return "Failed (" + e.status + "): " + e.message;
  return "Failed: " + e.message;
}

// ---- login -------------------------------------------------------------

function showLogin() {
  $("login").hidden = false;
  $("login-username").focus();
}

function showUser() {
  const user = sessionStorage.getItem(USER_KEY);
  $("who").textContent = user ? "signed in as " + user : "";
  $("logout").hidden = !user;
}

async function login(event) {
  event.preventDefault();
  const error = $("login-error");
  error.hidden = true;
  $("login-submit").disabled = true;
  try {
    const params = new URLSearchParams({ username: $("login-username").value, password: $("login-password").value });
    const response = await fetch("/nacos/v1/auth/login", {
      method: "POST",
      headers: { "Content-Type": "application/x-www-form-urlencoded" },
      body: params.toString(),
    });
    const text = await response.text();
    if (!response.ok) throw new ApiError(response.status, reason(text));
    const answer = JSON.parse(text);
    sessionStorage.setItem(TOKEN_KEY, answer.accessToken);
    sessionStorage.setItem(USER_KEY, answer.username);
    $("login-password").value = "";
    $("login").hidden = true;
    showUser();
    render();
  } catch (e) {
    error.textContent = e.status === 403 ? "Wrong user name or password." : describe(e);
    error.hidden = false;
  } finally {
    $("login-submit").disabled = false;
  }
}

function logout() {
  sessionStorage.removeItem(TOKEN_KEY);
  sessionStorage.removeItem(USER_KEY);
  showUser();
  if (state.info && state.info.authEnabled) showLogin();
  render();
}

// ---- routing -----------------------------------------------------------

function route() {
  const hash = location.hash.replace(/^#/, "") || "/services";
  const [path, query] = hash.split("?");
  return { path, params: new URLSearchParams(query || "") };
}

function schedule(fn, ms) {
  clearTimeout(state.timer);
  state.timer = setTimeout(fn, ms);
}

function render() {
  const { path, params } = route();
  for (const id of ["nav-services", "nav-cluster"]) $(id).classList.remove("active");
  if (path === "/cluster") {
    $("nav-cluster").classList.add("active");
    renderCluster();
  } else if (path === "/service") {
    $("nav-services").classList.add("active");
    renderService(params);
  } else {
    $("nav-services").classList.add("active");
    renderServices(params);
  }
}

// ---- services ----------------------------------------------------------

function filters(params) {
  return {
    namespaceId: params.get("ns") || "public",
    group: params.get("group") || "",
    name: params.get("name") || "",
  };
}

function goServices(f) {
  const q = new URLSearchParams({ ns: f.namespaceId, group: f.group, name: f.name });
  location.hash = "#/services?" + q.toString();
}

async function renderServices(params) {
  const f = filters(params);
  const view = $("view");
  if (!view.querySelector("#services-table") || view.dataset.filters !== JSON.stringify(f)) {
    view.replaceChildren(servicesSkeleton(f));
    view.dataset.filters = JSON.stringify(f);
  }
  try {
    const answer = await api("GET", "/nacos/v1/ns/catalog/services", {
      namespaceId: f.namespaceId,
      groupNameParam: f.group,
      serviceNameParam: f.name,
      pageNo: state.page,
      pageSize: state.pageSize,
    });
    fillServices(f, answer);
  } catch (e) {
    $("services-status").textContent = describe(e);
  }
  schedule(render, REFRESH_MS.services);
}

function servicesSkeleton(f) {
  const ns = el("input", { id: "filter-namespace", value: f.namespaceId, size: 12 });
  const group = el("input", { id: "filter-group", value: f.group, placeholder: "any group", size: 16 });
  const name = el("input", { id: "filter-name", value: f.name, placeholder: "service name contains", size: 22 });
  const apply = () => {
    state.page = 1;
    goServices({ namespaceId: ns.value.trim() || "public", group: group.value.trim(), name: name.value.trim() });
  };
  for (const input of [ns, group, name]) input.addEventListener("keydown", (e) => { if (e.key === "Enter") apply(); });
  return el("section", {},
    el("h2", {}, "Services"),
    el("div", { class: "toolbar" },
      el("label", {}, "Namespace", ns),
      el("label", {}, "Group", group),
      el("label", {}, "Service", name),
      el("button", { id: "filter-apply", class: "primary", type: "button", onclick: apply }, "Search")),
    el("table", { id: "services-table" },
      el("thead", {}, el("tr", {},
        el("th", {}, "Service"), el("th", {}, "Group"), el("th", { class: "num" }, "Clusters"),
        el("th", { class: "num" }, "Instances"), el("th", { class: "num" }, "Healthy"),
        el("th", {}, "Protection"))),
      el("tbody", {})),
    el("div", { class: "pager" },
      el("button", { id: "page-prev", type: "button", onclick: () => { state.page = Math.max(1, state.page - 1); render(); } }, "Previous"),
      el("span", { id: "services-status", class: "muted" }),
      el("button", { id: "page-next", type: "button", onclick: () => { state.page += 1; render(); } }, "Next")));
}

function fillServices(f, answer) {
  const pages = Math.max(1, Math.ceil(answer.count / state.pageSize));
  if (state.page > pages) { state.page = pages; }
  const rows = answer.serviceList.map((s) => {
    const q = new URLSearchParams({ ns: f.namespaceId, group: s.groupName, name: s.name });
    const healthy = s.healthyInstanceCount === s.ipCount ? "ok" : (s.healthyInstanceCount === 0 ? "bad" : "warn");
    return el("tr", { dataset: { service: s.name, group: s.groupName } },
      el("td", {}, el("a", { class: "service-link", href: "#/service?" + q.toString() }, s.name)),
      el("td", {}, s.groupName),
      el("td", { class: "num" }, s.clusterCount),
      el("td", { class: "num cell-instances" }, s.ipCount),
      el("td", { class: "num cell-healthy" }, s.ipCount ? pill(String(s.healthyInstanceCount), healthy) : "0"),
      el("td", {}, s.triggerFlag === "true" ? pill("threshold reached", "warn") : ""));
  });
  const body = $("services-table").tBodies[0];
  body.replaceChildren(...(rows.length ? rows : [el("tr", {}, el("td", { colspan: 6, class: "muted" }, "No services."))]));
  $("services-status").textContent = answer.count + " services, page " + state.page + " of " + pages;
  $("page-prev").disabled = state.page <= 1;
  $("page-next").disabled = state.page >= pages;
}

// ---- one service -------------------------------------------------------

function serviceRef(params) {
  return { namespaceId: params.get("ns") || "public", groupName: params.get("group") || "DEFAULT_GROUP", serviceName: params.get("name") || "" };
}

async function renderService(params) {
  const ref = serviceRef(params);
  const view = $("view");
  const key = JSON.stringify(ref);
  if (view.dataset.service !== key) {
    view.replaceChildren(el("section", {},
      el("p", {}, el("a", { href: "#/services?" + new URLSearchParams({ ns: ref.namespaceId }).toString() }, "← Services")),
      el("h2", { id: "service-title" }, ref.serviceName),
      el("p", { id: "service-meta", class: "muted" }),
      el("table", { id: "instances-table" },
        el("thead", {}, el("tr", {},
          el("th", {}, "Instance"), el("th", {}, "Cluster"), el("th", {}, "Health"), el("th", {}, "Enabled"),
          el("th", { class: "num" }, "Weight"), el("th", {}, "Metadata"), el("th", {}, "Kind"),
          el("th", {}, "Responsible member"), el("th", {}, "Actions"))),
        el("tbody", {}))));
    view.dataset.service = key;
    view.dataset.filters = "";
    state.editing = null;
    state.armed = null;
  }
  if (!state.editing) {
    try {
      fillService(ref, await api("GET", "/roster/v1/console/service", ref));
    } catch (e) {
      $("service-meta").textContent = describe(e);
    }
  }
  schedule(render, REFRESH_MS.service);
}

const BASIS = {
  connectedHere: "its gRPC connection is on this member",
  connectedThere: "its gRPC connection is on that member",
  lastSyncedFrom: "no member claimed the connection; its data last came from there",
  distroHash: "Distro: hash of ip:port",
  raftLeader: "persistent: the Raft leader",
  unknown: "no member can be named",
};

function fillService(ref, answer) {
  const s = answer.service;
  $("service-title").textContent = s.name;
  $("service-meta").textContent = "namespace " + s.namespaceId + " · group " + s.groupName +
    " · protect threshold " + s.protectThreshold + " · " + answer.instances.length + " instances · read from " + answer.member;
  const rows = answer.instances.map((i) => instanceRow(ref, i));
  $("instances-table").tBodies[0].replaceChildren(...(rows.length ? rows
    : [el("tr", {}, el("td", { colspan: 9, class: "muted" }, "No instances."))]));
}

function instanceRow(ref, i) {
  const address = i.ip + ":" + i.port;
  const rowKey = address + "#" + i.clusterName + "#" + i.ephemeral;
  const meta = Object.entries(i.metadata).map(([k, v]) => k + "=" + v).join(", ");
  const kind = i.ephemeral ? (i.clientKind === "connection" ? "ephemeral · gRPC" : "ephemeral · HTTP") : "persistent";
  const write = (what, extra) => writeInstance(ref, i, what, extra);
  const toggle = el("button", { class: "toggle-enabled", type: "button",
    onclick: () => write(i.enabled ? "Disabled" : "Enabled", { enabled: !i.enabled }) }, i.enabled ? "Disable" : "Enable");
  let weightCell;
  if (state.editing === rowKey) {
    const input = el("input", { class: "weight", type: "number", min: 0, max: 10000, step: "any", value: i.weight });
    const save = el("button", { class: "save-weight primary", type: "button", onclick: () => {
      state.editing = null;
      write("Weight set to " + input.value + " for", { weight: input.value });
    } }, "Save");
    const cancel = el("button", { type: "button", onclick: () => { state.editing = null; render(); } }, "Cancel");
    weightCell = el("td", { class: "num" }, el("div", { class: "actions" }, input, save, cancel));
  } else {
    weightCell = el("td", { class: "num cell-weight" }, String(i.weight));
  }
  const edit = el("button", { class: "edit-weight", type: "button",
    onclick: () => { state.editing = rowKey; fillEditing(ref); } }, "Weight");
  const armed = state.armed === rowKey;
  // The v1 API deregisters HTTP (ip:port) and persistent instances; an
  // instance a gRPC connection published leaves with its client (as in
  // Nacos 2), so the button is off there: disable the instance instead.
  const owned = i.clientKind === "connection";
  const remove = el("button", { class: "deregister danger" + (armed ? " armed" : ""), type: "button",
    disabled: owned, title: owned ? "published by a gRPC client: it leaves when the client deregisters or disconnects; disable it instead" : null,
    onclick: () => {
      if (state.armed !== rowKey) { state.armed = rowKey; render(); return; }
      state.armed = null;
      writeInstance(ref, i, "Deregistered", null, "DELETE");
    } }, armed ? "Confirm deregister" : "Deregister");
  return el("tr", { dataset: { address, cluster: i.clusterName } },
    el("td", {}, el("b", {}, address)),
    el("td", {}, i.clusterName),
    el("td", { class: "cell-healthy" }, i.healthy ? pill("healthy", "ok") : pill("unhealthy", "bad")),
    el("td", { class: "cell-enabled" }, i.enabled ? pill("enabled", "ok") : pill("disabled", "warn")),
    weightCell,
    el("td", { class: "meta" }, meta || "—"),
    el("td", {}, kind),
    el("td", { class: "cell-responsible", title: BASIS[i.basis] || "" }, i.responsible || "—",
      el("div", { class: "muted" }, BASIS[i.basis] || "")),
    el("td", {}, el("div", { class: "actions" }, toggle, edit, remove)));
}

async function fillEditing(ref) {
  try {
    fillService(ref, await api("GET", "/roster/v1/console/service", ref));
  } catch (e) {
    say(describe(e), true);
  }
}

async function writeInstance(ref, i, done, extra, method) {
  const params = Object.assign({
    namespaceId: ref.namespaceId, groupName: ref.groupName, serviceName: ref.serviceName,
    ip: i.ip, port: i.port, clusterName: i.clusterName, ephemeral: i.ephemeral,
  }, extra || {});
  try {
    await api(method || "PUT", "/nacos/v1/ns/instance", params);
    say(done + " " + i.ip + ":" + i.port);
  } catch (e) {
    say(describe(e), true);
  }
  render();
}

// ---- cluster -----------------------------------------------------------

async function renderCluster() {
  const view = $("view");
  if (!view.querySelector("#members-table")) {
    view.dataset.service = "";
    view.dataset.filters = "";
    view.replaceChildren(el("section", {},
      el("h2", {}, "Cluster"),
      el("div", { class: "summary", id: "cluster-summary" }),
      el("table", { id: "members-table" },
        el("thead", {}, el("tr", {},
          el("th", {}, "Member"), el("th", {}, "State"), el("th", {}, "Ready"), el("th", {}, "Distro snapshot"),
          el("th", { class: "num" }, "Clients"), el("th", { class: "num" }, "Instances"),
          el("th", { class: "num" }, "Responsible"), el("th", {}, "Raft role"), el("th", { class: "num" }, "Term"),
          el("th", { class: "num" }, "Commit"), el("th", { class: "num" }, "Applied"), el("th", {}, "Version"))),
        el("tbody", {})),
      el("p", { id: "cluster-refreshed", class: "muted" })));
  }
  try {
    fillCluster(await api("GET", "/roster/v1/cluster"));
  } catch (e) {
    $("cluster-refreshed").textContent = describe(e);
  }
  schedule(render, REFRESH_MS.cluster);
}

function fillCluster(view) {
  const up = view.members.filter((m) => m.state === "UP").length;
  const ready = view.members.filter((m) => m.status && m.status.ready).length;
  $("cluster-summary").replaceChildren(
    el("div", {}, "Raft leader", el("b", { id: "cluster-leader" }, view.leader || "none")),
    el("div", {}, "Members up", el("b", {}, up + " / " + view.members.length)),
    el("div", {}, "Ready", el("b", {}, ready + " / " + view.members.length)),
    el("div", {}, "Served by", el("b", {}, view.member)));
  const rows = view.members.map((m) => {
    const s = m.status;
    const d = s && s.distro;
    const r = s && s.raft;
    const leads = r && r.role === "Leader";
    const stateKind = m.state === "UP" ? "ok" : (m.state === "DOWN" ? "bad" : "warn");
    if (!s) {
      return el("tr", { dataset: { member: m.address } },
        el("td", {}, el("b", {}, m.address)), el("td", {}, pill(m.state, stateKind)),
        el("td", { colspan: 10, class: "error" }, "status not read: " + (m.error || "unknown")));
    }
    return el("tr", { dataset: { member: m.address } },
      el("td", {}, el("b", {}, m.address), m.serving ? el("div", { class: "muted" }, "serving this console") : null),
      el("td", {}, pill(m.state, stateKind)),
      el("td", { class: "cell-ready" }, s.ready ? pill("ready", "ok") : pill("not ready", "bad")),
      el("td", {}, d ? (d.initialized ? "loaded" + (d.snapshotSource ? " from " + d.snapshotSource : " (first member)") : "loading") : "—"),
      el("td", { class: "num" }, d ? d.clients : "—"),
      el("td", { class: "num" }, d ? d.instances : "—"),
      el("td", { class: "num" }, d ? d.responsibleClients : "—"),
      el("td", { class: "cell-role" }, r ? (leads ? pill("Leader", "leader") : r.role) : "—"),
      el("td", { class: "num" }, r ? r.term : "—"),
      el("td", { class: "num" }, r ? r.committedIndex : "—"),
      el("td", { class: "num" }, r ? r.appliedIndex : "—"),
      el("td", {}, s.version));
  });
  $("members-table").tBodies[0].replaceChildren(...rows);
  $("cluster-refreshed").textContent = "Refreshed " + new Date().toLocaleTimeString() + "; every " + REFRESH_MS.cluster / 1000 + " s.";
}

// ---- start -------------------------------------------------------------

async function start() {
  $("login-form").addEventListener("submit", login);
  $("logout").addEventListener("click", logout);
  window.addEventListener("hashchange", () => { state.page = 1; render(); });
  try {
    state.info = await api("GET", "/roster/v1/console/info");
    $("member").textContent = state.info.member + " · v" + state.info.version;
  } catch (e) {
    say(describe(e), true);
  }
  showUser();
  if (state.info && state.info.authEnabled && !token()) showLogin();
  render();
}

start();
