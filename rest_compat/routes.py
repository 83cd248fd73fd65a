"""The REST route table: each documented route names the GraphQL operation it runs.

Later modules add rows here and operations under ``operations/``; the
executor, the OpenAPI document and the test matrices all read this table.
"""

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True, slots=True)
class RestRoute:
    method: str
    path: str
    operation: str
    summary: str
    # The operation's variable that receives the JSON body, if the route has one.
    body: str | None = None
    status: int = 200
    # A route that answers 204 sends no body, whatever the operation returns.
    public: bool = False
    writes: bool = False
    tag: str = "CRM"
    example: dict[str, Any] | None = None
    query_params: tuple[str, ...] = field(default=())

    @property
    def path_params(self) -> tuple[str, ...]:
        return tuple(
            part[1:-1] for part in self.path.split("/") if part.startswith("{")
        )


ROUTES: tuple[RestRoute, ...] = (
    RestRoute(
        "POST",
        "/api/auth/register",
        "Register",
        "Register a new workspace and its owner, and sign the owner in.",
        body="input",
        status=201,
        public=True,
        writes=True,
        tag="Authentication",
        example={
            "tenantName": "Acme Partners",
            "tenantSlug": "acme-partners",
            "email": "owner@acme.example",
            "password": "correct horse battery",
        },
    ),
    RestRoute(
        "GET",
        "/api/leads",
        "ListLeads",
        "List the workspace's leads, newest first.",
        query_params=("stage", "q", "page", "pageSize"),
    ),
    RestRoute(
        "POST",
        "/api/leads",
        "CreateLead",
        "Create a lead.",
        body="input",
        status=201,
        writes=True,
        example={
            "fullName": "Alex Morgan",
            "email": "alex@example.com",
            "pipelineStage": "new",
        },
    ),
    RestRoute(
        "GET",
        "/api/leads/{leadId}",
        "GetLead",
        "Fetch one lead with its activity timeline, newest first.",
    ),
    RestRoute(
        "PATCH",
        "/api/leads/{leadId}",
        "UpdateLead",
        "Update the given fields of a lead; absent fields stay, null clears.",
        body="input",
        writes=True,
        example={"pipelineStage": "contacted", "tags": ["vip"]},
    ),
    RestRoute(
        "DELETE",
        "/api/leads/{leadId}",
        "DeleteLead",
        "Delete a lead and its timeline.",
        status=204,
        writes=True,
    ),
    RestRoute(
        "POST",
        "/api/leads/{leadId}/activities",
        "AddLeadActivity",
        "Log a note, call or email on a lead.",
        body="input",
        status=201,
        writes=True,
        example={"type": "call", "body": "Called about the demo account"},
    ),
)
