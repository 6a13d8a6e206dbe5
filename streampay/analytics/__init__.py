"""The read side of the money: rollups folded from the usage outbox, dashboards, CSV series."""
