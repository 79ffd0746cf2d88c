"""rramsim.cosim."""
