"""Stage: models learned from ratings (implicit ALS; sequential co-visitation)."""
