"""The trained model set: every model the registry declares, trained on the ratings before an optional cutoff."""
