"""Candidate models learned from ratings: sequential co-visitation, recent popularity, fusion weights."""
