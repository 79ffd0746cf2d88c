"""rramsim tables in other simulators: ``rramsim.interop.aihwkit`` (IBM aihwkit noise model)."""
