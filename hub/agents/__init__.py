"""The Faust agents: one thin module per flow. They read messages and hand them to the pipeline;
`create_app` installs them on the app it builds (`install_agents`)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from hub.app import HubApp


def install_agents(wired: HubApp) -> None:
    """Every agent of the worker, on `wired`'s app."""
    from hub.agents import addresses, dead_letters, registrations

    for module in (registrations, addresses, dead_letters):
        module.install(wired)
