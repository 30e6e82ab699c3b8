"""Guest invitations (PROTOCOL §4, §17): tokens that let a guest connect with method globs."""

from ._service import (
    DEFAULT_EXPIRY_S as DEFAULT_EXPIRY_S,
    MAX_EXPIRY_S as MAX_EXPIRY_S,
    GuestService as GuestService,
    guest_principal_id as guest_principal_id,
    guest_session as guest_session,
)
