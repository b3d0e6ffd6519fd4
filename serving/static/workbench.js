// Arbitration workbench: the queue (oldest first, reasons, returns so far), ticket detail with history, duplicate
// and repeat links, similar past decisions, claim and decide with a rationale; the joint-handling rules the group's
// decisions overruled (a contested rule's tickets come back as 争议边界 until the lists are clarified). #t=ID opens a ticket (the widget's
// duplicate links point here; a dispatcher's key can read the ticket, an arbitrator's key is needed to decide).
let selected = null;
// Who this key is (GET /api/v1/me): the decision form is for the arbitrator who holds the ticket (or an admin); others
// see who holds it. Read again when another key is saved.
let ME = null;
async function whoami() {
  if (!ME) ME = await api("GET", "/api/v1/me").catch(() => null);
  return ME;
}
const HASH_T = location.hash.match(/t=(\d+)/);
const TO_TICKET = (id) => `#t=${id}`;
function excerpt(text, n) { const s = String(text || "").replace(/\s+/g, " ").trim(); return s.length > n ? s.slice(0, n) + "…" : s; }
// One page of the queue, the oldest tickets first (/workbench?per_page=N: 1–500, default 200); 较早/较新 page
// through a queue longer than that, and the status line says how many wait in all and which of them are shown.
// 按原因 shows only the tickets with one reason (多次退单 or 反复投诉 first, say), each reason with its count.
const QUEUE_PAGE = Math.min(500, Math.max(1, Math.floor(Number(new URLSearchParams(location.search).get("per_page"))) || 200));
let queueOffset = 0;
async function loadReasons() {
  const sel = $("reason-filter");
  const counts = await api("GET", "/api/v1/arbitration/queue/reasons");
  const keep = sel.value;
  sel.replaceChildren(el("option", { value: "" }, "全部原因"),
    ...counts.map((r) => el("option", { value: r.code }, `${reasonZh(r.code)}（${r.count}）`)));
  // a reason whose last ticket was just decided: stays chosen (an empty queue says so) until the arbitrator picks another
  if (keep && !counts.some((r) => r.code === keep)) sel.append(el("option", { value: keep }, `${reasonZh(keep)}（0）`));
  sel.value = keep;
}
async function loadQueue() {
  $("status").textContent = "加载中…";
  try {
    await departments();
    await loadReasons();
    const reason = $("reason-filter").value;
    const url = () => `/api/v1/arbitration/queue?limit=${QUEUE_PAGE}&offset=${queueOffset}` + (reason ? `&reason=${reason}` : "");
    let page = await apiResponse("GET", url());
    let total = Number(page.headers.get("X-Total-Count") || page.data.length);
    if (queueOffset && queueOffset >= total) { // decisions emptied this page: show the last one that has tickets
      queueOffset = Math.max(0, Math.floor((total - 1) / QUEUE_PAGE) * QUEUE_PAGE);
      page = await apiResponse("GET", url());
      total = Number(page.headers.get("X-Total-Count") || page.data.length);
    }
    const q = page.data;
    const body = $("queue");
    body.replaceChildren();
    for (const t of q) {
      const returns = t.returns || [];
      const tr = el("tr", { "data-id": t.id, class: t.id === selected ? "sel" : null, tabindex: "0" },
        el("td", {}, `#${t.id}`),
        // what the ticket is about, so the group can pick related tickets together (the whole text on hover)
        el("td", { "data-testid": "queue-excerpt", title: t.content }, excerpt(t.title || t.content, 24)),
        el("td", {}, fmtTime(t.arbitration_since)),
        el("td", { "data-testid": "queue-reasons", title: t.arbitration_reasons.map((r) => r.message).join("\n") },
          t.arbitration_reasons.map((r) => reasonZh(r.code)).join("、")),
        el("td", { "data-testid": "queue-returns", title: returns.map((r) => `${deptName(r.department)}：${r.reason}`).join("\n") },
          String(t.return_count), returns.length ? el("div", { class: "muted" }, returns.map((r) => deptName(r.department)).join("、")) : null),
        el("td", {}, t.claimed_by || "—"));
      tr.addEventListener("click", () => open(t.id));
      tr.addEventListener("keydown", (e) => { if (e.key === "Enter") open(t.id); });
      body.append(tr);
    }
    const what = reason ? `件「${reasonZh(reason)}」` : "件";
    $("status").textContent = !total ? (reason ? `没有「${reasonZh(reason)}」的待裁定工单` : "队列为空") : total > q.length
      ? `${total} ${what}待裁定（显示第 ${queueOffset + 1}–${queueOffset + q.length} 件，早的在前）` : `${total} ${what}待裁定`;
    $("pager").hidden = total <= QUEUE_PAGE && !queueOffset;
    $("older").disabled = !queueOffset;
    $("newer").disabled = queueOffset + q.length >= total;
    loadRules();
    loadClarifications();
    loadHot();
    if (Date.now() - outcomesAt > 60000) loadOutcomes(); // a month of tickets: after a decision, else once a minute
  } catch (e) { $("status").textContent = "出错：" + e.message; }
}
async function loadRules() {
  const rules = (await api("GET", "/api/v1/arbitration/rules").catch(() => [])).filter((r) => r.overruled > 0);
  const box = $("rules");
  if (!rules.length) { box.replaceChildren(el("p", { class: "muted" }, "暂无")); return; }
  const body = el("tbody");
  for (const r of rules) {
    const decided = Object.entries(r.decided).map(([c, n]) => `${deptName(c)} ${n}次`).join("、");
    body.append(el("tr", { "data-rule": r.rule, class: r.contested ? "warn" : null },
      el("td", {}, r.matter, r.contested || r.disputed_in_lists
        ? el("div", { class: "muted" }, r.disputed_in_lists ? "清单已标为争议边界" : "改判已多于维持：按争议边界处理") : null),
      el("td", {}, r.lead_name), el("td", {}, `${r.overruled} / ${r.upheld}`), el("td", {}, decided),
      el("td", {}, ...r.tickets.slice(-3).flatMap((id) => [ticketLink(id, TO_TICKET), " "]))));
  }
  box.replaceChildren(el("table", {}, el("thead", {}, el("tr", {}, ...["事项", "规则定牵头", "改判/维持", "改由", "工单"].map((h) => el("th", {}, h)))), body));
}
// A panel under the queue: GET ``path``, one list item per entry (``item``), or 暂无 (also when the key may not read it).
async function listPanel(boxId, path, item) {
  const items = await api("GET", path).catch(() => []);
  const box = $(boxId);
  box.replaceChildren(items.length ? el("ul", {}, ...items.map(item)) : el("p", { class: "muted" }, "暂无"));
}
// Proposed clarifications of the lists: the list editors (an admin key) accept or reject each, once, with a note.
function loadClarifications() {
  return listPanel("clarifications", "/api/v1/arbitration/clarifications", (c) => {
    const note = el("input", { type: "text", maxlength: "2000", placeholder: "审核意见（可选）", "aria-label": "审核意见" });
    const review = (status) => act(() => api("POST", `/api/v1/arbitration/clarifications/${c.id}/review`, { status, note: note.value || null }),
      status === "accepted" ? "已采纳" : "未采纳");
    const head = [ticketLink(c.ticket_id, TO_TICKET), ` ${c.text}`, el("div", { class: "muted" }, `${c.proposed_by} · ${fmtTime(c.created_at)}`)];
    if (!ME || ME.role !== "admin") {  // an arbitrator proposes; the list editors review (their buttons were a 403 here)
      return el("li", { "data-clarification": String(c.id) }, ...head, el("span", { class: "muted", "data-testid": "clar-waiting" }, "待管理员审核"));
    }
    return el("li", { "data-clarification": String(c.id) }, ...head, note,
      el("button", { type: "button", class: "secondary", onclick: () => review("accepted") }, "采纳"), " ",
      el("button", { type: "button", class: "secondary", onclick: () => review("rejected") }, "不采纳"));
  });
}
// Hot issues (GET /hot-issues, the service's window and threshold): each cluster's first report linked, how many
// reports and the trend against the window before, where, and when.
const TREND_ZH = { new: "新出现", again: "再次出现", up: "上升", down: "下降", steady: "持平" };
function loadHot() {
  return listPanel("hot", "/api/v1/hot-issues", (h) => el("li", { "data-cluster": String(h.cluster) },
    ticketLink(h.cluster, TO_TICKET), ` ${h.title}`,
    el("div", { class: "muted" }, [`${h.count} 件 ${h.callers} 人（${TREND_ZH[h.trend] || h.trend}，此前 ${h.previous} 件）`,
      h.locality && deptName(h.locality), `${fmtTime(h.first)} 至 ${fmtTime(h.last)}`].filter(Boolean).join(" · ")),
    // its reports in the queue: the oldest opens, and its decision form offers the others (一并裁定)
    (h.waiting || []).length ? el("a", { href: TO_TICKET(h.waiting[0]), "data-testid": "hot-waiting" }, `待裁定 ${h.waiting.length} 件`) : null));
}
// How the suggestions of the last 30 days fared against the owners dispatchers and the group settled (GET
// /stats/routing): for the group and its supervisors, the router's record on this centre's own tickets.
const pct = (x) => (x.rate == null ? "—" : `${(x.rate * 100).toFixed(1)}%（${x.count}/${x.of}）`);
let outcomesAt = 0;
async function loadOutcomes() {
  outcomesAt = Date.now();
  const box = $("outcomes");
  const rep = await api("GET", "/api/v1/stats/routing?days=30").catch(() => null);
  if (!rep || !rep.all.tickets) { box.replaceChildren(el("p", { class: "muted" }, "暂无")); return; }
  const s = rep.all;
  const rows = [["lead_top1", "建议牵头与最终牵头一致", pct(s.lead_top1)], ["lead_top3", "前三候选含最终牵头", pct(s.lead_top3)],
    ["auto_dispatch_precision", "“可直接派单”的准确率", pct(s.auto_dispatch_precision)],
    ["auto_dispatch_co_kept", "其中协办单位与最终一致", pct(s.auto_dispatch_co_kept)],
    ["co_precision", "建议的协办单位被采用", pct(s.co_precision)], ["co_recall", "最终协办单位在建议之中", pct(s.co_recall)],
    ...(s.auto_sent && s.auto_sent.count ? [["auto_sent", "系统自动派单（智能流转）", pct(s.auto_sent)],
      ["auto_sent_returned", "其中被退单", pct(s.auto_sent_returned)],
      ["lead_top1_people", "建议牵头与人工确定的牵头一致", pct(s.lead_top1_people)]] : []), ["returned", "被退单", pct(s.returned)],
    ["arbitrated", "进入裁定", pct(s.arbitrated)], ["decided", "其中已裁定", pct(s.decided)],
    ["hours_to_decision_median", "裁定用时（中位数）", s.hours_to_decision_median == null ? "—" : `${s.hours_to_decision_median} 小时`]];
  box.replaceChildren(...[el("table", {}, el("tbody", {}, ...rows.map(([key, label, value]) =>
    el("tr", {}, el("th", {}, label), el("td", { "data-stat": key }, value))))),
  el("p", { class: "muted" }, `${s.tickets} 件工单，${s.settled.count} 件已确定牵头单位（派单未被退回，或已裁定）`),
  // per reason: a flag worth the group's time marks suggestions that turn out wrong
  (rep.by_reason || []).length ? el("p", {}, "进入裁定的原因（件数 · 已裁定 · 建议牵头与最终一致）：") : null,
  (rep.by_reason || []).length ? el("ul", { "data-testid": "by-reason" }, ...rep.by_reason.map((x) =>
    el("li", { "data-reason": x.code }, `${reasonZh(x.code)}：${x.tickets} 件 · 已裁定 ${x.decided} 件 · ${pct(x.suggestion_right)}`))) : null,
  rep.corrections.length ? el("p", {}, "最常见的改派（建议 → 最终）：") : null,
  rep.corrections.length ? el("ul", { "data-testid": "corrections" }, ...rep.corrections.slice(0, 5).map((c) =>
    el("li", {}, `${deptName(c.suggested)} → ${deptName(c.settled)}：${c.count} 件 `,
      ...c.tickets.slice(-3).flatMap((id) => [ticketLink(id, TO_TICKET), " "])))) : null].filter(Boolean)); // no "null" text
}
async function open(id) {
  selected = id;
  if (location.hash !== TO_TICKET(id)) history.replaceState(null, "", TO_TICKET(id));
  for (const tr of $("queue").children) tr.classList.toggle("sel", Number(tr.dataset.id) === id);
  try {
    await whoami();
    // similar decisions need an arbitrator's key and duplicates are optional: the ticket shows without them
    const [t, similar, dups] = await Promise.all([api("GET", `/api/v1/tickets/${id}`),
      api("GET", `/api/v1/arbitration/${id}/similar`).catch(() => null),
      api("GET", `/api/v1/duplicates/${id}`).catch(() => null)]);
    // the other waiting reports of the same event (its duplicate cluster): the decision may settle them too
    const cluster = t.duplicate && t.duplicate.cluster;
    const same = cluster && t.status === "in_arbitration" && t.claimed_by
      ? await api("GET", `/api/v1/arbitration/queue?cluster=${cluster}&limit=200`).catch(() => []) : [];
    if (selected === id) render(t, similar, dups, same.filter((x) => x.id !== t.id && (!x.claimed_by || x.claimed_by === t.claimed_by)));
  } catch (e) { $("status").textContent = "出错：" + e.message; }
}
// The duplicate index's links: the earlier ticket, the cluster's first report, how many reports, the earlier ones.
function duplicatesSection(t, dups) {
  const box = el("div", { "data-testid": "duplicates" }, el("h3", {}, "重复诉求"));
  if (!dups || !dups.duplicate) {
    box.append(el("p", { class: "muted" }, dups ? "尚未查重" : "查重结果暂不可用"));
    return box;
  }
  const line = duplicateLine(dups.duplicate, TO_TICKET);
  if (line) box.classList.add("warnbox");
  box.append(line || el("p", { class: "muted" }, dups.cluster_size > 1 ? "本工单是此问题的首次反映" : "未发现重复诉求"));
  if (dups.cluster_size > 1) box.append(el("p", { "data-testid": "cluster-size" }, `同一问题共反映 ${dups.cluster_size} 次（含本工单）`));
  if (dups.earlier.length) {
    const repeat = t.arbitration_reasons.some((r) => r.code === "REPEAT_COMPLAINT");
    box.append(el("h3", {}, repeat ? "反复投诉：此前的反映" : "此前的同类反映"), earlierList(dups.earlier, TO_TICKET));
  }
  return box;
}
function render(t, similar, dups, sameEvent = []) {
  const box = $("detail");
  box.replaceChildren(...[el("div", { class: "lead" }, `工单 #${t.id} · ${t.status_zh}`),
    t.title ? el("div", {}, t.title) : null, el("p", { "data-testid": "content" }, t.content),
    el("div", { class: "muted" }, [t.address && `地址：${t.address}`, t.caller && `来电：${t.caller}`].filter(Boolean).join(" · "))].filter(Boolean));
  const reasons = el("ul", { "data-testid": "arb-reasons" });
  for (const r of t.arbitration_reasons) reasons.append(el("li", {}, `${reasonZh(r.code)}：${r.message}（${r.code}）`));
  box.append(el("h3", {}, "提交裁定的原因"), t.arbitration_reasons.length ? reasons : el("p", { class: "muted" }, "无"));
  if (t.repeats && t.repeats.length) box.append(el("p", { class: "warnbox", "data-testid": "repeats" }, "同一来电人此前工单：", ...t.repeats.flatMap((r) => [" ", ticketLink(r.id, TO_TICKET)])));
  box.append(duplicatesSection(t, dups));
  if (t.suggestion) box.append(el("p", {}, `系统建议：牵头 ${t.suggestion.lead.name}（${(t.suggestion.confidence * 100).toFixed(0)}%）` +
    (t.suggestion.co.length ? `，协办 ${t.suggestion.co.map((c) => c.name).join("、")}` : "")));
  if (t.decisions && t.decisions.length) {  // the group's decisions, with the rationale a decided ticket is read for
    const ul = el("ul", { "data-testid": "decisions" });
    for (const d of t.decisions) {
      ul.append(el("li", {}, `${fmtTime(d.created_at)} ${d.arbitrator}：牵头 ${deptName(d.lead)}` +
        (d.co.length ? `，协办 ${d.co.map(deptName).join("、")}` : ""), el("div", {}, `理由：${d.rationale}`)));
    }
    box.append(el("h3", {}, "裁定结果"), ul);
  }
  box.append(el("h3", {}, "办理历史"), historyList(t.history));
  const sim = el("ul", { "data-testid": "similar" });
  for (const d of similar || []) {
    const how = d.similarity == null ? "" : `（相似度 ${(d.similarity * 100).toFixed(0)}%）`;
    sim.append(el("li", { "data-similarity": d.similarity == null ? "" : String(d.similarity) },
      ticketLink(d.ticket_id, TO_TICKET), ` ${how}牵头 ${deptName(d.lead)}：${d.rationale}`, el("span", { class: "muted" }, ` ${d.excerpt}`)));
  }
  box.append(el("h3", {}, "相近的既往裁定"), similar && similar.length ? sim : el("p", { class: "muted" }, similar ? "暂无" : "需裁定员密钥"));
  if (t.status !== "in_arbitration") return;
  if (!t.claimed_by) {
    if (ME && ME.role === "dispatcher") return;  // a dispatcher reading a linked ticket: claiming is the group's
    box.append(el("p", {}, el("button", { type: "button", id: "claim", onclick: () => act(() => api("POST", `/api/v1/arbitration/${t.id}/claim`), "已领取") }, "领取此工单（C）")));
    return;
  }
  box.append(el("p", { class: "muted", "data-testid": "claimed-by" }, `已由 ${t.claimed_by} 领取`));
  if (!ME || (ME.actor !== t.claimed_by && ME.role !== "admin")) return;  // another arbitrator's ticket: theirs to decide
  const lead = el("select", { id: "d-lead", "aria-label": "牵头单位" });
  const co = el("select", { id: "d-co", multiple: "", size: "5", "aria-label": "协办单位" });
  fillDeptSelect(lead, t.suggestion ? t.suggestion.lead.code : null);
  fillDeptSelect(co, []);
  const rationale = el("textarea", { id: "d-rationale", maxlength: "5000", placeholder: "裁定理由（依据的权责清单条目、边界规则）" });
  const clar = el("textarea", { id: "d-clar", maxlength: "5000", placeholder: "（可选）建议对权责清单/边界规则的澄清，提交后留待审核" });
  // unticked by default: the duplicate index links the wrong ticket now and then, so the arbitrator reads each first
  const also = sameEvent.length ? el("fieldset", { id: "d-also" }, el("legend", {}, "同一事件的其他待裁定工单（勾选的一并裁定）"),
    ...sameEvent.map((x) => el("label", { class: "check" }, el("input", { type: "checkbox", value: String(x.id), "data-testid": "also" }),
      " ", ticketLink(x.id, TO_TICKET), ` ${excerpt(x.title || x.content, 30)}（${x.arbitration_reasons.map((r) => reasonZh(r.code)).join("、")}）`))) : null;
  const alsoIds = () => (also ? [...also.querySelectorAll("input:checked")].map((i) => Number(i.value)) : []);
  box.append(...[el("h3", {}, "裁定"), el("label", { for: "d-lead" }, "牵头单位"), deptFilter(lead), lead, el("label", { for: "d-co" }, "协办单位（可多选）"), deptFilter(co), co,
    el("label", { for: "d-rationale" }, "裁定理由"), rationale, el("label", { for: "d-clar" }, "清单澄清建议"), clar, also,
    el("p", {}, el("button", { type: "button", id: "decide", onclick: () => act(async () => {
      await api("POST", `/api/v1/arbitration/${t.id}/decision`, { lead: lead.value, co: [...co.selectedOptions].map((o) => o.value),
        rationale: rationale.value, clarification: clar.value || null, also: alsoIds() });
      outcomesAt = 0; // a decision changes the panel's figures: read them again (a month of tickets takes ~0.4 s)
    }, alsoIds().length ? `已裁定（含同一事件 ${alsoIds().length} 件）` : "已裁定") }, "提交裁定"),
    " ", el("button", { type: "button", class: "secondary", id: "release", onclick: () => act(() => api("POST", `/api/v1/arbitration/${t.id}/release`), "已放弃领取") }, "放弃领取"))].filter(Boolean));
}
// An action failed (a rationale too short, a report of another event, a ticket someone else claimed): the message, and
// the form as the arbitrator filled it — reloading the ticket would have emptied the rationale, lead, co and ticks.
async function act(fn, done) {
  try { await fn(); } catch (e) { $("status").textContent = "出错：" + e.message; return; }
  await loadQueue();
  if (selected) await open(selected);
  $("status").textContent = done;
}
keyBox(() => { DEPTS = null; ME = null; whoami().then(loadQueue); });
if (!Key.get()) $("keybox").open = true;
$("refresh").addEventListener("click", loadQueue);
$("reason-filter").addEventListener("change", () => { queueOffset = 0; loadQueue(); });
$("older").addEventListener("click", () => { queueOffset = Math.max(0, queueOffset - QUEUE_PAGE); loadQueue(); });
$("newer").addEventListener("click", () => { queueOffset += QUEUE_PAGE; loadQueue(); });
document.addEventListener("keydown", (e) => {
  if (["INPUT", "TEXTAREA", "SELECT"].includes(document.activeElement.tagName)) return;
  if (e.key === "r") loadQueue();
  if (e.key === "c" && $("claim")) $("claim").click();
});
window.addEventListener("hashchange", () => {
  const m = location.hash.match(/t=(\d+)/);
  // a link with another key (#t=ID&key=…) in this tab: take the key before open() rewrites the fragment to #t=ID
  if (/key=/.test(location.hash)) { $("apikey").value = Key.get(); DEPTS = null; ME = null; whoami().then(loadQueue); }
  if (m) open(Number(m[1]));
});
whoami().then(loadQueue).then(() => { if (HASH_T) open(Number(HASH_T[1])); });
