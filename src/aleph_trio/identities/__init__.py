"""Identities (PROTOCOL §17): the persona every run's system prompt speaks with."""

from ._service import (
    DEFAULT_IDENTITY as DEFAULT_IDENTITY,
    FIELDS as FIELDS,
    IdentityService as IdentityService,
    persona_prompt as persona_prompt,
)
