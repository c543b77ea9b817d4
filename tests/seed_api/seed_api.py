"""The seed-style API logjet's one-event-per-POST bench is paired with (issue 17).

What the platform logjet replaces ran for ingestion (../shared/ORIGIN.md: "API Service
(Python/FastAPI)", Redis for message passing): FastAPI under uvicorn with 2 workers, a pydantic
model validating each log entry, and an LPUSH of the validated JSON to a Redis list through
redis-py's asyncio client. Started by the bench (tests/src/bench/seed.rs) with REDIS_URL set.
"""

import os
from datetime import datetime
from typing import Any, Optional

import redis.asyncio as redis
from fastapi import FastAPI
from pydantic import BaseModel, ConfigDict, Field


class LogEntry(BaseModel):
    # The bench's realistic lines carry more fields than these: kept, as the seed kept metadata.
    model_config = ConfigDict(extra="allow")

    service: str = Field(min_length=1, max_length=128)
    level: str = "info"
    message: str
    ts: Optional[datetime] = None
    metadata: dict[str, Any] = Field(default_factory=dict)


app = FastAPI()
store = redis.Redis.from_url(os.environ.get("REDIS_URL", "redis://127.0.0.1:6379"))


@app.post("/logs", status_code=202)
async def ingest(entry: LogEntry) -> dict[str, str]:
    await store.lpush("logs", entry.model_dump_json())
    return {"status": "accepted"}


@app.get("/health")
async def health() -> dict[str, str]:
    return {"status": "ok"}
