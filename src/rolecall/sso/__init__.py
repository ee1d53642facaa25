"""Single sign-on: OIDC and LDAP sign-in, their configuration, and just-in-time provisioning."""
