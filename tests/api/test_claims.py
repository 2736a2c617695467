"""Claims through the signed API: filing, reading, listing, and deciding exactly once."""

from __future__ import annotations

import pytest

from tests.api.conftest import create_member
from tests.api.helpers import SignedClient, add_key, create_credentials, error_of


def file_claim(api, **fields):
    return api.post("/v1/claims", json=fields)


@pytest.fixture
def cashback_claim(api, member) -> dict:
    res = file_claim(api, member_id=member, amount=450, reference="receipt-12", note="card forgotten")
    assert res.status_code == 201, res.get_json()
    return res.get_json()


def test_filing_a_stamps_claim_makes_it_pending(api, program, member):
    res = file_claim(api, member_id=member, card_id=program["card"], count=2, reference="receipt-1")
    assert res.status_code == 201
    claim = res.get_json()
    assert claim["id"].startswith("clm_")
    assert (claim["status"], claim["kind"], claim["card_id"], claim["count"], claim["amount"]) == (
        "pending", "stamps", program["card"], 2, None)
    assert claim["member_id"] == member and claim["entry_id"] is None and claim["decided_at"] is None


@pytest.mark.sqlite_only  # input validation
def test_the_kind_is_inferred_and_must_match_the_fields(api, program, member):
    assert file_claim(api, member_id=member, amount=5).get_json()["kind"] == "cashback"
    res = file_claim(api, member_id=member, kind="stamps", card_id=program["card"])
    assert res.status_code == 400 and error_of(res)["param"] == "count"
    res = file_claim(api, member_id=member, kind="cashback", amount=5, count=2)
    assert res.status_code == 400 and error_of(res)["param"] == "count"
    res = file_claim(api, member_id=member, card_id=program["card"], count=1, amount=5)
    assert res.status_code == 400 and error_of(res)["param"] == "amount"
    res = file_claim(api, member_id=member, kind="points", amount=5)
    assert res.status_code == 400 and error_of(res)["param"] == "kind"
    res = file_claim(api, amount=5)
    assert res.status_code == 400 and error_of(res)["param"] == "member_id"


def test_approving_applies_the_claim_to_the_ledger(api, member, cashback_claim):
    res = api.post(f"/v1/claims/{cashback_claim['id']}/approve")
    assert res.status_code == 200
    claim = res.get_json()
    assert claim["status"] == "approved" and claim["entry_id"].startswith("txn_") and claim["decided_at"]
    entry = api.get(f"/v1/members/{member}/cashback/history").get_json()["data"][0]
    assert (entry["id"], entry["amount"], entry["source"], entry["reference"]) == (
        claim["entry_id"], 450, "claim", "receipt-12")


def test_approving_a_stamps_claim_adds_the_stamps(api, program, member):
    claim = file_claim(api, member_id=member, card_id=program["card"], count=6).get_json()
    api.post(f"/v1/claims/{claim['id']}/approve")
    assert api.get(f"/v1/members/{member}/stamps").get_json()["data"][0]["balance"] == 6


def test_a_claim_approved_twice_is_409_and_credited_once(api, member, cashback_claim):
    assert api.post(f"/v1/claims/{cashback_claim['id']}/approve").status_code == 200
    res = api.post(f"/v1/claims/{cashback_claim['id']}/approve")
    assert res.status_code == 409
    assert (error_of(res)["type"], error_of(res)["code"]) == ("conflict", "claim_not_pending")
    assert api.get(f"/v1/members/{member}/cashback").get_json()["balance"] == 450
    assert len(api.get(f"/v1/members/{member}/cashback/history").get_json()["data"]) == 1


def test_rejecting_records_the_reason_and_then_nothing_more_can_happen(api, member, cashback_claim):
    res = api.post(f"/v1/claims/{cashback_claim['id']}/reject", json={"reason": "no receipt"})
    assert res.status_code == 200
    assert (res.get_json()["status"], res.get_json()["reason"]) == ("rejected", "no receipt")
    for action in ("approve", "reject"):
        res = api.post(f"/v1/claims/{cashback_claim['id']}/{action}")
        assert res.status_code == 409 and error_of(res)["code"] == "claim_not_pending"
    assert api.get(f"/v1/members/{member}/cashback").get_json()["balance"] == 0


def test_a_replayed_approval_answers_like_the_first(api, cashback_claim):
    headers = {"Idempotency-Key": "approve-once"}
    first = api.post(f"/v1/claims/{cashback_claim['id']}/approve", headers=headers)
    again = api.post(f"/v1/claims/{cashback_claim['id']}/approve", headers=headers)
    assert first.status_code == again.status_code == 200
    assert again.headers.get("Idempotent-Replayed") == "true"


def test_claims_are_read_and_listed_with_filters(api, program, member, cashback_claim):
    other_member = create_member(api, "bob@example.com")["id"]
    stamps_claim = file_claim(api, member_id=other_member, card_id=program["card"], count=1).get_json()
    api.post(f"/v1/claims/{cashback_claim['id']}/approve")

    assert api.get(f"/v1/claims/{stamps_claim['id']}").get_json() == stamps_claim
    everything = api.get("/v1/claims").get_json()
    assert [c["id"] for c in everything["data"]] == [stamps_claim["id"], cashback_claim["id"]]
    pending = api.get("/v1/claims?status=pending").get_json()["data"]
    assert [c["id"] for c in pending] == [stamps_claim["id"]]
    mine = api.get(f"/v1/claims?member_id={member}").get_json()["data"]
    assert [c["id"] for c in mine] == [cashback_claim["id"]]
    assert api.get("/v1/claims?member_id=mem_nobody").get_json()["data"] == []
    res = api.get("/v1/claims?status=lost")
    assert res.status_code == 400 and error_of(res)["param"] == "status"


def test_approving_each_pending_claim_while_paging_through_them(api, member):
    """Deciding the claim a page ended on takes it out of the filtered list; the next page
    still continues after it."""
    filed = [file_claim(api, member_id=member, amount=100 + n).get_json()["id"] for n in range(3)]
    seen, after = [], None
    while True:
        page = api.get("/v1/claims?status=pending&limit=1" + (f"&starting_after={after}" if after else ""))
        assert page.status_code == 200, page.get_json()
        page = page.get_json()
        for claim in page["data"]:
            seen.append(claim["id"])
            assert api.post(f"/v1/claims/{claim['id']}/approve").status_code == 200
            after = claim["id"]
        if not page["has_more"]:
            break
    assert seen == filed[::-1]
    assert api.get("/v1/claims?status=pending").get_json()["data"] == []


def test_starting_after_another_partners_or_modes_claim_is_refused(app, client, api, creds, cashback_claim):
    prod = SignedClient(client, add_key(app, creds, mode="prod"))
    other = SignedClient(client, create_credentials(app, business="Other"))
    for signed in (prod, other):
        for query in ("", "status=pending&"):
            res = signed.get(f"/v1/claims?{query}starting_after={cashback_claim['id']}")
            assert res.status_code == 400 and error_of(res)["param"] == "starting_after"


def test_unknown_claims_and_the_other_modes_claims_are_404(app, client, api, creds, cashback_claim):
    assert api.get("/v1/claims/clm_nope").status_code == 404
    assert api.post("/v1/claims/clm_nope/approve").status_code == 404
    prod = SignedClient(client, add_key(app, creds, mode="prod"))
    for res in (prod.get(f"/v1/claims/{cashback_claim['id']}"),
                prod.post(f"/v1/claims/{cashback_claim['id']}/approve"),
                prod.post(f"/v1/claims/{cashback_claim['id']}/reject")):
        assert res.status_code == 404 and error_of(res)["type"] == "not_found"
    assert prod.get("/v1/claims").get_json()["data"] == []
    assert api.get(f"/v1/claims/{cashback_claim['id']}").get_json()["status"] == "pending"


def test_a_claim_for_an_unknown_member_or_card_is_404(api, member):
    res = file_claim(api, member_id="mem_nobody", amount=5)
    assert res.status_code == 404 and error_of(res)["param"] == "member_id"
    res = file_claim(api, member_id=member, card_id="card_nope", count=1)
    assert res.status_code == 404 and error_of(res)["param"] == "card_id"
