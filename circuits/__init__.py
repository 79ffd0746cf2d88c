"""rramsim.circuits."""
