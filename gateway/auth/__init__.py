"""User auth: the app's JWT/OIDC providers (``convex/auth.config.py``), their keys,
and the token check behind ``Gateway.verify_token``. No server code here: the HTTP
API and the sync engine call ``Authenticator.verify`` through the gateway."""

from gateway.auth.config import AuthConfigError, Provider, parse_auth_config
from gateway.auth.identity import Identity
from gateway.auth.verifier import Authenticator, TokenRefused

__all__ = [
    "AuthConfigError",
    "Authenticator",
    "Identity",
    "Provider",
    "TokenRefused",
    "parse_auth_config",
]
