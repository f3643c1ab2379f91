"""Projects: their records, documents and environment variables.

Modules: `registry` (creating, finding, renaming and deleting projects); `project_docs` (the
project's documents); `env_vars` (environment variables, secret ones sealed).

Callers use the names re-exported here (`projects.name`); the modules they come from stay
implementation, except those imported by name (`from fastest.services.projects import project_docs`).
"""

from __future__ import annotations

from fastest.services.projects.registry import (
    brief,
    create,
    delete,
    detail,
    events_page,
    get_owned,
    list_page,
    rename,
    status,
    update_brief,
)
