"""The OAuth 2.0 / OpenID Connect authorization server: Authlib grants, endpoints, consent."""
