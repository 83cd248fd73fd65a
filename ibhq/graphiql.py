"""GraphiQL, served from the pinned npm packages under the assets folder.

Nothing is fetched from a CDN, so GraphiQL works on a machine with no
internet access.
"""

from pathlib import Path

from starlette.requests import Request
from starlette.responses import FileResponse, PlainTextResponse, Response

# URL name to file under the assets folder (``assets/node_modules``).
ASSET_FILES = {
    "graphiql.min.css": "graphiql/graphiql.min.css",
    "graphiql.min.js": "graphiql/graphiql.min.js",
    "react.production.min.js": "react/umd/react.production.min.js",
    "react-dom.production.min.js": "react-dom/umd/react-dom.production.min.js",
}
ASSET_PREFIX = "/static/graphiql/"

PAGE = """<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <title>IBHQ GraphiQL</title>
  <link rel="stylesheet" href="{prefix}graphiql.min.css">
  <style>html, body, #graphiql {{ height: 100%; margin: 0; }}</style>
</head>
<body>
  <div id="graphiql">Loading GraphiQL...</div>
  <script src="{prefix}react.production.min.js"></script>
  <script src="{prefix}react-dom.production.min.js"></script>
  <script src="{prefix}graphiql.min.js"></script>
  <script>
    const fetcher = GraphiQL.createFetcher({{ url: "/graphql" }});
    ReactDOM.createRoot(document.getElementById("graphiql")).render(
      React.createElement(GraphiQL, {{ fetcher, defaultEditorToolsVisibility: true }})
    );
  </script>
</body>
</html>
"""


def graphiql_page() -> str:
    return PAGE.format(prefix=ASSET_PREFIX)


def asset_endpoint(assets_dir: Path):  # type: ignore[no-untyped-def]
    async def serve_asset(request: Request) -> Response:
        relative = ASSET_FILES.get(request.path_params["name"])
        if relative is None:
            return PlainTextResponse("Not found", status_code=404)
        path = assets_dir / relative
        if not path.is_file():
            return PlainTextResponse(
                f"GraphiQL assets are missing from {assets_dir}: "
                "run `npm ci --prefix assets`",
                status_code=503,
            )
        return FileResponse(path, headers={"Cache-Control": "public, max-age=3600"})

    return serve_asset
