"""Deployments: routes and traffic weights, canary rollouts, A/B tests and shadow traffic,
decided by sequential statistics and recorded as events."""

__all__: list[str] = []
