// Dispatcher widget: everything shown is inserted with textContent (never innerHTML) so ticket text is escaped.
const $ = (id) => document.getElementById(id);
function el(tag, attrs = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
  for (const c of children) e.append(c instanceof Node ? c : document.createTextNode(String(c)));
  return e;
}
const KIND = { functional: "职能部门", enterprise: "公用企业", locality: "属地街镇" };
function render(s) {
  const box = $("result");
  box.replaceChildren();
  const card = el("div", { class: "card", "data-testid": "suggestion" });
  card.append(el("div", { class: "lead", "data-testid": "lead" }, `牵头：${s.lead.name}`),
    el("div", { class: "muted" }, `${KIND[s.lead.kind] || s.lead.kind} · 置信度 ${(s.confidence * 100).toFixed(0)}% · ${s.model_version}`));
  const tags = el("p");
  if (s.auto_dispatch) tags.append(el("span", { class: "tag ok" }, "可直接派单"));
  if (s.needs_arbitration) tags.append(el("span", { class: "tag warn" }, "建议提交裁定"));
  card.append(tags);
  if (s.co.length) card.append(el("div", {}, "协办：" + s.co.map((c) => c.name).join("、")));
  if (s.reasons.length) {
    const ul = el("ul", { "data-testid": "reasons" });
    for (const r of s.reasons) ul.append(el("li", {}, `${r.message}（${r.code}）`));
    card.append(el("h3", {}, "提示"), ul);
  }
  const ev = el("ul", { "data-testid": "evidence" });
  for (const e of s.evidence) ev.append(el("li", {}, `${e.item}`, el("span", { class: "muted" }, ` [${e.item_id}] ${e.text ? "· " + e.text.slice(0, 60) : ""}`)));
  card.append(el("h3", {}, "依据（权责清单）"), ev);
  const cand = el("p", { class: "muted" }, "候选：" + s.candidates.map((c) => `${c.code} ${(c.score * 100).toFixed(0)}%`).join("  "));
  card.append(cand);
  box.append(card);
}
async function submit(ev) {
  ev && ev.preventDefault();
  const body = { content: $("content").value, address: $("address").value || null };
  $("status").textContent = "分析中…";
  try {
    const r = await fetch("/api/v1/route", { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body) });
    const data = await r.json();
    if (!r.ok) {
      const msg = Array.isArray(data.detail) ? data.detail.map((d) => `${d.loc.slice(-1)[0]}: ${d.msg}`).join("；") : String(data.detail);
      $("status").textContent = "输入有误：" + msg;
      return;
    }
    $("status").textContent = "";
    render(data);
  } catch (e) {
    $("status").textContent = "服务暂不可用：" + e;
  }
}
$("f").addEventListener("submit", submit);
$("content").addEventListener("keydown", (e) => { if (e.key === "Enter" && (e.ctrlKey || e.metaKey)) submit(e); });
