"""Portal web plumbing shared by the portal blueprints (stub: the portal issue fills it)."""


def init_app(app) -> None:
    pass
