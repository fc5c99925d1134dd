"""Shared fixtures for the adapter tests: the anyio backend and an injected client."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
async def client(anyio_backend: str) -> AsyncIterator[httpx.AsyncClient]:
    """The client the run engine would inject; pytest-httpx answers its requests."""
    async with httpx.AsyncClient() as client:
        yield client
