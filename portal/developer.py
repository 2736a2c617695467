"""The Developer area: applications, App Secrets and API keys (stub)."""

from flask import Blueprint

bp = Blueprint("developer", __name__)
