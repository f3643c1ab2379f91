"""Deployments: detection, builds, provisioning, providers and the deployment pipeline.

Modules: `pipeline` (deployments, their status machine, callbacks, cancel and rollback); `builds`
(running a project's build); `detect` (detecting how a workspace deploys); `providers`
(infrastructure credentials and deploy providers); `resources` (provisioned resources (databases,
buckets)).

Callers use the names re-exported here (`deployments.name`); the modules they come from stay
implementation, except those imported by name (`from fastest.services.deployments import builds`).
"""

from __future__ import annotations

from fastest.services.deployments.pipeline import (
    Spawn,
    auto_deploy,
    by_slug,
    callback,
    cancel,
    deploy_project,
    deploy_workspace,
    deployment_view,
    fail_stalled,
    failing_projects,
    get_owned,
    get_settings,
    last_failure,
    list_for_conversation,
    list_for_workspace,
    live_for_project_slug,
    logs,
    rollback,
    update_settings,
    with_project_url,
)
from fastest.services.deployments.status import (
    by_id,
    move,
    read_logs,
)
