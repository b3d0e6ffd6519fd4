// Dispatcher widget: a live preview while the dispatcher reads (POST /route, nothing stored), then intake
// (POST /tickets) and accept / change / send to arbitration with one or two clicks or Alt+1/2/3.
let current = null; // the stored ticket
function suggestionCard(s, testid) {
  const card = el("div", { class: "card", "data-testid": testid });
  card.append(el("div", { class: "lead", "data-testid": "lead" }, `牵头：${s.lead.name}`),
    el("div", { class: "muted" }, `${KIND[s.lead.kind] || s.lead.kind} · 置信度 ${(s.confidence * 100).toFixed(0)}% · ${s.model_version}`));
  const tags = el("p");
  if (s.auto_dispatch) tags.append(el("span", { class: "tag ok" }, "可直接派单"));
  if (s.needs_arbitration) tags.append(el("span", { class: "tag warn" }, "建议提交裁定"));
  card.append(tags);
  // the lists alone named another lead: the history model or a settled precedent moved the suggestion
  if (s.lists_lead && s.lists_lead !== s.lead.code) card.append(el("div", { class: "muted", "data-testid": "lists-lead" },
    `权责清单本身倾向：${deptName(s.lists_lead)}（历史派单模型或判例改变了建议）`));
  if (s.co.length) card.append(el("div", { "data-testid": "co" }, "协办：" + s.co.map((c) => `${c.name}（${(c.score * 100).toFixed(0)}%）`).join("、")));
  if (s.reasons.length) {
    const ul = el("ul", { "data-testid": "reasons" });
    for (const r of s.reasons) ul.append(el("li", {}, `${reasonZh(r.code)}：${r.message}（${r.code}）`));
    card.append(el("h3", {}, "提示"), ul);
  }
  const ev = el("ul", { "data-testid": "evidence" });
  for (const e of s.evidence) {
    // a precedent (判例): a settled ticket, opened in the workbench
    const head = e.type === "precedent" ? el("a", { href: `/workbench#t=${e.item_id.replace("ticket:", "")}`, target: "_blank" }, e.item) : `${e.item}`;
    ev.append(el("li", { "data-type": e.type }, head, el("span", { class: "muted" }, ` [${e.item_id}] ${e.text ? "· " + e.text.slice(0, 60) : ""}`)));
  }
  card.append(el("h3", {}, "依据（权责清单、判例）"), ev);
  // the other plausible leads, by name (a department list is loaded before any card is drawn); below 1% is noise
  const cands = s.candidates.filter((c) => c.score >= 0.01);
  if (cands.length) card.append(el("p", { class: "muted", "data-testid": "candidates" },
    "候选牵头：" + cands.map((c) => `${deptName(c.code)} ${(c.score * 100).toFixed(0)}%`).join("，")));
  return card;
}
const TO_WORKBENCH = (id) => `/workbench#t=${id}`;
function newTab(node) { for (const a of node.querySelectorAll("a")) a.target = "_blank"; return node; }
// The duplicate index's verdict (POST /tickets `duplicate`): the earlier ticket, linked, and the places the two share,
// at once; then (GET /duplicates) how often the problem was reported and the earlier reports, linked. Text nodes only.
function duplicateWarning(t) {
  const line = duplicateLine(t.duplicate, TO_WORKBENCH);
  if (!line) return null;
  const box = el("div", { class: "warnbox", "data-testid": "duplicate" }, el("h3", {}, "重复诉求提醒"), line);
  api("GET", `/api/v1/duplicates/${t.id}`).then((j) => {
    if (!box.isConnected) return;
    const full = duplicateLine(j.duplicate, TO_WORKBENCH); // the same line with the places the two share
    if (full) line.replaceWith(full);
    if (!j.earlier.length) { newTab(box); return; }
    box.append(el("p", { "data-testid": "duplicate-count" }, `同一问题已反映 ${j.cluster_size} 次，此前的反映：`),
      earlierList(j.earlier, TO_WORKBENCH));
    // a repeat goes to the unit already handling the problem: say which, and offer it when the suggestion differs
    const st = j.settled;
    if (st && t.suggestion) {
      const who = `${deptName(st.lead)}${st.co.length ? "（协办 " + st.co.map(deptName).join("、") + "）" : ""}`;
      const same = st.lead === t.suggestion.lead.code;
      box.append(el("p", { "data-testid": "earlier-lead" }, `此前同一问题由 ${who} 牵头办理（`, ticketLink(st.ticket_id, TO_WORKBENCH),
        ` ${st.status_zh}）` + (same ? "，与本次建议一致。" : `；本次建议为 ${deptName(t.suggestion.lead.code)}。`),
        same || !["suggested", "in_arbitration"].includes(t.status) || t.claimed_by ? null
          : el("button", { type: "button", id: "follow-earlier", class: "secondary", onclick: () => dispatch(st.lead, st.co) }, "按此前牵头派单")));
    }
    newTab(box);
  }).catch(() => { /* the link above is enough */ });
  return newTab(box);
}
function actions(t) {
  const box = el("div", { class: "card", "data-testid": "actions" });
  box.append(el("div", { class: "lead" }, `工单 #${t.id} · ${t.status_zh}`));
  if (t.caller) box.append(el("div", { class: "muted" }, `来电：${t.caller}`));
  if (t.repeats && t.repeats.length) {
    const ul = el("ul", { "data-testid": "repeats", class: "warnbox" });
    for (const r of t.repeats) ul.append(el("li", {}, "同一来电人此前工单 ", el("a", { href: `/workbench#t=${r.id}`, target: "_blank" }, `#${r.id}`), `（${fmtTime(r.created_at)}，${r.excerpt}）`));
    box.append(el("h3", {}, "重复来电提醒"), ul);
  }
  const dup = duplicateWarning(t);
  if (dup) box.append(dup);
  if (t.status === "in_arbitration") box.append(el("p", { class: "tag warn" }, "已进入裁定队列；未被领取前仍可直接派单"));
  const lead = el("select", { id: "lead", "aria-label": "牵头单位" });
  const co = el("select", { id: "co", multiple: "", size: "4", "aria-label": "协办单位" });
  departments().then(() => { fillDeptSelect(lead, t.suggestion.lead.code); fillDeptSelect(co, t.suggestion.co.map((c) => c.code)); });
  const reason = el("input", { id: "escalate-reason", placeholder: "提交裁定的理由（回车提交）",
    onkeydown: (e) => { if (e.key === "Enter") { e.preventDefault(); escalate(reason.value); } } });
  // 属地街道（镇）（地址未定位）: the suggestion names the town but not which one, and no department has that code —
  // accepting it as it stands was refused (422); the dispatcher picks the town in 改派, the rest kept as suggested
  const unplaced = [t.suggestion.lead.code, ...t.suggestion.co.map((c) => c.code)].includes("locality");
  const accept = () => {
    if (!unplaced) return dispatch(t.suggestion.lead.code, t.suggestion.co.map((c) => c.code));
    $("change-box").open = true;
    $("status").textContent = "地址未定位：请在改派中选择属地街道（镇）后派单";
    (t.suggestion.lead.code === "locality" ? lead : co).focus();
  };
  box.append(
    el("p", {}, el("button", { type: "button", id: "accept", onclick: accept }, unplaced ? "选择属地后派单（Alt+1）" : "采纳建议派单（Alt+1）")),
    el("details", { id: "change-box" }, el("summary", {}, "改派（Alt+2）"),
      el("label", { for: "lead" }, "牵头单位"), deptFilter(lead), lead, el("label", { for: "co" }, "协办单位（可多选）"), deptFilter(co), co,
      el("p", {}, el("button", { type: "button", id: "change", onclick: () => dispatch(lead.value, [...co.selectedOptions].map((o) => o.value)) }, "按所选派单"))),
    el("details", { id: "escalate-box" }, el("summary", {}, "提交裁定（Alt+3）"), reason,
      el("p", {}, el("button", { type: "button", id: "escalate", onclick: () => escalate(reason.value) }, "提交疑难工单裁定"))));
  return box;
}
// escalated: the dispatcher sent it to the arbitration group, so it is done here although it waits unclaimed (its
// action card left in place let Alt+1 dispatch it while the next call was typed)
function show(t, escalated = false) {
  current = t;
  clearTimeout(timer); seq++; // a late preview must not reappear under the stored ticket
  $("preview").replaceChildren();
  const done = escalated || ["dispatched", "decided", "closed"].includes(t.status) || (t.status === "in_arbitration" && t.claimed_by);
  const sent = t.status === "dispatched" && (t.history || []).some((e) => e.kind === "dispatched" && (e.data || {}).auto);
  $("result").replaceChildren(done ? el("div", { class: "card", "data-testid": "done" }, `工单 #${t.id} ${t.status_zh}`,
    t.lead ? `：牵头 ${deptName(t.lead)}${t.co.length ? "，协办 " + t.co.map(deptName).join("、") : ""}` : "",
    sent ? el("p", { class: "tag ok", "data-testid": "auto-sent" }, "系统已自动派单（智能流转）；部门退单后再由派单员处理") : null) : actions(t),
  suggestionCard(t.suggestion, "suggestion"));
}
// One request at a time: a click and Ctrl+Enter (or a double click) stored the same call twice, and the copy was
// linked to the first as a repeat (a third as REPEAT_COMPLAINT, into the arbitration queue); a second dispatch of one
// ticket answered 409 over the first one's "已派单".
let busy = false;
async function once(fn) {
  if (busy) return;
  busy = true;
  $("go").disabled = true;
  try { await fn(); } finally { busy = false; $("go").disabled = false; }
}
function submit(ev) {
  ev && ev.preventDefault();
  return once(async () => {
    const body = { content: $("content").value, address: $("address").value || null, caller: $("caller").value || null };
    clearTimeout(timer); seq++;
    $("status").textContent = "分析中…";
    try {
      const t = await api("POST", "/api/v1/tickets", body);
      await departments().catch(() => null); // names for the card (codes if the list cannot be read)
      show(t);
      $("status").textContent = "";
      if (t.status === "dispatched") nextTicket(); // sent at intake (智能流转): the form is free for the next call
    } catch (e) { $("status").textContent = "出错：" + e.message; }
  });
}
// Once a ticket is dispatched or sent to arbitration the form is emptied for the next call: a caller's number or an
// address left over from the last ticket would link the next one to it as a repeat and place it in the wrong town.
function nextTicket() {
  for (const id of ["content", "address", "caller"]) $(id).value = "";
  $("content").focus();
}
function dispatch(lead, co) {
  return once(async () => {
    try { show(await api("POST", `/api/v1/tickets/${current.id}/dispatch`, { lead, co })); $("status").textContent = "已派单"; nextTicket(); }
    catch (e) { $("status").textContent = "派单失败：" + e.message; }
  });
}
function escalate(reason) {
  return once(async () => {
    try { show(await api("POST", `/api/v1/tickets/${current.id}/escalate`, { reason: reason || "派单员提交裁定" }), true); $("status").textContent = "已提交裁定"; nextTicket(); }
    catch (e) { $("status").textContent = "提交失败：" + e.message; }
  });
}
let timer = null, seq = 0;
function preview() {
  clearTimeout(timer);
  const text = $("content").value.trim();
  if (text.length < 8 || !Key.get()) return;
  timer = setTimeout(async () => {
    const mine = ++seq;
    try {
      const s = await api("POST", "/api/v1/route", { content: text, address: $("address").value || null });
      await departments().catch(() => null);
      if (mine === seq) $("preview").replaceChildren(el("p", { class: "muted" }, "实时预览（尚未受理）"), suggestionCard(s, "preview-suggestion"));
    } catch (e) { /* the preview is best-effort; submit shows errors */ }
  }, 500);
}
keyBox(() => { DEPTS = null; $("status").textContent = "密钥已保存"; });
if (!Key.get()) $("keybox").open = true;
$("f").addEventListener("submit", submit);
$("content").addEventListener("keydown", (e) => { if (e.key === "Enter" && (e.ctrlKey || e.metaKey)) submit(e); });
$("content").addEventListener("input", preview);
$("address").addEventListener("input", preview);
// Alt+1 accept, Alt+2 change (lead list focused), Alt+3 send to arbitration (reason focused; Enter sends).
// e.code too: on some layouts Alt+digit types another character.
document.addEventListener("keydown", (e) => {
  if (!e.altKey || !current) return;
  const k = e.code && e.code.startsWith("Digit") ? e.code.slice(5) : e.key;
  if (k === "1") { e.preventDefault(); $("accept") && $("accept").click(); }
  if (k === "2") { e.preventDefault(); const b = $("change-box"); if (b) { b.open = true; $("lead").focus(); } }
  if (k === "3") { e.preventDefault(); const b = $("escalate-box"); if (b) { b.open = true; $("escalate-reason").focus(); } }
});
// 智能流转 (HOTLINE_AUTO_SEND): the dispatcher knows that sure tickets go out by themselves (GET /healthz, public).
fetch("/healthz").then((r) => r.json()).then((h) => {
  if (h.auto_send) { $("mode").textContent = "智能流转已开启"; $("mode").title = "把握足够的工单受理后由系统直接派出"; $("mode").hidden = false; }
}).catch(() => { /* the header stays as it is */ });
