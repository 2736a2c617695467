"""Sign-up, log-in and log-out (stub: the portal issue fills it)."""

from flask import Blueprint

bp = Blueprint("auth", __name__)


def init_app(app) -> None:
    pass
