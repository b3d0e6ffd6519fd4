"""Precedents (判例, model/precedents.py): settled tickets vote on the lead of similar new tickets — the memory
(faiss, replace by id, similarity floor), the vote and the mix, the router citing them, and the service reading
them from the database on both kinds (decisions, overrides, a returned override withdrawn, a restart)."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from dbutil import DB_KINDS

from model.precedents import Precedent, PrecedentConfig, PrecedentMemory
from model.suggestion import Ticket


def unit(v):
    v = np.asarray(v, dtype=np.float32)
    return v / np.linalg.norm(v)


def basis(i, dim=8):
    v = np.zeros(dim, np.float32)
    v[i] = 1
    return v


def test_neighbours_respect_the_similarity_floor_k_and_exclusion():
    mem = PrecedentMemory(8, PrecedentConfig(k=2, min_similarity=0.9))
    mem.add([Precedent("a", "health"), Precedent("b", "education"), Precedent("c", "transport")],
            np.stack([unit(basis(0) + 0.1 * basis(1)), unit(basis(0) + 0.3 * basis(2)), basis(5)]))
    near = mem.neighbours(basis(0))
    assert [n.precedent.id for n in near] == ["a", "b"] and near[0].similarity > near[1].similarity >= 0.9
    assert [n.precedent.id for n in mem.neighbours(basis(0), exclude="a")] == ["b"]
    assert mem.neighbours(basis(3)) == []  # nothing similar: no vote
    assert mem.neighbours(basis(5))[0].precedent.lead == "transport"


def test_a_later_decision_on_the_same_ticket_replaces_the_earlier_and_remove_withdraws():
    mem = PrecedentMemory(8)
    mem.add([Precedent("7", "health")], basis(0)[None])
    mem.add([Precedent("7", "education")], basis(0)[None])
    assert len(mem) == 1 and mem.get("7").lead == "education"
    assert [n.precedent.lead for n in mem.neighbours(basis(0))] == ["education"]
    assert mem.remove(["7", "nope"]) == 1 and len(mem) == 0 and mem.neighbours(basis(0)) == []


def test_vote_weights_nearer_precedents_more_and_groups_towns():
    from model.precedents import Neighbour

    mem = PrecedentMemory(8, PrecedentConfig(temperature=0.03))

    votes = mem.vote([Neighbour(Precedent("1", "health"), 0.97), Neighbour(Precedent("2", "education"), 0.93)])
    assert abs(sum(votes.values()) - 1) < 1e-9 and votes["health"] > 0.75
    towns = mem.vote([Neighbour(Precedent("1", "meilin"), 0.95), Neighbour(Precedent("2", "liuxi"), 0.95)],
                     group=lambda c: "locality" if c in ("meilin", "liuxi") else c)
    assert towns == {"locality": 1.0}
    assert mem.vote([]) == {}


def test_mix_moves_the_lead_by_the_weight_and_only_then():
    probs = {"health": 0.6, "education": 0.3, "transport": 0.1}
    vote = {"education": 1.0}
    strong = PrecedentMemory(8, PrecedentConfig(weight=0.2)).mix(probs, vote)
    assert max(strong, key=strong.get) == "education" and abs(sum(strong.values()) - 1) < 1e-9
    assert PrecedentMemory(8, PrecedentConfig(weight=0.0)).mix(probs, vote) == probs
    weak = PrecedentMemory(8, PrecedentConfig(weight=0.05)).mix(probs, vote)
    assert max(weak, key=weak.get) == "health" and weak["education"] > probs["education"]
    # a department the precedents name but the lists did not score joins the distribution
    added = PrecedentMemory(8, PrecedentConfig(weight=0.5)).mix(probs, {"taxation": 1.0})
    assert "taxation" in added and added["taxation"] > 0.01
    # a vote for the locality is shared among the towns as the lists share it
    g = lambda c: "locality" if c in ("meilin", "liuxi") else c  # noqa: E731
    town = PrecedentMemory(8, PrecedentConfig(weight=0.5)).mix({"meilin": 0.3, "liuxi": 0.1, "health": 0.6}, {"locality": 1.0}, g)
    assert town["meilin"] > town["liuxi"] and town["meilin"] > town["health"]


def test_a_vote_that_agrees_never_lowers_the_lead_it_agrees_with():
    """A sure lead with a long tail (the lists score every department): a unanimous vote for it raises it, a vote for
    another department lowers it (the vote's floor must not flatten the router's own distribution)."""
    probs = {"health": 0.93, **{f"dept{i}": 0.07 / 38 for i in range(38)}}
    mem = PrecedentMemory(8, PrecedentConfig(weight=0.2))
    assert mem.mix(probs, {"health": 1.0})["health"] > probs["health"]
    assert mem.mix(probs, {"health": 0.8, "dept1": 0.2})["health"] > probs["health"]
    assert mem.mix(probs, {"dept1": 1.0})["health"] < probs["health"]


# ------------------------------------------------------------------------------------------- router
TEXT = "我们单位拖欠了三个月工资一直不发，老板也联系不上"


def with_memory(router, precedents, vectors, **cfg):
    import copy

    r = copy.copy(router)
    r.precedents = PrecedentMemory(vectors.shape[1], PrecedentConfig(**cfg))
    r.precedents.add(precedents, vectors)
    return r


def test_a_similar_settled_ticket_moves_the_lead_and_is_cited(router):
    t = Ticket(content=TEXT)
    before = router.route(t)
    assert before.lead.code == "human_resources" and not any(e.type == "precedent" for e in before.evidence)
    vec = router.query_vectors([t])
    r = with_memory(router, [Precedent("41", "public_security", co=("human_resources",), text="老板拖欠工资后跑路了，已报警")],
                    vec, weight=0.5)
    after = r.route(t)
    assert after.lead.code == "public_security", after.candidates
    assert before.lists_lead == after.lists_lead == "human_resources"  # the lists' own lead: precedents do not move it
    assert "human_resources" in [c.code for c in after.co]  # the settled ticket's co-handlers come with its lead
    ev = [e for e in after.evidence if e.type == "precedent"]
    assert ev and ev[0].item_id == "ticket:41" and ev[0].department == "public_security" and ev[0].score > 0.99
    assert "相似工单 #41" in ev[0].item and "经裁定" in ev[0].item
    # the same ticket's own decision does not vote on itself; an unrelated precedent does not vote at all
    assert r.route(Ticket(id="41", content=TEXT)).lead.code == "human_resources"
    other = with_memory(router, [Precedent("42", "public_security")], router.query_vectors([Ticket(content="小区路灯坏了一个月没人修")]),
                        weight=0.5)
    s = other.route(t)
    assert s.lead.code == "human_resources" and s.model_dump() == before.model_dump()


def test_a_matched_joint_handling_rule_still_decides(router):
    t = Ticket(content="小区里有人私搭乱建，在楼顶违章搭建了一个大棚子")
    before = router.route(t)
    assert any(e.type == "rule" for e in before.evidence)
    other = next(c for c in ("health", "education", "taxation") if c != before.lead.code)
    r = with_memory(router, [Precedent("9", other)], router.query_vectors([t]), weight=0.9)
    assert r.route(t).lead.code == before.lead.code


def test_a_settled_dispute_is_not_sent_back_to_arbitration(router):
    """A disputed rule's matter settled by an arbitration decision on a near-identical ticket (cosine >= 0.95): the
    decision names lead and co, DISPUTED_BOUNDARY is not raised; a dispatcher's override, a merely similar decision
    (0.93) or settles_dispute > 1 leave the rule deciding and the ticket flagged."""
    t = Ticket(content="楼上邻居装修噪音扰民，物业也不管")
    before = router.route(t)
    codes = lambda s: [r.code for r in s.reasons]  # noqa: E731
    rule_lead = before.lead.code
    assert "DISPUTED_BOUNDARY" in codes(before) and any(e.type == "rule" for e in before.evidence)
    settled_lead = "housing_construction" if rule_lead != "housing_construction" else "urban_management"
    vec = router.query_vectors([t])
    decided = Precedent("77", settled_lead, co=("locality",), text="装修噪音扰民", source="decision")

    s = with_memory(router, [decided], vec).route(t)  # the default knobs
    assert s.lead.code == settled_lead and "DISPUTED_BOUNDARY" not in codes(s)
    # settled: the decision dominates the distribution (no LOW_CONFIDENCE), but a dispatcher still looks
    assert s.confidence >= 0.5 and s.candidates[0].code == settled_lead and "LOW_CONFIDENCE" not in codes(s)
    assert not s.auto_dispatch and not s.needs_arbitration, s.reasons
    assert [c.kind for c in s.co] == ["locality"]
    assert any(e.type == "rule" for e in s.evidence) and any(e.item_id == "ticket:77" for e in s.evidence)

    overridden = dataclasses.replace(decided, source="override")
    s = with_memory(router, [overridden], vec).route(t)
    assert s.lead.code == rule_lead and "DISPUTED_BOUNDARY" in codes(s)

    q = vec[0] / np.linalg.norm(vec[0])
    orth = np.random.default_rng(0).normal(size=q.shape).astype(np.float32)
    orth -= (orth @ q) * q
    orth /= np.linalg.norm(orth)
    near = (0.93 * q + np.sqrt(1 - 0.93 ** 2) * orth)[None].astype(np.float32)
    s = with_memory(router, [decided], near).route(t)
    assert s.lead.code == rule_lead and "DISPUTED_BOUNDARY" in codes(s)
    assert any(e.item_id == "ticket:77" for e in s.evidence)  # still similar enough to be cited

    s = with_memory(router, [decided], vec, settles_dispute=1.01).route(t)
    assert s.lead.code == rule_lead and "DISPUTED_BOUNDARY" in codes(s)


def test_rule_record_counts_decisions_against_the_rule_not_overrides():
    mem = PrecedentMemory(8)
    town = lambda c: "locality" if c in ("meilin", "xinhua") else c  # noqa: E731
    mem.add([Precedent("1", "meilin", rule="r1"), Precedent("2", "xinhua", rule="r1"), Precedent("3", "urban_management", rule="r1"),
             Precedent("4", "health", rule="r1", source="override"), Precedent("5", "health", rule="r2"), Precedent("6", "health")],
            np.stack([basis(i) for i in range(6)]))
    rec = mem.rule_record("r1", "urban_management", town)
    assert [p.id for p in rec.overruled] == ["1", "2"] and [p.id for p in rec.upheld] == ["3"]  # the override is not counted
    assert rec.contested(2) and not rec.contested(3) and not rec.contested(0)
    assert mem.rules() == ["r1", "r2"] and mem.rule_record("r9", "health").overruled == []
    mem.remove(["1"])  # a withdrawn precedent no longer counts; upheld as often as overruled is not contested
    rec = mem.rule_record("r1", "urban_management", town)
    assert len(rec.overruled) == 1 and not rec.contested(1)
    mem.remove(["5"])
    assert mem.rules() == ["r1"]


BUILD = ["小区里有人私搭乱建，在楼顶违章搭建了一个大棚子", "有住户在小区绿地上私搭乱建围了个院子",
         "我们楼顶被人违章搭建了彩钢房，一直没人来拆"]


def test_a_rule_the_arbitration_group_keeps_overruling_is_disputed_until_clarified(router):
    """Two decisions naming another lead than a (not disputed) rule's, on tickets it assigned: the rule's next ticket
    raises DISPUTED_BOUNDARY saying what was decided, and does not go out unchecked. One overrule, as many upheld,
    dispatchers' overrides or contest_rule=0 leave the rule deciding as before; a near-identical decision settles it."""
    t = Ticket(content=BUILD[2], address="西门街15号")  # a place: the rule's co-handling town is settled, it may go out
    before = router.route(t)
    rule = next(e.item_id[5:] for e in before.evidence if e.type == "rule")
    assert before.auto_dispatch and not before.reasons and before.lead.code == "urban_management"
    far = np.random.default_rng(1).normal(size=(4, router.index.encoder.dim)).astype(np.float32)  # not similar: no vote
    far /= np.linalg.norm(far, axis=1, keepdims=True)
    over = [Precedent("11", "meilin", rule=rule), Precedent("12", "xinhua", co=("urban_management",), rule=rule)]
    codes = lambda s: [r.code for r in s.reasons]  # noqa: E731

    s = with_memory(router, over, far[:2]).route(t)
    assert s.lead.code == "urban_management" and codes(s) == ["DISPUTED_BOUNDARY"], s.reasons
    assert s.needs_arbitration and not s.auto_dispatch
    msg = s.reasons[0].message
    assert "裁定小组已2次改判" in msg and "属地街道（镇）2次" in msg and "#11" in msg and "#12" in msg and "维持0次" in msg

    unchanged = lambda r: r.route(t).model_dump() == before.model_dump()  # noqa: E731
    assert unchanged(with_memory(router, over[:1], far[:1]))
    upheld = [Precedent("13", "urban_management", rule=rule), Precedent("14", "urban_management", rule=rule)]
    assert unchanged(with_memory(router, over + upheld, far))
    assert unchanged(with_memory(router, [dataclasses.replace(p, source="override") for p in over], far[:2]))
    assert unchanged(with_memory(router, over, far[:2], contest_rule=0))
    assert unchanged(with_memory(router, [dataclasses.replace(p, rule="noise-renovation") for p in over], far[:2]))

    # the group decided a near-identical ticket: settled (its lead, not sent back), like a disputed rule in the lists
    vec = router.query_vectors([t])
    s = with_memory(router, over + [Precedent("15", "xinhua", rule=rule)], np.concatenate([far[:2], vec])).route(t)
    assert s.lead.kind == "locality" and "DISPUTED_BOUNDARY" not in codes(s) and not s.auto_dispatch


# ------------------------------------------------------------------------------------------ service
WAGES = {"content": TEXT}
LAMP = {"content": "小区门口的路灯坏了一个多月了，晚上黑漆漆的，老人孩子出门很不安全"}


@pytest.mark.parametrize("kind", DB_KINDS)
def test_decisions_and_overrides_become_precedents_in_the_service(router, tmp_path, kind):
    from dbutil import database_url
    from test_api import h, make_client

    url, cleanup = database_url(kind, tmp_path)
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    c1, k1 = make_client(url, tmp_path / "a", router, precedent_weight=0.5)
    c2, k2 = make_client(url, tmp_path / "b", router, precedent_weight=0.5, precedent_sync_seconds=0)
    d, a = h(k1["dispatcher"]), h(k1["arbitrator"])

    def lead(client, key, body):
        r = client.post("/api/v1/route", json=body, headers=key)
        assert r.status_code == 200, r.text
        s = r.json()
        return s["lead"]["code"], [e for e in s["evidence"] if e["type"] == "precedent"]

    try:
        assert lead(c1, d, WAGES) == ("human_resources", [])
        # a dispatcher's override is a precedent until the department returns the ticket (then none is left)
        before = lead(c1, d, LAMP)[0]
        other = "health" if before != "health" else "civil_affairs"
        lamp = c1.post("/api/v1/tickets", json=LAMP, headers=d).json()
        assert c1.post(f"/api/v1/tickets/{lamp['id']}/dispatch", json={"lead": other}, headers=d).status_code == 200
        code, ev = lead(c1, d, LAMP)
        assert code == other and "经派单员改派" in ev[0]["item"]
        assert c1.post(f"/api/v1/tickets/{lamp['id']}/return", json={"reason": "不属于本单位职责"}, headers=d).status_code == 200
        assert lead(c1, d, LAMP) == (before, []) and len(c1.app.state.router.precedents) == 0

        # an arbitration decision
        t = c1.post("/api/v1/tickets", json=WAGES, headers=d).json()
        assert c1.post(f"/api/v1/tickets/{t['id']}/escalate", json={"reason": "老板失联，可能涉嫌拒不支付劳动报酬罪"},
                       headers=d).status_code == 200
        assert c1.post(f"/api/v1/arbitration/{t['id']}/claim", headers=a).status_code == 200
        r = c1.post(f"/api/v1/arbitration/{t['id']}/decision", headers=a,
                    json={"lead": "public_security", "rationale": "老板失联，按涉嫌拒不支付劳动报酬罪移送公安"})
        assert r.status_code == 200, r.text
        code, ev = lead(c1, d, WAGES)  # at once, in the process that took the decision
        assert code == "public_security" and ev[0]["item_id"] == f"ticket:{t['id']}" and "经裁定" in ev[0]["item"]
        assert lead(c2, h(k2["dispatcher"]), WAGES)[0] == "public_security"  # another process, from the database
        assert lead(c1, d, LAMP)[1] == []  # an unrelated ticket: no precedent

        # the workbench's similar past decisions: the nearest decided ticket first, with its similarity
        t2 = c1.post("/api/v1/tickets", json={"content": "单位拖欠三个月工资不发，老板现在联系不上了"}, headers=d).json()
        sim = c1.get(f"/api/v1/arbitration/{t2['id']}/similar", headers=a).json()
        assert sim[0]["ticket_id"] == t["id"] and sim[0]["similarity"] > 0.9 and sim[0]["lead"] == "public_security"
        assert sim[0]["rationale"].startswith("老板失联") and len(sim) == 1
        assert c1.get(f"/api/v1/arbitration/{t['id']}/similar", headers=a).json() == []  # not its own
        lamp_sim = c1.get(f"/api/v1/arbitration/{lamp['id']}/similar", headers=a).json()
        assert all(x["similarity"] is None for x in lamp_sim), lamp_sim

        # a restart reads the decisions from the database (the vectors from the cache beside it)
        assert list((tmp_path / "a" / "precedents").glob("vectors-*.npz"))
        c3, k3 = make_client(url, tmp_path / "a", router, precedent_weight=0.5)
        try:
            assert lead(c3, h(k3["dispatcher"]), WAGES)[0] == "public_security"
            assert len(c3.app.state.router.precedents) == 1
        finally:
            c3.app.state.store.dispose()
        # precedents off: the same service suggests as before
        c4, k4 = make_client(url, tmp_path / "b", router, precedent_weight=0.0)
        try:
            assert lead(c4, h(k4["dispatcher"]), WAGES) == ("human_resources", [])
        finally:
            c4.app.state.store.dispose()
    finally:
        c1.app.state.store.dispose()
        c2.app.state.store.dispose()
        cleanup()


def test_a_damaged_vector_cache_is_rebuilt_not_fatal(router, tmp_path):
    """The vector cache is only a cache: an unreadable or foreign file costs the embedding, not the precedents."""
    from test_api import h, make_client

    c, k = make_client(f"sqlite:///{tmp_path / 'db.sqlite3'}", tmp_path, router, precedent_weight=0.5)
    try:
        d = h(k["dispatcher"])
        t = c.post("/api/v1/tickets", json=LAMP, headers=d).json()
        assert c.post(f"/api/v1/tickets/{t['id']}/dispatch", json={"lead": "health"}, headers=d).status_code == 200
        assert c.post("/api/v1/route", json=LAMP, headers=d).json()["lead"]["code"] == "health"
        (cache,) = (tmp_path / "precedents").glob("vectors-*.npz")
        for damage in (b"not a zip file", None):
            if damage is None:  # readable, but vectors of another size
                np.savez(cache, keys=np.asarray([k for k in np.load(cache)["keys"]]), vectors=np.ones((1, 3), np.float32))
            else:
                cache.write_bytes(damage)
            again, k2 = make_client(f"sqlite:///{tmp_path / 'db.sqlite3'}", tmp_path, router, precedent_weight=0.5)
            try:
                r = again.post("/api/v1/route", json=LAMP, headers=h(k2["dispatcher"])).json()
                assert r["lead"]["code"] == "health" and any(e["type"] == "precedent" for e in r["evidence"])
            finally:
                again.app.state.store.dispose()
    finally:
        c.app.state.store.dispose()


def test_a_decision_naming_a_department_no_longer_in_the_lists_is_not_used(router, tmp_path):
    """Lists change: a decision whose lead has left the roster is skipped (logged), never a failed suggestion."""
    from test_api import h, make_client

    c, k = make_client(f"sqlite:///{tmp_path / 'db.sqlite3'}", tmp_path, router, precedent_weight=0.5,
                       precedent_sync_seconds=0)
    store = c.app.state.store
    try:
        d, a = h(k["dispatcher"]), h(k["arbitrator"])
        t = c.post("/api/v1/tickets", json=LAMP, headers=d).json()
        assert c.post(f"/api/v1/tickets/{t['id']}/escalate", json={"reason": "边界不清"}, headers=d).status_code == 200
        assert c.post(f"/api/v1/arbitration/{t['id']}/claim", headers=a).status_code == 200
        store.decide(t["id"], "street_lights_bureau", ["health", "retired_office"], "当时由路灯所负责", actor="old#1", admin=True)
        r = c.post("/api/v1/route", json=LAMP, headers=d)
        assert r.status_code == 200 and not [e for e in r.json()["evidence"] if e["type"] == "precedent"]
        assert len(c.app.state.router.precedents) == 0
    finally:
        store.dispose()


@pytest.mark.parametrize("kind", DB_KINDS)
def test_decisions_overruling_a_rule_flag_its_next_tickets_and_are_listed(router, tmp_path, kind):
    """In the service: the rule a decided ticket's stored suggestion cited is tallied; after two decisions naming a
    town instead of the rule's lead, a third ticket under the rule raises DISPUTED_BOUNDARY, and
    /arbitration/rules lists the rule as contested with the tickets and the leads decided."""
    from dbutil import database_url
    from test_api import h, make_client

    url, cleanup = database_url(kind, tmp_path)
    c, k = make_client(url, tmp_path, router)
    d, a = h(k["dispatcher"]), h(k["arbitrator"])
    try:
        third = c.post("/api/v1/route", json={"content": BUILD[2], "address": "西门街15号"}, headers=d).json()
        assert third["auto_dispatch"] and not third["reasons"]
        assert c.get("/api/v1/arbitration/rules", headers=a).json() == []
        ids = []
        for text, town in zip(BUILD[:2], ("meilin", "xinhua")):
            t = c.post("/api/v1/tickets", json={"content": text}, headers=d).json()
            assert any(e["item_id"] == "rule:illegal-construction-urban" for e in t["suggestion"]["evidence"])
            assert c.post(f"/api/v1/tickets/{t['id']}/escalate", json={"reason": "小区内违建应由属地牵头"}, headers=d).status_code == 200
            assert c.post(f"/api/v1/arbitration/{t['id']}/claim", headers=a).status_code == 200
            r = c.post(f"/api/v1/arbitration/{t['id']}/decision", headers=a,
                       json={"lead": town, "co": ["urban_management"], "rationale": "小区内违建由属地街道牵头、城管协办"})
            assert r.status_code == 200, r.text
            ids.append(t["id"])
            s = c.post("/api/v1/route", json={"content": BUILD[2], "address": "西门街15号"}, headers=d).json()
            flagged = [x for x in s["reasons"] if x["code"] == "DISPUTED_BOUNDARY"]
            assert bool(flagged) == (len(ids) == 2), s["reasons"]  # one overrule is not enough
        assert s["needs_arbitration"] and not s["auto_dispatch"] and "裁定小组已2次改判" in flagged[0]["message"]
        (out,) = c.get("/api/v1/arbitration/rules", headers=a).json()
        assert out["rule"] == "illegal-construction-urban" and out["contested"] and out["lead"] == "urban_management"
        assert (out["overruled"], out["upheld"], out["decided"], out["tickets"]) == (2, 0, {"locality": 2}, ids)
        assert c.get("/api/v1/arbitration/rules", headers=d).status_code == 403  # the arbitration group's view
    finally:
        c.app.state.store.dispose()
        cleanup()


@pytest.mark.parametrize("kind", DB_KINDS)
def test_after_start_up_only_tickets_with_new_events_are_re_read(router, tmp_path, kind, monkeypatch):
    """A year of settled tickets is not re-read after each new one: after the start-up read, a sync reads the settled
    state of the tickets with events since the last read only (and of those a few events before it, so an event
    that committed late with a lower id is still seen)."""
    import serving.precedents as sp
    from dbutil import database_url
    from test_api import h, make_client

    url, cleanup = database_url(kind, tmp_path)
    c, k = make_client(url, tmp_path, router, precedent_weight=0.5, precedent_sync_seconds=0)
    store, d = c.app.state.store, h(k["dispatcher"])
    calls = []
    real = store.settled_rows
    monkeypatch.setattr(store, "settled_rows", lambda ids=None: calls.append(None if ids is None else set(ids)) or real(ids))
    monkeypatch.setattr(sp, "OVERLAP", 0)
    try:
        ids = [c.post("/api/v1/tickets", json={"content": f"{LAMP['content']}（第{i}次）"}, headers=d).json()["id"] for i in range(3)]
        svc = c.app.state.precedents
        svc.sync(force=True)
        assert calls[-1] is None and len(c.app.state.router.precedents) == 0  # start-up: everything
        assert c.post(f"/api/v1/tickets/{ids[1]}/dispatch", json={"lead": "health"}, headers=d).status_code == 200
        r = c.post("/api/v1/route", json=LAMP, headers=d).json()
        assert r["lead"]["code"] == "health" and calls[-1] == {ids[1]}, calls  # only the ticket that changed
        assert [p.precedent.id for p in c.app.state.router.precedents.neighbours(router.query_vectors([Ticket(**LAMP)])[0])] == [str(ids[1])]
        # an event that committed after a read with a lower id than that read saw: the overlap picks it up
        assert c.post(f"/api/v1/tickets/{ids[2]}/dispatch", json={"lead": "education"}, headers=d).status_code == 200
        svc._version = store.events_version()  # as if the read had already covered it
        svc.invalidate()
        c.post("/api/v1/tickets", json={"content": "另一张无关的工单：楼道灯不亮"}, headers=d)
        svc.sync()
        assert len(c.app.state.router.precedents) == 1  # missed without the overlap
        monkeypatch.setattr(sp, "OVERLAP", 200)
        c.post("/api/v1/tickets", json={"content": "又一张无关的工单：井盖松动"}, headers=d)
        svc.sync()
        assert len(c.app.state.router.precedents) == 2 and str(ids[2]) in c.app.state.router.precedents
    finally:
        store.dispose()
        cleanup()
