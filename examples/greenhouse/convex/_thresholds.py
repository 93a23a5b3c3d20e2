"""Plain helpers shared by the app's modules (no functions here)."""


def above_limit(celsius: float, limit: float) -> bool:
    return celsius > limit
