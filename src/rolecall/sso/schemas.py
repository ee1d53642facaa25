"""REST shapes of the SSO configuration. Secrets are write-only: reads say only whether one
is set."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from rolecall.sso.service import SsoView

FIXED = "settings fixed by the environment, which the API cannot change"


class OidcSettingsUpdate(BaseModel):
    """OIDC relying-party settings; omitted: unchanged, ``null``: cleared."""

    model_config = ConfigDict(extra="forbid")

    issuer: str | None = Field(default=None, description="OIDC_ISSUER wins when set")
    client_id: str | None = Field(default=None, description="OIDC_CLIENT_ID wins when set")
    auth_method: Literal["pkce", "implicit"] | None = Field(
        default=None, description="OIDC_AUTH_METHOD wins when set"
    )
    secret: str | None = Field(
        default=None, description="write-only; OIDC_SECRET wins when set", max_length=2048
    )
    custom_scopes: list[str] | None = Field(
        default=None, description="GORILLA_OIDC_CUSTOM_SCOPES wins when set", max_length=50
    )


class LdapSettingsUpdate(BaseModel):
    """LDAP settings; omitted: unchanged, ``null``: cleared."""

    model_config = ConfigDict(extra="forbid")

    address: str | None = Field(default=None, description="LOCAL_LDAP_ADDRESS wins when set")
    base_dn: str | None = Field(default=None, description="LOCAL_LDAP_BASE_DN wins when set")
    bind_dn: str | None = Field(default=None, description="LOCAL_LDAP_BIND_DN wins when set")
    bind_pw: str | None = Field(
        default=None, description="write-only; LOCAL_LDAP_BIND_PW wins when set", max_length=2048
    )
    attributes: str | None = Field(
        default=None, description="e.g. email=mail,group=gidNumber; LOCAL_LDAP_ATTRIBUTES wins"
    )
    tls_enable: bool | None = Field(default=None, description="LOCAL_LDAP_TLS_ENABLE wins")
    ca_file: str | None = Field(default=None, description="ROLECALL_LDAP_CA_FILE wins when set")
    group_allow_list: list[str] | None = Field(
        default=None, description="LOCAL_LDAP_GROUP_ALLOW_LIST wins when set", max_length=500
    )
    login: bool | None = Field(default=None, description="LOCAL_LDAP_LOGIN wins when set")


class OidcSettingsRead(BaseModel):
    issuer: str | None
    client_id: str | None
    auth_method: str
    secret_set: bool
    custom_scopes: list[str]
    scopes: list[str] = Field(description="what a sign-in asks for")
    configured: bool
    redirect_uri: str = Field(description="register this at the identity provider")
    fixed_by_environment: list[str] = Field(description=FIXED)


class LdapSettingsRead(BaseModel):
    address: str | None
    base_dn: str | None
    bind_dn: str | None
    bind_pw_set: bool
    attributes: dict[str, str]
    name_attributes: list[str] = Field(
        description="where the full name is read: the first of these an entry has"
    )
    tls_enable: bool
    ca_file: str | None
    group_allow_list: list[str]
    login: bool
    configured: bool
    fixed_by_environment: list[str] = Field(description=FIXED)


class SsoRead(BaseModel):
    oidc: OidcSettingsRead
    ldap: LdapSettingsRead
    sso_enabled: bool = Field(description="false while LOCAL_RESTORE is set")
    saml: Literal["not supported"] = "not supported"

    @classmethod
    def of(cls, view: SsoView) -> SsoRead:
        oidc, ldap = view.oidc, view.ldap
        return cls(
            oidc=OidcSettingsRead(
                issuer=oidc.issuer,
                client_id=oidc.client_id,
                auth_method=oidc.auth_method,
                secret_set=oidc.secret is not None,
                custom_scopes=list(oidc.custom_scopes),
                scopes=list(oidc.scopes),
                configured=oidc.configured,
                redirect_uri=view.redirect_uri,
                fixed_by_environment=list(oidc.fixed_by_environment),
            ),
            ldap=LdapSettingsRead(
                address=ldap.address,
                base_dn=ldap.base_dn,
                bind_dn=ldap.bind_dn,
                bind_pw_set=ldap.bind_pw is not None,
                attributes=ldap.attributes,
                name_attributes=list(ldap.name_attributes),
                tls_enable=ldap.tls_enable,
                ca_file=ldap.ca_file,
                group_allow_list=list(ldap.group_allow_list),
                login=ldap.login,
                configured=ldap.configured,
                fixed_by_environment=list(ldap.fixed_by_environment),
            ),
            sso_enabled=view.sso_enabled,
        )
