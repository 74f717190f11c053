"""``embedloop serve`` (HTTP + scheduler, or MCP) and ``embedloop mcp``."""

from __future__ import annotations

import click

from embedloop.cli.context import CliState, pass_state


def _mcp(state: CliState, transport: str, host: str, port: int, insecure: bool, scheduler: bool) -> None:
    from embedloop.serving.mcp_server import run_mcp

    run_mcp(state.settings(), transport=transport, host=host, port=port, insecure=insecure, with_scheduler=scheduler)


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", type=click.IntRange(1, 65535), default=None, help="Port (default 8000; MCP over HTTP 8765).")
@click.option("--insecure", is_flag=True, help="Serve admin operations without a token (loopback addresses only).")
@click.option(
    "--no-scheduler", is_flag=True, help="Do not fine-tune automatically (the hourly check is on by default)."
)
@click.option("--mcp", "as_mcp", is_flag=True, help="Serve MCP over streamable HTTP instead of the HTTP API.")
@click.option(
    "--log-level",
    type=click.Choice(["debug", "info", "warning", "error"]),
    default="info",
    show_default=True,
    help="Server log level.",
)
@pass_state
def serve(
    state: CliState, host: str, port: int | None, insecure: bool, no_scheduler: bool, as_mcp: bool, log_level: str
) -> None:
    """Serve the HTTP API (OpenAPI at /docs) with the fine-tuning scheduler.

    Admin endpoints need EMBEDLOOP_API_TOKEN as a bearer token; feedback
    endpoints need EMBEDLOOP_FEEDBACK_TOKEN when it is set.
    """
    if as_mcp:
        _mcp(state, "http", host, port or 8765, insecure, not no_scheduler)
        return
    from embedloop.serving.common import check_bind
    from embedloop.serving.http import dashboard_url
    from embedloop.serving.http import serve as serve_http

    check_bind(host, insecure)  # refuse a bad bind before announcing an address
    click.echo(f"embedloop: dashboard at {dashboard_url(host, port or 8000)}", err=True)
    serve_http(
        state.settings(),
        host=host,
        port=port or 8000,
        insecure=insecure,
        with_scheduler=not no_scheduler,
        log_level=log_level,
    )


@click.command()
@click.option(
    "--transport", type=click.Choice(["stdio", "http"]), default="stdio", show_default=True, help="MCP transport."
)
@click.option("--host", default="127.0.0.1", show_default=True, help="Address for --transport http.")
@click.option(
    "--port", type=click.IntRange(1, 65535), default=8765, show_default=True, help="Port for --transport http."
)
@click.option("--insecure", is_flag=True, help="HTTP transport without a token (loopback addresses only).")
@click.option("--with-scheduler", is_flag=True, help="Also fine-tune automatically while serving.")
@pass_state
def mcp(state: CliState, transport: str, host: str, port: int, insecure: bool, with_scheduler: bool) -> None:
    """Serve the MCP tools (search, record_selection, record_feedback, check_fine_tuning_status,
    fine_tune_embeddings, list_model_versions, rollback_model) over stdio or streamable HTTP.
    """
    _mcp(state, transport, host, port, insecure, with_scheduler)
