"""Typed results and list iteration, without a server: what a partner's code relies on."""

from __future__ import annotations

import pytest
from loyalty_sdk import Card, LoyaltyObject, Member, StampBalances
from loyalty_sdk.client import ListIterator


def test_attributes_are_the_json_fields_and_raw_keeps_the_json():
    data = {"id": "mem_1", "object": "member", "email": "ana@example.com", "future_field": 7}
    member = Member(data)
    assert member.id == "mem_1" and member.email == "ana@example.com"
    assert member.future_field == 7  # a field added by a newer server is reachable at once
    assert member.phone is None  # documented but absent
    assert member.raw == data and member["email"] == "ana@example.com" and "email" in member
    with pytest.raises(AttributeError, match="no field 'emial'"):
        member.emial  # noqa: B018


def test_objects_are_read_only_and_to_dict_is_a_copy():
    card = Card({"id": "card_1", "rewards": [{"id": "rwd_1", "stamps_cost": 3}]})
    with pytest.raises(AttributeError, match="read-only"):
        card.name = "x"
    copy = card.to_dict()
    copy["rewards"][0]["stamps_cost"] = 99
    assert card.rewards[0].stamps_cost == 3
    assert type(card.rewards[0]).__name__ == "Reward"


def test_stamp_balances_pick_a_card():
    balances = StampBalances({"object": "stamp_balances", "member_id": "mem_1",
                              "data": [{"card_id": "card_a", "balance": 4}, {"card_id": "card_b", "balance": 0}]})
    assert balances.for_card("card_a") == 4 and balances.for_card("card_zzz") == 0
    assert [b.card_id for b in balances] == ["card_a", "card_b"] and len(balances) == 2


def test_list_iterator_follows_starting_after_until_has_more_is_false():
    pages = {None: {"data": [{"id": "a"}, {"id": "b"}], "has_more": True},
             "b": {"data": [{"id": "c"}], "has_more": False}}
    asked = []

    def fetch(params):
        asked.append(dict(params))
        return pages[params.get("starting_after")]

    assert [o.id for o in ListIterator(fetch, LoyaltyObject, {"status": "pending"}, limit=None, page_size=2)] == [
        "a", "b", "c"]
    assert asked == [{"status": "pending", "limit": 2}, {"status": "pending", "limit": 2, "starting_after": "b"}]


def test_list_iterator_stops_at_limit_without_fetching_more():
    asked = []

    def fetch(params):
        asked.append(params)
        return {"data": [{"id": str(n)} for n in range(params["limit"])], "has_more": True}

    assert len(list(ListIterator(fetch, LoyaltyObject, {}, limit=3, page_size=100))) == 3
    assert asked == [{"limit": 3}]
    assert list(ListIterator(fetch, LoyaltyObject, {}, limit=0, page_size=10)) == []
    assert len(asked) == 1


@pytest.mark.parametrize("options", [{"page_size": 0}, {"page_size": 101}, {"limit": -1}])
def test_list_iterator_refuses_bad_sizes(options):
    with pytest.raises(ValueError):
        ListIterator(lambda p: {}, LoyaltyObject, {}, **{"limit": None, "page_size": 20, **options})


def test_a_printed_object_shows_plain_lists_and_counts_nested_ones():
    from loyalty_sdk.objects import Card, KeyInfo

    key = KeyInfo({"app_id": "app_x", "mode": "test", "scopes": ["stamps_read"], "name": "n", "expires_at": None})
    assert "scopes=['stamps_read']" in repr(key)
    card = Card({"id": "card_1", "name": "Coffee", "rewards": [{"id": "rwd_1"}, {"id": "rwd_2"}]})
    assert "rewards=[2 items]" in repr(card)
