"""rramsim.models."""
