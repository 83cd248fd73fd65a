"""The OpenAPI document, generated from the route table and the schema."""

from typing import Any

from graphql import (
    GraphQLEnumType,
    GraphQLInputObjectType,
    GraphQLInputType,
    GraphQLList,
    GraphQLNonNull,
    GraphQLScalarType,
    GraphQLSchema,
    Undefined,
    type_from_ast,
)

from rest_compat.operations import load_operations
from rest_compat.routes import ROUTES, SPREAD_BODY, RestRoute

SCALARS: dict[str, dict[str, Any]] = {
    "String": {"type": "string"},
    "ID": {"type": "string"},
    "Int": {"type": "integer"},
    "Float": {"type": "number"},
    "Boolean": {"type": "boolean"},
    "Decimal": {"type": ["string", "number"], "description": "Exact decimal"},
    "BigInt": {"type": ["string", "integer"]},
    "DateTime": {"type": "string", "format": "date-time"},
}

HTML = {"content": {"text/html": {"schema": {"type": "string"}}}}

AUTH_ROUTES: dict[str, dict[str, Any]] = {
    "/api/auth/csrf": {"get": {"summary": "Get a CSRF token (Auth.js)."}},
    "/api/auth/providers": {"get": {"summary": "List sign-in providers (Auth.js)."}},
    "/api/auth/session": {
        "get": {"summary": "The current session, or null when signed out (Auth.js)."}
    },
    "/api/auth/callback/credentials": {
        "post": {
            "summary": "Sign in with email and password (Auth.js credentials).",
            "requestBody": {
                "content": {
                    "application/x-www-form-urlencoded": {
                        "schema": {
                            "type": "object",
                            "required": ["csrfToken", "email", "password"],
                            "properties": {
                                "csrfToken": {"type": "string"},
                                "email": {"type": "string"},
                                "password": {"type": "string"},
                                "callbackUrl": {"type": "string"},
                            },
                        }
                    }
                }
            },
        }
    },
    "/api/auth/signout": {"post": {"summary": "Sign out (Auth.js)."}},
    "/api/auth/signin": {
        "get": {
            "summary": "An HTML sign-in form for browsers (Auth.js).",
            "parameters": [
                {"name": "callbackUrl", "in": "query", "schema": {"type": "string"}},
                {"name": "error", "in": "query", "schema": {"type": "string"}},
            ],
            "responses": {"200": {"description": "The form", **HTML}},
        }
    },
    "/api/auth/signin/credentials": {
        "get": {
            "summary": "The same sign-in form, at the credentials provider's URL.",
            "responses": {"200": {"description": "The form", **HTML}},
        }
    },
    "/api/auth/error": {
        "get": {
            "summary": "An HTML page that explains a failed sign-in (Auth.js).",
            "parameters": [
                {"name": "error", "in": "query", "schema": {"type": "string"}}
            ],
            "responses": {"400": {"description": "The explanation", **HTML}},
        }
    },
}


def openapi_document(schema: GraphQLSchema, *, server_url: str) -> dict[str, Any]:
    paths: dict[str, dict[str, Any]] = {}
    for route in ROUTES:
        paths.setdefault(route.path, {})[route.method.lower()] = _operation(
            route, schema
        )
    for path, item in AUTH_ROUTES.items():
        paths.setdefault(path, {}).update(_with_tag(item, "Authentication"))
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "IBHQ REST API",
            "version": "1.0",
            "description": "Every route runs a named GraphQL operation. Authenticated "
            "routes use the Auth.js session cookie; writes need an owner or admin.",
        },
        "servers": [{"url": server_url}],
        "paths": paths,
        "components": {
            "securitySchemes": {
                "session": {
                    "type": "apiKey",
                    "in": "cookie",
                    "name": "authjs.session-token",
                }
            },
            "schemas": {
                "Error": {
                    "type": "object",
                    "properties": {"error": {"type": "string"}},
                    "required": ["error"],
                }
            },
        },
    }


def _operation(route: RestRoute, schema: GraphQLSchema) -> dict[str, Any]:
    operation = load_operations()[route.operation]
    entry: dict[str, Any] = {
        "summary": route.summary,
        "operationId": route.operation,
        "tags": [route.tag],
        "description": f"Runs the GraphQL operation `{route.operation}`.",
        "parameters": [
            {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
            for name in route.path_params
        ],
        "responses": _responses(route),
    }
    for name in route.query_params:
        spec = operation.variables[name]
        type_ = type_from_ast(schema, spec.type)
        entry["parameters"].append(
            {
                "name": name,
                "in": "query",
                "required": False,
                "schema": _schema_of(type_),
            }
        )
    if route.body is not None:
        media: dict[str, Any] = {"schema": _body_schema(route, schema)}
        if route.example is not None:
            media["example"] = route.example
        entry["requestBody"] = {
            "required": True,
            "content": {"application/json": media},
        }
    if not route.public:
        entry["security"] = [{"session": []}]
    if route.signed_webhook:
        entry["description"] += (
            " Signed with Standard Webhooks: webhook-id, webhook-timestamp and "
            "webhook-signature headers, HMAC-SHA256 with IBHQ_BILLING_WEBHOOK_SECRET."
        )
        entry["parameters"] += [
            {
                "name": name,
                "in": "header",
                "required": True,
                "schema": {"type": "string"},
            }
            for name in ("webhook-id", "webhook-timestamp", "webhook-signature")
        ]
    return entry


def _body_schema(route: RestRoute, schema: GraphQLSchema) -> dict[str, Any]:
    operation = load_operations()[route.operation]
    if route.body != SPREAD_BODY:
        assert route.body is not None
        return _schema_of(type_from_ast(schema, operation.variables[route.body].type))
    properties = {}
    required = []
    for name, spec in operation.variables.items():
        if name in route.path_params:
            continue
        type_ = type_from_ast(schema, spec.type)
        properties[name] = _schema_of(type_)
        if isinstance(type_, GraphQLNonNull) and not spec.has_default:
            required.append(name)
    return {
        "type": "object",
        "properties": properties,
        "required": required,
        "additionalProperties": False,
    }


def _responses(route: RestRoute) -> dict[str, Any]:
    error = {
        "content": {
            "application/json": {"schema": {"$ref": "#/components/schemas/Error"}}
        }
    }
    responses: dict[str, Any] = {
        str(route.status): {"description": "Success"},
        "400": {"description": "Invalid input", **error},
    }
    if not route.public:
        responses["401"] = {"description": "Not signed in", **error}
        responses["404"] = {"description": "Not found in this workspace", **error}
    if route.writes and not route.public:
        responses["403"] = {"description": "Needs the owner or admin role", **error}
    if route.body is not None:
        responses["415"] = {
            "description": "Content-Type is not application/json",
            **error,
        }
    return responses


def _schema_of(type_: Any) -> dict[str, Any]:
    if isinstance(type_, GraphQLNonNull):
        return _schema_of(type_.of_type)
    if isinstance(type_, GraphQLList):
        return {"type": "array", "items": _schema_of(type_.of_type)}
    if isinstance(type_, GraphQLEnumType):
        return {"type": "string", "enum": list(type_.values)}
    if isinstance(type_, GraphQLScalarType):
        return dict(SCALARS.get(type_.name, {"type": "string"}))
    if isinstance(type_, GraphQLInputObjectType):
        return _input_object(type_)
    return {}


def _input_object(type_: GraphQLInputObjectType) -> dict[str, Any]:
    properties: dict[str, Any] = {}
    required = []
    for name, field in type_.fields.items():
        field_type: GraphQLInputType = field.type
        schema = _schema_of(field_type)
        if not isinstance(field_type, GraphQLNonNull):
            schema = {"anyOf": [schema, {"type": "null"}]}
        elif field.default_value is Undefined:
            required.append(name)
        if field.description:
            schema["description"] = field.description
        properties[name] = schema
    result: dict[str, Any] = {
        "type": "object",
        "properties": properties,
        "additionalProperties": False,
    }
    if required:
        result["required"] = required
    return result


def _with_tag(item: dict[str, Any], tag: str) -> dict[str, Any]:
    return {method: {**entry, "tags": [tag]} for method, entry in item.items()}
