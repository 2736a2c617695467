"""The Loyalty Partner Platform SDK (skeleton)."""
