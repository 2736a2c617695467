"""Cards through the signed API: the program's stamp cards with their rewards, shared by
both modes and by no other partner."""

from __future__ import annotations

from tests.api.helpers import SignedClient, add_key, create_credentials, error_of


def test_cards_are_listed_newest_first_with_rewards_cheapest_first(api, program):
    res = api.get("/v1/cards")
    assert res.status_code == 200
    body = res.get_json()
    assert body["object"] == "list" and body["has_more"] is False
    assert [c["id"] for c in body["data"]] == [program["lunch"], program["card"]]
    coffee = body["data"][1]
    assert (coffee["object"], coffee["name"], coffee["description"]) == ("card", "Coffee card", "One stamp per coffee")
    assert coffee["rewards"] == [
        {"id": program["cookie"], "object": "reward", "name": "Cookie", "stamps_cost": 5},
        {"id": program["free_coffee"], "object": "reward", "name": "Free coffee", "stamps_cost": 10},
    ]
    assert coffee["created_at"].endswith("Z")


def test_cards_page_with_limit_and_starting_after(api, program):
    first = api.get("/v1/cards?limit=1").get_json()
    assert first["has_more"] and [c["id"] for c in first["data"]] == [program["lunch"]]
    rest = api.get(f"/v1/cards?limit=1&starting_after={program['lunch']}").get_json()
    assert not rest["has_more"] and [c["id"] for c in rest["data"]] == [program["card"]]
    res = api.get("/v1/cards?limit=0")
    assert res.status_code == 400 and error_of(res)["param"] == "limit"


def test_one_card_by_id(api, program):
    res = api.get(f"/v1/cards/{program['card']}")
    assert res.status_code == 200
    assert [r["stamps_cost"] for r in res.get_json()["rewards"]] == [5, 10]


def test_an_unknown_card_is_404(api, program):
    res = api.get("/v1/cards/card_nope")
    assert res.status_code == 404
    assert (error_of(res)["type"], error_of(res)["code"]) == ("not_found", "resource_missing")


def test_the_prod_key_sees_the_same_program(app, client, creds, program):
    prod = SignedClient(client, add_key(app, creds, mode="prod"))
    assert len(prod.get("/v1/cards").get_json()["data"]) == 2
    assert prod.get(f"/v1/cards/{program['card']}").status_code == 200


def test_another_partner_sees_none_of_our_cards(app, client, program):
    other = SignedClient(client, create_credentials(app, business="Other Shop"))
    assert other.get("/v1/cards").get_json()["data"] == []
    assert other.get(f"/v1/cards/{program['card']}").status_code == 404


def test_card_read_is_required(app, client, creds, program):
    no_scope = SignedClient(client, add_key(app, creds, scopes=["stamps_read"]))
    res = no_scope.get("/v1/cards")
    assert res.status_code == 403 and error_of(res)["required_scope"] == "card_read"
