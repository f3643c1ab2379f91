"""Deployments: detection, builds, provisioning, providers and the deployment pipeline.

Modules: `pipeline` (creating and running deployments: the callback, cancel, rollback,
auto-deploy); `records` (reading deployments and their logs); `settings` (a workspace's deployment
settings); `status` (the status machine's writes and the log); `deploy_step` (handing the output to
a provider); `builds` (running a project's build); `detect` (detecting how a workspace deploys);
`providers` (infrastructure credentials and deploy providers); `resources` (provisioned resources:
databases, buckets).

Callers use the names re-exported here (`deployments.name`); the modules they come from stay
implementation, except those imported by name (`from fastest.services.deployments import builds`).
"""

from __future__ import annotations

from fastest.services.deployments.pipeline import (
    Spawn,
    auto_deploy,
    callback,
    cancel,
    deploy_project,
    deploy_workspace,
    fail_stalled,
    rollback,
)
from fastest.services.deployments.records import (
    by_slug,
    deployment_view,
    failing_projects,
    get_owned,
    last_failure,
    list_for_conversation,
    list_for_workspace,
    live_for_project_slug,
    logs,
    with_project_url,
)
from fastest.services.deployments.settings import get_settings, update_settings
from fastest.services.deployments.status import (
    by_id,
    move,
    read_logs,
)
