// Arbitration workbench: the queue (oldest first, reasons, returns so far), ticket detail with history,
// similar past decisions, claim and decide with a rationale.
let selected = null;
const HASH_T = location.hash.match(/t=(\d+)/);
async function loadQueue() {
  $("status").textContent = "加载中…";
  try {
    await departments();
    const q = await api("GET", "/api/v1/arbitration/queue");
    const body = $("queue");
    body.replaceChildren();
    for (const t of q) {
      const tr = el("tr", { "data-id": t.id, class: t.id === selected ? "sel" : null, tabindex: "0" },
        el("td", {}, `#${t.id}`), el("td", {}, fmtTime(t.arbitration_since)),
        el("td", {}, t.arbitration_reasons.map((r) => r.code).join("、")), el("td", {}, String(t.return_count)),
        el("td", {}, t.claimed_by || "—"));
      tr.addEventListener("click", () => open(t.id));
      tr.addEventListener("keydown", (e) => { if (e.key === "Enter") open(t.id); });
      body.append(tr);
    }
    $("status").textContent = q.length ? `${q.length} 件待裁定` : "队列为空";
  } catch (e) { $("status").textContent = "出错：" + e.message; }
}
async function open(id) {
  selected = id;
  for (const tr of $("queue").children) tr.classList.toggle("sel", Number(tr.dataset.id) === id);
  try {
    const [t, similar] = await Promise.all([api("GET", `/api/v1/tickets/${id}`), api("GET", `/api/v1/arbitration/${id}/similar`)]);
    render(t, similar);
  } catch (e) { $("status").textContent = "出错：" + e.message; }
}
function render(t, similar) {
  const box = $("detail");
  box.replaceChildren(...[el("div", { class: "lead" }, `工单 #${t.id} · ${t.status_zh}`),
    t.title ? el("div", {}, t.title) : null, el("p", { "data-testid": "content" }, t.content),
    el("div", { class: "muted" }, [t.address && `地址：${t.address}`, t.caller && `来电：${t.caller}`].filter(Boolean).join(" · "))].filter(Boolean));
  const reasons = el("ul", { "data-testid": "arb-reasons" });
  for (const r of t.arbitration_reasons) reasons.append(el("li", {}, `${r.message}（${r.code}）`));
  box.append(el("h3", {}, "提交裁定的原因"), reasons);
  if (t.repeats && t.repeats.length) box.append(el("p", { class: "warnbox" }, "同一来电人此前工单：", ...t.repeats.map((r) => el("a", { href: `#t=${r.id}`, onclick: () => open(r.id) }, ` #${r.id}`))));
  if (t.suggestion) box.append(el("p", {}, `系统建议：牵头 ${t.suggestion.lead.name}（${(t.suggestion.confidence * 100).toFixed(0)}%）` +
    (t.suggestion.co.length ? `，协办 ${t.suggestion.co.map((c) => c.name).join("、")}` : "")));
  box.append(el("h3", {}, "办理历史"), historyList(t.history));
  const sim = el("ul", { "data-testid": "similar" });
  for (const d of similar) sim.append(el("li", {}, `#${d.ticket_id} 牵头 ${deptName(d.lead)}：${d.rationale}`, el("span", { class: "muted" }, ` ${d.excerpt}`)));
  box.append(el("h3", {}, "相近的既往裁定"), similar.length ? sim : el("p", { class: "muted" }, "暂无"));
  if (t.status !== "in_arbitration") return;
  if (!t.claimed_by) {
    box.append(el("p", {}, el("button", { type: "button", id: "claim", onclick: () => act(() => api("POST", `/api/v1/arbitration/${t.id}/claim`), "已领取") }, "领取此工单（C）")));
    return;
  }
  box.append(el("p", { class: "muted" }, `已由 ${t.claimed_by} 领取`));
  const lead = el("select", { id: "d-lead", "aria-label": "牵头单位" });
  const co = el("select", { id: "d-co", multiple: "", size: "5", "aria-label": "协办单位" });
  fillDeptSelect(lead, t.suggestion ? t.suggestion.lead.code : null);
  fillDeptSelect(co, []);
  const rationale = el("textarea", { id: "d-rationale", maxlength: "5000", placeholder: "裁定理由（依据的权责清单条目、边界规则）" });
  const clar = el("textarea", { id: "d-clar", maxlength: "5000", placeholder: "（可选）建议对权责清单/边界规则的澄清，提交后留待审核" });
  box.append(el("h3", {}, "裁定"), el("label", { for: "d-lead" }, "牵头单位"), lead, el("label", { for: "d-co" }, "协办单位（可多选）"), co,
    el("label", { for: "d-rationale" }, "裁定理由"), rationale, el("label", { for: "d-clar" }, "清单澄清建议"), clar,
    el("p", {}, el("button", { type: "button", id: "decide", onclick: () => act(() => api("POST", `/api/v1/arbitration/${t.id}/decision`, {
      lead: lead.value, co: [...co.selectedOptions].map((o) => o.value), rationale: rationale.value, clarification: clar.value || null }), "已裁定") }, "提交裁定"),
    " ", el("button", { type: "button", class: "secondary", id: "release", onclick: () => act(() => api("POST", `/api/v1/arbitration/${t.id}/release`), "已放弃领取") }, "放弃领取")));
}
async function act(fn, done) {
  let msg = done;
  try { await fn(); } catch (e) { msg = "出错：" + e.message; }
  await loadQueue();
  if (selected) await open(selected);
  $("status").textContent = msg;
}
keyBox(() => { DEPTS = null; loadQueue(); });
if (!Key.get()) $("keybox").open = true;
$("refresh").addEventListener("click", loadQueue);
document.addEventListener("keydown", (e) => {
  if (["INPUT", "TEXTAREA", "SELECT"].includes(document.activeElement.tagName)) return;
  if (e.key === "r") loadQueue();
  if (e.key === "c" && $("claim")) $("claim").click();
});
loadQueue().then(() => { if (HASH_T) open(Number(HASH_T[1])); });
