"""Who is calling: users, bearer tokens and sessions, sign-in (device flow, Google), API keys, the
audit log.

Modules: `accounts` (users, tokens, authentication and abilities); `api_keys` (a user's provider API
keys, sealed in the vault); `device_flow` (the OAuth device authorization grant for the CLI);
`device_google` (Google sign-in on the device page); `google` (verifying Google ID tokens); `audit`
(the security audit log).

Callers use the names re-exported here (`identity.name`); the modules they come from stay
implementation, except those imported by name (`from fastest.services.identity import api_keys`).
"""

from __future__ import annotations

from fastest.services.identity.accounts import (
    authorize,
    checked_email,
    ensure_user,
    get_user,
    issue_token,
    revoke_or_404,
    revoke_token,
    sign_in,
    tokens_page,
    user_view,
)
