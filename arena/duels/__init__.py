"""The duel: the double oracle on real strategies, from settings to ``duel.json``."""
