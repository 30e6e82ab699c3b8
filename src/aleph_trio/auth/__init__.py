"""Authentication (PROTOCOL §4): principals and their roles, the owner token, failure limits."""

from ._limits import (
    MAX_FAILURES_PER_CONNECTION as MAX_FAILURES_PER_CONNECTION,
    FailureLimiter as FailureLimiter,
)
from ._principals import (
    OWNER as OWNER,
    GuestResolver as GuestResolver,
    Principal as Principal,
    Role as Role,
)
from ._tokens import (
    TOKEN_ENV as TOKEN_ENV,
    Authenticator as Authenticator,
    load_or_create_token as load_or_create_token,
    owner_token as owner_token,
)
