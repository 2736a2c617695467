"""The Program area (owners and admins): the cashback currency, the referral reward, and the
stamp cards with their rewards — the configuration both API modes share.

Every form works without JavaScript (a full-page post, then a 303 back to /program) and is
enhanced by htmx, which swaps just the section that changed: the settings form, the card
list, or one card. Changes go through portal.domain.catalog; views parse, call, render.
"""

from __future__ import annotations

from decimal import Decimal

from flask import Blueprint, abort, flash, make_response, render_template, request, url_for
from flask_login import current_user

from portal.domain import DomainError, catalog
from portal.domain.catalog import ProgramSettings
from portal.inputs import AmountError, minor_units
from portal.web import form_errors, is_htmx, render_partial, see_other

bp = Blueprint("program", __name__, url_prefix="/program")

def _partner():
    return current_user.partner


def _user():
    return current_user._get_current_object()


def _form(name: str, default: str = "") -> str:
    """A form field as sent: never cut, so the domain's length rules see what was typed
    (a cut could turn `5` followed by 500 spaces and a `9` into 5). The body limit
    (64 KiB) bounds it."""
    return request.form.get(name, default) or ""


def _card_or_404(card_id: str):
    card = catalog.owned_card(_partner(), card_id)
    if card is None:
        abort(404)
    return card


def _reward_or_404(reward_id: str):
    reward = catalog.owned_reward(_partner(), reward_id)
    if reward is None:
        abort(404)
    return reward


# -- rendering --------------------------------------------------------------------------


def _settings_values(program) -> dict:
    """The settings form's values as stored."""
    kind = program.referral_reward_kind
    return {
        "currency": program.currency,
        "referral_reward_kind": kind,
        "referral_card": program.referral_card.public_id if program.referral_card_id else "",
        "referral_stamps": str(program.referral_amount) if kind == "stamps" else "",
        "referral_cashback": _major_units(program.referral_amount, program.currency) if kind == "cashback" else "",
        "reward_referrer": program.reward_referrer,
        "reward_referee": program.reward_referee,
    }


def _context(**extra) -> dict:
    partner = _partner()
    program = catalog.program_for(partner)
    context = {
        "program": program,
        "cards": catalog.list_cards(partner),
        "currencies": sorted(catalog.CURRENCIES),
        "settings": _settings_values(program),
        "settings_errors": {},
        "new_card": {"name": "", "description": ""},
        "new_card_errors": {},
        "card_errors": {},  # card public id -> {field: message}
        "card_values": {},  # card public id -> values typed into its forms
        "reward_errors": {},  # reward public id (or "new:<card id>") -> {field: message}
        "reward_values": {},
        "format_money": catalog.format_money,
    }
    context.update(extra)
    return context


def _page(status: int = 200, **extra):
    return make_response(render_template("program/index.html", **_context(**extra)), status)


def _settings_oob(context: dict) -> str:
    """The settings section out of band: its referral-card choices follow the card list."""
    return render_template("program/_settings.html", oob=True, **context)


def _respond(partial: str, *, anchor: str = "", status_without_js: int = 200, with_settings: bool = False,
             ok: bool = True, **extra):
    """htmx: the changed section (plus the messages, and the settings when the cards
    changed). Without JavaScript: a 303 back to the page after a success, the page with
    the form's messages otherwise."""
    if is_htmx():
        context = _context(**extra)
        html = render_partial(partial, **context)
        if with_settings:
            html += _settings_oob(context)
        return make_response(html, 200)
    if ok:
        return see_other(url_for("program.index") + anchor)
    return _page(status_without_js, **extra)


# -- the page ---------------------------------------------------------------------------


@bp.get("")
def index():
    """The program: currency and referral reward, then the stamp cards and their rewards."""
    return _page()


@bp.post("/settings")
def save_settings():
    """Save the currency and the referral reward."""
    values = {
        "currency": _form("currency").strip().upper(),
        "referral_reward_kind": _form("referral_reward_kind", "none"),
        "referral_card": _form("referral_card"),
        "referral_stamps": _form("referral_stamps").strip(),
        "referral_cashback": _form("referral_cashback").strip(),
        "reward_referrer": request.form.get("reward_referrer") == "on",
        "reward_referee": request.form.get("reward_referee") == "on",
    }
    kind = values["referral_reward_kind"]
    errors: dict[str, str] = {}
    amount = 0
    if kind == "stamps":
        amount = values["referral_stamps"]
    elif kind == "cashback":
        try:
            amount = _minor_units(values["referral_cashback"], values["currency"])
        except ValueError as exc:
            errors["referral_cashback"] = str(exc)
    if not errors:
        try:
            catalog.update_program(_partner(), ProgramSettings(
                currency=values["currency"], referral_reward_kind=kind, referral_card_id=values["referral_card"],
                referral_amount=amount, reward_referrer=values["reward_referrer"],
                reward_referee=values["reward_referee"]), by=_user())
        except DomainError as exc:
            field = exc.field or "currency"
            if field == "referral_amount":
                field = "referral_stamps" if kind == "stamps" else "referral_cashback"
            errors[field] = exc.message
    if errors:
        return _respond("program/_settings.html", ok=False, status_without_js=422, settings=values,
                        settings_errors=errors)
    flash("Program settings saved.", "success")
    return _respond("program/_settings.html", anchor="#program-settings")


# -- cards ------------------------------------------------------------------------------


@bp.post("/cards")
def create_card():
    """Add a stamp card."""
    values = {"name": _form("name"), "description": _form("description")}
    try:
        card = catalog.create_card(_partner(), values["name"], values["description"], by=_user())
    except DomainError as exc:
        return _respond("program/_cards.html", ok=False, status_without_js=422, new_card=values,
                        new_card_errors=form_errors(exc, "name"))
    flash(f"Card “{card.name}” added. Now give it rewards.", "success")
    return _respond("program/_cards.html", anchor=f"#card-{card.public_id}", with_settings=True)


@bp.post("/cards/<card_id>")
def update_card(card_id):
    """Rename a card or change its description."""
    card = _card_or_404(card_id)
    values = {"name": _form("name"), "description": _form("description")}
    try:
        catalog.update_card(card, values["name"], values["description"], by=_user())
    except DomainError as exc:
        return _card_response(card, ok=False, card_errors={card.public_id: form_errors(exc, "name")},
                              card_values={card.public_id: values})
    flash(f"Card “{card.name}” saved.", "success")
    return _card_response(card, with_settings=True)


@bp.post("/cards/<card_id>/delete")
def delete_card(card_id):
    """Delete a card that no member has used (a used card keeps its history)."""
    card = _card_or_404(card_id)
    try:
        catalog.delete_card(card, by=_user())
    except DomainError as exc:
        return _card_response(card, ok=False, status_without_js=409, card_errors={card.public_id: {"card": exc.message}})
    flash(f"Card “{card.name}” deleted.", "success")
    return _respond("program/_cards.html", anchor="#cards", with_settings=True)


def _card_response(card, *, ok: bool = True, status_without_js: int = 422, with_settings: bool = False, **extra):
    """One card swapped in place for htmx (fetched afresh, with its rewards)."""
    if is_htmx():
        context = _context(**extra)
        fresh = next((c for c in context["cards"] if c.id == card.id), None)
        if fresh is None:  # deleted meanwhile by someone else
            return make_response(render_partial("program/_cards.html", **context), 200,
                                 {"HX-Retarget": "#cards", "HX-Reswap": "outerHTML"})
        html = render_partial("program/_card.html", card=fresh, **context)
        if with_settings:
            html += _settings_oob(context)
        return make_response(html, 200)
    if ok:
        return see_other(url_for("program.index") + f"#card-{card.public_id}")
    return _page(status_without_js, **extra)


# -- rewards ----------------------------------------------------------------------------


@bp.post("/cards/<card_id>/rewards")
def create_reward(card_id):
    """Add a reward to a card, bought with `stamps_cost` of its stamps."""
    card = _card_or_404(card_id)
    values = {"name": _form("name"), "stamps_cost": _form("stamps_cost").strip()}
    try:
        reward = catalog.create_reward(card, values["name"], values["stamps_cost"], by=_user())
    except DomainError as exc:
        key = f"new:{card.public_id}"
        return _card_response(card, ok=False, reward_errors={key: form_errors(exc, "name")},
                              reward_values={key: values})
    flash(f"Reward “{reward.name}” added to {card.name}.", "success")
    return _card_response(card)


@bp.post("/rewards/<reward_id>")
def update_reward(reward_id):
    """Rename a reward or change its price in stamps."""
    reward = _reward_or_404(reward_id)
    values = {"name": _form("name"), "stamps_cost": _form("stamps_cost").strip()}
    try:
        catalog.update_reward(reward, values["name"], values["stamps_cost"], by=_user())
    except DomainError as exc:
        return _card_response(reward.card, ok=False, reward_errors={reward.public_id: form_errors(exc, "name")},
                              reward_values={reward.public_id: values})
    flash(f"Reward “{reward.name}” saved.", "success")
    return _card_response(reward.card)


@bp.post("/rewards/<reward_id>/delete")
def delete_reward(reward_id):
    """Delete a reward nobody has redeemed."""
    reward = _reward_or_404(reward_id)
    try:
        catalog.delete_reward(reward, by=_user())
    except DomainError as exc:
        return _card_response(reward.card, ok=False, status_without_js=409,
                              reward_errors={reward.public_id: {"reward": exc.message}})
    flash(f"Reward “{reward.name}” deleted.", "success")
    return _card_response(reward.card)


# -- money in forms ---------------------------------------------------------------------


def _major_units(minor: int, currency: str) -> str:
    """`250, "EUR"` → `"2.50"`: how the form shows an amount."""
    digits = catalog.minor_unit_digits(currency)
    return f"{Decimal(minor) / (10 ** digits):.{digits}f}"


def _minor_units(text: str, currency: str) -> int:
    """`"2.50"`, EUR → 250. ValueError with a message for the form otherwise (the domain
    then checks the range)."""
    digits = catalog.minor_unit_digits(currency) if currency in catalog.CURRENCIES else 2
    example = "5" if digits == 0 else "5." + "0" * digits
    try:
        value = minor_units(text, digits)
    except AmountError as exc:
        if exc.reason == "too_many_decimals":
            raise ValueError(f"Use at most {digits} decimal places for {currency}." if digits
                             else f"{currency} has no decimal places; enter a whole amount.") from None
        value = 0
    if value <= 0:
        raise ValueError(f"Enter an amount greater than zero, like {example}.")
    if value > catalog.REFERRAL_CASHBACK_MAX:
        raise ValueError(f"Enter at most {catalog.format_money(catalog.REFERRAL_CASHBACK_MAX, currency)}.")
    return value
