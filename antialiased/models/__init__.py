"""Anti-aliased ImageNet architectures, their registry and weights (filled in by the models work)."""
__all__: list[str] = []
