"""The /v1 loyalty API blueprint (stub: the API issue fills it)."""

from flask import Blueprint

bp = Blueprint("api", __name__, url_prefix="/v1")
