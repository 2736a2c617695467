"""GET /v1/cards and /v1/cards/{id}: the program's stamp cards, each with its rewards."""

from __future__ import annotations

from portal.api.errors import not_found
from portal.api.pagination import list_of, list_query, page
from portal.api.registry import ApiCall, endpoint, schema_ref
from portal.domain import catalog
from portal.models import Card, Reward, isoformat

REWARD = schema_ref("Reward", {
    "type": "object",
    "required": ["id", "object", "name", "stamps_cost"],
    "properties": {
        "id": {"type": "string", "pattern": "^rwd_"},
        "object": {"type": "string", "const": "reward"},
        "name": {"type": "string"},
        "stamps_cost": {"type": "integer", "minimum": 1},
    },
})

CARD = schema_ref("Card", {
    "type": "object",
    "required": ["id", "object", "name", "description", "rewards", "created_at"],
    "properties": {
        "id": {"type": "string", "pattern": "^card_"},
        "object": {"type": "string", "const": "card"},
        "name": {"type": "string"},
        "description": {"type": "string"},
        "rewards": {"type": "array", "items": REWARD},
        "created_at": {"type": "string", "format": "date-time"},
    },
})


def reward_json(reward: Reward) -> dict:
    """A reward as the API shows it."""
    return {"id": reward.public_id, "object": "reward", "name": reward.name, "stamps_cost": reward.stamps_cost}


def card_json(card: Card) -> dict:
    """A card with its rewards as the API shows it."""
    rewards = getattr(card, "reward_list", None)
    if rewards is None:
        rewards = list(card.rewards.order_by(Reward.stamps_cost, Reward.id))
    return {
        "id": card.public_id,
        "object": "card",
        "name": card.name,
        "description": card.description,
        "rewards": [reward_json(r) for r in rewards],
        "created_at": isoformat(card.created_at),
    }


@endpoint("GET", "/cards", scope="card_read", summary="List stamp cards", query=list_query(),
          response=list_of(CARD))
def list_cards(call: ApiCall):
    """The program's stamp cards, newest first, each with its rewards (cheapest first).
    Cards are shared by test and prod mode."""
    return page(Card.select().where(Card.partner == call.partner_id), Card, call.query, serialize=card_json)


@endpoint("GET", "/cards/<card_id>", scope="card_read", summary="Get a stamp card", response=CARD,
          errors={404: "No such card"})
def get_card(call: ApiCall, card_id):
    """One stamp card of the program with its rewards."""
    card = catalog.owned_card(call.partner_id, card_id)
    if card is None:
        raise not_found("card")
    return card_json(card)
