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
    if (m) {
      let key = m[1];
      try { key = decodeURIComponent(key); } catch (e) { /* a stray % in a pasted link: the key as written */ }
      localStorage.setItem("hotline.key", key);
      history.replaceState(null, "", location.pathname + location.search);
    }
    return localStorage.getItem("hotline.key") || "";
  },
  set(v) { localStorage.setItem("hotline.key", v.trim()); },
};
class ApiError extends Error {}
async function api(method, path, body) { return (await apiResponse(method, path, body)).data; }
// The JSON and the response headers (e.g. X-Total-Count of a list that is one page of more).
async function apiResponse(method, path, body) {
  const opts = { method, headers: { Authorization: "Bearer " + Key.get() } };
  if (body !== undefined) { opts.headers["Content-Type"] = "application/json"; opts.body = JSON.stringify(body); }
  const r = await fetch(path, opts);
  const data = await r.json().catch(() => ({}));
  if (!r.ok) {
    let msg = data.message_zh || data.message || r.statusText;
    // field by field for bad input; a refusal that names one value (no such ticket…) already says it in message_zh
    const same = Array.isArray(data.detail) && data.detail.length === 1 && data.detail[0].msg_zh === data.message_zh;
    if (Array.isArray(data.detail) && !same) msg = data.detail.map((d) => `${d.field}：${d.msg_zh}`).join("；");
    throw new ApiError(`${msg}（${r.status}）`);
  }
  return { data, headers: r.headers };
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
  if (code === "locality") return "属地街道（镇）"; // the locality, its town not resolved
  const d = (DEPTS || []).find((x) => x.code === code);
  return d ? d.name : code;
}
// Names compared as the lists compare them: bracket width, spaces and letter case folded.
function foldName(s) { return String(s || "").normalize("NFKC").replace(/\s+/g, "").toLowerCase(); }
function fillDeptSelect(select, selected, blank) {
  select.replaceChildren();
  if (blank) select.append(el("option", { value: "" }, blank));
  for (const d of DEPTS || []) {
    const other = d.other_names || [];
    const o = el("option", { value: d.code, title: other.length ? `又称：${other.join("、")}` : null }, `${d.name}（${d.code}）`);
    o.dataset.find = foldName([d.name, d.code, ...other].join("|"));
    if (Array.isArray(selected) ? selected.includes(d.code) : d.code === selected) o.selected = true;
    select.append(o);
  }
}
// A box above a department select that narrows it as one types a name, a short or former name (区城管局, 区国土资源局:
// the lists' names.yaml) or a code. A single select moves to the first match when its choice does not match; a
// multiple one keeps what is chosen in sight.
function deptFilter(select) {
  const input = el("input", { id: `${select.id}-filter`, type: "search", autocomplete: "off",
    placeholder: "筛选：名称、简称、原名或代码", "aria-label": `筛选${select.getAttribute("aria-label") || "单位"}` });
  const note = el("span", { class: "muted", "data-testid": `${select.id}-nomatch` });
  input.addEventListener("input", () => {
    const q = foldName(input.value);
    const hits = [...select.options].filter((o) => o.value && (!q || (o.dataset.find || "").includes(q)));
    if (!select.multiple && q && hits.length && !hits.includes(select.selectedOptions[0])) hits[0].selected = true;
    for (const o of select.options) o.hidden = !!q && !!o.value && !hits.includes(o) && !o.selected;
    note.textContent = q && !hits.length ? " 没有匹配的单位" : "";
  });
  return el("div", { class: "deptfilter" }, input, note);
}
function fmtTime(iso) { return iso ? new Date(iso).toLocaleString("zh-CN", { hour12: false }) : ""; }
const EVENT_ZH = { received: "受理", suggested: "系统建议", dispatched: "派单", returned: "退单", arbitration: "进入裁定",
  claimed: "领取", released: "放弃领取", decided: "裁定", closed: "办结", clarification_reviewed: "审核清单澄清建议" };
const CLAR_ZH = { pending: "待审核", accepted: "已采纳", rejected: "未采纳" };
function historyList(events) {
  const ul = el("ol", { "data-testid": "history" });
  for (const e of events) {
    const d = e.data || {};
    const extra = [e.kind === "returned" && d.department && `退单单位 ${deptName(d.department)}`, d.lead && `牵头 ${deptName(d.lead)}`, d.co && d.co.length && `协办 ${d.co.map(deptName).join("、")}`,
      d.reason && `理由：${d.reason}`, d.auto && "智能流转", d.accepted === true && !d.auto && "采纳建议", d.accepted === false && "改派",
      d.reasons && d.reasons.map(reasonZh).join("、"), d.clarification_id && CLAR_ZH[d.status], d.note && `意见：${d.note}`,
      d.with_ticket && `随工单 #${Number(d.with_ticket)} 一并裁定`].filter(Boolean).join("；");
    ul.append(el("li", {}, `${fmtTime(e.at)} ${EVENT_ZH[e.kind] || e.kind} · ${e.actor}`, extra ? el("span", { class: "muted" }, ` ${extra}`) : null));
  }
  return ul;
}
// Why a ticket waits for arbitration: model/suggestion.py REASON_LABELS, the one list of codes (tests/test_router.py
// holds the two equal).
const REASON_ZH = { LOW_CONFIDENCE: "置信度低", AMBIGUOUS: "权责不清", MODEL_LIST_DISAGREE: "模型与清单不一致",
  DISPUTED_BOUNDARY: "边界争议", NOVEL_MATTER: "新事项", REPEATED_RETURN: "多次退单", REPEAT_COMPLAINT: "反复投诉",
  DISPATCHER_REQUEST: "派单员提交", LOCALITY_UNRESOLVED: "属地未定", OUTSIDE_ROSTER: "区外单位" };
function reasonZh(code) { return REASON_ZH[code] || String(code); }
// Duplicates (GET /api/v1/duplicates/{id}, the `duplicate` of a ticket). `href(id)` gives each linked ticket's address.
const DUP_KIND = { repeat: "重复诉求（同一来电人或内容几乎相同）", same_event: "同一事件（不同来电人反映同一地点同一问题）" };
function ticketLink(id, href, testid) {
  return el("a", { href: href(Number(id)), "data-testid": testid || null }, `#${Number(id)}`);
}
// "<kind>：与工单 #X 相同（相似度 93%）；首次反映：#C" as text nodes and links; null when the ticket is no duplicate.
function duplicateLine(d, href) {
  if (!d || d.duplicate_of === null || d.duplicate_of === undefined) return null;
  const cluster = Number(d.cluster);
  const p = el("p", {}, `${DUP_KIND[d.kind] || String(d.kind)}：与工单 `, ticketLink(d.duplicate_of, href, "duplicate-of"),
    ` 相同（相似度 ${(Number(d.score) * 100).toFixed(0)}%）`);
  if (cluster && cluster !== Number(d.duplicate_of)) p.append("；首次反映：", ticketLink(cluster, href, "duplicate-cluster"));
  if (d.places && d.places.length) p.append(el("span", { "data-testid": "duplicate-places" }, `；共同地点：${d.places.join("、")}`));
  return p;
}
// The earlier reports of the cluster, oldest first, each linked.
function earlierList(earlier, href) {
  const ul = el("ul", { "data-testid": "duplicate-earlier" });
  for (const e of earlier) {
    ul.append(el("li", {}, ticketLink(e.id, href), ` ${fmtTime(e.created_at)} · ${e.status_zh} · `,
      e.lead ? `牵头 ${deptName(e.lead)} · ` : "", // set once dispatched (not returned since), decided or closed
      el("span", { class: "muted" }, e.excerpt)));
  }
  return ul;
}
