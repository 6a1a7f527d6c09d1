"""The OAuth 2.0 / OpenID Connect protocol layer, built on Authlib's grants."""
