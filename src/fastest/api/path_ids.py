"""The path parameters that name a resource, each declared once (`project_id: ProjectId`)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Path

CheckoutId = Annotated[str, Path(max_length=64, description="A checkout id (`chk_…`).")]
ConversationId = Annotated[str, Path(max_length=64, description="A conversation id (`cnv_…`).")]
DeliveryId = Annotated[str, Path(max_length=64, description="A delivery (attempt) id (`whd_…`).")]
DeploymentId = Annotated[str, Path(max_length=64, description="A deployment id (`dep_…`).")]
ItemId = Annotated[str, Path(max_length=64, description="An action item id (`act_…`).")]
ProjectId = Annotated[str, Path(max_length=64, description="A project id (`prj_…`).")]
RequestId = Annotated[str, Path(max_length=64, description="A question id (`que_…`, from the `question.asked` event).")]
RunId = Annotated[str, Path(max_length=64, description="A run id (`run_…`).")]
SnapshotIdParam = Annotated[str, Path(max_length=64, description="A snapshot id (`snp_…`).")]
StepId = Annotated[str, Path(max_length=64, description="A next step id (`nxs_…`).")]
TokenId = Annotated[str, Path(max_length=64, description="A token id (`tok_…`), from `GET /v1/auth/tokens`.")]
WebhookId = Annotated[str, Path(max_length=64, description="A webhook endpoint id (`whk_…`).")]
WorkspaceId = Annotated[str, Path(max_length=64, description="A workspace id (`wsp_…`).")]
