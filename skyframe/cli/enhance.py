"""``skyframe enhance`` and ``skyframe models`` (owned by the local engine work)."""
