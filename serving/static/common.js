// Shared by the widget and the workbench. Everything shown is inserted as text (textContent / text nodes), never
// as HTML, so ticket text cannot inject markup.
const $ = (id) => document.getElementById(id);
function el(tag, attrs = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k.startsWith("on")) e.addEventListener(k.slice(2), v); else if (v !== null && v !== undefined) e.setAttribute(k, v);
  }
  for (const c of children) if (c !== null && c !== undefined) e.append(c instanceof Node ? c : document.createTextNode(String(c)));
  return e;
}
// The API key: from the page's #key=… fragment (for embedding; fragments are never sent to the server) or localStorage.
const Key = {
  get() {
    const m = location.hash.match(/key=([^&]+)/);
    if (m) { localStorage.setItem("hotline.key", decodeURIComponent(m[1])); history.replaceState(null, "", location.pathname + location.search); }
    return localStorage.getItem("hotline.key") || "";
  },
  set(v) { localStorage.setItem("hotline.key", v.trim()); },
};
class ApiError extends Error {}
async function api(method, path, body) {
  const opts = { method, headers: { Authorization: "Bearer " + Key.get() } };
  if (body !== undefined) { opts.headers["Content-Type"] = "application/json"; opts.body = JSON.stringify(body); }
  const r = await fetch(path, opts);
  const data = await r.json().catch(() => ({}));
  if (!r.ok) {
    let msg = data.message_zh || data.message || r.statusText;
    if (Array.isArray(data.detail)) msg = data.detail.map((d) => `${d.field}：${d.msg_zh}`).join("；");
    throw new ApiError(`${msg}（${r.status}）`);
  }
  return data;
}
function keyBox(onSaved) {
  const input = $("apikey");
  input.value = Key.get();
  $("savekey").addEventListener("click", () => { Key.set(input.value); onSaved && onSaved(); });
}
const KIND = { functional: "职能部门", enterprise: "公用企业", locality: "属地街镇" };
let DEPTS = null;
async function departments() {
  if (!DEPTS) DEPTS = await api("GET", "/api/v1/departments");
  return DEPTS;
}
function deptName(code) {
  const d = (DEPTS || []).find((x) => x.code === code);
  return d ? d.name : code;
}
function fillDeptSelect(select, selected, blank) {
  select.replaceChildren();
  if (blank) select.append(el("option", { value: "" }, blank));
  for (const d of DEPTS || []) {
    const o = el("option", { value: d.code }, `${d.name}（${d.code}）`);
    if (Array.isArray(selected) ? selected.includes(d.code) : d.code === selected) o.selected = true;
    select.append(o);
  }
}
function fmtTime(iso) { return iso ? new Date(iso).toLocaleString("zh-CN", { hour12: false }) : ""; }
const EVENT_ZH = { received: "受理", suggested: "系统建议", dispatched: "派单", returned: "退单", arbitration: "进入裁定",
  claimed: "领取", released: "放弃领取", decided: "裁定", closed: "办结" };
function historyList(events) {
  const ul = el("ol", { "data-testid": "history" });
  for (const e of events) {
    const d = e.data || {};
    const extra = [d.lead && `牵头 ${deptName(d.lead)}`, d.co && d.co.length && `协办 ${d.co.map(deptName).join("、")}`,
      d.reason && `理由：${d.reason}`, d.accepted === true && "采纳建议", d.accepted === false && "改派",
      d.reasons && d.reasons.join("、")].filter(Boolean).join("；");
    ul.append(el("li", {}, `${fmtTime(e.at)} ${EVENT_ZH[e.kind] || e.kind} · ${e.actor}`, extra ? el("span", { class: "muted" }, ` ${extra}`) : null));
  }
  return ul;
}
