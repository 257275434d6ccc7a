"""Arena: an adaptive-attack game solver for neural-network backdoors (docs/architecture.md)."""
