"""The whole loop on synthetic data: `shipyard demo`."""

__all__: list[str] = []
