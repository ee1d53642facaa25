"""REST shapes of the LDAP settings test (``POST /api/v1/sso/ldap/test``)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from rolecall.sso.ldap_check import LdapCheck

StepName = Literal[
    "connect", "tls", "bind", "base_dn", "attributes", "search", "groups", "password"
]


class LdapTestRequest(BaseModel):
    """Settings to try, laid over the stored ones (omitted: as stored, ``null``: cleared),
    and optionally an entry to look up and a password to bind as it with. Nothing is stored."""

    model_config = ConfigDict(extra="forbid")

    address: str | None = Field(default=None, description="ldap://host[:port] or ldaps://...")
    base_dn: str | None = None
    bind_dn: str | None = Field(default=None, description="null: anonymous bind")
    bind_pw: str | None = Field(default=None, max_length=2048)
    attributes: str | None = Field(default=None, description="e.g. email=mail,group=gidNumber")
    tls_enable: bool | None = None
    ca_file: str | None = Field(default=None, description="a PEM CA bundle on the server")
    group_allow_list: list[str] | None = Field(default=None, max_length=500)
    email: str | None = Field(
        default=None, max_length=320, description="find this person's entry (search, groups)"
    )
    password: str | None = Field(
        default=None, max_length=1024, description="with email: bind as the entry found"
    )

    def changes(self) -> dict[str, object]:
        return self.model_dump(exclude_unset=True, exclude={"email", "password"})


class LdapTestStep(BaseModel):
    step: StepName
    ok: bool
    detail: str


class LdapTestRead(BaseModel):
    ok: bool = Field(description="every step passed")
    steps: list[LdapTestStep] = Field(description="in order; the first failed step is the last")

    @classmethod
    def of(cls, check: LdapCheck) -> LdapTestRead:
        return cls(
            ok=check.ok,
            steps=[LdapTestStep(step=s.step, ok=s.ok, detail=s.detail) for s in check.steps],  # type: ignore[arg-type]
        )
