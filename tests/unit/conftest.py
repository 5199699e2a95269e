"""Fixtures of the unit tests: config, catalogue, fake clock, a migrated SQLite database and
the engine stand-in (see :mod:`chain_world`)."""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from chain_world import Harness, mellansverige

from bot.clock import FakeClock
from bot.config import Config
from bot.i18n import Catalog
from storage.database import Database


@pytest.fixture
def config() -> Config:
    return mellansverige()


@pytest.fixture(scope="session")
def catalog() -> Catalog:
    return Catalog.load()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture(scope="session")
async def migrated_db_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Migrate once per session; each test gets a copy (migrating takes far longer)."""
    path = tmp_path_factory.mktemp("template") / "larmkedja.db"
    db = Database(f"sqlite+aiosqlite:///{path}")
    await db.migrate()
    await db.close()
    return path


@pytest.fixture
async def db(migrated_db_file: Path, tmp_path: Path) -> AsyncIterator[Database]:
    path = tmp_path / "larmkedja.db"
    shutil.copy(migrated_db_file, path)
    database = Database(f"sqlite+aiosqlite:///{path}")
    yield database
    await database.close()


@pytest.fixture
async def bot(db: Database, config: Config, clock: FakeClock, catalog: Catalog) -> Harness:
    return Harness(db=db, config=config, clock=clock, catalog=catalog)
